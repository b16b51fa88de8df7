"""Income approach: DCF pinned to hand-computed values, properties, assumptions, the valuer."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvalue.config import load_yaml
from ipvalue.exceptions import AssumptionError
from ipvalue.methods.income import IncomeApproachValuer, IncomeAssumptions, dcf_grown, dcf_schedule, dcf_survival

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")

# --- the DCF, by hand ------------------------------------------------------------------------


def test_level_income_end_year():
    # 1,000,000 a year, 5 % sharing, 10 % discount, 5 years, 25 % tax
    expected = 0.75 * 50_000 * (1 / 1.1 + 1 / 1.21 + 1 / 1.331 + 1 / 1.4641 + 1 / 1.61051)
    got = dcf_grown(1_000_000, 0.0, 0.05, 0.0, 0.10, 5.0, 0.25, mid_year=False)
    assert got == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(142_154.50384, rel=1e-9)


def test_growing_income_with_decaying_sharing_rate():
    # income 1e6 × 1.1^t, sharing 5 % × 0.9^(t-1), discount 12 %, 3 years
    y1 = 1_100_000 * 0.05 / 1.12
    y2 = 1_210_000 * 0.045 / 1.2544
    y3 = 1_331_000 * 0.0405 / 1.404928
    expected = 0.75 * (y1 + y2 + y3)
    assert dcf_grown(1_000_000, 0.10, 0.05, 0.10, 0.12, 3.0, 0.25, mid_year=False) == pytest.approx(expected, rel=1e-9)


def test_mid_year_convention_with_a_partial_last_year():
    # 500,000 base growing 5 %, 8 % sharing, 15 % discount, 2.5 years, mid-year
    y1 = 525_000 * 0.08 / 1.15**0.5
    y2 = 551_250 * 0.08 / 1.15**1.5
    y3 = 0.5 * 578_812.5 * 0.08 / 1.15**2.5
    expected = 0.75 * (y1 + y2 + y3)
    assert dcf_grown(500_000, 0.05, 0.08, 0.0, 0.15, 2.5, 0.25, mid_year=True) == pytest.approx(expected, rel=1e-9)


def test_growth_equal_to_discount_uses_the_limit():
    # x = 1: every year is worth base × s
    assert dcf_grown(100.0, 0.1, 0.5, 0.0, 0.1, 4.0, 0.0, mid_year=False) == pytest.approx(4 * 100 * 1.1 * 0.5 / 1.1 * 1.0, rel=1e-12)


def test_schedule_and_closed_form_agree():
    base, g, s, d, r, T = 2e6, 0.07, 0.03, 0.04, 0.13, 6.3
    schedule = np.array([[base * (1 + g) ** t for t in range(1, 8)]])
    for mid in (False, True):
        a = dcf_grown(base, g, s, d, r, T, 0.25, mid)
        b = dcf_schedule(schedule, np.array([s]), np.array([d]), np.array([r]), np.array([T]), 0.25, mid)
        assert b[0] == pytest.approx(a, rel=1e-12)


money = st.floats(1e3, 1e9)
rate = st.floats(0.005, 0.5)


@settings(max_examples=200, deadline=None)
@given(base=money, g=st.floats(-0.5, 0.5), s=st.floats(0.001, 0.5), d=st.floats(0, 0.5), r=rate, T=st.floats(0, 30), dT=st.floats(0, 10), k=st.floats(1.01, 3))
def test_dcf_monotone_in_each_input(base, g, s, d, r, T, dT, k):
    v = dcf_grown(base, g, s, d, r, T, 0.25, False)
    assert v >= 0
    assert dcf_grown(base * k, g, s, d, r, T, 0.25, False) >= v
    assert dcf_grown(base, g, s * k, d, r, T, 0.25, False) >= v
    assert dcf_grown(base, g, s, d, r * k, T, 0.25, False) <= v * (1 + 1e-12)
    assert dcf_grown(base, g, s, d, r, T + dT, 0.25, False) >= v * (1 - 1e-12)  # value never rises as the period falls
    assert dcf_grown(base, g, s, d, r, 0.0, 0.25, False) == 0.0


# --- assumption sets ---------------------------------------------------------------------------


def test_default_set_loads_with_sources_and_hash():
    a = IncomeAssumptions.load()
    # one ageing mechanism: the technology premium and the sharing-rate decay are off by default
    assert a.discount_rate == pytest.approx(0.018 + 0.0 + 0.03 + 0.02 + 0.02)
    assert a.decay_per_year == 0.0
    assert a.profit_split == (0.16, 0.27) and a.profit_margin_by_sector["Chemistry"] == pytest.approx(0.0576)
    assert len(a.hash) == 16
    raw, _ = load_yaml("cn-pledge-2025")
    assert all("source" in v for v in raw["discount_rate"].values())


def _edited(path: str, value):
    raw, _ = load_yaml("cn-pledge-2025")
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return raw


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("sharing_rate.profit_split.low", 0.4, r"'sharing_rate.profit_split' of assumption set 'cn-pledge-2025' has low 0.4 above high 0.27"),
        ("discount_rate.risk_free", {"value": -0.5}, r"'discount_rate.risk_free' of assumption set 'cn-pledge-2025' must be in \[-0.02, 0.2\]. Got -0.5"),
        ("discount_rate.market_premium", {"value": -0.01}, r"'discount_rate.market_premium' .* must be in \[0, 0.5\]. Got -0.01"),
        ("tax_rate", {"value": 1.0}, r"'tax_rate' of assumption set 'cn-pledge-2025' must be in \[0, 1\). Got 1"),
        ("sharing_rate.decay_per_year", {"value": "fast"}, r"'sharing_rate.decay_per_year' of assumption set 'cn-pledge-2025' must be a number. Got 'fast'"),
        ("income.discounting", "quarterly", r"'income.discounting' .* must be 'end_year' or 'mid_year'. Got 'quarterly'"),
    ],
)
def test_bad_assumptions_name_the_assumption_and_its_range(path, value, message):
    with pytest.raises(AssumptionError, match=message):
        IncomeAssumptions.from_dict(_edited(path, value))


def test_negative_build_up_rate_is_refused():
    raw = _edited("discount_rate.risk_free", {"value": -0.02})
    for p in ("technology_premium", "market_premium", "funding_premium", "management_premium"):
        raw["discount_rate"][p] = {"value": 0.0}
    with pytest.raises(AssumptionError, match=r"build-up discount rate .* must be in \(0, 1\). Got -0.02"):
        IncomeAssumptions.from_dict(raw)


# --- the valuer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(demo):
    return IncomeApproachValuer(valuation_date="2026-06-30").fit(demo.patents)


def test_valuer_matches_the_dcf_of_its_own_inputs(fitted, demo):
    inputs = fitted.inputs(demo.patents)
    a = fitted.assumptions_
    expected = dcf_grown(inputs["revenue_base_rmb"], inputs["growth"], inputs["sharing_rate"], a.decay_per_year, a.discount_rate,
                         inputs["income_period_years"], a.tax_rate, a.mid_year)
    np.testing.assert_allclose(fitted.predict(demo.patents), expected, rtol=1e-12)
    # the sharing rate sits inside its industry range at the scorecard position
    assert ((inputs["sharing_rate"] >= inputs["sharing_low"]) & (inputs["sharing_rate"] <= inputs["sharing_high"])).all()
    np.testing.assert_allclose(inputs["sharing_position"], inputs["score"] / 100)


def test_lapsed_and_expired_patents_are_worth_nothing(fitted, demo):
    inputs = fitted.inputs(demo.patents)
    values = fitted.predict(demo.patents)
    dead = demo.patents["legal_status"].isin(["lapsed", "expired", "invalidated"])
    assert dead.any() and (values[dead] == 0).all()
    assert (values[inputs["income_period_years"] > 0] > 0).all()


def test_package_income_is_shared_among_live_patents(fitted, demo):
    inputs = fitted.inputs(demo.patents)
    live = inputs["income_period_years"] > 0
    shares = inputs[live].groupby("package_id")["allocation_share"].sum()
    np.testing.assert_allclose(shares, 1.0)
    assert (inputs.loc[~live, "allocation_share"] == 0).all()


def test_monte_carlo_quantiles_are_ordered_reproducible_and_centred(fitted, demo):
    q1 = fitted.predict_interval(demo.patents)
    q2 = fitted.predict_interval(demo.patents)
    pd.testing.assert_frame_equal(q1, q2)
    assert list(q1.columns) == ["low_rmb", "p50_rmb", "high_rmb"]
    assert ((q1["low_rmb"] <= q1["p50_rmb"]) & (q1["p50_rmb"] <= q1["high_rmb"])).all()
    point = fitted.predict(demo.patents)
    live = point > 0
    ratio = (q1["p50_rmb"][live] / point[live]).median()
    assert 0.85 < ratio < 1.15


def test_sensitivity_moves_values_the_right_way(fitted, demo):
    t = fitted.sensitivity(demo.patents.head(20)).set_index(["patent_id", "assumption"])
    live = t["value_rmb"] > 0
    d = t[live].xs("discount_rate", level="assumption")
    assert (d["value_low_rmb"] >= d["value_rmb"]).all() and (d["value_high_rmb"] <= d["value_rmb"]).all()
    s = t[live].xs("sharing_position", level="assumption")
    assert (s["value_high_rmb"] >= s["value_rmb"]).all()
    assert (t["swing_rmb"] >= 0).all()


def test_sensitivity_values_each_step_alone_and_sorts_by_swing_within_each_patent(fitted, demo):
    # the tornado values every step in one pass: each row is the point value with that one input moved
    inputs = fitted.inputs(demo.patents.head(12))
    t = fitted.sensitivity(inputs=inputs)
    steps = fitted.assumptions_.sensitivity
    assert len(t) == len(inputs) * len(steps) and list(t.index) == list(range(len(t)))
    moved = {"discount_rate": lambda s: {"discount_rate": inputs["discount_rate"] + s}, "growth": lambda s: {"growth": inputs["growth"] + s},
             "tax_rate": lambda s: {"tax_rate": inputs["tax_rate"] + s}, "sharing_position": lambda s: {"sharing_position": (inputs["sharing_position"] + s).clip(0, 1)},
             "revenue_level": lambda s: {"revenue_base_rmb": inputs["revenue_base_rmb"] * (1 + s)}}
    for name, move in moved.items():
        rows = t[t["assumption"] == name].set_index("patent_id").loc[inputs["patent_id"]]
        assert (rows["step"] == steps[name]).all()
        np.testing.assert_allclose(rows["value_low_rmb"], fitted._values(inputs.assign(**move(-steps[name])), None), rtol=1e-12)
        np.testing.assert_allclose(rows["value_high_rmb"], fitted._values(inputs.assign(**move(steps[name])), None), rtol=1e-12)
        np.testing.assert_allclose(rows["value_rmb"], fitted._values(inputs, None), rtol=1e-12)
    assert t["patent_id"].is_monotonic_increasing
    assert all(g["swing_rmb"].is_monotonic_decreasing for _, g in t.groupby("patent_id"))


def test_cash_flows_sum_to_the_value(fitted, demo):
    cf = fitted.cash_flows(demo.patents.head(40))
    by_patent = cf.groupby("patent_id")["present_value_rmb"].sum()
    values = fitted.predict(demo.patents.head(40)).set_axis(demo.patents["patent_id"].head(40))
    np.testing.assert_allclose(by_patent, values[by_patent.index], rtol=1e-10)


def test_a_schedule_overrides_the_grown_base(fitted, demo):
    patents = demo.patents.head(10)
    inputs = fitted.inputs(patents)
    pkg = inputs["package_id"].iloc[0]
    schedule = pd.DataFrame({"package_id": pkg, "year": [1, 2, 3], "revenue_rmb": [1e7, 1.2e7, 1.4e7]})
    got = fitted.predict(patents, schedule=schedule)
    mine = inputs["package_id"] == pkg
    a = fitted.assumptions_
    share, rate, period = inputs.loc[mine, "allocation_share"], inputs.loc[mine, "sharing_rate"], inputs.loc[mine, "income_period_years"]
    expected = sum(
        rev * share * rate * (1 - a.decay_per_year) ** (t - 1) * np.clip(period - (t - 1), 0, 1) / (1 + a.discount_rate) ** t
        for t, rev in enumerate([1e7, 1.2e7, 1.4e7], start=1)
    ) * (1 - a.tax_rate)
    np.testing.assert_allclose(got[mine], expected, rtol=1e-10)
    np.testing.assert_allclose(got[~mine], fitted.predict(patents)[~mine])


def test_missing_revenue_and_inconsistent_packages_are_clear_errors(fitted, demo):
    p = demo.patents.head(5).copy()
    p["package_id"] = None
    p.loc[p.index[1], "revenue_base_rmb"] = None
    with pytest.raises(ValueError, match=r"'revenue_base_rmb' is missing for 1 patent\(s\), e.g. rows \[1\] \(SYN-CN-0000001\)"):
        fitted.predict(p)
    q = demo.patents.head(5).copy()
    q["package_id"] = "PKG"
    q.loc[q.index[0], "revenue_base_rmb"] = 1.0
    with pytest.raises(ValueError, match=r"Package 'PKG' has different 'revenue_base_rmb' values"):
        fitted.predict(q)


def test_result_records_assumptions_scorecard_and_features(fitted, demo):
    out = fitted.value(demo.patents.head(5))
    for key in ("assumption_set", "assumption_set_hash", "scorecard_hash", "feature_spec_hash", "valuation_date"):
        assert out[key].nunique() == 1 and out[key].iloc[0]
    assert out["assumption_set"].iloc[0] == "cn-pledge-2025-v3"


# --- issue 13: survival weighting, the borrower's margin and tax, shocks, one Monte Carlo ---------


def test_survival_weighted_dcf_by_hand():
    # level 1,000,000 a year, 5 % sharing, 10 % discount, 2.5 years of legal life, 15 % tax,
    # survival 0.9, 0.8, 0.6, 0.5: year 3 counts half (legal life), year 4 not at all
    y1 = 0.9 * 1.0 * 50_000 / 1.1
    y2 = 0.8 * 1.0 * 50_000 / 1.21
    y3 = 0.6 * 0.5 * 50_000 / 1.331
    expected = 0.85 * (y1 + y2 + y3)
    assert expected == pytest.approx(72_451.16454, rel=1e-9)
    got = dcf_survival(np.full((1, 4), 1_000_000.0), np.array([0.05]), np.array([0.0]), np.array([0.10]),
                       np.array([[0.9, 0.8, 0.6, 0.5]]), np.array([2.5]), np.array([0.15]), mid_year=False)
    assert got[0] == pytest.approx(expected, rel=1e-12)


def _survival(inputs, probs):
    return pd.DataFrame(np.tile(probs, (len(inputs), 1)), index=inputs.index, columns=[f"s_{t}" for t in range(1, len(probs) + 1)])


def test_valuer_weights_cash_flows_by_survival(fitted, demo):
    patents = demo.patents.head(30)
    inputs = fitted.inputs(patents)
    live = inputs["remaining_life_years"] > 0
    # certain survival over 25 years = the fixed horizon over the whole legal life
    ones = fitted.inputs(patents, survival=_survival(inputs, np.ones(25)))
    assert ones["weighted_by_life"].all()
    assert (inputs["economic_life_source"] != "survival table (renewal model)").all()
    fixed = fitted.inputs(patents.assign(economic_life_years=50.0))
    np.testing.assert_allclose(fitted.value(inputs=ones)["income_value_rmb"], fitted.predict(patents.assign(economic_life_years=50.0)), rtol=1e-10)
    tornado = ["sharing_position", "discount_rate", "growth", "revenue_level", "operating_margin", "tax_rate"]
    s1 = fitted.sensitivity(inputs=ones).set_index(["patent_id", "assumption"]).loc[(slice(None), tornado), :].sort_index()
    s2 = fitted.sensitivity(inputs=fixed).set_index(["patent_id", "assumption"]).loc[(slice(None), tornado), :].sort_index()
    np.testing.assert_allclose(s1[["value_low_rmb", "value_high_rmb"]], s2[["value_low_rmb", "value_high_rmb"]], rtol=1e-10)
    # a falling curve, by hand for the first live patent: Σ S_t w_t income_t sharing / (1 + r)^t × (1 − tax)
    probs = 0.8 ** np.arange(1, 26)
    curve = fitted.inputs(patents, survival=_survival(inputs, probs))
    row = curve[live].iloc[0]
    t = np.arange(1, 26)
    flows = row["revenue_base_rmb"] * (1 + row["growth"]) ** t * row["sharing_rate"] * probs * np.clip(row["remaining_life_years"] - (t - 1), 0, 1)
    expected = (flows / (1 + row["discount_rate"]) ** t).sum() * (1 - row["tax_rate"])
    values = fitted.value(inputs=curve)
    assert values.loc[row.name, "income_value_rmb"] == pytest.approx(expected, rel=1e-10)
    cf = fitted.cash_flows(inputs=curve).groupby("patent_id")["present_value_rmb"].sum()
    np.testing.assert_allclose(cf, values.set_index("patent_id").loc[cf.index, "income_value_rmb"], rtol=1e-10)
    assert (values.loc[~live, "income_value_rmb"] == 0).all()


def test_bad_survival_tables_are_named(fitted, demo):
    patents = demo.patents.head(3)
    inputs = fitted.inputs(patents)
    with pytest.raises(ValueError, match=r"columns must be s_1, s_2, ... without gaps. Got \['s_1', 's_3'\]"):
        fitted.inputs(patents, survival=_survival(inputs, [0.9, 0.8]).set_axis(["s_1", "s_3"], axis=1))
    with pytest.raises(ValueError, match=r"'survival' of SYN-CN-0000000 rises from s_1 \(0.5\) to s_2 \(0.9\)"):
        fitted.inputs(patents, survival=_survival(inputs, [0.5, 0.9]))
    with pytest.raises(ValueError, match=r"'survival' column 's_2' of SYN-CN-0000000 must be a probability in \[0, 1\]. Got 1.5"):
        fitted.inputs(patents, survival=_survival(inputs, [1.0, 1.5]))
    with pytest.raises(ValueError, match=r"no row for index 2 \(SYN-CN-0000002\)"):
        fitted.inputs(patents, survival=_survival(inputs, [0.9]).head(2))


def test_borrower_tax_rate_overrides_the_set(fitted, demo):
    patents = demo.patents.head(20)
    standard = fitted.predict(patents)
    hnte = fitted.predict(patents, tax_rate=0.15)  # 高新技术企业
    np.testing.assert_allclose(hnte, standard * 0.85 / 0.75, rtol=1e-12)
    assert (fitted.inputs(patents, tax_rate=0.15)["tax_rate_source"] == "input").all()
    with pytest.raises(ValueError, match=r"'tax_rate' must be a number in \[0, 1\).*Got 15"):
        fitted.predict(patents, tax_rate=15)


def test_financials_set_the_margin_and_flag_it(fitted, demo):
    patents = demo.patents.head(40)
    inputs = fitted.inputs(patents)
    pkg = inputs.loc[inputs["remaining_life_years"] > 0, "package_id"].iloc[0]
    base = inputs.loc[inputs["package_id"] == pkg, "package_revenue_base_rmb"].iloc[0]
    fin = pd.DataFrame({"package_id": pkg, "year": [2022, 2023, 2024, 2025], "revenue_rmb": [1e6, 1e6, base / 2.0, base / 2.5],
                        "operating_margin": [0.5, 0.16, 0.18, 0.20]})
    got = fitted.inputs(patents, financials=fin)
    mine = got["package_id"] == pkg
    # latest 3 years: (0.16 + 0.18 + 0.20) / 3 = 0.18, 3.125x the 5.76 % benchmark; base is 2.5x the 2025 revenue
    np.testing.assert_allclose(got.loc[mine, "operating_margin"], 0.18)
    np.testing.assert_allclose(got.loc[mine, "sharing_low"], 0.16 * 0.18)
    assert (got.loc[mine, "margin_source"] == "financial statements 2023-2025").all()
    assert got.loc[mine, "margin_flag"].all() and got.loc[mine, "revenue_flag"].all()
    assert got.loc[mine, "financials_flags"].iloc[0] == ("operating margin 18.0 % is 3.13x the benchmark 5.76 %; "
                                                         "forecast base revenue is 2.5x the latest actual revenue")
    assert not got.loc[~mine, "margin_flag"].any() and (got.loc[~mine, "margin_source"] == "sector assumption").all()
    with pytest.raises(ValueError, match=r"Row 1 of 'financials': 'operating_margin' = 18.0 is out of its domain"):
        fitted.inputs(patents, financials=fin.assign(operating_margin=[0.1, 18, 0.1, 0.1]))
    with pytest.raises(ValueError, match=r"'financials' name package 'NOPE', which no patent belongs to"):
        fitted.inputs(patents, financials=fin.assign(package_id="NOPE"))


def test_tornado_has_revenue_margin_tax_and_discount_rows(fitted, demo):
    t = fitted.sensitivity(demo.patents.head(10)).set_index(["patent_id", "assumption"])
    assert {"revenue_level", "operating_margin", "tax_rate", "discount_rate"} <= set(t.index.get_level_values("assumption"))
    live = t["value_rmb"] > 0
    rev = t[live].xs("revenue_level", level="assumption")
    np.testing.assert_allclose(rev["value_high_rmb"], rev["value_rmb"] * 1.2, rtol=1e-12)
    tax = t[live].xs("tax_rate", level="assumption")
    np.testing.assert_allclose(tax["value_low_rmb"], tax["value_rmb"] * 0.85 / 0.75, rtol=1e-12)
    margin = t[live].xs("operating_margin", level="assumption")
    assert (margin["value_high_rmb"] > margin["value_rmb"]).all()


def test_monte_carlo_runs_once_and_shocks_revenue_and_margin(fitted, demo):
    patents = demo.patents.head(30)
    inputs = fitted.inputs(patents)
    table, draws = fitted.value(inputs=inputs, return_draws=True)
    np.testing.assert_array_equal(draws, fitted.simulate(inputs=inputs))
    np.testing.assert_allclose(table["p5_rmb"], np.quantile(draws, 0.05, axis=1))
    pd.testing.assert_frame_equal(fitted.value(inputs=inputs, draws=draws), table)
    assert (table["value_type"] == "value_in_use").all()
    raw, _ = load_yaml("cn-pledge-2025")
    raw["monte_carlo"]["revenue_level_sd"]["value"] = 0.0
    raw["monte_carlo"]["margin_sd"]["value"] = 0.0
    calm = IncomeApproachValuer(raw, valuation_date="2026-06-30").fit(demo.patents).simulate(inputs=inputs)
    live = draws.std(axis=1) > 0
    assert (draws[live].std(axis=1) > calm[live].std(axis=1)).all()
    with pytest.raises(ValueError, match=r"'draws' must have shape \(n_patents=30, n_draws\). Got \(3, 5\)"):
        fitted.value(inputs=inputs, draws=np.zeros((3, 5)))


def test_an_officers_sharing_rate_goes_through_the_public_inputs(fitted, demo):
    patents = demo.patents.head(10)
    inputs = fitted.inputs(patents)
    pid = inputs.loc[inputs["remaining_life_years"] > 0, "patent_id"].iloc[0]
    edited = IncomeApproachValuer.with_sharing_rates(inputs, {pid: 0.02})
    got = fitted.value(inputs=edited).set_index("patent_id")
    row = edited.set_index("patent_id").loc[pid]
    a = fitted.assumptions_
    expected = dcf_grown(row["revenue_base_rmb"], row["growth"], 0.02, a.decay_per_year, a.discount_rate, row["income_period_years"], a.tax_rate, a.mid_year)
    assert got.loc[pid, "income_value_rmb"] == pytest.approx(expected, rel=1e-12)
    assert got.loc[pid, "p50_rmb"] != fitted.value(inputs=inputs).set_index("patent_id").loc[pid, "p50_rmb"]
    with pytest.raises(ValueError, match=rf"overridden 'sharing_rate' of {pid} must be in \[0, 1\]. Got 2.0"):
        IncomeApproachValuer.with_sharing_rates(inputs, {pid: 2.0})


def test_the_appendix_lines_up_both_bases_by_year_and_totals_each(fitted, demo):
    # a patent's table: the years of either basis in order (a year one basis lacks reads empty there), then the total of each basis's present values
    from types import SimpleNamespace

    from ipvalue.methods.income.sections import income_appendix

    inputs = fitted.inputs(demo.patents.head(3))
    flows = fitted.cash_flows(inputs=inputs)
    pid = flows["patent_id"].iloc[0]
    use = flows.assign(basis="value_in_use")
    mp = flows.assign(basis="market_participant", present_value_rmb=2 * flows["present_value_rmb"])
    mp = mp[~((mp["patent_id"] == pid) & (mp["year"] == 2))]  # the market participant without year 2
    result = SimpleNamespace(evidence={"cash_flows": pd.concat([mp, use], ignore_index=True), "inputs": inputs, "market_participant_inputs": inputs})
    appendix = income_appendix(result, frame=demo.patents.head(3), mid_year=False)
    table = next(t for t in appendix.tables if t.id == f"income-cash-flows-{pid}")
    mine = flows[flows["patent_id"] == pid]
    assert [r["year"] for r in table.rows] == [*mine["year"].tolist(), "合计 total"]
    second = table.rows[1]
    assert second["present_value_rmb_use"] == pytest.approx(mine["present_value_rmb"].iloc[1]) and second["present_value_rmb_mp"] is None
    total = table.rows[-1]
    assert total["present_value_rmb_use"] == pytest.approx(mine["present_value_rmb"].sum())
    assert total["present_value_rmb_mp"] == pytest.approx(2 * mine["present_value_rmb"].sum() - 2 * mine["present_value_rmb"].iloc[1])
    assert total["income_rmb"] is None and table.rows[0]["income_rmb"] == pytest.approx(mine["income_rmb"].iloc[0])
