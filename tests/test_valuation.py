"""The valuation pipeline for one pledge-loan application: the value chain (value in use → market
value → collateral value → cap), the methods, reconciliation, overrides, explanations, and each
thing computed once."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ipvalue.audit import read_audit_table, record_valuation
from ipvalue.exceptions import OverrideError
from ipvalue.lending import LoanApplication, Override, value_application
from tests.conftest import NO_OTHER_APPLICATIONS

pytestmark = pytest.mark.filterwarnings("ignore")


def value(raw, base_dir=".", **kw):
    return value_application(LoanApplication.from_dict(raw, base_dir=base_dir), user="tester", applications=kw.pop("applications", NO_OTHER_APPLICATIONS), **kw)


def test_a_clean_application_is_eligible_and_its_cap_rests_on_the_market_value(make_application):
    r = value(make_application())
    assert r.checks["passed"].all(), r.checks[~r.checks["passed"]]
    s = r.summary
    assert s["decision"] == "eligible" and s["eligible"]
    p = r.patents.set_index("patent_id")
    # no statements, no tax rate: the market participant's margin and tax are the borrower's defaults, so the market value is the income approach's
    assert (p["basis_method"] == "income").all()
    np.testing.assert_allclose(p["market_value_rmb"], r.methods["income"].offers["market_value_rmb"].to_numpy())
    # pledge-rate limit = Σ market value × pledge rate (25 % invention, 15 % utility model); cap = the lower of it and the disposal view at P10
    pledge = p.loc["SYN-CN-T001", "market_value_rmb"] * 0.25 + p.loc["SYN-CN-T002", "market_value_rmb"] * 0.15
    assert s["pledge_value_rmb"] == pytest.approx(pledge)
    assert s["loan_cap_rmb"] == pytest.approx(min(pledge, s["collateral_value_rmb"]))
    # the disposal view reads the MARKET value's scenarios (the income approach restated for a market participant), × (1 − 0.60 − 0.03) / 1.10
    factor = (1 - 0.60 - 0.03) / 1.10
    package = r.methods["income"].draws.sum(axis=0)
    assert s["collateral_value_rmb"] == pytest.approx(min(np.quantile(package * factor, 0.1), factor * s["market_value_rmb"]))
    assert s["collateral_value_p50_rmb"] == pytest.approx(np.median(package) * factor)
    assert s["disposal_quantile"] == 0.1 and s["collateral_value_rmb"] < s["collateral_value_p50_rmb"] < s["market_value_rmb"]
    assert s["internal_value_type"] == "market_value" and r.provenance["value_model"] == "not used" and len(r.provenance["input_hash"]) == 16


def test_the_market_value_is_the_market_participants_not_the_borrowers(make_application):
    """A 高新技术企业 with a high margin: its value in use is above what a buyer would pay (sector margin, standard tax)."""
    raw = make_application(tax_rate=0.15, financials=[{"year": y, "revenue_rmb": 38_000_000, "operating_margin": 0.12} for y in (2023, 2024, 2025)])
    r = value(raw)
    p = r.patents.set_index("patent_id")
    assert (p["value_in_use_rmb"] > p["market_value_rmb"]).all()
    inc = r.methods["income"]
    evidence = inc.evidence["market_participant_inputs"].set_index("patent_id")
    assert (evidence["tax_rate"] == 0.25).all() and np.allclose(evidence["operating_margin"], 0.0576)
    use = inc.evidence["inputs"].set_index("patent_id")
    assert (use["tax_rate"] == 0.15).all() and np.allclose(use["operating_margin"], 0.12)
    # the same DCF with only margin and tax changed: value ∝ margin × (1 − tax), sharing position and life unchanged
    ratio = (0.0576 * 0.75) / (0.12 * 0.85)
    np.testing.assert_allclose(p["market_value_rmb"] / p["value_in_use_rmb"], ratio, rtol=1e-9)
    assert "market participant" in p["method_reason_en"].iloc[0]


def test_an_override_is_stored_beside_the_model_value(tmp_path, make_application):
    raw = make_application(overrides=[
        {"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.005, "reason": "产品毛利低于行业均值", "officer": "张经理"},
        {"patent_id": "SYN-CN-T002", "field": "internal_value_rmb", "value": 100_000, "reason": "参考近期同类转让价格", "officer": "李经理"},
    ])
    plain, overridden = value(make_application()), value(raw)
    p0, p1 = plain.patents.set_index("patent_id"), overridden.patents.set_index("patent_id")
    assert p1.loc["SYN-CN-T001", "market_value_rmb"] < p0.loc["SYN-CN-T001", "market_value_rmb"]
    assert p1.loc["SYN-CN-T002", "market_value_rmb"] == 100_000 and p1.loc["SYN-CN-T002", "internal_value_source"] == "override"
    o = overridden.overrides.set_index("field")
    assert o.loc["sharing_rate", "model_value"] == pytest.approx(p0.loc["SYN-CN-T001", "sharing_rate"])
    assert o.loc["internal_value_rmb", "model_value"] == pytest.approx(p0.loc["SYN-CN-T002", "market_value_rmb"])
    db = record_valuation(overridden, tmp_path / "audit.db")
    stored = read_audit_table("overrides", db)
    assert stored["reason"].tolist() == ["产品毛利低于行业均值", "参考近期同类转让价格"]
    assert stored["model_value"].notna().all() and (stored["model_value"] != stored["override_value"]).all()
    v = read_audit_table("valuations", db)
    assert v["valuation_id"].tolist() == [overridden.valuation_id] and v["user"].item() == "tester"
    assert json.loads(v["provenance_json"].item())["input_hash"] == overridden.provenance["input_hash"]


def test_the_audit_store_refuses_an_override_without_reason(tmp_path, make_application):
    r = value(make_application(overrides=[{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.01, "reason": "x", "officer": "y"}]))
    r.overrides.loc[0, "reason"] = "\u3000"  # a full-width space is blank too
    with pytest.raises(OverrideError, match="has a blank reason"):
        record_valuation(r, tmp_path / "audit.db")
    assert read_audit_table("valuations", tmp_path / "audit.db").empty  # nothing half-written


def test_with_registered_models_methods_are_reconciled_and_explained(registry, make_application):
    _, uri, _ = registry
    raw = make_application(models={"renewal": "models:/ipvalue-renewal@champion", "value": "models:/ipvalue-value@champion"})
    r = value(raw, tracking_uri=uri)
    p = r.patents
    assert {"p_fee_2", "economic_life_years", "method_ml_rmb", "method_income_rmb"} <= set(p.columns)
    # the value model learnt synthetic appraisals: for information only, in no check; the income approach gives the market value
    assert (p["ml_role"] == "information").all() and (p["basis_method"] == "income").all()
    assert r.provenance["value_model_labels"] == "synthetic"
    assert not p["review_required"].any() and "ML value model for information only" in p["method_reason_en"].iloc[0]
    # cash flows weighted by W_t = S_t (the renewal model; CN patents: the CN life table's level) × O_t (the field's obsolescence) × A_t
    assert (p["fee_survival_source"] == "renewal_model").all() and (p["economic_life_source"] == "obsolescence_curve").all()
    assert p["cash_flow_weighting"].str.startswith("yearly weights").all()
    # a CN patent's headline is its next annual fee at risk, in CN wording (fees prepaid to 2029-07-01: the fee of the patent year after)
    assert p["headline_zh"].str.fullmatch(r"第\d+年年费缴纳概率").all() and p["headline_en"].str.contains("-year annual fee paid").all()
    assert set(r.reasons["model"]) == {"renewal", "value"} and r.reasons["reason_zh"].str.len().min() > 5
    renewal_reasons = r.reasons[(r.reasons["model"] == "renewal") & (r.reasons["rank"] > 0)]
    assert renewal_reasons["reason_en"].str.contains(r"by [\d.]+ pp").all()  # probability points
    assert renewal_reasons["reason_zh"].str.contains("年年费缴纳概率").all() and not renewal_reasons["reason_en"].str.contains(r"P\(fee 2 paid\)").any()
    assert not renewal_reasons["reason_en"].str.contains("missing").any()  # a missing input is a data-quality note, never a driver
    assert r.provenance["renewal_model"] == "models:/ipvalue-renewal@champion" and r.provenance["renewal_run_id"]
    payload = json.loads(r.to_json())
    assert payload["summary"]["decision"] in ("eligible", "not eligible", "review required", "documents required")
    assert payload["value_types"]["value_in_use_rmb"] == "value_in_use" and payload["value_types"]["loan_cap_rmb"] == "collateral_value"
    assert payload["value_types"]["market_value_rmb"] == "market_value" and payload["value_types"]["method_ml_rmb"] == "market_value"
    assert payload["provenance"]["feature_spec_hash"] and payload["provenance"]["assumption_set_hash"]


def test_a_market_approach_that_fails_a_test_is_a_cross_check_and_its_disagreement_needs_a_sign_off(make_application, tmp_path):
    # comparables priced 20x what the income approach gives: count, spread, age and match pass, the profit-capacity test fails
    plain = value(make_application())
    income = plain.patents.set_index("patent_id")["market_value_rmb"]
    pd.DataFrame([
        {"transaction_id": f"T{i}", "date": "2025-06-30", "kind": "transfer", "price_rmb": 20 * income.max() * k, "patent_type": t,
         "ipc_main": "G06F 16/00", "remaining_life_years": 12.0} for i, (k, t) in enumerate([(1.0, "invention"), (1.1, "invention"), (1.2, "invention"),
                                                                                             (1.0, "utility_model"), (1.1, "utility_model"), (1.2, "utility_model")])
    ]).to_csv(tmp_path / "comparables.csv", index=False)
    raw = make_application(comparables="comparables.csv")
    unsigned = value(raw, base_dir=tmp_path)
    tests = unsigned.methods["market"].columns
    assert tests["passed_count"].all() and tests["passed_spread"].all() and tests["passed_recency"].all() and tests["passed_similarity"].all()
    assert not tests["passed_profit_capacity"].any()
    p = unsigned.patents
    assert (p["market_role"] == "cross_check").all() and (p["basis_method"] == "income").all()
    assert "profit-capacity test" in p["method_reason_en"].iloc[0] or "profit-capacity test" in unsigned.methods["market"].offers["reason_en"].iloc[0]
    assert unsigned.summary["review_required"] and unsigned.summary["decision"] == "review required" and not unsigned.summary["eligible"]
    # a sign-off (set by ipvalue.workflow.sign_off, never by the application) holds for the figures it approved
    app = LoanApplication.from_dict(raw, base_dir=tmp_path)
    review = {"reviewer": "王审查", "reason": "可比交易为同类专利包整体转让，已核实", "signed_valuation_id": unsigned.valuation_id,
              "figures_hash": unsigned.summary["figures_hash"]}
    signed = value_application(replace(app, review=review), user="tester", applications=NO_OTHER_APPLICATIONS)
    assert signed.summary["review"]["reviewer"] == "王审查" and signed.summary["figures_hash"] == unsigned.summary["figures_hash"]
    assert signed.summary["decision"] == ("eligible" if signed.checks["passed"].all() else "not eligible")
    db = record_valuation(signed, tmp_path / "audit.db")
    stored = json.loads(read_audit_table("valuations", db)["result_json"].item())["summary"]
    assert stored["review"] == review
    # ... and lapses on any other figures (F3): here an override the reviewer never saw
    changed = replace(app, review=review, overrides=(Override("SYN-CN-T001", "sharing_rate", 0.001, "按合同", "张经理"),))
    lapsed = value_application(changed, user="tester", applications=NO_OTHER_APPLICATIONS)
    assert lapsed.summary["review"] is None and lapsed.summary["review_required"] and lapsed.summary["figures_hash"] != review["figures_hash"]


@pytest.mark.parametrize("status", ["lapsed", "expired", "invalidated", "pending"])
def test_a_dead_or_pending_right_has_no_collateral_value(status, make_application, make_patent):
    changes = {"legal_status": status} if status != "pending" else {"legal_status": "pending", "grant_date": None}
    r = value(make_application(patents={"records": [make_patent(1, **changes), make_patent(2)]}))
    p = r.patents.set_index("patent_id")
    assert p.loc["SYN-CN-T001", "market_value_rmb"] == 0 and p.loc["SYN-CN-T001", "pledge_value_rmb"] == 0
    assert p.loc["SYN-CN-T001", "collateral_value_rmb"] == 0 and p.loc["SYN-CN-T002", "market_value_rmb"] > 0


def test_without_the_audit_store_the_total_exposure_is_unknown_and_never_passes(make_application):
    r = value_application(LoanApplication.from_dict(make_application()), user="tester")
    check = r.checks.set_index("check").loc["total_exposure_within_internal_limit"]
    assert check["status"] == "fail" and "unknown" in check["reason_en"] and r.summary["decision"] == "not eligible"


def test_one_valuation_validates_once_builds_features_once_per_model_and_simulates_once_per_basis(registry, make_application, monkeypatch):
    """One validation, one feature build per model, one Monte Carlo per income basis (value in use,
    market participant), SHAP once per model."""
    import cProfile
    import pstats

    from ipvalue.features import PatentFeatureBuilder
    from ipvalue.methods.income import IncomeApproachValuer
    from ipvalue.lending import load_application_models
    from ipvalue.models import RenewalModel, ValueRegressor

    _, uri, _ = registry
    raw = make_application(models={"renewal": "models:/ipvalue-renewal@champion", "value": "models:/ipvalue-value@champion"})
    builds, simulations, explanations = [], [], []
    real_build, real_simulate = PatentFeatureBuilder._build_base, IncomeApproachValuer._simulate
    monkeypatch.setattr(PatentFeatureBuilder, "_build_base", lambda self, X: builds.append(self.spec_.id) or real_build(self, X))
    monkeypatch.setattr(IncomeApproachValuer, "_simulate", lambda self, *a, **k: simulations.append(1) or real_simulate(self, *a, **k))
    for cls in (RenewalModel, ValueRegressor):
        real = cls._contributions
        monkeypatch.setattr(cls, "_contributions", lambda self, features, *a, _real=real: explanations.append(
            (type(self).__name__, *(sorted(set(np.atleast_1d(stage).tolist())) for stage in a))) or _real(self, features, *a))

    app = LoanApplication.from_dict(raw)
    models = load_application_models(app, tracking_uri=uri)
    profile = cProfile.Profile()
    profile.enable()
    app = LoanApplication.from_dict(raw)  # the application's patents are validated here ...
    result = value_application(app, models=models, user="tester", applications=NO_OTHER_APPLICATIONS)  # ... and never again
    profile.disable()
    validations = sum(stats[1] for (file, _, name), stats in pstats.Stats(profile).stats.items()
                      if name == "validate_patent_frame" and file.endswith("frame.py"))
    assert validations == 1
    specs = {m: models[m].estimator.features_.spec_.id for m in models}
    assert sorted(builds) == sorted([specs["renewal"], specs["value"], "core-v1"])  # one build per model and one shared by the methods
    assert len(simulations) == 2
    # TreeSHAP once per model (the renewal model's probability-point reasons need the log-odds of fee stages 1 and 2: one call for both)
    assert sorted(explanations) == [("RenewalModel", [1.0, 2.0]), ("ValueRegressor",)]
    assert result.patents["value_in_use_p5_rmb"].le(result.patents["value_in_use_p95_rmb"]).all()


@pytest.mark.parametrize("uri", ["some/folder", "/tmp/model", "runs:/abc/model", "file:///tmp/m", "models:/nope@champion"])
def test_an_application_can_only_name_registered_models(uri, value_registry, make_application):
    # a folder path was unpickled (code ran); a misspelt URI was a warning and a method was dropped
    from ipvalue.exceptions import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="registry URI|No registered model"):
        value(make_application(models={"value": uri}), tracking_uri=value_registry[1])


def test_the_discount_rate_is_checked_against_the_wacc(make_application):
    # wacc-cn: 0.7 × (1.8 % + 1.0 × 6 %) + 0.3 × 3.5 % × (1 − 25 %) = 6.2475 %, below the build-up rate 8.8 %: no flag
    r = value(make_application())
    assert r.provenance["wacc"] == pytest.approx(0.7 * (0.018 + 0.06) + 0.3 * 0.035 * 0.75) and r.provenance["wacc_source"] == "wacc-cn-v1"
    assert r.flags.empty and r.summary["decision"] == "eligible"
    # a borrower whose own WACC is 10 %: the intangible's 8.8 % does not exceed it, so a reviewer must look
    high = value(make_application(wacc=0.10))
    assert set(high.flags["code"]) == {"discount_rate_not_above_wacc"} and high.flags["review"].all()
    assert high.summary["review_required"] and high.summary["decision"] == "review required"
    assert "8.80% does not exceed the WACC 10.00%" in high.flags["reason_en"].iloc[0]
    html_text = " ".join(z for s in high.report.sections for z, _ in s.paragraphs)
    assert "未高于加权平均资本成本" in html_text


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(0, 5e7), min_size=1, max_size=5), spread=st.floats(0, 2),
       statuses=st.lists(st.sampled_from(["in_force", "in_force", "in_force", "lapsed", "pending"]), min_size=5, max_size=5),
       packages=st.lists(st.sampled_from(["A", "B"]), min_size=5, max_size=5), override=st.one_of(st.none(), st.floats(0, 3)))
def test_the_collateral_value_never_exceeds_the_market_value(values, spread, statuses, packages, override):
    """Whatever the market value's scenarios, overrides and statuses: 0 <= collateral value <= market value, per package and in total."""
    from ipvalue.lending.pipeline import value_chain
    from ipvalue.lending.policy import load_pledge_policy
    from ipvalue.methods import Scenarios
    from ipvalue.methods.base import MethodResult, offers_frame

    n = len(values)
    index = pd.RangeIndex(n)
    patents = pd.DataFrame({"patent_id": [f"P{i}" for i in range(n)], "package_id": packages[:n], "patent_type": "invention"}, index=index)
    scenarios = Scenarios(400, 1)
    draws = np.asarray(values)[:, None] * np.exp(spread * scenarios.z("market_level"))[None, :]
    v = pd.DataFrame({"value_rmb": values, "low_rmb": values, "p50_rmb": values, "high_rmb": values}, index=index)
    result = MethodResult("market", "市场法", "market approach", "market_value", v,
                          offers_frame(index, role="primary", rank=1.0, market_value_rmb=values, reason_zh="", reason_en=""), draws=draws)
    rec = pd.DataFrame({"basis_method": "market", "market_value_rmb": values}, index=index)
    inputs = type("Inputs", (), {"patents": patents, "scenarios": scenarios})()
    policy, _ = load_pledge_policy("pledge-policy-cn")
    overrides = {"P0": override * values[0]} if override is not None else None  # an officer's market value, a multiple of the model's
    chain, packages_table, _ = value_chain(inputs, {"market": result}, rec, pd.Series(statuses[:n], index=index), policy, value_overrides=overrides)
    assert (packages_table["collateral_value_q_rmb"] >= 0).all() and (packages_table["collateral_value_p50_rmb"] >= 0).all()
    assert (packages_table["collateral_value_q_rmb"] <= packages_table["market_value_rmb"] + 1e-6).all()
    assert chain["collateral_value_rmb"].sum() <= chain["market_value_rmb"].sum() + 1e-6
    assert (chain.loc[np.array(statuses[:n]) != "in_force", ["market_value_rmb", "collateral_value_rmb"]] == 0).all().all()


