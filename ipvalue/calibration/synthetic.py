"""A synthetic pilot ledger with known true parameters. **SYNTHETIC DATA.**

Nothing here describes a real loan, bank, officer or appraiser: every id starts with ``SYN-`` and
every row's ``data_origin`` is ``synthetic: pilot-ledger generator``. The generator draws a bank's
pledge-loan history from the parameters of :class:`PilotTruth` the way ``ipvalue calibrate`` reads
it back, so a test (or a demo) can check that the estimates recover the truth:

* each loan's package has a market-participant royalty table (``cash_flows``): product revenue
  growing at 3 %, an operating margin of 4-12 %, the 16-27 % profit split, a tax rate, a yearly
  survival and an income period of 3-12 years, so that ``V(p, r)`` can be recomputed;
* its **true market value** is ``V(a + b × score/100, risk_free + premium)`` with the true mapping
  ``(a, b)`` and premium; the valuation recorded at origination used the shipped set
  (``position = score/100``, the shipped premiums), and its cap the shipped disposal set and pledge
  rates: the ledger shows what the bank saw then;
* transfers of the package (``deals``) price the true market value with log-normal noise; external
  appraisals price it with their appraiser's bias; the methods' central values scatter around it;
* a loan defaults within its term with its type's probability; a disposal realises
  ``market value × (1 − discount) × e^η`` (η normal, median 0), costs ``market value × cost × e^κ``,
  and takes ``time × e^ζ`` years; what has not happened by the ledger date is open;
* officers override some valuations; one officer's overrides drift upward year by year;
* each package's patents (``patents``: PatentFrame rows drawn by :func:`ipvalue.synthetic.make_demo_portfolio`
  as of the ledger's start, in force, of the loan's type) share its true market value in proportion
  to the demo book's feature-driven appraisal weights (claims, citations, family, type, remaining
  life); an appraised loan's appraisal is itemised by those shares, and the product's revenue is
  on every row, so the ledger's appraisals and prices can train the value model. Drawn from their
  own random stream: the other tables do not depend on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ipvalue.calibration.values import market_value

__all__ = ["PilotTruth", "make_pilot_ledger"]

ORIGIN = "synthetic: pilot-ledger generator"
Z90 = 1.2815515655446004  # standard normal 90th percentile


@dataclass
class PilotTruth:
    """The true parameters of a synthetic pilot ledger (see the module notes). Rates are fractions,
    times in years, biases and spreads on the log scale.

    The defaults differ from the shipped sets on purpose (shipped: discount 0.60, cost 0.03, time
    1 year, position = score/100, premiums 0.07), so that a calibration has something to find.
    """

    n_loans: int = 800
    start: str = "2018-01-01"
    end: str = "2024-12-31"
    as_of: str = "2026-06-30"
    forced_sale_discount: float = 0.70
    disposal_cost_rate: float = 0.05
    time_to_dispose_years: float = 1.5
    recovery_sd: float = 0.30
    cost_sd: float = 0.30
    time_sd: float = 0.40
    position_intercept: float = 0.10
    position_slope: float = 0.60
    premium_total: float = 0.10
    risk_free_rate: float = 0.018
    default_probability: dict = field(default_factory=lambda: {"invention": 0.06, "utility_model": 0.10, "design": 0.12})
    type_mix: dict = field(default_factory=lambda: {"invention": 0.5, "utility_model": 0.4, "design": 0.1})
    exposure_at_default: tuple = (0.5, 1.0)
    scheme_mix: dict = field(default_factory=lambda: {"guangzhou-55": 0.4, "5311": 0.2, "541": 0.1, "suzhou": 0.1, "none": 0.2})
    deal_share: float = 0.45
    deal_sd: float = 0.30
    appraisal_share: float = 0.5
    appraisal_sd: float = 0.20
    appraisers: dict = field(default_factory=lambda: {"SYN-评估甲": 0.25, "SYN-评估乙": 0.10, "SYN-评估丙": -0.05})
    #: per method: (share of valuations that have it, log bias against the true market value, log sd)
    methods: dict = field(default_factory=lambda: {
        "income_value_rmb": (1.0, 0.25, 0.30), "market_approach_rmb": (0.3, 0.0, 0.35),
        "cost_value_rmb": (0.6, -0.20, 0.50), "ml_value_rmb": (0.8, 0.0, 0.40),
    })
    market_value_spread: float = 0.30
    n_officers: int = 12
    n_branches: int = 4
    override_rate: float = 0.15
    override_sd: float = 0.10
    drifting_officer: str = "SYN-客户经理03"
    drift_per_year: float = 0.06
    shipped_premium_total: float = 0.07
    shipped_realisation_factor: float = 0.336
    shipped_pledge_rate: dict = field(default_factory=lambda: {"invention": 0.25, "utility_model": 0.15, "design": 0.10})

    @property
    def bank_share(self) -> float:
        """The expected bank share of a loss under the scheme mix."""
        from ipvalue.lending.policy import risk_sharing_table

        return float(sum(w * risk_sharing_table(s, 1.0)[1]["bank_share"] for s, w in self.scheme_mix.items()))

    def disposal_sample(self, n: int, rng: np.random.Generator):
        """(gross, costs, e, tau): the gross price and the costs of a disposal per RMB of the true
        market value, the exposure at default per RMB of the loan, the years to dispose."""
        gross = (1 - self.forced_sale_discount) * np.exp(rng.normal(0, self.recovery_sd, n))
        costs = self.disposal_cost_rate * np.exp(rng.normal(0, self.cost_sd, n))
        tau = self.time_to_dispose_years * np.exp(rng.normal(0, self.time_sd, n))
        return gross, costs, rng.uniform(*self.exposure_at_default, n), tau

    def true_pledge_rate(self, patent_type: str, *, target: float, holding_rate: float, n: int = 400_000, seed: int = 12345) -> float:
        """The highest pledge rate whose expected loss after risk sharing, default probability ×
        bank share × E[max(0, e − R / rate)] with R the net recovery discounted at ``holding_rate``
        over the time to dispose, is at most ``target`` (1.0 when every rate is)."""
        gross, costs, e, tau = self.disposal_sample(n, np.random.default_rng(seed))
        recovery = (gross - costs) / (1 + holding_rate) ** tau
        scale = self.default_probability[patent_type] * self.bank_share

        def loss(rate):
            return scale * np.mean(np.maximum(0.0, e - recovery / rate))

        if loss(1.0) <= target:
            return 1.0
        lo, hi = 1e-6, 1.0
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if loss(mid) <= target else (lo, mid)
        return lo

    def method_values(self, market_value: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        """The methods' central values of each valuation (NaN where a method was not available)."""
        n = len(market_value)
        out = {}
        for name, (share, bias, sd) in self.methods.items():
            value = market_value * np.exp(bias + rng.normal(0, sd, n))
            out[name] = np.where(rng.random(n) < share, value, np.nan)
        return pd.DataFrame(out)

    def true_disagreement_factor(self, review_share: float, *, n: int = 400_000, seed: int = 12345) -> float:
        """The quantile of the highest / lowest method ratio (valuations with two methods or more)
        that sends ``review_share`` of the valuations to review."""
        values = self.method_values(np.ones(n), np.random.default_rng(seed)).to_numpy()
        enough = np.sum(~np.isnan(values), axis=1) >= 2
        ratio = np.nanmax(values[enough], axis=1) / np.nanmin(values[enough], axis=1)
        return float(np.quantile(ratio, 1 - review_share))

    def truth(self, *, loss_target: float = 0.01, holding_rate: float = 0.10, review_share: float = 0.20) -> dict:
        """Each coefficient ``ipvalue calibrate`` estimates, by its key in the estimates table."""
        out = {
            "forced_sale_discount": self.forced_sale_discount, "disposal_cost_rate": self.disposal_cost_rate,
            "time_to_dispose_years": self.time_to_dispose_years, "position_intercept": self.position_intercept,
            "position_slope": self.position_slope, "premium_total": self.premium_total,
            "disagreement_factor": self.true_disagreement_factor(review_share),
        }
        for t, pd_ in self.default_probability.items():
            out[f"default_probability.{t}"] = pd_
            out[f"pledge_rate.{t}"] = self.true_pledge_rate(t, target=loss_target, holding_rate=holding_rate)
        for name, bias in self.appraisers.items():
            out[f"appraiser_bias.{name}"] = bias
        out[f"override_drift.{self.drifting_officer}"] = self.drift_per_year
        return out


