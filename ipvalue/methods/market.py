"""Market approach (市场法): comparable transactions supplied by the bank, adjusted to each patent.

Comparable-transactions file (CSV, UTF-8, one row per transaction; untrusted, every row checked)
===========================  ========  ========================================================
column                       required  meaning / domain
===========================  ========  ========================================================
``transaction_id``           yes       unique text id
``date``                     yes       ISO date of the contract / auction (not after the
                                       valuation date)
``kind``                     yes       ``transfer`` (转让), ``auction`` (拍卖), ``licence_fixed_fee``
                                       (固定费用许可), ``licence_running_royalty`` (提成许可:
                                       counted as evidence, not priced)
``price_rmb``                priced    total consideration in RMB, > 0 (transfer, auction,
                                       fixed-fee licence)
``patent_type``              yes       ``invention``, ``utility_model`` or ``design``
``ipc_main``                 no        main IPC code, e.g. ``G06F 16/00`` (matching by field)
``remaining_life_years``     yes       remaining legal life at the transaction date, [0, 30]
``licence_years``            licences  years the licence runs, (0, 30]
``score``                    no        indicator score (0-100, ``scorecard-pledge``) of the
                                       transacted patent; missing: no score adjustment
``source``                   no        where the record comes from (contract, CNIPA record no.)
===========================  ========  ========================================================

Adjustments (factors in the ``market-cn`` assumption set, each with its source), per subject
patent ``i`` and comparable ``j``::

    adjusted_ij = price_j × kind_factor[kind_j] × life_ij × score_ij
    life_ij     = clip(remaining_life_i / covered_years_j, low, high)      covered = licence years
                                                                           or remaining life
    score_ij    = clip(1 + elasticity × (score_i − score_j) / 100, low, high)

No time adjustment: no public price index of patent transactions is sourced; transactions older
than ``max_age_years`` are left out instead. Comparables are matched on the patent type and the
closest field level that has at least ``min_comparables``: the same IPC subclass (``G06F``), else
the same IPC section (``G``), else the patent type alone (weak). The market value is the median of
the adjusted prices; the evidence (level, count, spread = highest / lowest adjusted price) is
reported with it. Without enough comparables there is no market value (NaN, evidence ``none``).

Where the bank has no comparables, :func:`cnipa_range_check` places a value against the CNIPA
national licence statistics: averages of fixed-fee licences, no spread, no field, no patent type.
It is a range check that says how thin it is, never a value.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import assumption_value, content_hash, load_set
from ipvalue.exceptions import AssumptionError, ColumnError, ComparablesError
from ipvalue.methods.base import MethodResult, coverage_quantiles, interval_frame, offers_frame
from ipvalue.methods.capacity import package_attributable_profit
from ipvalue.methods.registry import register_method
from ipvalue.report.sections import Column, Section

logger = logging.getLogger(__name__)

__all__ = ["COMPARABLE_KINDS", "MarketApproachValuer", "cnipa_range_check", "load_comparables"]

COMPARABLE_KINDS = ("transfer", "auction", "licence_fixed_fee", "licence_running_royalty")
PRICED_KINDS = ("transfer", "auction", "licence_fixed_fee")
PATENT_TYPES = ("invention", "utility_model", "design")
REQUIRED = ("transaction_id", "date", "kind", "patent_type", "remaining_life_years")
MATCH_LEVELS = ("ipc_subclass", "ipc_section", "patent_type")


def load_comparables(source: "str | Path | pd.DataFrame", *, valuation_date=None) -> pd.DataFrame:
    """Read and validate a comparable-transactions file (schema in the module docstring).

    Parameters
    ----------
    source : path to a CSV file, or a DataFrame with the same columns (values as text or numbers)
    valuation_date : date-like, default=None (today)
        Transactions dated after it are refused.

    Returns
    -------
    pandas.DataFrame, typed columns, one row per transaction

    Raises
    ------
    ColumnError
        A required column is missing.
    ComparablesError
        Rows break the schema; ``problems`` has ``row, transaction_id, column, value, problem, fix``.
    """
    today = pd.Timestamp(valuation_date or pd.Timestamp.today()).normalize()
    if isinstance(source, str | os.PathLike):
        path = Path(source).resolve()
        stat = path.stat()
        return _comparables_file(path, stat.st_size, stat.st_mtime_ns, today).copy()
    raw = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8") if not isinstance(source, pd.DataFrame) else source.astype(object)
    return _checked_comparables(raw, today)


@functools.lru_cache(maxsize=16)
def _comparables_file(path: Path, size: int, modified_ns: int, today: pd.Timestamp) -> pd.DataFrame:
    """A comparables file read and checked once per process, file version (path, size,
    modification time: an edited file is read again) and valuation date: a service values many
    applications against the bank's same file. Callers get a copy; a refused file raises each time."""
    return _checked_comparables(pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8"), today)


def _checked_comparables(raw: pd.DataFrame, today: pd.Timestamp) -> pd.DataFrame:
    """The checks and typed columns of :func:`load_comparables` on a table of texts."""
    raw = raw.rename(columns=lambda c: str(c).strip())
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ColumnError(f"The comparable-transactions file lacks column(s) {missing}. Fix: add them (schema: ipvalue/market.py).")
    text = raw.apply(lambda s: s.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()))
    for col in ("price_rmb", "ipc_main", "licence_years", "score", "source"):
        if col not in text.columns:
            text[col] = ""
    problems = []

    def flag(mask: pd.Series, column: str, problem: str, fix: str) -> None:
        for row in text.index[mask.to_numpy()]:
            problems.append({"row": row, "transaction_id": text.at[row, "transaction_id"], "column": column,
                             "value": text.at[row, column], "problem": problem, "fix": fix})

    def number(column: str, lo: float, hi: float, needed: pd.Series, *, lo_open: bool = False) -> pd.Series:
        values = pd.to_numeric(text[column].where(text[column] != ""), errors="coerce")
        out_of = (values <= lo if lo_open else values < lo) | (values > hi)
        bracket = "(" if lo_open else "["
        flag((text[column] != "") & (values.isna() | out_of), column, f"not a number in {bracket}{lo:g}, {hi:g}]", "correct the value")
        flag((text[column] == "") & needed, column, "missing", "give the value")
        return values

    ids = text["transaction_id"]
    flag(ids == "", "transaction_id", "missing", "give each transaction an id")
    flag(ids.duplicated(keep="first") & (ids != ""), "transaction_id", "duplicate", "ids must be unique")
    dates = pd.to_datetime(text["date"], errors="coerce", format="ISO8601")
    flag(dates.isna(), "date", "not an ISO date (YYYY-MM-DD)", "write the date as YYYY-MM-DD")
    flag(dates > today, "date", f"after the valuation date {today.date()}", "only past transactions are evidence")
    kind = text["kind"].str.lower()
    flag(~kind.isin(COMPARABLE_KINDS), "kind", f"not one of {list(COMPARABLE_KINDS)}", "use one of the listed kinds")
    ptype = text["patent_type"].str.lower()
    flag(~ptype.isin(PATENT_TYPES), "patent_type", f"not one of {list(PATENT_TYPES)}", "use one of the listed types")
    priced = kind.isin(PRICED_KINDS)
    price = number("price_rmb", 0.0, 1e11, priced, lo_open=True)
    remaining = number("remaining_life_years", 0.0, 30.0, pd.Series(True, index=text.index))
    licence = kind.str.startswith("licence")
    years = number("licence_years", 0.0, 30.0, licence & priced, lo_open=True)
    score = number("score", 0.0, 100.0, pd.Series(False, index=text.index))
    if problems:
        table = pd.DataFrame(problems)
        lines = "\n".join(f"  row {p['row']} ({p['transaction_id']}): '{p['column']}' = {p['value']!r}: {p['problem']}. Fix: {p['fix']}." for p in problems[:10])
        raise ComparablesError(f"The comparable-transactions file has {len(problems)} problem(s) in {table['row'].nunique()} row(s):\n{lines}", table)
    ipc = text["ipc_main"].str.upper().str.replace(" ", "", regex=False)
    return pd.DataFrame({
        "transaction_id": ids, "date": dates, "kind": kind, "price_rmb": price, "patent_type": ptype,
        "ipc_subclass": ipc.str[:4].where(ipc.str.len() >= 4), "ipc_section": ipc.str[:1].where(ipc != ""),
        "remaining_life_years": remaining, "licence_years": years, "score": score, "source": text["source"],
    }).reset_index(drop=True)


