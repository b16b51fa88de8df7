"""The internal-valuation workflow for one pledge-loan application: methods, reconciliation,
overrides, explanations, and each thing computed once."""

import json

import numpy as np
import pytest

from ipvalue.audit import read_audit_table, record_valuation
from ipvalue.exceptions import OverrideError
from ipvalue.lending import LoanApplication, value_application

pytestmark = pytest.mark.filterwarnings("ignore")


def value(raw, **kw):
    return value_application(LoanApplication.from_dict(raw), user="tester", **kw)


def test_a_clean_application_is_eligible_with_all_checks_passed(make_application):
    r = value(make_application())
    assert r.checks["passed"].all(), r.checks[~r.checks["passed"]]
    s = r.summary
    assert s["decision"] == "eligible" and s["eligible"]
    # loan cap = the lower of the package's disposal view at P10 and Σ internal value × pledge rate (25 % invention, 15 % utility model)
    p = r.patents.set_index("patent_id")
    pledge = p.loc["SYN-CN-T001", "internal_value_rmb"] * 0.25 + p.loc["SYN-CN-T002", "internal_value_rmb"] * 0.15
    assert s["pledge_value_rmb"] == pytest.approx(pledge)
    assert s["loan_cap_rmb"] == pytest.approx(min(pledge, s["disposal_cap_rmb"]))
    assert s["loan_cap_basis"] == ("disposal view" if s["disposal_cap_rmb"] <= pledge else "pledge rate")
    # the disposal view: P10 of the package's draws × (1 − 0.60 − 0.03) / 1.10 (disposal-cn), never above the market value
    assert s["disposal_quantile"] == 0.1 and s["disposal_cap_rmb"] < s["collateral_value_p50_rmb"] < s["internal_value_rmb"]
    package = r.packages.iloc[0]
    assert package["collateral_value_p50_rmb"] == pytest.approx(package["market_value_p50_rmb"] * (1 - 0.60 - 0.03) / 1.10)
    assert (p["internal_value_rmb"] == p["income_value_rmb"]).all()  # no value model: income approach only
    assert r.provenance["value_model"] == "not used" and len(r.provenance["input_hash"]) == 16


