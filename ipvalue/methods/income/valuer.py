"""IncomeApproachValuer: the income approach (收益分成法) as a valuation method (the contract of
:mod:`ipvalue.methods.base`)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import assumption_value, load_set
from ipvalue.exceptions import AssumptionError, InputError
from ipvalue.features import PatentFeatureBuilder
from ipvalue.frame import as_patent_frame
from ipvalue.methods.income.assumptions import IncomeAssumptions
from ipvalue.methods.income.dcf import dcf_grown, dcf_schedule, dcf_survival, yearly_table
from ipvalue.methods.income.scorecard import IndicatorScorecard
from ipvalue.methods.base import MethodResult, coverage_quantiles, interval_frame, offers_frame
from ipvalue.methods.inputs import Scenarios

logger = logging.getLogger(__name__)

#: Patents × draws per Monte Carlo block: bounds memory (about 8 arrays of this many floats per
#: thread); 1M cells measured fastest on the 2-core reference machine (benchmarks/income.py).
MC_BLOCK_CELLS = 1_000_000


def _text(x: float) -> str:
    """A figure of a flag's text: rounded to 2 decimals, written as Python writes a float ('12.0', '2.08')."""
    return str(float(np.round(x, 2)))


class IncomeApproachValuer(BaseEstimator):
    """Value patents by the income approach (收益分成法), set by the indicator scorecard.

    For each patent: the sharing rate's range is the profit split × the operating margin (the
    borrower's own margin from ``financials`` where given, else its sector's), its position in
    the range from the scorecard total; cash flows are weighted by the renewal model's yearly
    survival ``S_t`` within the remaining legal life where a ``survival`` table is given, else
    the income period is the fixed horizon ``min(remaining legal life, economic life)`` (each row
    says which: ``cash_flow_weighting``); the discount rate is the build-up rate; the tax rate
    is the borrower's (``tax_rate=``) or the set's default. A patent
    package (``package_id``) shares its product's income among its live patents by the rule in
    the assumption set (``equal``, or ``score``: in proportion to the scorecard totals).

    Parameters
    ----------
    assumptions : str, Path, dict or IncomeAssumptions, default="cn-pledge-2025"
    scorecard : str, Path or dict, default="scorecard-pledge"
    feature_spec : str, Path or dict, default="core-v1"
    valuation_date : date-like, default=None (today at fit)
    data_dir : str or Path, default=None
        Public reference data for the feature builder.
    industry_margins : str, Path or dict, default="industry-margins"
        Operating-margin benchmarks the borrower's own margin is checked against.

    Attributes
    ----------
    features_ : PatentFeatureBuilder
    scorecard_ : IndicatorScorecard
    assumptions_ : IncomeAssumptions

    Examples
    --------
    >>> from ipvalue.synthetic import make_demo_portfolio
    >>> patents = make_demo_portfolio(30, seed=0).patents
    >>> valuer = IncomeApproachValuer(valuation_date="2026-06-30").fit(patents)
    >>> bool((valuer.predict(patents) >= 0).all())
    True
    """

    #: The borrower's own product income: value in use to the borrower (see the README's
    #: "Valuation method"); the lending step turns it into a collateral value.
    value_type = "value_in_use"

    def __init__(self, assumptions="cn-pledge-2025", *, scorecard="scorecard-pledge", feature_spec="core-v1", valuation_date=None, data_dir=None,
                 industry_margins="industry-margins"):
        self.assumptions = assumptions
        self.industry_margins = industry_margins
        self.scorecard = scorecard
        self.feature_spec = feature_spec
        self.valuation_date = valuation_date
        self.data_dir = data_dir

    def fit(self, X: pd.DataFrame, y=None) -> "IncomeApproachValuer":
        """Fit the feature builder's cohort references on ``X`` and load the assumptions."""
        self._fit(X)
        return self

    def _fit(self, X: pd.DataFrame, *, transform: bool = False) -> pd.DataFrame | None:
        self._load_assumptions()
        self.features_ = PatentFeatureBuilder(self.feature_spec, valuation_date=self.valuation_date, data_dir=self.data_dir)
        matrix = self.features_.fit_transform(X) if transform else None
        if not transform:
            self.features_.fit(X)
        return matrix

    def _load_assumptions(self) -> None:
        """The assumption set, the scorecard and the industry-margin benchmarks (what ``assess``
        needs when the valuation built the features already)."""
        self.assumptions_ = IncomeAssumptions.load(self.assumptions)
        self.scorecard_ = IndicatorScorecard(self.scorecard).fit()
        margins = load_set(self.industry_margins)
        benchmarks = margins.raw.get("benchmarks") or {}
        if "default" not in benchmarks:
            raise AssumptionError(f"The industry-margin set {margins.name!r} needs 'benchmarks.default'. Fix: add it with its source.")
        self.margin_benchmarks_ = {k: assumption_value(margins.raw, f"benchmarks.{k}", 0.0, 1.0, lo_open=True) for k in benchmarks}
        self.margin_benchmarks_provenance_ = margins.provenance("industry_margin_set")

    # -- inputs ------------------------------------------------------------------------------

    def inputs(self, X: pd.DataFrame, *, schedule: pd.DataFrame | None = None, survival: pd.DataFrame | None = None,
               financials: pd.DataFrame | None = None, tax_rate: float | None = None, features: pd.DataFrame | None = None,
               scorecard: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every DCF input per patent, with where it came from: the audit view of the valuation.

        Every other method accepts ``inputs=`` (this frame, possibly edited: e.g.
        :meth:`with_sharing_rates`) and recomputes everything from it, so the features and the
        scorecard are built once.

        Parameters
        ----------
        X : PatentFrame, shape (n_patents, ...)
            Needs ``revenue_base_rmb`` (and optionally ``revenue_growth``, ``package_id``,
            ``economic_life_years``) unless a ``schedule`` covers the patent's package.
        schedule : pandas.DataFrame, optional
            Yearly income forecasts: ``package_id`` (or ``patent_id``), ``year`` (1, 2, ...),
            ``revenue_rmb``. Overrides the grown base for the packages it names.
        survival : pandas.DataFrame, optional
            Yearly survival of each patent (the renewal model's output), indexed like ``X``:
            columns ``s_1 .. s_T`` = P(the right is in force at the end of year t), in [0, 1] and
            non-increasing. Cash flows are weighted by it within the remaining legal life; years
            beyond ``T`` count 0. Without it: the fixed horizon min(legal life, economic life).
        financials : pandas.DataFrame, optional
            The borrower's statements per package: ``package_id``, ``year`` (calendar),
            ``revenue_rmb`` (> 0), ``operating_margin`` (fraction, (-1, 1)), optionally
            ``industry`` (a key of the industry-margin benchmarks). The mean margin of the latest
            (up to) 3 years replaces the sector margin; a margin above ``margin_flag_factor`` × its
            benchmark, or a forecast base revenue above ``revenue_flag_factor`` × the latest
            actual revenue, is flagged in ``financials_flags`` (never capped).
        tax_rate : float in [0, 1), optional
            The borrower's income-tax rate (25 %; 15 % for 高新技术企业), overriding the set's.
        features : pandas.DataFrame, optional
            ``features_.transform(X)`` when the caller built it already (a valuation builds the
            features once for the inputs, the scorecard table and the checks).
        scorecard : pandas.DataFrame, optional
            ``scorecard_.score(features)`` when the caller built it already.

        Returns
        -------
        pandas.DataFrame, one row per patent (index of ``X``)
        """
        check_is_fitted(self, "assumptions_")
        a = self.assumptions_
        if features is None:
            check_is_fitted(self, "features_")
            frame = as_patent_frame(X, passthrough=self.features_.spec_.passthrough)
            features = self.features_.transform(frame)
        else:
            frame = as_patent_frame(X)
        card = self.scorecard_.score(features) if scorecard is None else scorecard
        index = frame.index
        n = len(index)
        patent_id = frame["patent_id"].to_numpy()
        package_id = frame["package_id"].fillna(frame["patent_id"])
        sector = features["tech_sector"].reindex(index).to_numpy(dtype=object)
        score = card["total"].reindex(index).to_numpy(dtype=float)
        intercept, slope = a.position_mapping  # position in the sharing range = a + b × score / 100 (0 and 1 until calibrated)
        position = np.clip(intercept + slope * score / 100.0, 0.0, 1.0)
        margin = np.array([a.profit_margin_by_sector.get(k, a.profit_margin_by_sector["default"]) for k in sector], dtype=float)
        margin_source = np.full(n, "sector assumption", dtype=object)
        benchmark = np.array([self.margin_benchmarks_.get(k, self.margin_benchmarks_["default"]) for k in sector], dtype=float)
        latest_revenue = np.full(n, np.nan)
        if financials is not None:  # the borrower's statements replace the sector's margin of the packages they cover
            summary = self._financials_summary(financials, package_id)
            row = summary.index.get_indexer(package_id)
            has, row = row >= 0, row[row >= 0]
            margin[has] = summary["margin"].to_numpy(dtype=float)[row]
            margin_source[has] = "financial statements " + summary["years"].to_numpy(dtype=object)[row]
            latest_revenue[has] = summary["latest_revenue"].to_numpy(dtype=float)[row]
            if "industry" in summary:
                industry_benchmark = summary["industry"].map(self.margin_benchmarks_).to_numpy(dtype=float)[row]
                benchmark[has] = np.where(np.isnan(industry_benchmark), benchmark[has], industry_benchmark)
        positive_margin = np.where(margin < 0.0, 0.0, margin)
        sharing_low, sharing_high = a.profit_split[0] * positive_margin, a.profit_split[1] * positive_margin
        remaining = features["remaining_life_years"].reindex(index).to_numpy(dtype=float)
        given_life = frame["economic_life_years"].to_numpy(dtype=float)
        economic_life = np.where(np.isnan(given_life), a.economic_life_years, given_life)
        income_period = np.minimum(remaining, economic_life)

        weight = np.ones(n) if a.package_allocation == "equal" else np.where(score < 1e-9, 1e-9, score)
        weight = np.where(income_period > 0, weight, 0.0)
        totals = pd.Series(weight, index=index).groupby(package_id).transform("sum").to_numpy()
        share = weight / np.where(totals > 0, totals, np.nan)
        share = np.where(np.isnan(share), 0.0, share)

        package_revenue = frame["revenue_base_rmb"].groupby(package_id)
        inconsistent = package_revenue.nunique() > 1
        if inconsistent.any():
            pkg = inconsistent[inconsistent].index[0]
            raise InputError(
                f"Package {pkg!r} has different 'revenue_base_rmb' values on its patents "
                f"({sorted(frame.loc[package_id == pkg, 'revenue_base_rmb'].dropna().unique())}). "
                "Fix: a package shares one product's revenue; give the same value on each of its patents."
            )
        package_base = package_revenue.transform("first").to_numpy(dtype=float)
        covered = package_id.isin(schedule["package_id"]).to_numpy() if schedule is not None else np.zeros(n, bool)
        missing = np.isnan(package_base) & ~covered
        if missing.any():
            rows = list(index[missing][:5])
            raise InputError(
                f"The income approach needs a revenue forecast: 'revenue_base_rmb' is missing for {int(missing.sum())} patent(s), "
                f"e.g. rows {rows} ({', '.join(patent_id[missing][:5])}). Fix: give the product revenue (revenue_base_rmb, "
                "revenue_growth) or a yearly schedule for their packages."
            )
        package_id = package_id.to_numpy()
        if tax_rate is None:
            tax, tax_source = a.tax_rate, "assumption set"
        else:
            if isinstance(tax_rate, bool) or not isinstance(tax_rate, (int, float)) or not 0 <= float(tax_rate) < 1:
                raise InputError(f"The borrower's 'tax_rate' must be a number in [0, 1): 0.25 standard, 0.15 for 高新技术企业. Got {tax_rate!r}.")
            tax, tax_source = float(tax_rate), "input"
        columns = {
            "patent_id": patent_id, "package_id": package_id, "tech_sector": pd.Series(sector, index=index, dtype=object), "score": score, "grade": card["grade"].reindex(index).to_numpy(),
            "sharing_position": position, "operating_margin": margin, "margin_source": margin_source, "margin_benchmark": benchmark,
            "latest_actual_revenue_rmb": latest_revenue, "sharing_low": sharing_low, "sharing_high": sharing_high,
            "sharing_rate": sharing_low + position * (sharing_high - sharing_low), "decay_per_year": np.full(n, a.decay_per_year),
            "discount_rate": np.full(n, a.discount_rate), "growth": frame["revenue_growth"].fillna(a.default_growth).to_numpy(),
            "statutory_term_years": features["statutory_term_years"].reindex(index).to_numpy() if "statutory_term_years" in features else np.full(n, np.nan),
            "remaining_life_years": remaining, "economic_life_years": economic_life,
            "economic_life_source": np.where(np.isnan(given_life), "assumption_default", "application"), "income_period_years": income_period,
            "cash_flow_weighting": np.full(n, "fixed horizon min(remaining legal life, economic life)"), "weighted_by_life": np.zeros(n, bool),
            "allocation_share": share, "package_revenue_base_rmb": package_base, "revenue_base_rmb": package_base * share,
            "income_source": np.where(covered, "schedule", "grown base"),
            **self._forecast_flags(package_id, package_base, covered, margin, benchmark, latest_revenue, schedule),
            "tax_rate": np.full(n, tax), "tax_rate_source": np.full(n, tax_source),
        }
        if survival is not None:
            table = self._check_survival(survival, index, patent_id)
            columns.update(cash_flow_weighting=np.full(n, "yearly weights W_t (in force × excess returns left) within the remaining legal life"),
                           economic_life_source=np.full(n, "life_curves"), weighted_by_life=np.ones(n, bool))
            columns.update(zip(table.columns, table.to_numpy().T))
        return pd.DataFrame(columns, index=index)

    def _financials_summary(self, financials: pd.DataFrame, package_id: pd.Series) -> pd.DataFrame:
        """Per package of the borrower's statements (checked): the mean ``margin`` and the
        ``years`` of the latest (up to) 3 years, the ``latest_revenue`` and, where given, the ``industry``."""
        need = ("package_id", "year", "revenue_rmb", "operating_margin")
        missing = [c for c in need if c not in financials.columns]
        if missing:
            raise InputError(f"The borrower's 'financials' lack column(s) {missing}. Fix: give package_id, year, revenue_rmb, operating_margin per year.")
        fin = financials.reset_index(drop=True)
        year, revenue, margin = (pd.to_numeric(fin[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan) for c in ("year", "revenue_rmb", "operating_margin"))
        for name, ok in (
            ("year", (year >= 1990) & (year <= 2100) & (year == np.round(year))),
            ("revenue_rmb", revenue > 0),
            ("operating_margin", (margin > -1) & (margin < 1)),
        ):
            if not ok.all():
                row = int(np.argmin(ok))
                got = fin.at[row, name].item() if hasattr(fin.at[row, name], "item") else fin.at[row, name]
                raise InputError(f"Row {row} of 'financials': '{name}' = {got!r} is out of its domain "
                                 f"(year 1990-2100, revenue_rmb > 0, operating_margin in (-1, 1) as a fraction). Fix: correct the row.")
        fin = fin.assign(year=year.astype(int), revenue_rmb=revenue, operating_margin=margin)
        dup = fin.duplicated(["package_id", "year"])
        if dup.any():
            row = int(dup.idxmax())
            raise InputError(f"Row {row} of 'financials' repeats package {fin.at[row, 'package_id']!r} year {fin.at[row, 'year']}. Fix: one row per package and year.")
        unknown = ~fin["package_id"].isin(package_id)
        if unknown.any():
            raise InputError(f"The 'financials' name package {fin.loc[unknown, 'package_id'].iloc[0]!r}, which no patent belongs to. Fix: use the packages' ids.")
        latest3 = fin.sort_values(["package_id", "year"]).groupby("package_id").tail(3)
        by_pkg = latest3.groupby("package_id")
        summary = pd.DataFrame({"margin": by_pkg["operating_margin"].mean(), "latest_revenue": by_pkg["revenue_rmb"].last(), "years": by_pkg["year"].agg(lambda y: f"{y.min()}-{y.max()}")})
        if "industry" in fin.columns:
            summary["industry"] = by_pkg["industry"].last()
        return summary

    def _forecast_flags(self, package_id, package_base, scheduled, margin, benchmark, latest_revenue, schedule) -> dict:
        """Flags (never caps): margin far above its benchmark, forecast base far above the latest
        actual revenue; the columns ``forecast_to_actual_revenue``, ``margin_flag``,
        ``revenue_flag`` and ``financials_flags`` (the flags as text)."""
        a = self.assumptions_
        base = package_base.copy()
        if schedule is not None and "package_id" in schedule.columns:
            first = schedule.sort_values("year").groupby("package_id")["revenue_rmb"].first()
            base[scheduled] = pd.Series(package_id[scheduled]).map(first).to_numpy(dtype=float)
        ratio_margin = margin / benchmark
        ratio_revenue = base / latest_revenue
        margin_flag, revenue_flag = ratio_margin > a.margin_flag_factor, ratio_revenue > a.revenue_flag_factor
        text = [
            "; ".join(([f"operating margin {_text(100 * m)} % is {_text(r)}x the benchmark {_text(100 * b)} %"] if mf else [])
                      + ([f"forecast base revenue is {_text(rr)}x the latest actual revenue"] if rf else []))
            for m, r, b, rr, mf, rf in zip(margin, ratio_margin, benchmark, ratio_revenue, margin_flag, revenue_flag)
        ]
        return {"forecast_to_actual_revenue": ratio_revenue, "margin_flag": margin_flag, "revenue_flag": revenue_flag,
                "financials_flags": np.array(text, dtype=object)}

    @staticmethod
    def _check_survival(survival: pd.DataFrame, index: pd.Index, patent_id: np.ndarray) -> pd.DataFrame:
        """The ``survival`` table's ``s_t`` columns in the rows of ``index``, checked."""
        if not isinstance(survival, pd.DataFrame):
            raise TypeError(f"'survival' must be a DataFrame with columns s_1..s_T indexed like the patents. Got {type(survival).__name__}.")
        cols = [c for c in survival.columns if str(c).startswith("s_")]
        expected = [f"s_{t}" for t in range(1, len(cols) + 1)]
        if not cols or cols != expected:
            raise ValueError(f"The 'survival' table's columns must be s_1, s_2, ... without gaps. Got {list(survival.columns)[:8]}.")
        absent = ~index.isin(survival.index)
        if absent.any():
            i = int(np.argmax(absent))
            raise ValueError(f"The 'survival' table has no row for index {index[i]!r} ({patent_id[i]}). Fix: give survival for every patent valued, indexed like the patents.")
        table = survival.loc[index, cols]
        if not all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in table.dtypes):
            table = table.apply(pd.to_numeric, errors="coerce")
        values = table.to_numpy(float)
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(f"'survival' column {cols[j]!r} of {patent_id[i]} must be a probability in [0, 1]. Got {values[i, j]:g}.")
        rising = np.diff(values, axis=1) > 1e-9
        if rising.any():
            i, j = np.argwhere(rising)[0]
            raise ValueError(f"'survival' of {patent_id[i]} rises from {cols[j]} ({values[i, j]:g}) to {cols[j + 1]} ({values[i, j + 1]:g}). "
                             "Fix: survival to the end of year t can only fall as t grows.")
        return table

    @staticmethod
    def with_sharing_rates(inputs: pd.DataFrame, rates: dict) -> pd.DataFrame:
        """A copy of ``inputs`` with officers' sharing rates (``{patent_id: rate}``, fractions) fixed:
        the range collapses to the rate, so every method (value, simulate, sensitivity,
        cash_flows) recomputes from it. Pass the result as ``inputs=``."""
        out = inputs.copy()
        rate = out["patent_id"].map(rates)
        bad = rate.notna() & ~rate.between(0, 1)
        if bad.any():
            row = bad.idxmax()
            raise ValueError(f"The overridden 'sharing_rate' of {out.at[row, 'patent_id']} must be in [0, 1]. Got {float(rate[row])!r}.")
        hit = rate.notna()
        out.loc[hit, "sharing_low"] = rate[hit]
        out.loc[hit, "sharing_high"] = rate[hit]
        out.loc[hit, "sharing_position"] = 0.0
        out.loc[hit, "sharing_rate"] = rate[hit]
        return out

    def _schedule_matrix(self, inputs: pd.DataFrame, schedule: pd.DataFrame | None) -> np.ndarray | None:
        if schedule is None:
            return None
        key = "package_id" if "package_id" in schedule.columns else "patent_id"
        wide = schedule.pivot_table(index=key, columns="year", values="revenue_rmb", aggfunc="sum").sort_index(axis=1)
        if list(wide.columns) != list(range(1, len(wide.columns) + 1)):
            raise ValueError(f"The income schedule's years must be 1, 2, ... without gaps. Got {list(wide.columns)}.")
        matrix = wide.reindex(inputs["package_id"]).to_numpy(dtype=float)
        return matrix * inputs["allocation_share"].to_numpy()[:, None]

    # -- valuation ---------------------------------------------------------------------------

    _COLUMNS = ("sharing_low", "sharing_high", "sharing_position", "decay_per_year", "discount_rate", "growth",
                "economic_life_years", "remaining_life_years", "tax_rate", "operating_margin")

    def _arrays(self, inputs: pd.DataFrame, schedule) -> dict:
        """The inputs as NumPy arrays (built once per call, shared by Monte Carlo blocks)."""
        d = {c: inputs[c].to_numpy(dtype=float) for c in self._COLUMNS}
        d["base"] = inputs["revenue_base_rmb"].fillna(0).to_numpy(dtype=float)
        d["sharing_rate"] = inputs["sharing_rate"].to_numpy(dtype=float)
        d["income_period_years"] = inputs["income_period_years"].to_numpy(dtype=float)
        d["patent_id"] = inputs["patent_id"].to_numpy()
        d["scheduled"] = inputs["income_source"].eq("schedule").to_numpy()
        d["sched"] = self._schedule_matrix(inputs, schedule)
        scols = [c for c in inputs.columns if str(c).startswith("s_")]
        d["has_survival"] = inputs["weighted_by_life"].to_numpy(dtype=bool) if scols else np.zeros(len(inputs), bool)
        d["survival"] = np.nan_to_num(inputs[scols].to_numpy(dtype=float)) if scols else None
        # the DCF's own cut at the legal term, unless the weights hold the share of each year inside it already
        included = inputs["weights_include_term"].to_numpy(dtype=bool) if "weights_include_term" in inputs else np.zeros(len(inputs), bool)
        d["term"] = np.where(d["has_survival"] & included, np.inf, d["remaining_life_years"])
        return d

    def _dcf(self, d: dict, sl: slice, *, position=0.0, discount=0.0, growth=0.0, life=0.0, decay=0.0, level=1.0, margin=0.0, tax=0.0,
             grid=None) -> np.ndarray:
        """Values of rows ``sl`` with shifted inputs; each shift is a scalar or a (n_draws,) array
        (scenarios shared by all patents); ``grid`` (a :class:`~ipvalue.models.life.MultiplierGrid`):
        the weighted rows' weights per scenario (a fee-lapse hazard multiplier per draw). Returns
        shape (n_rows, n_draws or 1), RMB."""
        a = self.assumptions_
        c = {k: d[k][sl, None] for k in self._COLUMNS}
        pos = np.clip(c["sharing_position"] + position, 0.0, 1.0)
        m = c["operating_margin"]
        margin_ratio = np.where(m > 0, np.maximum(m + margin, 0.0) / np.where(m > 0, m, 1.0), 0.0)
        sharing = (c["sharing_low"] + pos * (c["sharing_high"] - c["sharing_low"])) * margin_ratio
        decay_rate = np.clip(c["decay_per_year"] + decay, 0.0, 0.99)
        rate = np.maximum(c["discount_rate"] + discount, 0.0)
        tax_rate = np.clip(c["tax_rate"] + tax, 0.0, 0.99)
        period = np.minimum(c["remaining_life_years"], np.maximum(c["economic_life_years"] + life, 0.0))
        base = d["base"][sl, None]
        values = dcf_grown(base, np.maximum(c["growth"] + growth, -0.95), sharing, decay_rate, rate, period, tax_rate, a.mid_year)
        shape = np.broadcast_shapes(np.shape(values), np.shape(sharing), np.shape(rate), (len(base), 1))
        values = np.array(np.broadcast_to(values, shape))
        scheduled, surv = d["scheduled"][sl], d["has_survival"][sl]
        rows = np.flatnonzero(scheduled & ~surv)
        pick = (lambda arr, r: np.broadcast_to(arr, shape)[r])
        if len(rows):
            values[rows] = dcf_schedule(np.nan_to_num(d["sched"][sl][rows]), pick(sharing, rows), pick(decay_rate, rows), pick(rate, rows),
                                        pick(period, rows), pick(tax_rate, rows), a.mid_year, growth_shift=growth)
        rows = np.flatnonzero(surv)
        if len(rows):
            survival = d["survival"][sl][rows]
            years = np.arange(1, survival.shape[1] + 1)
            income = base[rows] * (1.0 + c["growth"][rows]) ** years
            if d["sched"] is not None:
                padded = np.zeros_like(income)
                width = min(income.shape[1], d["sched"].shape[1])
                padded[:, :width] = np.nan_to_num(d["sched"][sl][rows][:, :width])
                income = np.where(scheduled[rows, None], padded, income)
            # a grown base's growth shock acts on its rate: (1 + g + shock)^t = (1 + g)^t (1 + shift)^t
            g = c["growth"][rows]
            shift = np.where(scheduled[rows, None], growth, (1.0 + np.maximum(g + growth, -0.95)) / (1.0 + g) - 1.0)
            term = d["term"][sl][rows]
            if grid is not None:  # the weights of each scenario, year by year (they hold the share of the year in the term)
                absolute = np.arange(len(d["term"]))[sl][rows]
                survival = lambda t, _rows=absolute: grid.weights_at(t, rows=_rows)  # noqa: E731
                term = np.full(len(rows), np.inf)
            values[rows] = dcf_survival(income, pick(sharing, rows), pick(decay_rate, rows), pick(rate, rows), survival,
                                        term, pick(tax_rate, rows), a.mid_year, growth_shift=shift, n_years=grid.years if grid is not None else None)
        return values * np.maximum(level, 0.0)

    #: The shift of :meth:`_dcf` that moves each assumption of the tornado (the revenue level scales by ``level``).
    _SHIFTS = {"sharing_position": "position", "discount_rate": "discount", "growth": "growth", "economic_life_years": "life",
               "decay_per_year": "decay", "operating_margin": "margin", "tax_rate": "tax"}

    def _values(self, inputs: pd.DataFrame, schedule, *, arrays: dict | None = None) -> np.ndarray:
        """Point values from the inputs (or their ``arrays`` when built already)."""
        d = arrays if arrays is not None else self._arrays(inputs, schedule)
        return self._dcf(d, slice(None))[:, 0]

    def _inputs_of(self, X, schedule, inputs, **options) -> pd.DataFrame:
        """``inputs`` when the caller built them already (see :meth:`inputs`), else built from ``X``."""
        return self.inputs(X, schedule=schedule, **options) if inputs is None else inputs

    def predict(self, X: pd.DataFrame, *, schedule: pd.DataFrame | None = None, survival=None, financials=None, tax_rate=None) -> pd.Series:
        """Point value of each patent in RMB (0 for lapsed or expired patents)."""
        inputs = self.inputs(X, schedule=schedule, survival=survival, financials=financials, tax_rate=tax_rate)
        return pd.Series(self._values(inputs, schedule), index=inputs.index, name="income_value_rmb")

    def simulate(self, X: pd.DataFrame | None = None, *, schedule=None, n_draws: int | None = None, inputs: pd.DataFrame | None = None, quantiles=None,
                 survival=None, financials=None, tax_rate=None, scenarios: Scenarios | None = None, life=None):
        """Monte Carlo values, shape (n_patents, n_draws), or their quantiles when ``quantiles`` is given.

        Draws are scenarios shared by all patents (common random numbers), seeded by the
        assumption set (or the valuation's shared ``scenarios``): in scenario k every patent sees
        the same standard-normal shocks to its sharing-rate position, discount rate, growth,
        economic life (fixed-horizon patents only), revenue level (× max(1 + sd z, 0)) and
        operating margin (+ sd z points), each scaled by the set's standard deviations. A
        package's distribution is then the distribution of the summed scenario values, and
        re-running gives identical numbers. With ``life`` (the valuation's
        :class:`~ipvalue.models.life.LifeCurves`, whose weights are the inputs' survival table),
        every scenario also draws a fee-lapse hazard multiplier (``hazard_multiplier``, log-normal,
        the economic-life set's sd) that moves the weighted rows' survival.
        """
        a = self.assumptions_
        inputs = self._inputs_of(X, schedule, inputs, survival=survival, financials=financials, tax_rate=tax_rate)
        if scenarios is None:
            scenarios = Scenarios(int(n_draws or a.mc_draws), a.mc_seed)
        elif n_draws is not None and int(n_draws) != scenarios.n_draws:
            raise ValueError(f"'n_draws' ({n_draws}) differs from the shared scenarios' {scenarios.n_draws}. Fix: pass one of them.")
        return self._simulate(self._arrays(inputs, schedule), self._shocks(scenarios, life), quantiles=quantiles)

    def _shocks(self, scenarios: Scenarios, life=None) -> dict:
        """The Monte Carlo's shifts of :meth:`_dcf`, one per scenario (the set's standard deviations
        × the scenarios' shocks), and with ``life`` the weights under each scenario's hazard multiplier."""
        sd = self.assumptions_.mc_sd
        shocks = {
            "position": sd["sharing_position_sd"] * scenarios.z("sharing_position"), "discount": sd["discount_rate_sd"] * scenarios.z("discount_rate"),
            "growth": sd["growth_sd"] * scenarios.z("growth"), "life": sd["economic_life_sd_years"] * scenarios.z("economic_life"),
            "level": 1.0 + sd["revenue_level_sd"] * scenarios.z("revenue_level"), "margin": sd["margin_sd"] * scenarios.z("margin"),
        }
        if life is not None:
            shocks["grid"] = life.grid(life.assumptions.hazard_multipliers(scenarios.z("hazard_multiplier")))
        return shocks

    def _simulate(self, d: dict, shocks: dict, *, quantiles=None) -> np.ndarray:
        """Monte Carlo values of the inputs' arrays ``d`` under ``shocks`` (:meth:`_shocks`), in
        blocks of patents × draws; their quantiles when ``quantiles`` is given."""
        n, draws = len(d["base"]), len(shocks["position"])
        block = max(1, MC_BLOCK_CELLS // draws)
        out = np.empty((n, draws) if quantiles is None else (n, len(quantiles)))

        def run_block(start: int) -> None:
            sl = slice(start, min(n, start + block))
            values = self._dcf(d, sl, **shocks)
            out[sl] = values if quantiles is None else np.quantile(values, quantiles, axis=1).T

        starts = range(0, n, block)
        if len(starts) > 1:  # blocks are independent and NumPy releases the GIL on large arrays: use every core
            with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8)) as pool:
                list(pool.map(run_block, starts))
        else:
            for start in starts:
                run_block(start)
        return out

    def predict_interval(self, X: pd.DataFrame, *, coverage: float = 0.9, schedule=None, n_draws: int | None = None,
                         survival=None, financials=None, tax_rate=None) -> pd.DataFrame:
        """Monte Carlo interval of each patent's value in RMB: ``low_rmb, p50_rmb, high_rmb``
        (P5 / P50 / P95 for the default coverage 0.9)."""
        inputs = self.inputs(X, schedule=schedule, survival=survival, financials=financials, tax_rate=tax_rate)
        q = self.simulate(inputs=inputs, schedule=schedule, n_draws=n_draws, quantiles=coverage_quantiles(coverage))
        return interval_frame(q[:, 0], q[:, 1], q[:, 2], inputs.index)

    def sensitivity(self, X: pd.DataFrame | None = None, *, schedule=None, inputs: pd.DataFrame | None = None, survival=None, financials=None, tax_rate=None) -> pd.DataFrame:
        """Tornado table: each assumption moved down and up (by the set's ``sensitivity`` steps):
        sharing position, discount rate, growth, economic life, sharing decay, revenue level
        (± share), operating margin (± points) and tax rate (± points).

        Returns
        -------
        pandas.DataFrame
            One row per patent and assumption: ``patent_id, assumption, step, value_low_rmb,
            value_rmb, value_high_rmb, swing_rmb``; sorted by swing within each patent.
        """
        inputs = self._inputs_of(X, schedule, inputs, survival=survival, financials=financials, tax_rate=tax_rate)
        return self._tornado(self._arrays(inputs, schedule))

    def _tornado(self, d: dict, life=None) -> pd.DataFrame:
        """The table of :meth:`sensitivity` from the inputs' arrays ``d``: every step down and up
        valued in one pass (a column of shifts each, the first the base); with ``life`` (the
        :class:`~ipvalue.models.life.LifeCurves` the weights come from) a ``hazard_multiplier`` row:
        every fee-lapse hazard × the life set's tornado multipliers."""
        steps = self.assumptions_.sensitivity
        names = list(steps)
        shifts = {k: np.zeros(1 + 2 * len(names)) for k in self._SHIFTS.values()}
        shifts["level"] = np.ones(1 + 2 * len(names))
        for j, name in enumerate(names):
            down, up = 1 + 2 * j, 2 + 2 * j
            if name == "revenue_level":
                shifts["level"][[down, up]] = 1.0 - steps[name], 1.0 + steps[name]
            else:
                shifts[self._SHIFTS[name]][[down, up]] = -steps[name], steps[name]
        values = self._dcf(d, slice(None), **shifts)
        low, base, high = values[:, 1::2], values[:, :1], values[:, 2::2]
        step = np.array([steps[k] for k in names])
        if life is not None:
            low_m, high_m = life.assumptions.tornado_multipliers
            names.append("hazard_multiplier")
            step = np.append(step, np.nan)
            low = np.column_stack([low, self._dcf({**d, "survival": np.nan_to_num(life.weights(high_m))}, slice(None))[:, 0]])
            high = np.column_stack([high, self._dcf({**d, "survival": np.nan_to_num(life.weights(low_m))}, slice(None))[:, 0]])
        n, k = low.shape
        patent_id = np.tile(d["patent_id"], k)  # assumption by assumption, then sorted by patent and swing (ties keep that order)
        swing = np.abs(high - low).T.ravel()
        order = np.lexsort((-swing, patent_id))
        return pd.DataFrame({
            "patent_id": patent_id[order], "assumption": np.repeat(np.array(names, dtype=object), n)[order], "step": np.repeat(step, n)[order],
            "value_low_rmb": low.T.ravel()[order], "value_rmb": np.tile(base[:, 0], k)[order], "value_high_rmb": high.T.ravel()[order],
            "swing_rmb": swing[order],
        })

    def cash_flows(self, X: pd.DataFrame | None = None, *, schedule=None, inputs: pd.DataFrame | None = None, survival=None, financials=None, tax_rate=None) -> pd.DataFrame:
        """Year-by-year cash flows of each patent (the report's 计算过程): the income attributed
        to the patent, the sharing rate and its position in the range, the year's weight (the
        probability in force × excess returns left, times the share of the year inside the
        period), the end-of-year (or mid-year) discount factor, the after-tax cash flow and its
        present value. The present values sum per patent to :meth:`predict` (one discounting,
        :func:`~ipvalue.methods.income.dcf.yearly_table`)."""
        inputs = self._inputs_of(X, schedule, inputs, survival=survival, financials=financials, tax_rate=tax_rate)
        columns = self._cash_flow_columns(self._arrays(inputs, schedule))
        kept = columns["weight"] > 0
        return pd.DataFrame({k: v[kept] for k, v in columns.items()})

    def _cash_flow_columns(self, d: dict) -> dict:
        """The columns of :meth:`cash_flows` from the inputs' arrays ``d``, every patent × year up to
        the longest horizon (years of weight 0 included: the caller keeps the rows of weight > 0)."""
        surv_rows = d["has_survival"]
        horizon = np.where(surv_rows, d["remaining_life_years"], d["income_period_years"])
        years = int(np.ceil(np.nanmax(horizon, initial=0)))
        if d["survival"] is not None:
            years = min(years, max(d["survival"].shape[1], int(np.ceil(np.nanmax(d["income_period_years"], initial=0)))))
        n = len(horizon)
        t = np.arange(1, years + 1)
        inc = d["base"][:, None] * (1 + d["growth"][:, None]) ** t
        if d["sched"] is not None:
            padded = np.zeros((n, years))
            width = min(years, d["sched"].shape[1])
            padded[:, :width] = np.nan_to_num(d["sched"][:, :width])
            inc[d["scheduled"]] = padded[d["scheduled"]]
        survival = np.ones((n, years))
        if d["survival"] is not None:
            padded = np.zeros((n, years))
            width = min(years, d["survival"].shape[1])
            padded[:, :width] = d["survival"][:, :width]
            survival[surv_rows] = padded[surv_rows]
        fraction = np.where(np.isinf(d["term"])[:, None], 1.0, np.clip(horizon[:, None] - (t - 1), 0, 1))  # weights that hold the term: whole years
        sharing = d["sharing_rate"] * np.where(d["operating_margin"] > 0, 1.0, 0.0)
        table = yearly_table(inc, sharing, d["decay_per_year"], d["discount_rate"], fraction * survival, d["tax_rate"], self.assumptions_.mid_year)
        return {
            "patent_id": np.repeat(d["patent_id"], years), "year": np.tile(t, n),
            "income_rmb": inc.ravel(), "sharing_position": np.repeat(d["sharing_position"], years),
            "sharing_rate": table["sharing_rate"].ravel(), "survival": survival.ravel(), "year_fraction": fraction.ravel(),
            "weight": (fraction * survival).ravel(), "tax_rate": np.repeat(d["tax_rate"], years),
            "discount_factor": table["discount_factor"].ravel(), "cash_flow_rmb": table["cash_flow_rmb"].ravel(),
            "present_value_rmb": table["present_value_rmb"].ravel(),
        }

    def value(self, X: pd.DataFrame | None = None, *, schedule=None, quantiles=(0.05, 0.5, 0.95), inputs: pd.DataFrame | None = None,
              survival=None, financials=None, tax_rate=None, draws: np.ndarray | None = None, return_draws: bool = False):
        """Inputs, point value, Monte Carlo quantiles and provenance, one row per patent.

        The Monte Carlo runs once: pass ``return_draws=True`` to get ``(table, draws)`` with the
        draws of shape (n_patents, n_draws) it computed (for the package sum, the disposal view
        and the cap), or pass ``draws=`` computed earlier by :meth:`simulate` to reuse them.
        """
        inputs = self._inputs_of(X, schedule, inputs, survival=survival, financials=financials, tax_rate=tax_rate)
        out = inputs.copy()
        out["income_value_rmb"] = self._values(inputs, schedule)
        if draws is None and return_draws:
            draws = self.simulate(inputs=inputs, schedule=schedule)
        if draws is not None:
            draws = np.asarray(draws, dtype=float)
            if draws.ndim != 2 or draws.shape[0] != len(inputs):
                raise ValueError(f"'draws' must have shape (n_patents={len(inputs)}, n_draws). Got {draws.shape}. Fix: pass simulate(inputs=inputs).")
            q = np.quantile(draws, np.asarray(quantiles), axis=1).T
        else:
            q = self.simulate(inputs=inputs, schedule=schedule, quantiles=np.asarray(quantiles))
        for j, p in enumerate(quantiles):
            out[f"p{round(100 * p):g}_rmb"] = q[:, j]
        out["value_type"] = self.value_type
        for k, v in self.provenance.items():
            out[k] = v
        return (out, draws) if return_draws else out

    @staticmethod
    def weights_table(curves, *, index, multiplier: float = 1.0) -> pd.DataFrame:
        """The yearly weights W_t = S_t × O_t × A_t of :class:`~ipvalue.models.life.LifeCurves` (with
        every fee-lapse hazard × ``multiplier``) as the ``survival`` table :meth:`inputs` takes."""
        w = curves.weights(multiplier)
        return pd.DataFrame(w, index=index, columns=[f"s_{t}" for t in range(1, w.shape[1] + 1)])

    def wacc(self, given: float | None = None) -> tuple[float, str, str]:
        """The borrower's WACC (``given``, from the application) or the bank's default
        (``wacc-cn``: E/V × (risk-free + beta × equity risk premium) + D/V × cost of debt × (1 −
        tax), with the income set's risk-free rate), where it came from (``application`` or the
        set's name-vN) and the set's hash ('' for the application's)."""
        if given is not None:
            return float(given), "application", ""
        s = load_set("wacc-cn")
        raw = s.raw
        beta, erp = assumption_value(raw, "beta", 0.0, 5.0), assumption_value(raw, "equity_risk_premium", 0.0, 0.5)
        kd, d, t = assumption_value(raw, "cost_of_debt", 0.0, 0.5), assumption_value(raw, "debt_share", 0.0, 1.0), assumption_value(raw, "tax_rate", 0.0, 1.0)
        value = (1 - d) * (self.assumptions_.risk_free + beta * erp) + d * kd * (1 - t)
        return value, s.label, s.hash

    @staticmethod
    def wacc_flags(inputs: pd.DataFrame, wacc: float, source: str) -> pd.DataFrame:
        """A review flag where the discount rate does not exceed the WACC (资产评估专家指引第12号:
        an intangible asset's rate exceeds the company's WACC); none otherwise."""
        low = inputs["discount_rate"] <= wacc
        rate = inputs["discount_rate"][low]
        return pd.DataFrame({
            "scope": inputs["patent_id"][low].to_numpy(), "code": "discount_rate_not_above_wacc", "review": True,
            "reason_zh": [f"收益法折现率 {r:.2%} 未高于加权平均资本成本 {wacc:.2%}（{source}）；《资产评估专家指引第12号》要求无形资产折现率高于企业WACC：需复核" for r in rate],
            "reason_en": [f"the income approach's discount rate {r:.2%} does not exceed the WACC {wacc:.2%} ({source}); an intangible asset's rate must "
                          "exceed the company's WACC (资产评估专家指引第12号): review required" for r in rate],
        }, columns=["scope", "code", "review", "reason_zh", "reason_en"])

    def market_participant(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """The income approach's inputs restated for a market participant: a buyer of the right
        earns the sector's operating margin (the industry-margin benchmark), not the borrower's
        own, and pays the standard tax rate of the assumption set (a 高新技术企业 rate is the
        borrower's own); the revenue forecast, the life and the sharing position stay. Value type:
        market value (what a willing buyer would pay on that income). Returns a copy."""
        check_is_fitted(self, "assumptions_")
        a = self.assumptions_
        out = inputs.copy()
        out["operating_margin"] = out["margin_benchmark"]
        out["margin_source"] = "industry benchmark (market participant)"
        out["sharing_low"] = a.profit_split[0] * out["operating_margin"].clip(lower=0.0)
        out["sharing_high"] = a.profit_split[1] * out["operating_margin"].clip(lower=0.0)
        out["sharing_rate"] = out["sharing_low"] + out["sharing_position"] * (out["sharing_high"] - out["sharing_low"])
        out["tax_rate"], out["tax_rate_source"] = a.tax_rate, "assumption set (standard rate, market participant)"
        return out

    def assess(self, X: pd.DataFrame, inputs) -> "MethodResult":
        """The income approach's part of a valuation (:class:`~ipvalue.methods.base.MethodResult`).

        From the PatentFrame ``X`` and the valuation's shared inputs (features, scorecard,
        economic-life weights, the borrower's forecast, statements and tax rate, the officers'
        sharing-rate overrides, the Monte Carlo scenarios):

        - ``values``: the **value in use** to the borrower (its revenue, margin and tax rate) and
          its Monte Carlo P5 / P50 / P95;
        - ``offers``: the same income **restated for a market participant**
          (:meth:`market_participant`) as a candidate for the market value, ranked by the
          assumption set's ``reconciliation`` block (higher when the borrower's statements back
          the forecast), with its scenario draws for the disposal view;
        - ``evidence``: the applied inputs, the year-by-year cash flows of both, the tornado;
        - ``sections``: its part of the report (:mod:`ipvalue.methods.income.sections`).
        """
        from ipvalue.methods.income.sections import income_sections

        self._load_assumptions()
        a = self.assumptions_
        frame = as_patent_frame(X)
        options = dict(schedule=inputs.schedule, financials=inputs.financials, tax_rate=inputs.tax_rate, features=inputs.features, scorecard=inputs.scorecard)
        curves = inputs.life
        weights = self.weights_table(curves, index=frame.index) if curves is not None else None
        model_inputs = self.inputs(frame, survival=weights, **options)
        if curves is not None:
            model_inputs["weights_include_term"] = True  # W_t = S_t × O_t × A_t: the share of each year in the legal term is in it
        if inputs.life_columns is not None:
            for col in ("economic_life_years", "economic_life_source"):
                if col in inputs.life_columns:
                    model_inputs[col] = inputs.life_columns[col].to_numpy()
            model_inputs["income_period_years"] = np.minimum(model_inputs["remaining_life_years"], model_inputs["economic_life_years"])
        rates = inputs.overrides_of("sharing_rate")
        in_use = self.with_sharing_rates(model_inputs, rates) if rates else model_inputs
        participant = self.market_participant(model_inputs)
        participant = self.with_sharing_rates(participant, rates) if rates else participant
        schedule = inputs.schedule
        use, mp = self._arrays(in_use, schedule), self._arrays(participant, schedule)
        use_values, mp_values = self._values(in_use, schedule, arrays=use), self._values(participant, schedule, arrays=mp)
        shocks = self._shocks(inputs.scenarios, curves)
        use_draws, mp_draws = self._simulate(use, shocks), self._simulate(mp, shocks)
        q = np.quantile(use_draws, [0.05, 0.5, 0.95], axis=1).T
        index = frame.index
        values = pd.DataFrame({"value_rmb": use_values, "low_rmb": q[:, 0], "p50_rmb": q[:, 1], "high_rmb": q[:, 2]}, index=index)

        rank = a.reconciliation_rank
        backed = in_use["margin_source"].str.startswith("financial statements").to_numpy()
        offers = offers_frame(
            index, role="primary", rank=np.where(backed, rank["with_statements"], rank["forecast_only"]), market_value_rmb=mp_values,
            reason_zh=np.where(backed, "收益法（借款人财务报表支持收入预测），按市场参与者口径（行业利润率、标准税率）重述",
                               "收益法（收入预测未经财务报表核对），按市场参与者口径（行业利润率、标准税率）重述"),
            reason_en=np.where(backed, "income approach (the borrower's statements back the forecast), restated for a market participant (sector margin, standard tax rate)",
                               "income approach (the forecast is not checked against statements), restated for a market participant (sector margin, standard tax rate)"),
        )
        columns = pd.DataFrame({
            "score": in_use["score"], "grade": in_use["grade"], "sharing_position": in_use["sharing_position"],
            "sharing_low": in_use["sharing_low"], "sharing_high": in_use["sharing_high"], "sharing_rate": in_use["sharing_rate"],
            "model_sharing_rate": model_inputs["sharing_rate"], "market_participant_sharing_rate": participant["sharing_rate"],
            "operating_margin": in_use["operating_margin"], "margin_source": in_use["margin_source"], "margin_benchmark": in_use["margin_benchmark"],
            "tax_rate": in_use["tax_rate"], "tax_rate_source": in_use["tax_rate_source"], "discount_rate": in_use["discount_rate"],
            "growth": in_use["growth"], "allocation_share": in_use["allocation_share"], "revenue_base_rmb": in_use["revenue_base_rmb"],
            "remaining_life_years": in_use["remaining_life_years"], "statutory_term_years": in_use["statutory_term_years"],
            "economic_life_years": in_use["economic_life_years"], "economic_life_source": in_use["economic_life_source"],
            "income_period_years": in_use["income_period_years"], "cash_flow_weighting": in_use["cash_flow_weighting"],
            "financials_flags": in_use["financials_flags"], "value_in_use_rmb": use_values, "market_participant_value_rmb": mp_values,
            "value_in_use_p5_rmb": q[:, 0], "value_in_use_p50_rmb": q[:, 1], "value_in_use_p95_rmb": q[:, 2],
        }, index=index)
        # both bases in one table; where the life curves weight the flows, with the weight's parts: fee survival S_t,
        # obsolescence O_t, the share of the year in the legal term A_t
        bases = {"value_in_use": self._cash_flow_columns(use), "market_participant": self._cash_flow_columns(mp)}
        kept = {basis: flows["weight"] > 0 for basis, flows in bases.items()}
        flows = {k: np.concatenate([bases[basis][k][kept[basis]] for basis in bases]) for k in bases["value_in_use"]}
        flows["basis"] = np.repeat(list(bases), [kept[basis].sum() for basis in bases])
        if curves is not None:
            years = int(bases["value_in_use"]["year"].max(initial=0))  # the same years on both bases (they differ in sharing rates only)
            for name, part in (("fee_survival", curves.survival()), ("obsolescence", curves.obsolescence), ("share_in_term", curves.share_in_term)):
                padded = np.full((len(index), years), np.nan)
                width = min(years, part.shape[1])
                padded[:, :width] = part[:, :width]
                flows[name] = np.concatenate([padded.ravel()[kept[basis]] for basis in bases])
        cash_flows = pd.DataFrame(flows)
        sensitivity = self._tornado(use, life=curves)
        provenance = {**a.provenance, **self.scorecard_.provenance, **self.margin_benchmarks_provenance_}
        wacc, wacc_source, wacc_hash = self.wacc(inputs.wacc)
        provenance.update(wacc=wacc, wacc_source=wacc_source, **({"wacc_set_hash": wacc_hash} if wacc_hash else {}))
        flags = self.wacc_flags(in_use, wacc, wacc_source)
        result = MethodResult(
            method="income", label_zh="收益法", label_en="income approach", value_type=self.value_type, values=values, offers=offers,
            draws=mp_draws, columns=columns, provenance=provenance,
            value_types={"value_rmb": "value_in_use", "low_rmb": "value_in_use", "p50_rmb": "value_in_use", "high_rmb": "value_in_use",
                         "market_value_rmb": "market_value", "value_in_use_rmb": "value_in_use", "market_participant_value_rmb": "market_value",
                         "value_in_use_p5_rmb": "value_in_use", "value_in_use_p50_rmb": "value_in_use", "value_in_use_p95_rmb": "value_in_use",
                         "revenue_base_rmb": "input (revenue, not a value)"},
            evidence={"inputs": in_use, "market_participant_inputs": participant, "cash_flows": cash_flows, "sensitivity": sensitivity,
                      "value_in_use_draws": use_draws},
            flags=flags,
        )
        result.sections = income_sections(result, assumptions=a, scenarios=inputs.scenarios, frame=frame, life=curves)
        return result

    @property
    def provenance(self) -> dict:
        check_is_fitted(self, "features_")
        return {**self.assumptions_.provenance, **self.scorecard_.provenance, **self.features_.provenance, **self.margin_benchmarks_provenance_}
