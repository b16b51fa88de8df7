"""The out-of-time back-test of a calibration, as chart-ready tables and figures.

The loans are split by valuation date: the earliest ``backtest.train_share`` calibrate (with
everything the ledger knows about them), the later ones test. On the test loans, before (the sets
in use) and after (the coefficients calibrated on the earlier loans) side by side:

* the market value at origination against deal prices and against external appraisals: bias
  (median log ratio, model / observed), median absolute log error, Spearman rank correlation;
* coverage of the disposal view's quantile (P10) by the realised net recoveries (net of costs,
  discounted at the holding rate over the time to cash): it should be beaten about 90 % of the time;
* losses against the cap: per defaulted loan with a disposal, the loss (exposure at default − net
  recovery), the bank's share, the cap before and after;
* overrides by officer and by branch over time (frequency, size, direction) and each officer's
  drift (OLS slope of the relative override on time, with its 90 % interval).

The gates a candidate set must pass are computed here: the P10 coverage (not significantly below
its target) and the bias against deals (within the tolerance), both out of time.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ipvalue.calibration.estimate import DAYS, Calibration, Settings, SetsInUse, estimate_coefficients
from ipvalue.calibration.ledger import Ledger

logger = logging.getLogger(__name__)

__all__ = ["Backtest", "after_coefficients", "run_backtest", "override_tables"]


@dataclass
class Backtest:
    """What :func:`run_backtest` returns."""

    split_date: pd.Timestamp
    summary: pd.DataFrame  # metric, what, before, after, n
    tables: dict  # name -> DataFrame (chart-ready)
    gates: dict  # gate -> bool
    gate_notes: dict  # gate -> sentence
    train_estimates: pd.DataFrame
    figures: dict = field(default_factory=dict)  # flat name -> value, for MLflow metrics


def after_coefficients(estimates: pd.DataFrame, sets: SetsInUse, theta: np.ndarray) -> dict:
    """The coefficients a calibration gives (its changed estimates, the sets' values elsewhere)."""
    est = estimates.set_index("key")

    def pick(key, current):
        return float(est.at[key, "estimate"]) if key in est.index and bool(est.at[key, "changed"]) else current

    d = sets.disposal
    discount, cost, time = pick("forced_sale_discount", d.forced_sale_discount), pick("disposal_cost_rate", d.disposal_cost_rate), pick("time_to_dispose_years", d.time_to_dispose_years)
    mapping_changed = "premium_total" in est.index and bool(est.at["premium_total", "changed"])
    return {
        "theta": np.asarray(theta if mapping_changed else [*sets.position_mapping, sets.premium_total], float),
        "realisation_factor": (1 - discount - cost) / (1 + d.holding_rate) ** time,
        "pledge_rate": {t: pick(f"pledge_rate.{t}", sets.pledge_rate(t)) for t in ("invention", "utility_model", "design")},
    }


def _accuracy(model: np.ndarray, observed: np.ndarray) -> dict:
    from scipy.stats import spearmanr

    ok = np.isfinite(model) & np.isfinite(observed) & (model > 0) & (observed > 0)
    if ok.sum() < 3:
        return {"bias": np.nan, "mdale": np.nan, "spearman": np.nan, "n": int(ok.sum())}
    log_ratio = np.log(model[ok] / observed[ok])
    return {"bias": float(np.median(log_ratio)), "mdale": float(np.median(np.abs(log_ratio))),
            "spearman": float(spearmanr(model[ok], observed[ok]).statistic), "n": int(ok.sum())}


def _share_interval(k: int, n: int, coverage: float) -> tuple[float, float]:
    from scipy.stats import beta

    if n == 0:
        return float("nan"), float("nan")
    tail = (1 - coverage) / 2
    return float(beta.ppf(tail, k + 0.5, n - k + 0.5)), float(beta.ppf(1 - tail, k + 0.5, n - k + 0.5))


def run_backtest(ledger: Ledger, sets: SetsInUse, settings: Settings, *, seed: int = 0, split_date=None) -> Backtest:
    """Calibrate on the earlier loans, test on the later ones (see the module notes).

    Parameters
    ----------
    ledger : Ledger
    sets : SetsInUse
    settings : Settings
    seed : int, default=0
    split_date : date-like, optional
        Loans valued on or before it calibrate; default the ``train_share`` quantile of the
        valuation dates.
    """
    loans = ledger.loans
    split = pd.Timestamp(split_date) if split_date is not None else pd.Timestamp(loans["valuation_date"].quantile(settings.train_share)).normalize()
    train_ids = loans.loc[loans["valuation_date"] <= split, "loan_id"]
    train_estimates, train_cal = estimate_coefficients(ledger.subset(train_ids), sets, settings, seed=seed)
    after = after_coefficients(train_estimates, sets, train_cal.theta)
    full = Calibration(ledger, sets, settings, seed=seed)
    test = np.flatnonzero((loans["valuation_date"] > split).to_numpy())
    before_theta = np.array([*sets.position_mapping, sets.premium_total])
    mv_before = full.market_values(before_theta, test)
    mv_after = full.market_values(after["theta"], test)
    t = loans.iloc[test]
    ids = t["loan_id"].to_numpy()

    # values against deals and appraisals
    deals = ledger.deals[ledger.deals["kind"].isin(settings.deal_kinds) & ledger.deals["loan_id"].isin(ids) & (ledger.deals["price_rmb"] > 0)]
    deals = deals.merge(t[["loan_id", "valuation_date"]], on="loan_id")
    deals = deals[(deals["date"] - deals["valuation_date"]).abs().dt.days / DAYS <= settings.deal_window_years]
    price = deals.groupby("loan_id")["price_rmb"].median().reindex(ids).to_numpy(float)
    values = pd.DataFrame({"loan_id": ids, "valuation_date": t["valuation_date"].to_numpy(), "patent_type": t["patent_type"].to_numpy(),
                           "market_value_before_rmb": mv_before, "market_value_after_rmb": mv_after, "deal_price_rmb": price,
                           "appraised_value_rmb": t["appraised_value_rmb"].to_numpy(float), "appraiser": t["appraiser"].to_numpy()})
    rows = []
    for what, observed in (("deal prices", price), ("external appraisals", values["appraised_value_rmb"].to_numpy(float))):
        b, a = _accuracy(mv_before, observed), _accuracy(mv_after, observed)
        for metric in ("bias", "mdale", "spearman"):
            rows.append({"metric": f"{metric} vs {what}", "before": b[metric], "after": a[metric], "n": a["n"]})

    # coverage of the disposal view's quantile by realised net recoveries
    h = sets.disposal.holding_rate
    done = t["realised_price_rmb"].notna().to_numpy() & t["disposal_date"].notna().to_numpy()
    p10 = t["market_value_p10_rmb"].to_numpy(float)
    collateral_before = t["collateral_value_rmb"].fillna(pd.Series(p10 * sets.disposal.realisation_factor, index=t.index)).to_numpy(float)
    collateral_after = p10 * mv_after / mv_before * after["realisation_factor"]
    net = t["realised_price_rmb"].to_numpy(float) - t["disposal_costs_rmb"].fillna(0).to_numpy(float)
    tau = ((t["disposal_date"] - t["default_date"]).dt.days / DAYS).to_numpy(float)
    net_discounted = net / (1 + h) ** tau
    usable = done & np.isfinite(collateral_after) & np.isfinite(collateral_before)
    coverage = pd.DataFrame({"loan_id": ids[usable], "default_date": t["default_date"].to_numpy()[usable], "net_recovery_discounted_rmb": net_discounted[usable],
                             "collateral_p10_before_rmb": collateral_before[usable], "collateral_p10_after_rmb": collateral_after[usable]})
    coverage["beaten_before"] = coverage["net_recovery_discounted_rmb"] >= coverage["collateral_p10_before_rmb"]
    coverage["beaten_after"] = coverage["net_recovery_discounted_rmb"] >= coverage["collateral_p10_after_rmb"]
    n_cov = len(coverage)
    for when in ("before", "after"):
        k = int(coverage[f"beaten_{when}"].sum())
        lo, hi = _share_interval(k, n_cov, settings.coverage)
        coverage.attrs[when] = (k / n_cov if n_cov else np.nan, lo, hi)
    rows.append({"metric": "P10 beaten by realised net recoveries", "before": coverage.attrs["before"][0], "after": coverage.attrs["after"][0], "n": n_cov})

    # losses against the cap
    rate_before = t["patent_type"].map(sets.pledge_rate).to_numpy(float)
    rate_after = t["patent_type"].map(after["pledge_rate"]).to_numpy(float)
    cap_before = t["loan_cap_rmb"].fillna(pd.Series(np.minimum(collateral_before, mv_before * rate_before), index=t.index)).to_numpy(float)
    cap_after = np.minimum(collateral_after, mv_after * rate_after)
    amount = t["loan_amount_rmb"].to_numpy(float)
    exposure = t["exposure_at_default_rmb"].fillna(t["loan_amount_rmb"]).to_numpy(float)
    loss = np.maximum(0.0, exposure - np.maximum(net, 0.0))
    losses = pd.DataFrame({"loan_id": ids, "patent_type": t["patent_type"].to_numpy(), "loan_amount_rmb": amount, "cap_before_rmb": cap_before,
                           "cap_after_rmb": cap_after, "exposure_at_default_rmb": exposure, "net_recovery_rmb": net,
                           "loss_rmb": loss, "bank_loss_rmb": loss * t["bank_share"].fillna(1.0).to_numpy(float)})[done]
    losses["lent_above_cap_after"] = losses["loan_amount_rmb"] > losses["cap_after_rmb"] + 0.5
    losses["recovery_over_cap_before"] = losses["net_recovery_rmb"] / losses["cap_before_rmb"]
    losses["recovery_over_cap_after"] = losses["net_recovery_rmb"] / losses["cap_after_rmb"]
    lent = float(amount.sum())
    rows.append({"metric": "bank loss / amount lent (test loans)", "before": float(losses["bank_loss_rmb"].sum()) / lent if lent else np.nan, "after": np.nan, "n": len(test)})
    rows.append({"metric": "net recovery ≥ cap (defaults disposed)", "before": float((losses["net_recovery_rmb"] >= losses["cap_before_rmb"]).mean()) if len(losses) else np.nan,
                 "after": float((losses["net_recovery_rmb"] >= losses["cap_after_rmb"]).mean()) if len(losses) else np.nan, "n": len(losses)})
    rows.append({"metric": "total cap / amount lent (test loans)", "before": float(cap_before.sum()) / lent if lent else np.nan,
                 "after": float(cap_after.sum()) / lent if lent else np.nan, "n": len(test)})
    summary = pd.DataFrame(rows, columns=["metric", "before", "after", "n"])

    # gates (out of time, after)
    g = settings.gates
    gates, notes = {}, {}
    cov_after, _, cov_hi = coverage.attrs["after"]
    gates["p10_coverage"] = n_cov >= g["min_test_disposals"] and cov_hi >= g["p10_coverage"]
    notes["p10_coverage"] = (f"P10 beaten by {cov_after:.0%} of {n_cov} realised net recoveries (90 % interval up to {cov_hi:.0%}; target {g['p10_coverage']:.0%})"
                             if n_cov >= g["min_test_disposals"] else f"{n_cov} completed disposals among the test loans (minimum {g['min_test_disposals']:g}): not enough evidence")
    bias = summary.set_index("metric").loc["bias vs deal prices"]
    gates["bias_vs_deals"] = bias["n"] >= g["min_test_deals"] and abs(bias["after"]) <= g["bias_max_abs_log"]
    notes["bias_vs_deals"] = (f"median log(market value / deal price) {bias['after']:+.3f} on {int(bias['n'])} test deals (tolerance ±{g['bias_max_abs_log']:g})"
                              if bias["n"] >= g["min_test_deals"] else f"{int(bias['n'])} deals among the test loans (minimum {g['min_test_deals']:g}): not enough evidence")
    by_officer, by_branch, drift = override_tables(ledger, settings)
    figures = {}
    for r in summary.itertuples(index=False):
        key = r.metric.replace(" ", "_").replace("/", "per").replace("≥", "ge").replace("(", "").replace(")", "").replace(",", "")
        for when in ("before", "after"):
            value = getattr(r, when)
            if value is not None and np.isfinite(value):
                figures[f"oot_{key}_{when}"] = float(value)
    figures.update({f"gate_{k}": float(v) for k, v in gates.items()})
    return Backtest(split, summary, {"values": values, "coverage": coverage, "losses": losses, "overrides_by_officer": by_officer,
                                     "overrides_by_branch": by_branch, "override_drift": drift}, gates, notes, train_estimates, figures)


def override_tables(ledger: Ledger, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Overrides by officer and by branch per year (valuations, overrides, frequency, mean and
    median relative change, share upward), and each officer's drift: the OLS slope of the relative
    change (override / model − 1) on the years since the ledger's first valuation, with its interval."""
    loans, over = ledger.loans, ledger.overrides.copy()
    valuations = loans.assign(year=loans["valuation_date"].dt.year)
    over = over[over["model_value"].abs() > 0].copy()
    over["relative_change"] = over["override_value"] / over["model_value"] - 1
    over["year"] = over["date"].dt.year
    tables = []
    for who in ("officer", "branch"):
        counts = valuations.groupby([who, "year"]).size().rename("valuations")
        agg = over.groupby([who, "year"]).agg(overrides=("relative_change", "size"), mean_relative_change=("relative_change", "mean"),
                                               median_relative_change=("relative_change", "median"), share_upward=("relative_change", lambda x: float((x > 0).mean())))
        table = counts.to_frame().join(agg, how="left").fillna({"overrides": 0}).reset_index()
        table["frequency"] = table["overrides"] / table["valuations"]
        tables.append(table)
    start = loans["valuation_date"].min()
    rows = []
    for officer, group in over.groupby("officer"):
        years = ((group["date"] - start).dt.days / DAYS).to_numpy(float)
        row = {"officer": officer, "branch": group["branch"].mode().iloc[0] if group["branch"].notna().any() else None, "overrides": len(group),
               "mean_relative_change": float(group["relative_change"].mean()), "slope_per_year": np.nan, "low": np.nan, "high": np.nan, "drifting_upward": False}
        if len(group) >= 5 and np.ptp(years) > 0.5:
            import statsmodels.api as sm

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = sm.OLS(group["relative_change"].to_numpy(float), sm.add_constant(years)).fit()
            lo, hi = fit.conf_int(alpha=1 - settings.coverage)[1]
            row.update(slope_per_year=float(fit.params[1]), low=float(lo), high=float(hi), drifting_upward=bool(lo > 0))
        rows.append(row)
    drift = pd.DataFrame(rows, columns=["officer", "branch", "overrides", "mean_relative_change", "slope_per_year", "low", "high", "drifting_upward"])
    return tables[0], tables[1], drift