def test_an_override_is_stored_beside_the_model_value(tmp_path, make_application):
    raw = make_application(overrides=[
        {"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.005, "reason": "产品毛利低于行业均值", "officer": "张经理"},
        {"patent_id": "SYN-CN-T002", "field": "internal_value_rmb", "value": 100_000, "reason": "参考近期同类转让价格", "officer": "李经理"},
    ])
    plain, overridden = value(make_application()), value(raw)
    p0, p1 = plain.patents.set_index("patent_id"), overridden.patents.set_index("patent_id")
    assert p1.loc["SYN-CN-T001", "income_value_rmb"] < p0.loc["SYN-CN-T001", "income_value_rmb"]
    assert p1.loc["SYN-CN-T002", "internal_value_rmb"] == 100_000 and p1.loc["SYN-CN-T002", "internal_value_source"] == "override"
    o = overridden.overrides.set_index("field")
    assert o.loc["sharing_rate", "model_value"] == pytest.approx(p0.loc["SYN-CN-T001", "sharing_rate"])
    assert o.loc["internal_value_rmb", "model_value"] == pytest.approx(p0.loc["SYN-CN-T002", "reconciled_value_rmb"])
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
    assert {"p_fee_2", "expected_economic_life_years", "ml_value_p50_rmb"} <= set(p.columns)
    # the value model learnt synthetic appraisals: a challenger; no comparables or statements: the income approach on the forecast
    assert (p["ml_role"] == "challenger").all() and (p["primary_method"] == "income").all()
    np.testing.assert_allclose(p["reconciled_value_rmb"], p["income_value_rmb"])
    assert (p["value_type"] == "value_in_use").all() and r.provenance["value_model_labels"] == "synthetic"
    # cash flows weighted by the renewal model's yearly survival (CN patents: the CN life table's level)
    assert p["economic_life_source"].str.startswith("survival").all() and p["cash_flow_weighting"].str.startswith("survival").all()
    disagree = p[["income_value_rmb", "ml_value_p50_rmb"]].max(axis=1) / p[["income_value_rmb", "ml_value_p50_rmb"]].min(axis=1) > 2.0
    assert (p["review_required"] == disagree).all() and r.summary["review_required"] == bool(disagree.any())
    assert set(r.reasons["model"]) == {"renewal", "value"} and r.reasons["reason_zh"].str.len().min() > 5
    renewal_reasons = r.reasons[(r.reasons["model"] == "renewal") & (r.reasons["rank"] > 0)]
    assert renewal_reasons["reason_en"].str.contains(r"P\(fee 2 paid\) by [\d.]+ pp").all()  # probability points
    assert not renewal_reasons["reason_en"].str.contains("missing").any()  # a missing input is a data-quality note, never a driver
    assert r.provenance["renewal_model"] == "models:/ipvalue-renewal@champion" and r.provenance["renewal_run_id"]
    payload = json.loads(r.to_json())
    assert payload["summary"]["decision"] in ("eligible", "not eligible", "review required")
    assert payload["value_types"]["income_value_rmb"] == "value_in_use" and payload["value_types"]["loan_cap_rmb"] == "collateral_value"
    assert payload["provenance"]["feature_spec_hash"] and payload["provenance"]["assumption_set_hash"]


def test_methods_that_disagree_need_a_reviewers_sign_off(make_application, tmp_path):
    # a comparable transaction priced 20x what the income approach gives: market and income disagree
    import pandas as pd

    from ipvalue.audit import read_audit_table

    plain = value(make_application())
    income = plain.patents.set_index("patent_id")["income_value_rmb"]
    pd.DataFrame([
        {"transaction_id": f"T{i}", "date": "2025-06-30", "kind": "transfer", "price_rmb": 20 * income.max() * k, "patent_type": "invention",
         "ipc_main": "G06F 16/00", "remaining_life_years": 12.0} for i, k in enumerate((1.0, 1.1, 1.2))
    ]).to_csv(tmp_path / "comparables.csv", index=False)
    raw = make_application(comparables="comparables.csv")
    unsigned = value_application(LoanApplication.from_dict(raw, base_dir=tmp_path), user="tester")
    assert unsigned.summary["review_required"] and unsigned.summary["decision"] == "review required" and not unsigned.summary["eligible"]
    signed = value_application(LoanApplication.from_dict({**raw, "review": {"reviewer": "王审查", "reason": "可比交易为同类专利包整体转让，已核实"}}, base_dir=tmp_path), user="tester")
    assert signed.summary["review"]["reviewer"] == "王审查"
    assert signed.summary["decision"] == ("eligible" if signed.checks["passed"].all() else "not eligible")
    db = record_valuation(signed, tmp_path / "audit.db")
    stored = json.loads(read_audit_table("valuations", db)["result_json"].item())["summary"]
    assert stored["review"] == {"reviewer": "王审查", "reason": "可比交易为同类专利包整体转让，已核实"}


@pytest.mark.parametrize("status", ["lapsed", "expired", "invalidated", "pending"])
def test_a_dead_or_pending_right_has_no_collateral_value(status, make_application, make_patent):
    changes = {"legal_status": status} if status != "pending" else {"legal_status": "pending", "grant_date": None}
    r = value(make_application(patents={"records": [make_patent(1, **changes), make_patent(2)]}))
    p = r.patents.set_index("patent_id")
    assert p.loc["SYN-CN-T001", "internal_value_rmb"] == 0 and p.loc["SYN-CN-T001", "pledge_value_rmb"] == 0
    assert p.loc["SYN-CN-T001", "disposal_cap_rmb"] == 0 and p.loc["SYN-CN-T002", "internal_value_rmb"] > 0


def test_one_valuation_validates_once_builds_features_once_per_model_and_simulates_once(registry, make_application, monkeypatch):
    """The issue's count: one validation, one feature build per model, one Monte Carlo, SHAP once per model."""
    import cProfile
    import pstats

    from ipvalue.features import PatentFeatureBuilder
    from ipvalue.income import IncomeApproachValuer
    from ipvalue.lending import load_application_models
    from ipvalue.models import RenewalModel, ValueRegressor

    _, uri, _ = registry
    raw = make_application(models={"renewal": "models:/ipvalue-renewal@champion", "value": "models:/ipvalue-value@champion"})
    builds, simulations, explanations = [], [], []
    real_build, real_simulate = PatentFeatureBuilder._build_base, IncomeApproachValuer.simulate
    monkeypatch.setattr(PatentFeatureBuilder, "_build_base", lambda self, X: builds.append(self.spec_.id) or real_build(self, X))
    monkeypatch.setattr(IncomeApproachValuer, "simulate", lambda self, *a, **k: simulations.append(1) or real_simulate(self, *a, **k))
    for cls in (RenewalModel, ValueRegressor):
        real = cls._contributions
        monkeypatch.setattr(cls, "_contributions", lambda self, features, *a, _real=real: explanations.append((type(self).__name__, *a)) or _real(self, features, *a))

    app = LoanApplication.from_dict(raw)
    models = load_application_models(app, tracking_uri=uri)
    profile = cProfile.Profile()
    profile.enable()
    app = LoanApplication.from_dict(raw)  # the application's patents are validated here ...
    result = value_application(app, models=models, user="tester")  # ... and never again
    profile.disable()
    validations = sum(stats[1] for (file, _, name), stats in pstats.Stats(profile).stats.items()
                      if name == "validate_patent_frame" and file.endswith("frame.py"))
    assert validations == 1
    specs = {m: models[m].estimator.features_.spec_.id for m in models}
    assert sorted(builds) == sorted([specs["renewal"], specs["value"], "core-v1"])  # one build per model (the income approach's fit included)
    assert len(simulations) == 1
    # TreeSHAP once per model (the renewal model's probability-point reasons need the log-odds of fee stages 1 and 2, once each)
    assert sorted(explanations) == [("RenewalModel", 1), ("RenewalModel", 2), ("ValueRegressor",)]
    assert result.summary["income_p5_rmb"] <= result.summary["income_p95_rmb"]


@pytest.mark.parametrize("uri", ["some/folder", "/tmp/model", "runs:/abc/model", "file:///tmp/m", "models:/nope@champion"])
def test_an_application_can_only_name_registered_models(uri, value_registry, make_application):
    # issue 15 findings 1 and 10: a folder path was unpickled (code ran); a misspelt URI was a warning and a method was dropped
    from ipvalue.exceptions import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="registry URI|No registered model"):
        value(make_application(models={"value": uri}), tracking_uri=value_registry[1])
