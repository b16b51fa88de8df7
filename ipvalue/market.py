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

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import assumption_value, content_hash, load_yaml
from ipvalue.exceptions import ColumnError, ComparablesError
from ipvalue.valuer import coverage_quantiles, interval_frame

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
    raw = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8") if not isinstance(source, pd.DataFrame) else source.astype(object)
    raw = raw.rename(columns=lambda c: str(c).strip())
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ColumnError(f"The comparable-transactions file lacks column(s) {missing}. Fix: add them (schema: ipvalue/market.py).")
    text = raw.apply(lambda s: s.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()))
    for col in ("price_rmb", "ipc_main", "licence_years", "score", "source"):
        if col not in text.columns:
            text[col] = ""
    today = pd.Timestamp(valuation_date or pd.Timestamp.today()).normalize()
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
        raw, origin = (self.assumptions, "dict") if isinstance(self.assumptions, dict) else load_yaml(self.assumptions)
        self.valuation_date_ = pd.Timestamp(self.valuation_date or pd.Timestamp.today()).normalize()
        self.min_comparables_ = int(assumption_value(raw, "min_comparables", 1, 1000))
        max_age = assumption_value(raw, "max_age_years", 0.0, 100.0)
        self.kind_factor_ = {k: assumption_value(raw, f"kind_factor.{k}", 0.0, 10.0) for k in PRICED_KINDS}
        self.life_bounds_ = (assumption_value(raw, "life_adjustment.low", 0.0, 1.0), assumption_value(raw, "life_adjustment.high", 1.0, 100.0))
        self.score_elasticity_ = assumption_value(raw, "score_adjustment.elasticity", 0.0, 10.0)
        self.score_bounds_ = (assumption_value(raw, "score_adjustment.low", 0.0, 1.0), assumption_value(raw, "score_adjustment.high", 1.0, 100.0))
        table = load_comparables(self.comparables, valuation_date=self.valuation_date_)
        age = (self.valuation_date_ - table["date"]).dt.days / 365.25
        reason = pd.Series("", index=table.index)
        reason[age > max_age] = f"older than {max_age:g} years (no time index)"
        reason[table["kind"] == "licence_running_royalty"] = "running royalty: no lump-sum price"
        self.excluded_ = table[reason != ""].assign(reason=reason[reason != ""])
        self.comparables_ = table[reason == ""].reset_index(drop=True)
        self.provenance_ = {"market_assumption_set": f"{raw.get('name', origin)}-v{raw.get('version', 0)}", "market_assumption_set_hash": content_hash(raw),
                            "comparables_hash": content_hash(self.comparables_.astype(str).to_dict("list")), "time_adjustment": "none"}
        logger.info("market approach: %d comparables used, %d excluded", len(self.comparables_), len(self.excluded_))
        return self

    def _adjusted(self, X: pd.DataFrame):
        """(adjusted prices n × m with NaN where not used, match level per subject)."""
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
        return adjusted, level

    def evidence(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per subject patent: ``market_value_rmb``, ``match_level``, ``n_comparables``,
        ``spread`` (highest / lowest adjusted price), ``low_rmb``/``high_rmb`` (adjusted range), ids used."""
        adjusted, level = self._adjusted(X)
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
        }, index=X.index)

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Median adjusted comparable price per patent in RMB (NaN where evidence is 'none')."""
        return self.evidence(X)["market_value_rmb"]

    def predict_interval(self, X: pd.DataFrame, *, coverage: float = 0.9) -> pd.DataFrame:
        """Quantiles of the adjusted comparable prices (linear interpolation): the spread of the
        evidence, not a sampling distribution; NaN where evidence is 'none'."""
        adjusted, _ = self._adjusted(X)
        q = coverage_quantiles(coverage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, mid, high = np.nanquantile(adjusted, q, axis=1)
        return interval_frame(low, mid, high, X.index)

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
    raw, _ = (assumptions, "dict") if isinstance(assumptions, dict) else load_yaml(assumptions)
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