def test_the_life_uncertainty_is_in_the_tornado_and_the_monte_carlo(make_application):
    """The CN life table's hazards are defaults to calibrate: halving and doubling them is a tornado row,
    and every Monte Carlo scenario draws a hazard multiplier."""
    r = value(make_application())
    income = r.methods["income"]
    life = income.evidence["sensitivity"].set_index(["patent_id", "assumption"]).loc[("SYN-CN-T001", "hazard_multiplier")]
    assert life["value_low_rmb"] < life["value_rmb"] < life["value_high_rmb"]  # hazards × 2 lower the value, × 0.5 raise it
    # and the report's tornado shows it (its step is a multiplier, not a number)
    tornado = next(s for s in income.sections if s.id == "sensitivity")
    row = next(row for row in tornado.tables[0].rows if row["label"].startswith("年费失效风险"))
    assert row["step_text"] == "×0.5 / ×2" and row["value_low_rmb"] < row["value_rmb"] < row["value_high_rmb"]
    assert any("fee-lapse hazards" in label for label in tornado.charts[0].series[0]["labels"])
    # every scenario draws a hazard multiplier: a scenario with higher fee-lapse hazards is worth less than the same scenario with the life fixed
    from ipvalue.lending.pipeline import prepare
    from ipvalue.methods.income import income_method

    app = LoanApplication.from_dict(make_application())
    inputs = prepare(app, {})
    valuer = income_method(inputs)
    result = valuer.assess(app.patents, inputs)
    in_use = result.evidence["inputs"]
    with_life = valuer.simulate(inputs=in_use, scenarios=inputs.scenarios, life=inputs.life).sum(axis=0)
    fixed_life = valuer.simulate(inputs=in_use, scenarios=inputs.scenarios).sum(axis=0)
    np.testing.assert_allclose(with_life, result.evidence["value_in_use_draws"].sum(axis=0))
    moved = with_life - fixed_life
    assert np.corrcoef(moved, inputs.scenarios.z("hazard_multiplier"))[0, 1] < -0.8
