"""IncomeApproachValuer: the income approach as a valuer (the contract of :mod:`ipvalue.valuer`)."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.exceptions import InputError
from ipvalue.features import PatentFeatureBuilder
from ipvalue.frame import as_patent_frame
from ipvalue.income.assumptions import IncomeAssumptions
from ipvalue.income.dcf import dcf_grown, dcf_schedule
from ipvalue.scorecard import IndicatorScorecard
from ipvalue.valuer import coverage_quantiles, interval_frame

logger = logging.getLogger(__name__)

#: Patents × draws per Monte Carlo block: bounds memory (about 8 arrays of this many floats per
#: thread); 1M cells measured fastest on the 2-core reference machine (benchmarks/income.py).
MC_BLOCK_CELLS = 1_000_000


class IncomeApproachValuer(BaseEstimator):
    """Value patents by the income approach (收益分成法), set by the indicator scorecard.

    For each patent: the sharing rate's range comes from its sector (profit split × margin), its
    position in the range from the scorecard total; the income period is
    ``min(remaining legal life, economic life)``; the discount rate is the build-up rate. A patent
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

    def __init__(self, assumptions="cn-pledge-2025", *, scorecard="scorecard-pledge", feature_spec="core-v1", valuation_date=None, data_dir=None):
        self.assumptions = assumptions
        self.scorecard = scorecard
        self.feature_spec = feature_spec
        self.valuation_date = valuation_date
        self.data_dir = data_dir

    def fit(self, X: pd.DataFrame, y=None) -> "IncomeApproachValuer":
        """Fit the feature builder's cohort references on ``X`` and load the assumptions."""
        self.assumptions_ = IncomeAssumptions.load(self.assumptions)
        self.scorecard_ = IndicatorScorecard(self.scorecard).fit()
        self.features_ = PatentFeatureBuilder(self.feature_spec, valuation_date=self.valuation_date, data_dir=self.data_dir).fit(X)
        return self

    # -- inputs ------------------------------------------------------------------------------

    def inputs(self, X: pd.DataFrame, *, schedule: pd.DataFrame | None = None, features: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every DCF input per patent, with where it came from: the audit view of the valuation.

        Parameters
        ----------
        X : PatentFrame, shape (n_patents, ...)
            Needs ``revenue_base_rmb`` (and optionally ``revenue_growth``, ``package_id``,
            ``economic_life_years``) unless a ``schedule`` covers the patent's package.
        schedule : pandas.DataFrame, optional
            Yearly income forecasts: ``package_id`` (or ``patent_id``), ``year`` (1, 2, ...),
            ``revenue_rmb``. Overrides the grown base for the packages it names.
        features : pandas.DataFrame, optional
            ``features_.transform(X)`` when the caller built it already (a valuation builds the
            features once for the inputs, the scorecard table and the checks).

        Returns
        -------
        pandas.DataFrame, one row per patent (index of ``X``)
        """
        check_is_fitted(self, "features_")
        a = self.assumptions_
        frame = as_patent_frame(X, passthrough=self.features_.spec_.passthrough)
        features = self.features_.transform(frame) if features is None else features
        card = self.scorecard_.score(features)
        out = pd.DataFrame(index=frame.index)
        out["patent_id"] = frame["patent_id"]
        out["package_id"] = frame["package_id"].fillna(frame["patent_id"])
        out["tech_sector"] = features["tech_sector"].astype(object)
        out["score"], out["grade"], out["sharing_position"] = card["total"], card["grade"], card["sharing_position"]
        margin = out["tech_sector"].map(a.profit_margin_by_sector).fillna(a.profit_margin_by_sector["default"]).astype(float)
        out["sharing_low"] = a.profit_split[0] * margin
        out["sharing_high"] = a.profit_split[1] * margin
        out["sharing_rate"] = out["sharing_low"] + out["sharing_position"] * (out["sharing_high"] - out["sharing_low"])
        out["decay_per_year"] = a.decay_per_year
        out["discount_rate"] = a.discount_rate
        out["growth"] = frame["revenue_growth"].fillna(a.default_growth)
        out["remaining_life_years"] = features["remaining_life_years"]
        out["economic_life_years"] = frame["economic_life_years"].fillna(a.economic_life_years)
        out["economic_life_source"] = np.where(frame["economic_life_years"].notna(), "input", "assumption")
        out["income_period_years"] = np.minimum(out["remaining_life_years"], out["economic_life_years"])

        live = out["income_period_years"] > 0
        weight = pd.Series(1.0, index=out.index) if a.package_allocation == "equal" else out["score"].clip(lower=1e-9)
        weight = weight.where(live, 0.0)
        totals = weight.groupby(out["package_id"]).transform("sum")
        out["allocation_share"] = (weight / totals.where(totals > 0)).fillna(0.0)

        package_revenue = frame["revenue_base_rmb"].groupby(out["package_id"])
        inconsistent = package_revenue.nunique() > 1
        if inconsistent.any():
            pkg = inconsistent[inconsistent].index[0]
            raise InputError(
                f"Package {pkg!r} has different 'revenue_base_rmb' values on its patents "
                f"({sorted(frame.loc[out['package_id'] == pkg, 'revenue_base_rmb'].dropna().unique())}). "
                "Fix: a package shares one product's revenue; give the same value on each of its patents."
            )
        out["package_revenue_base_rmb"] = package_revenue.transform("first")
        covered = out["package_id"].isin(schedule["package_id"]) if schedule is not None else pd.Series(False, index=out.index)
        missing = out["package_revenue_base_rmb"].isna() & ~covered
        if missing.any():
            rows = list(out.index[missing][:5])
            raise InputError(
                f"The income approach needs a revenue forecast: 'revenue_base_rmb' is missing for {int(missing.sum())} patent(s), "
                f"e.g. rows {rows} ({', '.join(out.loc[rows, 'patent_id'])}). Fix: give the product revenue (revenue_base_rmb, "
                "revenue_growth) or a yearly schedule for their packages."
            )
        out["revenue_base_rmb"] = out["package_revenue_base_rmb"] * out["allocation_share"]
        out["income_source"] = np.where(covered, "schedule", "grown base")
        out["tax_rate"] = a.tax_rate
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

    def _values(self, inputs: pd.DataFrame, schedule_matrix, *, shift: dict | None = None) -> np.ndarray:
        """Point values from the inputs, optionally with assumptions shifted (sensitivity)."""
        s = shift or {}
        lo, hi = inputs["sharing_low"].to_numpy(), inputs["sharing_high"].to_numpy()
        pos = np.clip(inputs["sharing_position"].to_numpy() + s.get("sharing_position", 0.0), 0.0, 1.0)
        sharing = lo + pos * (hi - lo)
        decay = np.clip(inputs["decay_per_year"].to_numpy() + s.get("decay_per_year", 0.0), 0.0, 0.99)
        discount = inputs["discount_rate"].to_numpy() + s.get("discount_rate", 0.0)
        growth = inputs["growth"].to_numpy() + s.get("growth", 0.0)
        life = np.maximum(inputs["economic_life_years"].to_numpy() + s.get("economic_life_years", 0.0), 0.0)
        period = np.minimum(inputs["remaining_life_years"].to_numpy(), life)
        a = self.assumptions_
        values = dcf_grown(inputs["revenue_base_rmb"].fillna(0).to_numpy(), growth, sharing, decay, discount, period, a.tax_rate, a.mid_year)
        if schedule_matrix is not None:
            scheduled = inputs["income_source"].eq("schedule").to_numpy()
            if scheduled.any():
                values[scheduled] = dcf_schedule(
                    np.nan_to_num(schedule_matrix[scheduled]), sharing[scheduled], decay[scheduled], discount[scheduled],
                    period[scheduled], a.tax_rate, a.mid_year, growth_shift=s.get("growth", 0.0),
                )
        return values

    def _inputs_of(self, X, schedule, inputs) -> pd.DataFrame:
        """``inputs`` when the caller built them already (see :meth:`inputs`), else built from ``X``."""
        return self.inputs(X, schedule=schedule) if inputs is None else inputs

    def predict(self, X: pd.DataFrame, *, schedule: pd.DataFrame | None = None) -> pd.Series:
        """Point value of each patent in RMB (0 for lapsed or expired patents)."""
        return self.point_values(self.inputs(X, schedule=schedule), schedule=schedule)

    def point_values(self, inputs: pd.DataFrame, *, schedule: pd.DataFrame | None = None) -> pd.Series:
        """Point value in RMB of each row of :meth:`inputs` (edited by the caller or not, e.g. an
        officer's sharing-rate override): no feature is rebuilt."""
        return pd.Series(self._values(inputs, self._schedule_matrix(inputs, schedule)), index=inputs.index, name="income_value_rmb")

    def simulate(self, X: pd.DataFrame | None = None, *, schedule=None, n_draws: int | None = None, inputs: pd.DataFrame | None = None, quantiles=None):
        """Monte Carlo values, shape (n_patents, n_draws), or their quantiles when ``quantiles`` is given.

        Draws are scenarios shared by all patents (common random numbers), seeded by the
        assumption set: in scenario k every patent sees the same standard-normal shocks to its
        sharing-rate position, discount rate, growth and economic life, each scaled by the set's
        standard deviations. A package's distribution is then the distribution of the summed
        scenario values, and re-running gives identical numbers.
        """
        a = self.assumptions_
        inputs = self._inputs_of(X, schedule, inputs)
        sched = self._schedule_matrix(inputs, schedule)
        draws = int(n_draws or a.mc_draws)
        z = np.random.default_rng(a.mc_seed).standard_normal((4, draws))
        sd = a.mc_sd
        n = len(inputs)
        block = max(1, MC_BLOCK_CELLS // draws)
        out = np.empty((n, draws) if quantiles is None else (n, len(quantiles)))
        cols = {c: inputs[c].to_numpy(dtype=float) for c in ("sharing_low", "sharing_high", "sharing_position", "decay_per_year", "discount_rate", "growth", "economic_life_years", "remaining_life_years")}
        base = inputs["revenue_base_rmb"].fillna(0).to_numpy(dtype=float)
        scheduled = inputs["income_source"].eq("schedule").to_numpy()

        def run_block(start: int) -> None:
            sl = slice(start, min(n, start + block))
            c = {k: v[sl, None] for k, v in cols.items()}
            pos = np.minimum(np.maximum(c["sharing_position"] + sd["sharing_position_sd"] * z[0], 0.0), 1.0)
            sharing = c["sharing_low"] + pos * (c["sharing_high"] - c["sharing_low"])
            discount = np.maximum(c["discount_rate"] + sd["discount_rate_sd"] * z[1], 0.0)
            growth_shock = sd["growth_sd"] * z[2]
            period = np.minimum(c["remaining_life_years"], np.maximum(c["economic_life_years"] + sd["economic_life_sd_years"] * z[3], 0.0))
            values = dcf_grown(base[sl, None], np.maximum(c["growth"] + growth_shock, -0.95), sharing, c["decay_per_year"], discount, period, a.tax_rate, a.mid_year)
            rows = np.flatnonzero(scheduled[sl])
            if len(rows):
                values[rows] = dcf_schedule(
                    np.nan_to_num(sched[sl][rows]), sharing[rows], c["decay_per_year"][rows], discount[rows], period[rows],
                    a.tax_rate, a.mid_year, growth_shift=growth_shock,
                )
            out[sl] = values if quantiles is None else np.quantile(values, quantiles, axis=1).T

        # Blocks are independent and NumPy releases the GIL on large arrays: use every core.
        with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8)) as pool:
            list(pool.map(run_block, range(0, n, block)))
        return out

    def predict_interval(self, X: pd.DataFrame, *, coverage: float = 0.9, schedule=None, n_draws: int | None = None) -> pd.DataFrame:
        """Monte Carlo interval of each patent's value in RMB: ``low_rmb, p50_rmb, high_rmb``
        (P5 / P50 / P95 for the default coverage 0.9)."""
        inputs = self.inputs(X, schedule=schedule)
        q = self.simulate(inputs=inputs, schedule=schedule, n_draws=n_draws, quantiles=coverage_quantiles(coverage))
        return interval_frame(q[:, 0], q[:, 1], q[:, 2], inputs.index)

    def sensitivity(self, X: pd.DataFrame | None = None, *, schedule=None, inputs: pd.DataFrame | None = None) -> pd.DataFrame:
        """Tornado table: each assumption moved down and up (by the set's ``sensitivity`` steps).

        Returns
        -------
        pandas.DataFrame
            One row per patent and assumption: ``patent_id, assumption, step, value_low_rmb,
            value_rmb, value_high_rmb, swing_rmb``; sorted by swing within each patent.
        """
        inputs = self._inputs_of(X, schedule, inputs)
        sched = self._schedule_matrix(inputs, schedule)
        base = self._values(inputs, sched)
        rows = []
        for name, step in self.assumptions_.sensitivity.items():
            low = self._values(inputs, sched, shift={name: -step})
            high = self._values(inputs, sched, shift={name: step})
            rows.append(pd.DataFrame({
                "patent_id": inputs["patent_id"].to_numpy(), "assumption": name, "step": step,
                "value_low_rmb": low, "value_rmb": base, "value_high_rmb": high, "swing_rmb": np.abs(high - low),
            }))
        table = pd.concat(rows, ignore_index=True)
        return table.sort_values(["patent_id", "swing_rmb"], ascending=[True, False], kind="stable").reset_index(drop=True)

    def cash_flows(self, X: pd.DataFrame | None = None, *, schedule=None, inputs: pd.DataFrame | None = None) -> pd.DataFrame:
        """Year-by-year cash flows of each patent (for reports): income, sharing rate, weight,
        discount factor and present value; their sum per patent equals :meth:`predict`."""
        a = self.assumptions_
        inputs = self._inputs_of(X, schedule, inputs)
        sched = self._schedule_matrix(inputs, schedule)
        years = int(np.ceil(inputs["income_period_years"].max() or 0))
        t = np.arange(1, years + 1)
        inc = inputs["revenue_base_rmb"].fillna(0).to_numpy()[:, None] * (1 + inputs["growth"].to_numpy()[:, None]) ** t
        if sched is not None:
            scheduled = inputs["income_source"].eq("schedule").to_numpy()
            padded = np.zeros((len(inputs), years))
            width = min(years, sched.shape[1])
            padded[:, :width] = np.nan_to_num(sched[:, :width])
            inc[scheduled] = padded[scheduled]
        share = inputs["sharing_rate"].to_numpy()[:, None] * (1 - inputs["decay_per_year"].to_numpy()[:, None]) ** (t - 1)
        weight = np.clip(inputs["income_period_years"].to_numpy()[:, None] - (t - 1), 0, 1)
        factor = (1 + inputs["discount_rate"].to_numpy()[:, None]) ** -(t - (0.5 if a.mid_year else 0.0))
        pv = inc * share * weight * factor * (1 - a.tax_rate)
        long = pd.DataFrame({
            "patent_id": np.repeat(inputs["patent_id"].to_numpy(), years), "year": np.tile(t, len(inputs)),
            "income_rmb": inc.ravel(), "sharing_rate": share.ravel(), "weight": weight.ravel(),
            "discount_factor": factor.ravel(), "present_value_rmb": pv.ravel(),
        })
        return long[long["weight"] > 0].reset_index(drop=True)

    def value(self, X: pd.DataFrame | None = None, *, schedule=None, quantiles=(0.05, 0.5, 0.95), inputs: pd.DataFrame | None = None,
              draws: np.ndarray | None = None) -> pd.DataFrame:
        """Inputs, point value, Monte Carlo quantiles and provenance, one row per patent.
        ``draws``: the Monte Carlo values of :meth:`simulate` when the caller has them (one
        simulation per valuation); else simulated here."""
        inputs = self._inputs_of(X, schedule, inputs)
        out = inputs.copy()
        out["income_value_rmb"] = self._values(inputs, self._schedule_matrix(inputs, schedule))
        if draws is None:
            q = self.simulate(inputs=inputs, schedule=schedule, quantiles=np.asarray(quantiles))
        else:
            q = np.quantile(draws, quantiles, axis=1).T
        for j, p in enumerate(quantiles):
            out[f"p{round(100 * p):g}_rmb"] = q[:, j]
        for k, v in self.provenance.items():
            out[k] = v
        return out

    @property
    def provenance(self) -> dict:
        check_is_fitted(self, "features_")
        return {**self.assumptions_.provenance, **self.scorecard_.provenance, **self.features_.provenance}