def make_pilot_ledger(truth: PilotTruth | None = None, seed: int = 0) -> dict:
    """Generate a **synthetic** pilot ledger: ``{table name: DataFrame}`` in the schema of
    :mod:`ipvalue.calibration.ledger` (write it with :func:`~ipvalue.calibration.ledger.write_ledger`).

    Parameters
    ----------
    truth : PilotTruth, optional
        The true parameters (default: ``PilotTruth()``).
    seed : int, default=0
        The same ``(truth, seed)`` gives the same ledger.
    """
    p = truth or PilotTruth()
    rng = np.random.default_rng(seed)
    n = int(p.n_loans)
    if n < 1:
        raise ValueError(f"The 'n_loans' of PilotTruth must be a positive integer. Got {p.n_loans!r}.")
    as_of = pd.Timestamp(p.as_of)
    start, end = pd.Timestamp(p.start), pd.Timestamp(p.end)
    valuation_date = (start + pd.to_timedelta(np.sort(rng.uniform(0, (end - start).days, n)), unit="D")).normalize()
    types = np.array(list(p.type_mix))
    ptype = rng.choice(types, size=n, p=np.array(list(p.type_mix.values())) / sum(p.type_mix.values()))
    loan_id = np.array([f"SYN-LOAN-{i + 1:05d}" for i in range(n)])
    officer_names = np.array([f"SYN-客户经理{k + 1:02d}" for k in range(p.n_officers)])
    branch_names = np.array([f"SYN-分行{b + 1:02d}" for b in range(p.n_branches)])
    officer_idx = rng.integers(0, p.n_officers, n)
    officer, branch = officer_names[officer_idx], branch_names[officer_idx % p.n_branches]

    # the market-participant royalty table of each package
    periods = rng.integers(3, 13, n)
    t_max = int(periods.max())
    t = np.arange(1, t_max + 1, dtype=float)[None, :].repeat(n, axis=0)
    live = t <= periods[:, None]
    revenue = np.exp(rng.normal(np.log(3e7), 0.6, n))[:, None] * 1.03 ** t
    margin = rng.uniform(0.04, 0.12, n)[:, None]
    tax = np.where(rng.random(n) < 0.6, 0.15, 0.25)[:, None]
    survival = np.exp(-rng.uniform(0.03, 0.15, n)[:, None] * t)
    base = np.where(live, (1 - tax) * revenue * margin * survival, 0.0)
    low, high = 0.16 * base, 0.27 * base
    score = np.clip(rng.normal(62, 12, n), 20, 95).round(1)
    rf = np.full(n, p.risk_free_rate)
    true_value = market_value(low, high, t, p.position_intercept + p.position_slope * score / 100, rf + p.premium_total)
    recorded = market_value(low, high, t, score / 100, rf + p.shipped_premium_total)
    p10, p90 = recorded * np.exp(-Z90 * p.market_value_spread), recorded * np.exp(Z90 * p.market_value_spread)
    collateral = p10 * p.shipped_realisation_factor
    rate = np.array([p.shipped_pledge_rate[k] for k in ptype])
    cap = np.minimum(collateral, recorded * rate)
    amount = np.maximum(np.round(cap * rng.uniform(0.7, 1.0, n), -4), 10_000.0)
    term = rng.choice([1.0, 2.0, 3.0], size=n, p=[0.3, 0.4, 0.3])
    schemes = list(p.scheme_mix)
    scheme = rng.choice(schemes, size=n, p=np.array(list(p.scheme_mix.values())) / sum(p.scheme_mix.values()))

    # outcomes and disposals
    pd_ = np.array([p.default_probability[k] for k in ptype])
    defaults = rng.random(n) < pd_
    default_date = (valuation_date + pd.to_timedelta(rng.uniform(0.1, 0.95, n) * term * 365.25, unit="D")).normalize()
    maturity = (valuation_date + pd.to_timedelta(term * 365.25, unit="D")).normalize()
    defaulted = defaults & (default_date <= as_of)
    outcome = np.where(defaulted, "defaulted", np.where(~defaults & (maturity <= as_of), "repaid", "open"))
    gross_unit, cost_unit, exposure, tau = p.disposal_sample(n, rng)
    gross, costs = true_value * gross_unit, true_value * cost_unit
    disposal_date = (default_date + pd.to_timedelta(tau * 365.25, unit="D")).normalize()
    disposed = defaulted & (disposal_date <= as_of)
    buyer = rng.choice(["company", "fund", "individual", "research_institute"], size=n, p=[0.6, 0.2, 0.1, 0.1])

    # appraisals and the methods' central values
    appraised = rng.random(n) < p.appraisal_share
    appraiser_names = np.array(list(p.appraisers))
    appraiser = appraiser_names[rng.integers(0, len(appraiser_names), n)]
    bias = np.array([p.appraisers[a] for a in appraiser])
    appraisal = true_value * np.exp(bias + rng.normal(0, p.appraisal_sd, n))
    methods = p.method_values(true_value, rng)

    def money(x):
        return np.round(x, 2)

    loans = pd.DataFrame({
        "loan_id": loan_id, "branch": branch, "officer": officer, "valuation_id": np.char.replace(loan_id, "LOAN", "VAL"),
        "valuation_date": valuation_date, "patent_type": ptype, "n_patents": rng.integers(1, 6, n).astype(float), "term_years": term,
        "loan_amount_rmb": amount, "value_in_use_rmb": money(methods["income_value_rmb"].fillna(pd.Series(recorded)).to_numpy()),
        "market_value_rmb": money(recorded), "market_value_p10_rmb": money(p10), "market_value_p90_rmb": money(p90),
        "market_value_basis": "income_market_participant", "collateral_value_rmb": money(collateral), "loan_cap_rmb": money(cap),
        "risk_sharing": scheme, **{k: money(v.to_numpy()) for k, v in methods.items()},
        "score": score, "sharing_position": score / 100, "risk_free_rate": rf, "discount_rate": rf + p.shipped_premium_total,
        "appraised_value_rmb": np.where(appraised, money(appraisal), np.nan), "appraiser": np.where(appraised, appraiser, None),
        "appraisal_date": pd.Series(valuation_date - pd.to_timedelta(rng.integers(1, 30, n), unit="D")).where(appraised),
        "outcome": outcome, "default_date": pd.Series(default_date).where(defaulted),
        "exposure_at_default_rmb": np.where(defaulted, np.round(amount * exposure, 2), np.nan),
        "realised_price_rmb": np.where(disposed, money(gross), np.nan), "disposal_costs_rmb": np.where(disposed, money(costs), np.nan),
        "disposal_date": pd.Series(disposal_date).where(disposed), "buyer_type": np.where(disposed, buyer, None),
        "assumption_set": "cn-pledge-2025-v2", "disposal_set": "disposal-cn-v1", "pledge_policy": "pledge-policy-cn-v2", "data_origin": ORIGIN,
    })
    rows, cols = np.nonzero(live)
    cash_flows = pd.DataFrame({"loan_id": loan_id[rows], "year": t[rows, cols], "cash_flow_low_rmb": money(low[rows, cols]),
                               "cash_flow_high_rmb": money(high[rows, cols]), "data_origin": ORIGIN})

    # deals: transfers of ledger packages near origination, and some comparables of other patents
    has_deal = rng.random(n) < p.deal_share
    deal_date = (valuation_date + pd.to_timedelta(rng.uniform(-0.9, 0.9, n) * 365.25, unit="D")).normalize()
    has_deal &= deal_date <= as_of
    k = int(has_deal.sum())
    others = max(20, n // 20)
    other_type = rng.choice(types, size=others)
    deals = pd.DataFrame({
        "transaction_id": [f"SYN-DEAL-{i + 1:05d}" for i in range(k + others)],
        "date": np.concatenate([deal_date[has_deal], (start + pd.to_timedelta(rng.uniform(0, (end - start).days, others), unit="D")).normalize()]),
        "kind": np.concatenate([np.full(k, "transfer"), rng.choice(["transfer", "licence_fixed_fee", "auction"], size=others)]),
        "price_rmb": np.concatenate([money(true_value[has_deal] * np.exp(rng.normal(0, p.deal_sd, k))), np.round(np.exp(rng.normal(np.log(2e6), 0.8, others)), -3)]),
        "patent_type": np.concatenate([ptype[has_deal], other_type]),
        "ipc_main": "G06F 16/00",
        "remaining_life_years": np.concatenate([periods[has_deal].astype(float), rng.uniform(2, 15, others).round(1)]),
        "licence_years": np.nan, "score": np.concatenate([score[has_deal], np.clip(rng.normal(60, 12, others), 0, 100).round(1)]),
        "source": "合成示例 SYNTHETIC", "loan_id": np.concatenate([loan_id[has_deal], np.full(others, None)]), "data_origin": ORIGIN,
    })
    deals.loc[deals["kind"] == "licence_fixed_fee", "licence_years"] = 3.0

    # overrides: a share of valuations, one officer drifting upward over the years
    years = ((valuation_date - start).days / 365.25).to_numpy()
    drifting = officer == p.drifting_officer
    overridden = rng.random(n) < np.where(drifting, 0.5, p.override_rate)
    change = np.where(drifting, p.drift_per_year * years + rng.normal(0, 0.05, n), rng.normal(0, p.override_sd, n))
    o = np.flatnonzero(overridden)
    overrides = pd.DataFrame({
        "valuation_id": loans["valuation_id"].to_numpy()[o], "loan_id": loan_id[o], "officer": officer[o], "branch": branch[o],
        "date": valuation_date[o], "field": "internal_value_rmb", "model_value": money(recorded[o]),
        "override_value": money(recorded[o] * (1 + change[o])), "patent_id": None, "reason": "合成示例 SYNTHETIC", "data_origin": ORIGIN,
    })
    patents = _pledged_patents(loans, base_revenue=revenue[:, 0] / 1.03, appraisal=np.where(appraised, appraisal, np.nan), start=start, seed=seed)
    return {"loans": loans, "cash_flows": cash_flows, "deals": deals, "overrides": overrides, "patents": patents}


def _pledged_patents(loans: pd.DataFrame, *, base_revenue: np.ndarray, appraisal: np.ndarray, start: pd.Timestamp, seed: int) -> pd.DataFrame:
    """The patents of each ledger package (see the module notes): ``n_patents`` in-force patents of
    the loan's type from a synthetic demo book dated ``start``, with the itemised appraisal (the
    loan's appraisal × the patent's share of the package) where the loan was appraised."""
    from ipvalue.synthetic import make_demo_portfolio

    need = loans["n_patents"].astype(int).to_numpy()
    size = int(4 * need.sum()) + 100
    while True:
        book = make_demo_portfolio(size, seed=10_000 + seed, data_date=start).patents
        book = book[(book["legal_status"] == "in_force") & book["grant_date"].notna()]
        pools = {t: g.reset_index(drop=True) for t, g in book.groupby("patent_type")}
        if all(len(pools.get(t, [])) >= need[(loans["patent_type"] == t).to_numpy()].sum() for t in loans["patent_type"].unique()):
            break
        size *= 2
    parts = []
    for ptype, group in loans.groupby("patent_type", sort=False):
        counts = need[group.index]
        rows = pools[ptype].iloc[: counts.sum()].copy()
        rows["loan_row"] = np.repeat(group.index.to_numpy(), counts)
        parts.append(rows)
    patents = pd.concat(parts).sort_values("loan_row", kind="stable").reset_index(drop=True)
    weight = patents["appraised_value_rmb"] / patents["revenue_base_rmb"]  # the demo's feature-driven value per RMB of its revenue
    share = weight / weight.groupby(patents["loan_row"]).transform("sum")
    loan_row = patents["loan_row"].to_numpy()
    loan_id = loans["loan_id"].to_numpy()[loan_row]
    patents = patents.drop(columns=["borrower", "loan_id", "package_id", "appraised_value_rmb", "revenue_base_rmb", "revenue_growth", "data_origin", "loan_row"])
    patents["patent_id"] = [f"SYN-PL-{i + 1:06d}" for i in range(len(patents))]
    patents["application_number"] = [f"SYNPL{3000000 + i}" for i in range(len(patents))]
    patents["applicants"] = np.char.add("合成示例出质企业", np.char.replace(loan_id.astype(str), "SYN-LOAN-", ""))
    patents["package_id"] = loan_id
    patents["revenue_base_rmb"] = np.round(base_revenue[loan_row], -3)
    patents["revenue_growth"] = 0.03
    patents["loan_id"] = loan_id
    patents["appraised_value_rmb"] = np.round(appraisal[loan_row] * share.to_numpy(), 2)
    patents["data_origin"] = ORIGIN
    return patents


def main(argv=None) -> None:
    """``python -m ipvalue.calibration FOLDER [--seed N] [--loans N]``: write a synthetic pilot
    ledger (CSV files, or one workbook when FOLDER ends in .xlsx) and print its truth."""
    import argparse

    from ipvalue.calibration.ledger import write_ledger

    parser = argparse.ArgumentParser(prog="python -m ipvalue.calibration", description="Write a SYNTHETIC pilot ledger with known true parameters.")
    parser.add_argument("out", help="a folder (CSV files) or a .xlsx path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loans", type=int, default=PilotTruth.n_loans)
    args = parser.parse_args(argv)
    truth = PilotTruth(n_loans=args.loans)
    path = write_ledger(make_pilot_ledger(truth, seed=args.seed), args.out)
    print(f"synthetic pilot ledger written to {path} (as of {truth.as_of}); its true coefficients:")
    for key, value in truth.truth().items():
        print(f"  {key}: {value:.4g}")
