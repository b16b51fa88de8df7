"""Re-estimate the valuation's coefficients from a pilot ledger, each with its 90 % interval, its
sample size and the minimum it needs (below it the coefficient is left unchanged, saying why).

=============================  =================================================================
coefficient (set: path)        estimator
=============================  =================================================================
sharing-position mapping       nonlinear least squares on log deal price (SciPy
(a, b) and the discount-rate   ``least_squares``): ``log price = log V(a + b × score/100,
premium total (cn-pledge-2025)  risk_free + premium) + ε`` with V from the cash-flow table;
                               profile-likelihood interval (Bates & Watts). Priced transfers of
                               ledger packages within the deal window; external appraisals only
                               when deals are too few (the result then says that it calibrates
                               to the appraisers, and names their bias)
forced-sale discount,          1 − median(gross realised / market value at origination), and
disposal cost rate             median(costs / market value), over completed disposals; the market
(disposal-cn)                  value is recomputed under the calibrated mapping when that changed
time to dispose (disposal-cn)  Kaplan-Meier median years from default to cash, disposals not yet
                               done censored at the ledger date; interval of the median by the
                               complementary log-log transform (statsmodels ``SurvfuncRight``)
holding rate (disposal-cn)     not identified by disposals (the bank's funding cost): unchanged
default probability by type    defaults / loans of the type whose term has ended (Jeffreys)
pledge rate by type            the highest rate whose expected loss after risk sharing, default
(pledge-policy-cn)             probability × mean bank share × mean max(0, e − R / rate), stays
                               within the policy's target; R = net recovery / market value,
                               discounted at the holding rate over the time to cash, e = exposure
                               at default / loan amount
disagreement factor            quantile of the highest / lowest method ratio that sends the
(pledge-policy-cn)             policy's review share of past valuations to review
appraiser bias (no set)        median log(appraised value / market value) per appraiser
override drift (no set)        OLS slope (statsmodels) of an officer's relative override over time
=============================  =================================================================

Intervals of the estimates that depend on several samples come from one Monte Carlo of the joint
uncertainty (``interval.draws`` draws): the mapping's parameters drawn from their (multivariate t, Wald)
sampling distribution, the ledger's samples reweighted by the Bayesian bootstrap (Rubin 1981:
Dirichlet weights), the default rates from their Jeffreys posterior; each interval is the 5th to
95th percentile of its estimate over the draws. Weighed and not used: ``scipy.stats.bootstrap``
(resamples one statistic at a time, so the mapping's refit would run per resample and the joint
draws could not be shared), lifelines (its Kaplan-Meier median interval is what statsmodels gives).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ipvalue.calibration.ledger import METHOD_COLUMNS, Ledger
from ipvalue.calibration.values import ValueTable
from ipvalue.config import assumption_value, content_hash, load_yaml
from ipvalue.exceptions import AssumptionError
from ipvalue.frame import PATENT_TYPES
from ipvalue.methods.income.assumptions import IncomeAssumptions
from ipvalue.lending.disposal import DisposalAssumptions
from ipvalue.lending.policy import load_pledge_policy

logger = logging.getLogger(__name__)

__all__ = ["ESTIMATE_COLUMNS", "SetsInUse", "Settings", "estimate_coefficients"]

ESTIMATE_COLUMNS = ["key", "label_zh", "label_en", "set", "path", "unit", "current", "estimate", "low", "high", "n", "min_n",
                    "method", "changed", "reason", "current_in_interval"]
DAYS = 365.25
TYPE_ZH = {"invention": "发明", "utility_model": "实用新型", "design": "外观设计"}


@dataclass(frozen=True)
class Settings:
    """The calibration settings (``assumptions/calibration-cn.yaml``)."""

    name: str
    version: int
    minimum_n: dict
    score_sd_min: float
    duration_sd_min: float
    deal_kinds: tuple
    deal_window_years: float
    coverage: float
    draws: int
    train_share: float
    gates: dict
    hash: str

    @classmethod
    def load(cls, which="calibration-cn") -> "Settings":
        raw, origin = (which, "dict") if isinstance(which, dict) else load_yaml(which)
        minimum = {k: int(assumption_value(raw, f"minimum_n.{k}", 1, 1e6)) for k in (raw.get("minimum_n") or {})}
        needed = {"disposals", "defaults_followed", "deals", "matured_loans_per_type", "valuations_with_two_methods", "appraisals_per_appraiser", "life_table_at_risk"}
        if not needed <= set(minimum):
            raise AssumptionError(f"The 'minimum_n' of calibration settings {raw.get('name', origin)!r} must give {sorted(needed)}. Got {sorted(minimum)}.")
        kinds = (raw.get("deals") or {}).get("kinds", {}).get("value") or []
        if not kinds or not set(kinds) <= {"transfer", "auction", "licence_fixed_fee"}:
            raise AssumptionError(f"The 'deals.kinds' of calibration settings {raw.get('name', origin)!r} must list priced kinds (transfer, auction, licence_fixed_fee). Got {kinds!r}.")
        return cls(
            name=str(raw.get("name", origin)), version=int(raw.get("version", 0)), minimum_n=minimum,
            score_sd_min=assumption_value(raw, "identification.score_sd_min", 0, 100),
            duration_sd_min=assumption_value(raw, "identification.duration_sd_min", 0, 50),
            deal_kinds=tuple(kinds), deal_window_years=assumption_value(raw, "deals.window_years", 0, 50),
            coverage=assumption_value(raw, "interval.coverage", 0.5, 0.999), draws=int(assumption_value(raw, "interval.draws", 100, 1e6)),
            train_share=assumption_value(raw, "backtest.train_share", 0.1, 0.9),
            gates={k: assumption_value(raw, f"gates.{k}", -1e9, 1e9) for k in ("p10_coverage", "bias_max_abs_log", "min_test_disposals", "min_test_deals")},
            hash=content_hash(raw),
        )


@dataclass(frozen=True)
class SetsInUse:
    """The sets the valuations read now (by name): the income-approach set, the disposal set and
    the pledge policy, with the values the calibration compares its estimates against."""

    income: IncomeAssumptions
    income_raw: dict
    disposal: DisposalAssumptions
    disposal_raw: dict
    policy: dict
    position_mapping: tuple  # (intercept, slope): position = intercept + slope × score / 100

    @classmethod
    def load(cls, assumption_set="cn-pledge-2025", disposal_set="disposal-cn", pledge_policy="pledge-policy-cn") -> "SetsInUse":
        income_raw, _ = load_yaml(assumption_set)
        disposal_raw, _ = load_yaml(disposal_set)
        policy, _ = load_pledge_policy(pledge_policy)
        name = policy.get("name", pledge_policy)
        assumption_value(policy, "expected_loss_target", 0.0, 1.0, lo_open=True)
        if "review_target_share" not in (policy.get("reconciliation") or {}):
            raise AssumptionError(f"Pledge policy {name!r} has no 'reconciliation.review_target_share'. Fix: add it (see the shipped pledge-policy-cn v3).")
        assumption_value(policy, "reconciliation.review_target_share", 0.0, 1.0, lo_open=True, hi_open=True)
        mapping = (income_raw.get("sharing_rate") or {}).get("position_mapping")
        position = (assumption_value(income_raw, "sharing_rate.position_mapping.intercept", -1, 1),
                    assumption_value(income_raw, "sharing_rate.position_mapping.slope", 0, 5)) if mapping else (0.0, 1.0)
        return cls(IncomeAssumptions.from_dict(income_raw), income_raw, DisposalAssumptions.load(disposal_raw), disposal_raw, policy, position)

    @property
    def policy_name(self) -> str:
        return str(self.policy.get("name"))

    @property
    def premium_total(self) -> float:
        return float(sum(self.income.premiums.values()))

    def pledge_rate(self, patent_type: str) -> float:
        return float(self.policy["pledge_rate"][patent_type]["value"])

    @property
    def loss_target(self) -> float:
        return float(self.policy["expected_loss_target"]["value"])

    @property
    def review_share(self) -> float:
        return float(self.policy["reconciliation"]["review_target_share"]["value"])

    @property
    def disagreement_factor(self) -> float:
        return float(self.policy["reconciliation"]["disagreement_factor"]["value"])


@dataclass
class MappingFit:
    """The sharing-position mapping and discount-rate premium fitted to prices."""

    theta: np.ndarray  # (intercept, slope, premium total)
    cov: np.ndarray
    n: int
    evidence: str  # "deals", "appraisals" or ""
    identified: bool
    reason: str
    dof: int = 1
    residual_sd: float = float("nan")
    notes: list = field(default_factory=list)

    def draws(self, n_draws: int, rng: np.random.Generator) -> np.ndarray:
        """Parameter draws (n_draws, 3) from the multivariate t of the fit, or the point repeated."""
        if not self.identified:
            return np.repeat(self.theta[None, :], n_draws, axis=0)
        z = rng.multivariate_normal(np.zeros(3), self.cov, size=n_draws, method="cholesky")
        return self.theta[None, :] + z / np.sqrt(rng.chisquare(self.dof, size=(n_draws, 1)) / self.dof)


def _row(key, zh, en, set_, path, unit, current, estimate, low, high, n, min_n, method, changed, reason) -> dict:
    inside = bool(low <= current <= high) if all(np.isfinite([current, low, high])) else None
    return dict(zip(ESTIMATE_COLUMNS, [key, zh, en, set_, path, unit, float(current), float(estimate), float(low), float(high), int(n), int(min_n),
                                       method, bool(changed), reason, inside]))


def _quantile(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Weighted ``q`` quantile along the last axis (the first value whose cumulative weight
    reaches q), per row of ``weights`` (B, n); ``values`` (n,) or (B, n)."""
    values = np.broadcast_to(values, weights.shape)
    order = np.argsort(values, axis=-1)
    v, w = np.take_along_axis(values, order, -1), np.take_along_axis(weights, order, -1)
    cum = np.cumsum(w, axis=-1) / np.sum(w, axis=-1, keepdims=True)
    k = np.minimum(np.sum(cum < q - 1e-12, axis=-1), values.shape[-1] - 1)
    return np.take_along_axis(v, k[..., None], -1)[..., 0]