class MarketApproachValuer(BaseEstimator):
    """Value patents from comparable transactions (市场法); the common valuer contract.

    Parameters
    ----------
    comparables : str, Path or DataFrame
        The bank's comparable-transactions file (schema in the module docstring).
    assumptions : str, Path or dict, default="market-cn"
    valuation_date : date-like, default=None (today at fit)

    Attributes
    ----------
    comparables_ : pandas.DataFrame
        The validated, priced transactions young enough to use.
    excluded_ : pandas.DataFrame
        Transactions left out, with ``reason``.

    Notes
    -----
    ``predict`` needs per subject patent: ``patent_type``, ``remaining_life_years``, optionally
    ``ipc_main`` and ``score`` (the frame of :meth:`IncomeApproachValuer.inputs` joined to the
    PatentFrame has all of them).
    """

    value_type = "market_value"

    def __init__(self, comparables=None, *, assumptions="market-cn", valuation_date=None):
        self.comparables = comparables
        self.assumptions = assumptions
        self.valuation_date = valuation_date

    def fit(self, X=None, y=None) -> "MarketApproachValuer":
        """Validate the comparables and the assumption set; learns nothing from ``X``."""
        if self.comparables is None:
            raise ValueError("MarketApproachValuer needs 'comparables' (a CSV path or DataFrame). Fix: pass the bank's comparable-transactions file, or use cnipa_range_check when there is none.")
        s = load_set(self.assumptions)
        raw, origin = s.raw, s.origin
        self.valuation_date_ = pd.Timestamp(self.valuation_date or pd.Timestamp.today()).normalize()
        self.min_comparables_ = int(assumption_value(raw, "min_comparables", 1, 1000))
        max_age = assumption_value(raw, "max_age_years", 0.0, 100.0)
        self.kind_factor_ = {k: assumption_value(raw, f"kind_factor.{k}", 0.0, 10.0) for k in PRICED_KINDS}
        self.life_bounds_ = (assumption_value(raw, "life_adjustment.low", 0.0, 1.0), assumption_value(raw, "life_adjustment.high", 1.0, 100.0))
        self.score_elasticity_ = assumption_value(raw, "score_adjustment.elasticity", 0.0, 10.0)
        self.score_bounds_ = (assumption_value(raw, "score_adjustment.low", 0.0, 1.0), assumption_value(raw, "score_adjustment.high", 1.0, 100.0))
        self.tests_ = {
            "min_comparables": int(assumption_value(raw, "evidence_tests.min_comparables", 1, 1000)),
            "max_spread": assumption_value(raw, "evidence_tests.max_spread", 1.0, 1000.0),
            "max_median_age_years": assumption_value(raw, "evidence_tests.max_median_age_years", 0.0, 100.0),
            "profit_capacity_years": assumption_value(raw, "evidence_tests.profit_capacity_years", 0.0, 100.0, lo_open=True),
            "price_dispersion_default": assumption_value(raw, "evidence_tests.price_dispersion_default", 0.0, 5.0),
        }
        level = ((raw.get("evidence_tests") or {}).get("min_match_level") or {}).get("value")
        if level not in MATCH_LEVELS:
            raise AssumptionError(f"The 'evidence_tests.min_match_level' of assumption set {raw.get('name', origin)!r} must be one of {list(MATCH_LEVELS)}. Got {level!r}.")
        self.tests_["min_match_level"] = level
        self.rank_ = {"tested": assumption_value(raw, "reconciliation.rank_tested", 0.0, 100.0), "thin": assumption_value(raw, "reconciliation.rank_thin", 0.0, 100.0)}
        table = load_comparables(self.comparables, valuation_date=self.valuation_date_)
        age = (self.valuation_date_ - table["date"]).dt.days / 365.25
        reason = pd.Series("", index=table.index)
        reason[age > max_age] = f"older than {max_age:g} years (no time index)"
        reason[table["kind"] == "licence_running_royalty"] = "running royalty: no lump-sum price"
        self.excluded_ = table[reason != ""].assign(reason=reason[reason != ""])
        self.comparables_ = table[reason == ""].reset_index(drop=True)
        self.provenance_ = {**s.provenance("market_assumption_set"),
                            "comparables_hash": content_hash(self.comparables_.astype(str).to_dict("list")), "time_adjustment": "none"}
        logger.info("market approach: %d comparables used, %d excluded", len(self.comparables_), len(self.excluded_))
        return self

    def _adjusted(self, X: pd.DataFrame, *, factors: bool = False):
        """(adjusted prices n × m with NaN where not used, match level per subject[, the factor
        matrices: life, score, kind-weighted price])."""
        check_is_fitted(self, "comparables_")
        for col in ("patent_type", "remaining_life_years"):
            if col not in X.columns:
                raise ColumnError(f"The market approach needs column '{col}' for each subject patent. Fix: join IncomeApproachValuer.inputs(X) or the PatentFrame.")
        c = self.comparables_
        remaining = pd.to_numeric(X["remaining_life_years"], errors="coerce").to_numpy(float)
        if np.isnan(remaining).any() or (remaining < 0).any():
            row = X.index[np.flatnonzero(np.isnan(remaining) | (remaining < 0))[0]]
            raise ValueError(f"Column 'remaining_life_years' must be a number >= 0. Got {X.at[row, 'remaining_life_years']!r} in row {row!r}.")
        score = pd.to_numeric(X["score"], errors="coerce").to_numpy(float) if "score" in X.columns else np.full(len(X), np.nan)
        ipc = (X["ipc_main"].astype("string").str.upper().str.replace(" ", "", regex=False) if "ipc_main" in X.columns else pd.Series(pd.NA, index=X.index, dtype="string"))
        covered = np.where(c["kind"].str.startswith("licence"), c["licence_years"], c["remaining_life_years"]).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            life = np.clip(remaining[:, None] / covered[None, :], *self.life_bounds_)
        life = np.where(covered[None, :] > 0, life, self.life_bounds_[1])
        gap = score[:, None] - c["score"].to_numpy(float)[None, :]
        score_factor = np.where(np.isnan(gap), 1.0, np.clip(1 + self.score_elasticity_ * gap / 100.0, *self.score_bounds_))
        price = (c["price_rmb"] * c["kind"].map(self.kind_factor_)).to_numpy(float)
        adjusted = price[None, :] * life * score_factor
        same_type = X["patent_type"].astype(str).str.lower().to_numpy()[:, None] == c["patent_type"].to_numpy()[None, :]
        masks = {
            "ipc_subclass": same_type & (ipc.str[:4].to_numpy(dtype=object)[:, None] == c["ipc_subclass"].to_numpy(dtype=object)[None, :]),
            "ipc_section": same_type & (ipc.str[:1].to_numpy(dtype=object)[:, None] == c["ipc_section"].to_numpy(dtype=object)[None, :]),
            "patent_type": same_type,
        }
        level = np.full(len(X), "none", dtype=object)
        use = np.zeros_like(same_type)
        for name in reversed(MATCH_LEVELS):  # the closest level with enough comparables wins
            enough = masks[name].sum(axis=1) >= self.min_comparables_
            level = np.where(enough, name, level)
            use = np.where(enough[:, None], masks[name], use)
        adjusted = np.where(use, adjusted, np.nan)
        adjusted[remaining <= 0] = np.where(use[remaining <= 0], 0.0, np.nan)  # a dead right is worth 0
        if factors:
            return adjusted, level, {"life": life, "score": score_factor, "price": np.broadcast_to(price[None, :], adjusted.shape)}
        return adjusted, level

    def evidence(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per subject patent: ``market_value_rmb``, ``match_level``, ``n_comparables``,
        ``spread`` (highest / lowest adjusted price), ``low_rmb``/``high_rmb`` (adjusted range), ids used."""
        return self._evidence(*self._adjusted(X), X.index)

    def _evidence(self, adjusted: np.ndarray, level: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """:meth:`evidence` from the adjusted prices and match levels of :meth:`_adjusted`."""
        n = np.sum(~np.isnan(adjusted), axis=1)
        with warnings.catch_warnings():  # all-NaN rows (no evidence) give NaN, as documented
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi, med = np.nanmin(adjusted, axis=1), np.nanmax(adjusted, axis=1), np.nanmedian(adjusted, axis=1)
        ids = self.comparables_["transaction_id"].to_numpy()
        used = [",".join(ids[~np.isnan(row)]) for row in adjusted]
        return pd.DataFrame({
            "market_value_rmb": med, "match_level": level, "n_comparables": n,
            "spread": np.where(lo > 0, hi / np.where(lo > 0, lo, 1.0), np.nan), "low_rmb": lo, "high_rmb": hi,
            "comparables_used": used, "value_type": self.value_type,
        }, index=index)

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Median adjusted comparable price per patent in RMB (NaN where evidence is 'none')."""
        return self.evidence(X)["market_value_rmb"]

    def predict_interval(self, X: pd.DataFrame, *, coverage: float = 0.9) -> pd.DataFrame:
        """Quantiles of the adjusted comparable prices (linear interpolation): the spread of the
        evidence, not a sampling distribution; NaN where evidence is 'none'."""
        return self._interval(self._adjusted(X)[0], X.index, coverage=coverage)

    @staticmethod
    def _interval(adjusted: np.ndarray, index: pd.Index, *, coverage: float) -> pd.DataFrame:
        q = coverage_quantiles(coverage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, mid, high = np.nanquantile(adjusted, q, axis=1)
        return interval_frame(low, mid, high, index)

    def subjects(self, frame: pd.DataFrame, inputs) -> pd.DataFrame:
        """The subject patents as the adjustments read them: type, main IPC, remaining legal life
        (the valuation's features) and the scorecard total."""
        return pd.DataFrame({"patent_type": frame["patent_type"], "ipc_main": frame["ipc_main"], "package_id": frame["package_id"],
                             "remaining_life_years": inputs.features["remaining_life_years"], "score": inputs.scorecard["total"]}, index=frame.index)

    def evidence_tests(self, evidence: pd.DataFrame, adjusted: np.ndarray, frame: pd.DataFrame, inputs) -> pd.DataFrame:
        """The evidence tests of each subject's comparables (see ``evidence_tests`` in the set):
        count, spread, median age, match level, and the package's profit capacity. Returns one
        row per patent: each test's figure, ``passed_<test>`` and ``passed`` (all)."""
        t = self.tests_
        ages = ((self.valuation_date_ - self.comparables_["date"]).dt.days / 365.25).to_numpy(float)
        used = ~np.isnan(adjusted)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median_age = np.nanmedian(np.where(used, ages[None, :], np.nan), axis=1)
        order = {lvl: i for i, lvl in enumerate(MATCH_LEVELS)}
        n = evidence["n_comparables"].to_numpy()
        spread = evidence["spread"].to_numpy(float)
        level = evidence["match_level"]
        # profit capacity, per package: Σ market values ≤ years × revenue × margin × top of the profit split
        package = frame["package_id"]
        value = evidence["market_value_rmb"].groupby(package).transform("sum").to_numpy(float)
        capacity = package.map(self.profit_capacity(frame, inputs)).to_numpy(float)
        passed_count, passed_spread, passed_recency = n >= t["min_comparables"], spread <= t["max_spread"], median_age <= t["max_median_age_years"]  # NaN fails
        passed_similarity = np.array([lvl in order and order[lvl] <= order[t["min_match_level"]] for lvl in level], dtype=bool)
        passed_profit_capacity = np.isnan(capacity) | (value <= capacity)
        return pd.DataFrame({
            "n_comparables": n, "spread": spread, "median_age_years": median_age, "match_level": level, "passed_count": passed_count,
            "passed_spread": passed_spread, "passed_recency": passed_recency, "passed_similarity": passed_similarity,
            "package_market_value_rmb": value, "profit_capacity_rmb": capacity, "passed_profit_capacity": passed_profit_capacity,
            "passed": passed_count & passed_spread & passed_recency & passed_similarity & passed_profit_capacity,
        }, index=evidence.index)

    def profit_capacity(self, frame: pd.DataFrame, inputs) -> pd.Series:
        """Per package: ``profit_capacity_years`` × the profit its patents can earn a year
        (:func:`~ipvalue.methods.capacity.package_attributable_profit`): the most a buyer would
        pay, undiscounted. NaN where the revenue is unknown (the test then cannot fail)."""
        profit = package_attributable_profit(frame, financials=inputs.financials, assumption_set=inputs.assumption_set)
        return self.tests_["profit_capacity_years"] * profit

    def assess(self, X: pd.DataFrame, inputs) -> MethodResult:
        """The market approach's part of a valuation: each patent's median adjusted comparable
        price (market value), its evidence tests, and what it offers the reconciliation: a
        market-value candidate of the first rank when every test passes, else a cross-check with
        the failed tests named. Its draws: the market value × exp(σ z) on the shared scenario
        ``market_level``, σ = the sd of the log adjusted prices used (the dispersion of one sale)."""
        if not hasattr(self, "comparables_"):
            self.fit()
        frame = X
        subjects = self.subjects(frame, inputs)
        adjusted, level, factors = self._adjusted(subjects, factors=True)
        ev = self._evidence(adjusted, level, subjects.index)
        tests = self.evidence_tests(ev, adjusted, frame, inputs)
        value = ev["market_value_rmb"]
        q = self._interval(adjusted, subjects.index, coverage=0.9)
        values = pd.DataFrame({"value_rmb": value, "low_rmb": q["low_rmb"], "p50_rmb": q["p50_rmb"], "high_rmb": q["high_rmb"]}, index=frame.index)
        failed_zh, failed_en = self.failed_reasons(tests)
        has = value.notna()
        role = np.where(~has, "none", np.where(tests["passed"], "primary", "cross_check"))
        offers = offers_frame(
            frame.index, role=role, rank=np.where(tests["passed"], self.rank_["tested"], self.rank_["thin"]), market_value_rmb=value.where(has),
            reason_zh=np.where(~has, "无足够可比交易", np.where(tests["passed"], "可比交易" + tests["n_comparables"].astype(int).astype(str) + "笔，通过全部证据检验，以市场法为市场价值",
                                                                "市场法未通过证据检验（" + failed_zh + "），仅作交叉核对")),
            reason_en=np.where(~has, "too few comparables", np.where(tests["passed"], tests["n_comparables"].astype(int).astype(str) + " comparables pass every evidence test: the market approach gives the market value",
                                                                  "the market approach fails its evidence tests (" + failed_en + "): a cross-check only")),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.where(adjusted > 0, adjusted, np.nan))
            n_pos = np.sum(~np.isnan(logs), axis=1)
            sd = np.where(n_pos >= 2, np.nanstd(np.where(n_pos[:, None] >= 2, logs, 0.0), axis=1, ddof=1), self.tests_["price_dispersion_default"])
        sd = np.nan_to_num(sd, nan=self.tests_["price_dispersion_default"])
        z = inputs.scenarios.z("market_level")
        draws = np.nan_to_num(value.to_numpy(float))[:, None] * np.exp(sd[:, None] * z[None, :])
        pairs = self._pairs(frame, adjusted, factors)
        result = MethodResult(
            method="market", label_zh="市场法", label_en="market approach", value_type=self.value_type, values=values, offers=offers, draws=draws,
            columns=tests.assign(market_price_sd_log=sd), value_types={"value_rmb": "market_value", "low_rmb": "market_value", "p50_rmb": "market_value",
                                                                       "high_rmb": "market_value", "market_value_rmb": "market_value",
                                                                       "package_market_value_rmb": "market_value", "profit_capacity_rmb": "profit (not a value)"},
            evidence={"comparables_used": pairs, "tests": tests, "excluded": self.excluded_},
            provenance={**self.provenance, "market_tests": dict(self.tests_)},
        )
        result.sections = market_sections(result, self, frame)
        return result

    def failed_reasons(self, tests: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """The evidence tests each patent failed, in Chinese and in English ('' where all passed),
        from :meth:`evidence_tests`' ``passed_<test>`` columns."""
        t = self.tests_
        names = {
            "passed_count": (f"可比交易少于{t['min_comparables']}笔", f"fewer than {t['min_comparables']} comparables"),
            "passed_spread": (f"价差超过{t['max_spread']:g}倍", f"spread above {t['max_spread']:g}x"),
            "passed_recency": (f"可比交易中位年龄超过{t['max_median_age_years']:g}年", f"median age above {t['max_median_age_years']:g} years"),
            "passed_similarity": ("匹配层级过粗（仅按专利类型）", "matched at too coarse a level"),
            "passed_profit_capacity": (f"专利包市场价值超过{t['profit_capacity_years']:g}年可归属利润（盈利能力检验）",
                                       f"the package's market value exceeds {t['profit_capacity_years']:g} years of attributable profit (profit-capacity test)"),
        }
        failed = [[texts for texts, passed in zip(names.values(), row) if not passed]
                  for row in zip(*(tests[col].to_numpy(dtype=bool) for col in names))]
        zh = pd.Series(["；".join(t[0] for t in row) for row in failed], index=tests.index, dtype=object)
        en = pd.Series(["; ".join(t[1] for t in row) for row in failed], index=tests.index, dtype=object)
        return zh, en

    def _pairs(self, frame: pd.DataFrame, adjusted: np.ndarray, factors: dict) -> pd.DataFrame:
        """One row per (subject patent, comparable used): the price, each adjustment and the
        adjusted price (the 计算过程 of the market approach)."""
        i, j = np.nonzero(~np.isnan(adjusted))
        c = self.comparables_
        return pd.DataFrame({
            "patent_id": frame["patent_id"].to_numpy()[i], "transaction_id": c["transaction_id"].to_numpy()[j],
            "date": c["date"].to_numpy()[j], "kind": c["kind"].to_numpy()[j], "price_rmb": c["price_rmb"].to_numpy()[j],
            "kind_factor": c["kind"].map(self.kind_factor_).to_numpy()[j], "life_factor": factors["life"][i, j],
            "score_factor": factors["score"][i, j], "adjusted_price_rmb": adjusted[i, j],
        })

    @property
    def provenance(self) -> dict:
        check_is_fitted(self, "comparables_")
        return {**self.provenance_, "n_comparables_used": len(self.comparables_), "n_comparables_excluded": len(self.excluded_)}


def cnipa_range_check(value_rmb, remaining_life_years, *, assumptions="market-cn") -> pd.DataFrame:
    """Place values against the CNIPA national fixed-fee licence averages: a range check only.

    The reference is the average fixed-fee licence price per licence-year of each published year
    (2022: ¥3.21M / 3.6 years ≈ ¥891,667; 2023: ¥1.66M / 3.0 years ≈ ¥553,333). A value's price
    per remaining year is compared with that range.

    Parameters
    ----------
    value_rmb, remaining_life_years : array_like, shape (n,)
    assumptions : str, Path or dict, default="market-cn"

    Returns
    -------
    pandas.DataFrame, shape (n, ...)
        ``value_per_year_rmb``, ``cnipa_low_per_year_rmb``, ``cnipa_high_per_year_rmb``,
        ``position`` ('below' / 'within' / 'above' / 'no remaining life'), and ``note`` saying
        how thin the evidence is.
    """
    raw = load_set(assumptions).raw
    stats = raw.get("cnipa_licence_statistics") or []
    per_year = []
    for year in stats:
        wrapped = {"name": raw.get("name"), "s": year}
        per_year.append(assumption_value(wrapped, "s.fixed_fee_average_rmb", 0, 1e12, lo_open=True) / assumption_value(wrapped, "s.fixed_fee_average_years", 0, 100, lo_open=True))
    if not per_year:
        raise ValueError("The market assumption set has no 'cnipa_licence_statistics'. Fix: use the packaged 'market-cn' set.")
    value = np.asarray(value_rmb, float)
    life = np.asarray(remaining_life_years, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(life > 0, value / life, np.nan)
    low, high = min(per_year), max(per_year)
    position = np.select([life <= 0, v < low, v > high], ["no remaining life", "below", "above"], "within")
    years = ", ".join(str(s.get("year")) for s in stats)
    note = (f"CNIPA {years}: national averages of fixed-fee licences only (no spread, field or patent type; "
            "most licences are free or running royalties): a range check, not a market value")
    return pd.DataFrame({"value_per_year_rmb": v, "cnipa_low_per_year_rmb": low, "cnipa_high_per_year_rmb": high,
                         "position": position, "note": note})


MATCH_LEVEL_LABELS = {"ipc_subclass": "同一IPC小类 same IPC subclass", "ipc_section": "同一IPC部 same IPC section",
                      "patent_type": "仅同类型 patent type only", "none": "无 none"}


def market_sections(result: MethodResult, valuer: MarketApproachValuer, frame: pd.DataFrame) -> list[Section]:
    """The market approach's part of the report: the method and its evidence tests per patent,
    and in the appendix every comparable used with each adjustment."""
    from ipvalue import terms

    t = valuer.tests_
    level_zh, level_en = MATCH_LEVEL_LABELS[t["min_match_level"]].split(" ", 1)
    failed_zh, failed_en = valuer.failed_reasons(result.columns)
    tests = result.columns.assign(patent_id=frame["patent_id"].to_numpy(), market_value_rmb=result.values["value_rmb"],
                                  match_level_label=result.columns["match_level"].map(MATCH_LEVEL_LABELS),
                                  failed=np.where(result.columns["passed"], "—", failed_zh.to_numpy() + " " + failed_en.to_numpy()))
    sec = Section("method-market", "市场法（可比交易）", "Market approach (comparable transactions)")
    sec.text(
        "每笔可比交易价格 × 交易类型系数 × 剩余寿命调整（标的剩余寿命 ÷ 可比交易覆盖年限，限于"
        f"{valuer.life_bounds_[0]:g}–{valuer.life_bounds_[1]:g}）× 评分调整（1 + {valuer.score_elasticity_:g} × 评分差 ÷ 100，限于"
        f"{valuer.score_bounds_[0]:g}–{valuer.score_bounds_[1]:g}），取调整后价格的中位数；不作时间调整（无公开价格指数），"
        f"{valuer.excluded_.shape[0]} 笔交易因过旧或为提成许可被排除。证据检验：可比交易至少 {t['min_comparables']} 笔、价差不超过 {t['max_spread']:g} 倍、"
        f"中位年龄不超过 {t['max_median_age_years']:g} 年、匹配层级不粗于“{level_zh}”、"
        f"专利包市场价值不超过 {t['profit_capacity_years']:g} 年可归属利润；全部通过时以市场法为市场价值，否则仅作交叉核对。",
        "Each comparable's price × kind factor × remaining-life adjustment (subject's remaining years ÷ years the price covers, bounded "
        f"{valuer.life_bounds_[0]:g}–{valuer.life_bounds_[1]:g}) × score adjustment (1 + {valuer.score_elasticity_:g} × score gap ÷ 100, bounded "
        f"{valuer.score_bounds_[0]:g}–{valuer.score_bounds_[1]:g}); the median of the adjusted prices; no time adjustment (no public price index); "
        f"{valuer.excluded_.shape[0]} transaction(s) left out as too old or running royalties. Evidence tests: at least {t['min_comparables']} "
        f"comparables, a spread of at most {t['max_spread']:g}x, a median age of at most {t['max_median_age_years']:g} years, a match no coarser "
        f"than {level_en}, and a package market value within {t['profit_capacity_years']:g} years of attributable profit; when all "
        "pass the market approach gives the market value, otherwise it is a cross-check.")
    sec.table("market-tests-table", tests, [
        Column("patent_id", "专利", "Patent"), Column("market_value_rmb", "市场法价值", "Market approach value", "money"),
        Column("n_comparables", "可比交易数", "Comparables", "integer"), Column("spread", "价差", "Spread", "multiple"),
        Column("median_age_years", "中位年龄（年）", "Median age (y)", "years"), Column("match_level_label", "匹配层级", "Match level"),
        Column("profit_capacity_rmb", "盈利能力上限（专利包）", "Profit capacity (package)", "money"),
        Column("passed", "证据检验", "Evidence tests", "check"), Column("failed", "未通过的检验", "Tests failed"),
    ], caption_zh="证据检验", caption_en="Evidence tests")
    appendix = Section("appendix-market", "计算过程：市场法可比交易及调整", "Workings: comparables used and their adjustments", part="appendix")
    appendix.text("调整后价格 = 成交价 × 类型系数 × 寿命调整 × 评分调整；每件专利的市场法价值为其调整后价格的中位数（偶数笔时取中间两笔的平均）。",
                  "Adjusted price = price × kind factor × life factor × score factor; each patent's market approach value is the median of its adjusted prices "
                  "(the mean of the middle two when their number is even).")
    used = result.evidence["comparables_used"]
    appendix.table("market-comparables-table", used.assign(kind_label=used["kind"].map(lambda k: terms.both_or_words(terms.COMPARABLE_KINDS, k))), [
        Column("patent_id", "专利", "Patent"), Column("transaction_id", "交易", "Transaction"), Column("date", "日期", "Date", "date"),
        Column("kind_label", "类型", "Kind"), Column("price_rmb", "成交价", "Price", "money2"), Column("kind_factor", "类型系数", "Kind factor", "rate6"),
        Column("life_factor", "寿命调整", "Life factor", "rate6"), Column("score_factor", "评分调整", "Score factor", "rate6"),
        Column("adjusted_price_rmb", "调整后价格", "Adjusted price", "money2"),
    ])
    return [sec, appendix]


@register_method("market", label_zh="市场法", label_en="market approach", needs=("comparables",), order=1)
def market_method(inputs) -> MarketApproachValuer:
    """The market approach of a valuation: the application's comparables, as of its date."""
    return MarketApproachValuer(inputs.comparables, valuation_date=inputs.valuation_date)