def _dirichlet(rng: np.random.Generator, n_draws: int, n: int) -> np.ndarray:
    return rng.exponential(size=(n_draws, n))


def _bounds(draws: np.ndarray, coverage: float) -> tuple[float, float]:
    tail = (1 - coverage) / 2
    finite = draws[np.isfinite(draws)]
    if len(finite) < len(draws) * 0.99:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [tail, 1 - tail])
    return float(lo), float(hi)


class Calibration:
    """The estimates of one ledger (see the module docstring); :func:`estimate_coefficients` runs it."""

    def __init__(self, ledger: Ledger, sets: SetsInUse, settings: Settings, *, seed: int = 0):
        self.ledger, self.sets, self.settings = ledger, sets, settings
        self.rng = np.random.default_rng(seed)
        self.values = ValueTable(ledger.cash_flows)
        self.rows: list[dict] = []
        self.notes: list[str] = []
        loans = ledger.loans
        self.rf = loans["risk_free_rate"].fillna(sets.income.risk_free).to_numpy(float)
        self.position_used = loans["sharing_position"].fillna(sets.position_mapping[0] + sets.position_mapping[1] * loans["score"] / 100).to_numpy(float)
        self.rate_used = loans["discount_rate"].fillna(pd.Series(self.rf, index=loans.index) + sets.premium_total).to_numpy(float)
        self.recomputable = (loans["market_value_basis"] != "market_approach").to_numpy() & self.values.has(loans["loan_id"]) & loans["score"].notna().to_numpy()

    # -- the sharing-position mapping and the premium ------------------------------------------
    def fit_mapping(self) -> MappingFit:
        s, sets, loans = self.settings, self.sets, self.ledger.loans
        current = np.array([*sets.position_mapping, sets.premium_total])
        deals = self.ledger.deals
        deals = deals[deals["kind"].isin(s.deal_kinds) & deals["loan_id"].notna() & (deals["price_rmb"] > 0)]
        joined = deals.merge(loans[["loan_id", "valuation_date"]].reset_index(names="loan_row"), on="loan_id")
        near = (joined["date"] - joined["valuation_date"]).abs().dt.days / DAYS <= s.deal_window_years
        joined = joined[near & self.recomputable[joined["loan_row"]]]
        evidence, rows, prices = "deals", joined["loan_row"].to_numpy(), joined["price_rmb"].to_numpy(float)
        need = s.minimum_n["deals"]
        if len(rows) < need:
            appraised = loans["appraised_value_rmb"].notna().to_numpy() & self.recomputable
            if appraised.sum() >= need:
                self.notes.append(f"{len(rows)} usable deals (fewer than {need}): the mapping and premium are fitted to external appraisals")
                evidence, rows, prices = "appraisals", np.flatnonzero(appraised), loans["appraised_value_rmb"].to_numpy(float)[appraised]
            else:
                return MappingFit(current, np.zeros((3, 3)), len(rows), "", False,
                                  f"{len(rows)} priced transfers of ledger packages within {s.deal_window_years:g} year(s) of their valuation "
                                  f"(minimum {need}) and {int(appraised.sum())} appraisals: too few")
        ids, score, rf = loans["loan_id"].to_numpy()[rows], loans["score"].to_numpy(float)[rows] / 100, self.rf[rows]
        durations = self.values.duration(ids, current[0] + current[1] * score, rf + current[2])
        if np.std(score * 100) < s.score_sd_min:
            return MappingFit(current, np.zeros((3, 3)), len(rows), evidence, False,
                              f"the scores of the priced packages hardly vary (sd {np.std(score * 100):.1f} points, minimum {s.score_sd_min:g}): the slope is not identified")
        if np.std(durations) < s.duration_sd_min:
            return MappingFit(current, np.zeros((3, 3)), len(rows), evidence, False,
                              f"the income periods of the priced packages hardly vary (duration sd {np.std(durations):.2f} years, minimum "
                              f"{s.duration_sd_min:g}): the premium is not told apart from the sharing level")
        from scipy.optimize import least_squares
        from scipy.stats import t as student

        y = np.log(prices)

        def residual(theta):
            v = self.values.values(ids, theta[0] + theta[1] * score, rf + theta[2])
            return y - np.log(np.maximum(v, 1e-6))

        fit = least_squares(residual, current, bounds=([-5.0, -5.0, -0.01], [5.0, 5.0, 0.6]), x_scale=[0.1, 0.1, 0.02])
        dof = len(rows) - 3
        sigma2 = float(np.sum(fit.fun ** 2) / dof)
        with np.errstate(all="ignore"):
            try:
                cov = sigma2 * np.linalg.inv(fit.jac.T @ fit.jac)
            except np.linalg.LinAlgError:
                cov = np.full((3, 3), np.nan)
        if not fit.success or not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
            return MappingFit(current, np.zeros((3, 3)), len(rows), evidence, False, f"the least-squares fit did not converge to a finite covariance ({fit.message})")
        theta = fit.x
        lo, hi = np.quantile(score, [0.05, 0.95])
        positions = theta[0] + theta[1] * np.array([lo, hi])
        if positions.min() < -0.05 or positions.max() > 1.05:
            return MappingFit(current, np.zeros((3, 3)), len(rows), evidence, False,
                              f"the fitted mapping puts positions at {positions[0]:.2f}-{positions[1]:.2f} for the observed scores, outside the sharing "
                              "range [0, 1]: the range itself (the profit split) needs review")
        result = MappingFit(theta, cov, len(rows), evidence, True, "", dof, float(np.sqrt(sigma2)))
        threshold = float(np.sum(fit.fun ** 2)) + float(student.ppf(0.5 + s.coverage / 2, dof)) ** 2 * sigma2
        result.intervals = [_profile_interval(residual, theta, cov, k, threshold) for k in range(3)]
        return result

    def market_values(self, theta: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Market values at origination of the loans ``rows`` under mapping ``theta`` ((3,) or
        (B, 3)): the recorded value scaled by V(theta) / V(as used) where the table allows it."""
        loans = self.ledger.loans
        recorded = loans["market_value_rmb"].to_numpy(float)[rows]
        theta = np.asarray(theta, float)
        shape = (theta.shape[0], len(rows)) if theta.ndim == 2 else (len(rows),)
        out = np.broadcast_to(recorded, shape).copy()
        ok = self.recomputable[rows]
        if ok.any():
            r = rows[ok]
            ids, score = loans["loan_id"].to_numpy()[r], loans["score"].to_numpy(float)[r] / 100
            used = self.values.values(ids, self.position_used[r], self.rate_used[r])
            if theta.ndim == 1:
                out[ok] = recorded[ok] * self.values.values(ids, theta[0] + theta[1] * score, self.rf[r] + theta[2]) / used
            else:  # draws in blocks, so that memory stays near 2 million cash flows whatever the ledger's size
                block = max(1, 2_000_000 // (len(r) * self.values.t.shape[1]))
                for start in range(0, len(theta), block):
                    a, b, prem = (theta[start:start + block, k:k + 1] for k in range(3))
                    out[start:start + block, ok] = recorded[ok] * self.values.values(ids, a + b * score, self.rf[r] + prem) / used
        return out

    # -- estimates ------------------------------------------------------------------------------
    def run(self) -> pd.DataFrame:
        s, sets = self.settings, self.sets
        B = s.draws
        fit = self.mapping = self.fit_mapping()
        theta_draws = fit.draws(B, self.rng)
        self.theta = fit.theta
        self._mapping_rows(fit, theta_draws)
        disposal = self._disposal(theta_draws)
        self._time_to_dispose()
        self._pledge_rates(theta_draws, disposal)
        self._disagreement()
        self._appraisers(fit, theta_draws)
        self.rows.append(_row("holding_rate", "持有成本率", "holding rate", self.sets.disposal.name, "holding_rate", "per year", sets.disposal.holding_rate,
                              np.nan, np.nan, np.nan, 0, 0, "not estimated", False,
                              "not identified by disposals: the bank's funding cost (and the right's value erosion while it is sold); set it from the treasury's figure"))
        return pd.DataFrame(self.rows, columns=ESTIMATE_COLUMNS)

    def _mapping_rows(self, fit: MappingFit, draws: np.ndarray) -> None:
        s, sets = self.settings, self.sets
        current = [*sets.position_mapping, sets.premium_total]
        labels = [("position_intercept", "分成率位置截距", "sharing position: intercept a", "sharing_rate.position_mapping.intercept", ""),
                  ("position_slope", "分成率位置斜率", "sharing position: slope b (per score/100)", "sharing_rate.position_mapping.slope", ""),
                  ("premium_total", "折现率风险溢价合计", "discount-rate premiums, total", "discount_rate (premiums)", "per year")]
        source = {"deals": "priced transfers of ledger packages", "appraisals": "external appraisals (calibrates to the appraisers, not the market)"}.get(fit.evidence, "")
        method = f"nonlinear least squares on log price ({source}) with the cash-flow table; profile-likelihood interval"
        for k, (key, zh, en, path, unit) in enumerate(labels):
            if fit.identified:
                lo, hi = fit.intervals[k]
                self.rows.append(_row(key, zh, en, self.sets.income.name, path, unit, current[k], fit.theta[k], lo, hi,
                                      fit.n, self.settings.minimum_n["deals"], method, True,
                                      f"estimated jointly from {fit.n} {fit.evidence} (residual sd {fit.residual_sd:.2f} on the log scale)"
                                      + ("; the appraisers' own bias is in it (each appraiser's is reported below): this calibrates to the appraisers, "
                                         "not the market" if fit.evidence == "appraisals" else "")))
            else:
                self.rows.append(_row(key, zh, en, self.sets.income.name, path, unit, current[k], np.nan, np.nan, np.nan, fit.n, s.minimum_n["deals"],
                                      method, False, "unchanged: " + fit.reason))

    def _disposal(self, theta_draws: np.ndarray) -> dict:
        s, sets, loans = self.settings, self.sets, self.ledger.loans
        done = np.flatnonzero(loans["realised_price_rmb"].notna().to_numpy() & loans["disposal_date"].notna().to_numpy())
        need = s.minimum_n["disposals"]
        out = {"rows": done}
        basis = "market value at origination" + (" recomputed under the calibrated mapping" if self.mapping.identified else " as recorded")
        specs = [("forced_sale_discount", "强制处置折价率", "forced-sale discount", "1 − median(gross realised / " + basis + ")", sets.disposal.forced_sale_discount, "realised_price_rmb"),
                 ("disposal_cost_rate", "处置费用率", "disposal cost rate", "median(disposal costs / " + basis + ")", sets.disposal.disposal_cost_rate, "disposal_costs_rmb")]
        for key, zh, en, method, current, column in specs:
            rows = done[loans[column].notna().to_numpy()[done]]
            if len(rows) < need:
                self.rows.append(_row(key, zh, en, self.sets.disposal.name, key, "", current, np.nan, np.nan, np.nan, len(rows), need, method, False,
                                      f"unchanged: {len(rows)} completed disposals with {column} (minimum {need})"))
                continue
            amount = loans[column].to_numpy(float)[rows]
            point = np.median(amount / self.market_values(self.theta, rows))
            draws = _quantile(amount / self.market_values(theta_draws, rows), _dirichlet(self.rng, s.draws, len(rows)), 0.5)
            if key == "forced_sale_discount":
                point, draws = 1 - point, 1 - draws
            lo, hi = _bounds(draws, s.coverage)
            ok = 0 <= point <= 1
            self.rows.append(_row(key, zh, en, self.sets.disposal.name, key, "", current, point, lo, hi, len(rows), need, method, ok,
                                  f"estimated from {len(rows)} completed disposals" if ok else f"unchanged: the estimate {point:.3f} is outside [0, 1]"))
            out[key] = point
        return out

    def _time_to_dispose(self) -> None:
        from statsmodels.duration.survfunc import SurvfuncRight

        s, sets, loans = self.settings, self.sets, self.ledger.loans
        followed = loans[loans["default_date"].notna()]
        end = followed["disposal_date"].fillna(self.ledger.as_of)
        years = ((end - followed["default_date"]).dt.days / DAYS).to_numpy(float)
        event = followed["disposal_date"].notna().to_numpy().astype(float)
        need = s.minimum_n["defaults_followed"]
        method = "Kaplan-Meier median years from default to cash (undisposed defaults censored at the ledger date); interval by the log-log transform"
        current = sets.disposal.time_to_dispose_years
        reason = f"unchanged: {len(years)} defaults followed (minimum {need})" if len(years) < need else ""
        median = lo = hi = np.nan
        if not reason:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                curve = SurvfuncRight(np.maximum(years, 1e-6), event)
                median = float(curve.quantile(0.5))
                lo, hi = (float(v) for v in curve.quantile_ci(0.5, alpha=1 - s.coverage, method="cloglog"))
            if not np.all(np.isfinite([median, lo, hi])):
                reason = f"unchanged: the median is not reached or its interval is open ({int(event.sum())} of {len(years)} defaults disposed by the ledger date)"
        self.rows.append(_row("time_to_dispose_years", "处置周期（年）", "time to dispose (years)", self.sets.disposal.name, "time_to_dispose_years", "years", current,
                              median, lo, hi, len(years), need, method, not reason, reason or f"estimated from {len(years)} defaults ({int(event.sum())} disposed)"))

    def _pledge_rates(self, theta_draws: np.ndarray, disposal: dict) -> None:
        s, sets, loans = self.settings, self.sets, self.ledger.loans
        B, target = s.draws, sets.loss_target
        h = sets.disposal.holding_rate
        rows = disposal["rows"]
        need_disposals, need_loans = s.minimum_n["disposals"], s.minimum_n["matured_loans_per_type"]
        net = (loans["realised_price_rmb"].to_numpy(float) - loans["disposal_costs_rmb"].fillna(0).to_numpy(float))[rows]
        tau = ((loans["disposal_date"] - loans["default_date"]).dt.days / DAYS).to_numpy(float)[rows]
        exposure = (loans["exposure_at_default_rmb"] / loans["loan_amount_rmb"]).fillna(1.0).to_numpy(float)[rows]
        discount = (1 + h) ** -tau
        recovery_point = net / self.market_values(self.theta, rows) * discount
        recovery_draws = net / self.market_values(theta_draws, rows) * discount
        w = _dirichlet(self.rng, B, len(rows))
        w /= w.sum(axis=1, keepdims=True)
        maturity = loans["valuation_date"] + pd.to_timedelta(loans["term_years"] * DAYS, unit="D")
        matured = (maturity <= self.ledger.as_of).to_numpy()
        method = (f"highest rate whose expected loss after risk sharing (default probability × mean bank share × mean max(0, e − R / rate)) is at most "
                  f"the policy's target {target:.2%}; R = net recovery / market value discounted at the holding rate {h:.0%} over the time to cash")
        for ptype in PATENT_TYPES:
            of_type = (loans["patent_type"] == ptype).to_numpy()
            n_t, k_t = int((of_type & matured).sum()), int((of_type & matured & (loans["outcome"] == "defaulted").to_numpy()).sum())
            share = loans.loc[of_type, "bank_share"].fillna(1.0).to_numpy(float)
            current = sets.pledge_rate(ptype)
            zh, en = f"质押率（{TYPE_ZH[ptype]}）", f"pledge rate, {ptype.replace('_', ' ')}"
            pd_point = k_t / n_t if n_t else np.nan
            self._default_row(ptype, n_t, k_t, need_loans)
            if n_t < need_loans or len(rows) < need_disposals:
                why = f"{n_t} {ptype} loans whose term has ended (minimum {need_loans})" if n_t < need_loans else f"{len(rows)} completed disposals (minimum {need_disposals})"
                self.rows.append(_row(f"pledge_rate.{ptype}", zh, en, self.sets.policy_name, f"pledge_rate.{ptype}", "", current, np.nan, np.nan, np.nan,
                                      n_t, need_loans, method, False, "unchanged: " + why))
                continue
            from scipy.stats import beta

            pd_draws = beta.rvs(k_t + 0.5, n_t - k_t + 0.5, size=B, random_state=self.rng)
            ws = _dirichlet(self.rng, B, len(share))
            share_draws = np.sum(ws * share, axis=1) / ws.sum(axis=1)
            point = _highest_rate(np.array([pd_point * share.mean()]), recovery_point[None, :], exposure, np.full((1, len(rows)), 1 / len(rows)), target)[0]
            draws = _highest_rate(pd_draws * share_draws, recovery_draws, exposure, w, target)
            lo, hi = _bounds(draws, s.coverage)
            if point <= 1e-4:
                reason, changed = "unchanged: no rate keeps the expected loss within the target (losses occur whatever the rate: review the target or the scheme)", False
            else:
                reason = f"estimated from {n_t} matured {ptype} loans ({k_t} defaults) and {len(rows)} disposals of all types"
                reason += "; the target holds at every rate, so the disposal view (collateral value at its quantile) is what limits these loans" if point >= 1 else ""
                changed = True
            self.rows.append(_row(f"pledge_rate.{ptype}", zh, en, self.sets.policy_name, f"pledge_rate.{ptype}", "", current, point, lo, hi, n_t, need_loans,
                                  method, changed, reason))

    def _default_row(self, ptype: str, n_t: int, k_t: int, need: int) -> None:
        from scipy.stats import beta

        lo, hi = (beta.ppf(q, k_t + 0.5, n_t - k_t + 0.5) if n_t else np.nan for q in (0.5 - self.settings.coverage / 2, 0.5 + self.settings.coverage / 2))
        self.rows.append(_row(f"default_probability.{ptype}", f"违约概率（{TYPE_ZH[ptype]}，贷款期内）", f"default probability over the term, {ptype.replace('_', ' ')}",
                              "", "", "", np.nan, k_t / n_t if n_t else np.nan, lo, hi, n_t, need, "defaults / loans whose term has ended; Jeffreys interval", False,
                              "a component of the pledge rate, not a set's number" + ("" if n_t >= need else f" ({n_t} matured loans, minimum {need})")))

    def _disagreement(self) -> None:
        s, sets, loans = self.settings, self.sets, self.ledger.loans
        values = loans[list(METHOD_COLUMNS)].to_numpy(float)
        values = np.where(values > 0, values, np.nan)
        enough = np.sum(~np.isnan(values), axis=1) >= 2
        need, q = s.minimum_n["valuations_with_two_methods"], 1 - sets.review_share
        method = f"the {q:.0%} quantile of the highest / lowest method ratio of past valuations: {sets.review_share:.0%} of them would go to review"
        current = sets.disagreement_factor
        if enough.sum() < need:
            self.rows.append(_row("disagreement_factor", "方法差异复核倍数", "reconciliation (disagreement) factor", self.sets.policy_name, "reconciliation.disagreement_factor",
                                  "×", current, np.nan, np.nan, np.nan, int(enough.sum()), need, method, False,
                                  f"unchanged: {int(enough.sum())} valuations with two methods or more (minimum {need})"))
            return
        with np.errstate(all="ignore"):
            ratio = np.nanmax(values[enough], axis=1) / np.nanmin(values[enough], axis=1)
        point = float(np.quantile(ratio, q, method="inverted_cdf"))
        lo, hi = _bounds(_quantile(ratio, _dirichlet(self.rng, s.draws, len(ratio)), q), s.coverage)
        ok = point >= 1
        self.rows.append(_row("disagreement_factor", "方法差异复核倍数", "reconciliation (disagreement) factor", self.sets.policy_name, "reconciliation.disagreement_factor",
                              "×", current, point, lo, hi, int(enough.sum()), need, method, ok,
                              f"estimated from {int(enough.sum())} valuations (methods' central values as recorded at origination)"))

    def _appraisers(self, fit: MappingFit, theta_draws: np.ndarray) -> None:
        s, loans = self.settings, self.ledger.loans
        need = s.minimum_n["appraisals_per_appraiser"]
        against = "the calibrated market value (fitted to deals)" if fit.identified and fit.evidence == "deals" else "the market value as recorded"
        for name, group in loans[loans["appraised_value_rmb"].notna()].groupby("appraiser"):
            rows = group.index.to_numpy()
            method = f"median log(appraised value / {against})"
            if len(rows) < need:
                self.rows.append(_row(f"appraiser_bias.{name}", f"评估机构偏差（{name}）", f"appraiser bias, {name}", "", "", "log", np.nan, np.nan, np.nan, np.nan,
                                      len(rows), need, method, False, f"not estimated: {len(rows)} appraisals (minimum {need})"))
                continue
            appraised = group["appraised_value_rmb"].to_numpy(float)
            point = float(np.median(np.log(appraised / self.market_values(self.theta, rows))))
            draws = _quantile(np.log(appraised / self.market_values(theta_draws, rows)), _dirichlet(self.rng, s.draws, len(rows)), 0.5)
            lo, hi = _bounds(draws, s.coverage)
            self.rows.append(_row(f"appraiser_bias.{name}", f"评估机构偏差（{name}）", f"appraiser bias, {name}", "", "", "log", np.nan, point, lo, hi, len(rows), need,
                                  method, False, f"{point:+.2f} on the log scale ({np.expm1(point):+.0%}): appraisals by {name} calibrate to that appraiser, not the market"))


def _profile_interval(residual, theta: np.ndarray, cov: np.ndarray, k: int, threshold: float) -> tuple[float, float]:
    """The profile interval of parameter ``k``: the values at which the least residual sum of
    squares with that parameter fixed (the others refitted) reaches ``threshold`` (Bates & Watts:
    RSS + t² s²), found on each side of the estimate by Brent's method."""
    from scipy.optimize import brentq, least_squares

    free = [j for j in range(3) if j != k]
    start = theta[free].copy()

    def excess(value):
        def partial(x):
            full = theta.copy()
            full[free], full[k] = x, value
            return residual(full)

        fit = least_squares(partial, start, x_scale=np.sqrt(np.diag(cov))[free])
        return float(np.sum(fit.fun ** 2)) - threshold

    se = float(np.sqrt(cov[k, k]))
    bounds = []
    for sign in (-1.0, 1.0):
        step, inner, found = 1.0, theta[k], np.nan
        for _ in range(8):  # widen until the threshold is crossed
            outer = theta[k] + sign * step * 2.0 * se
            if excess(outer) > 0:
                found = brentq(excess, *sorted((inner, outer)), xtol=se * 1e-3)
                break
            inner, step = outer, step * 2
        bounds.append(found)
    return bounds[0], bounds[1]


def _highest_rate(loss_scale: np.ndarray, recovery: np.ndarray, exposure: np.ndarray, weights: np.ndarray, target: float) -> np.ndarray:
    """Per draw, the highest rate in (0, 1] with loss_scale × Σ w max(0, e − R / rate) ≤ target
    (bisection; the loss rises with the rate). ``loss_scale`` (B,), ``recovery``/``weights`` (B, n)."""
    w = weights / weights.sum(axis=1, keepdims=True)

    def loss(rate):
        return loss_scale * np.sum(w * np.maximum(0.0, exposure[None, :] - recovery / rate[:, None]), axis=1)

    lo, hi = np.full(len(loss_scale), 1e-6), np.ones(len(loss_scale))
    full = loss(hi) <= target
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        ok = loss(mid) <= target
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return np.where(full, 1.0, lo)


def estimate_coefficients(ledger: Ledger, sets: SetsInUse | None = None, settings: Settings | None = None, *, seed: int = 0) -> tuple[pd.DataFrame, Calibration]:
    """Every coefficient's estimate from ``ledger``: one row per coefficient with ``current``,
    ``estimate``, ``low`` / ``high`` (the 90 % interval), ``n``, ``min_n``, ``method``,
    ``changed`` and ``reason`` (columns :data:`ESTIMATE_COLUMNS`), and the calibration (its
    fitted mapping and market values, for the back-test).

    Parameters
    ----------
    ledger : Ledger
    sets : SetsInUse, optional
        The sets in use (default: the shipped ``cn-pledge-2025``, ``disposal-cn``, ``pledge-policy-cn``).
    settings : Settings, optional
        Default ``calibration-cn``.
    seed : int, default=0
        Seed of the interval's Monte Carlo (the same ledger and seed give the same table).
    """
    calibration = Calibration(ledger, sets or SetsInUse.load(), settings or Settings.load(), seed=seed)
    table = calibration.run()
    return table, calibration
