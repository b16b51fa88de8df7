"""The internal-valuation workflow for one pledge-loan application."""

import json

import numpy as np
import pandas as pd
import pytest

from ipvalue.audit import read_table, record_valuation
from ipvalue.exceptions import ApplicationError, AssumptionError, OverrideError
from ipvalue.tracking import raw_records
from ipvalue.valuation import LoanApplication, Override, risk_sharing_table, value_application

pytestmark = pytest.mark.filterwarnings("ignore")
BORROWER = "合成示例测试科技有限公司"


def patent(i, **changes):
    base = {
        "patent_id": f"SYN-CN-T{i:03d}", "jurisdiction": "CN", "patent_type": "invention", "filing_date": "2018-03-01",
        "publication_date": "2019-09-01", "grant_date": "2020-06-01", "legal_status": "in_force", "fees_paid_until": "2027-03-01",
        "claims_total": 12, "claims_independent": 2, "family_size": 2, "family_offices": "CN;US", "forward_citations": 4,
        "backward_citations": 8, "npl_citations": 2, "ipc_main": "G06F 16/00", "ipc_codes": "G06F 16/00;G06N 3/08",
        "applicants": BORROWER, "inventor_count": 3,
    }
    return {**base, **changes}


def application(**changes):
    raw = {
        "application_id": "SYN-APP-T1", "borrower": BORROWER, "requested_amount_rmb": 300_000, "term_years": 2,
        "purpose": "working capital (synthetic test)", "valuation_date": "2026-06-30",
        "patents": {"records": [patent(1), patent(2, patent_type="utility_model", filing_date="2021-01-01", publication_date="2021-08-01", grant_date="2021-08-01")]},
        "revenue_forecast": {"base_rmb": 40_000_000, "growth": 0.05}, "risk_sharing": "5311",
    }
    raw.update(changes)
    return raw


def value(raw, **kw):
    return value_application(LoanApplication.from_dict(raw), user="tester", **kw)


def check(result, scope, name):
    row = result.checks[(result.checks["scope"] == scope) & (result.checks["check"] == name)]
    assert len(row) == 1
    return bool(row["passed"].iloc[0])


def test_a_clean_application_is_eligible_with_all_checks_passed():
    r = value(application())
    assert r.checks["passed"].all(), r.checks[~r.checks["passed"]]
    s = r.summary
    assert s["decision"] == "eligible" and s["eligible"]
    # loan cap = Σ internal value × pledge rate (25 % invention, 15 % utility model)
    p = r.patents.set_index("patent_id")
    assert s["loan_cap_rmb"] == pytest.approx(p.loc["SYN-CN-T001", "internal_value_rmb"] * 0.25 + p.loc["SYN-CN-T002", "internal_value_rmb"] * 0.15)
    assert (p["internal_value_rmb"] == p["income_value_rmb"]).all()  # no value model: income approach only
    assert r.provenance["value_model"] == "not used" and len(r.provenance["input_hash"]) == 16


@pytest.mark.parametrize(
    "changes, scope, name",
    [
        ({"legal_status": "lapsed"}, "SYN-CN-T001", "right_in_force"),
        ({"applicants": "另一家公司"}, "SYN-CN-T001", "owner_is_borrower"),
        ({"filing_date": "2007-01-01", "grant_date": "2009-01-01"}, "SYN-CN-T001", "life_covers_term"),
        ({"fees_paid_until": "2026-01-01"}, "SYN-CN-T001", "annual_fees_current"),
    ],
)
def test_each_patent_check_can_fail_with_its_reason(changes, scope, name):
    raw = application()
    raw["patents"]["records"][0].update(changes)
    r = value(raw)
    assert not check(r, scope, name)
    assert r.summary["decision"] == "not eligible"
    failed = r.checks[~r.checks["passed"]]
    assert failed["reason_zh"].str.len().min() > 3 and failed["reason_en"].str.len().min() > 10


def test_an_active_pledge_registration_fails():
    r = value(application(registered_pledges=["SYN-CN-T002"]))
    assert not check(r, "SYN-CN-T002", "not_already_pledged") and check(r, "SYN-CN-T001", "not_already_pledged")


def test_a_request_above_the_cap_fails():
    r = value(application(requested_amount_rmb=50_000_000 / 6))
    assert not check(r, "application", "requested_within_loan_cap")


def test_the_ten_million_threshold():
    below = value(application(requested_amount_rmb=9_999_999))
    assert check(below, "application", "amount_under_internal_limit")
    at = value(application(requested_amount_rmb=10_000_000))
    assert not check(at, "application", "amount_under_internal_limit")
    assert at.summary["decision"] == "external appraisal required" and not at.summary["internal_valuation_route"]


@pytest.mark.parametrize("scheme", ["guangzhou-55", "5311", "541", "zhongshan", "pudong", "suzhou", "none"])
def test_every_risk_sharing_scheme_sums_to_one_hundred_percent(scheme):
    table, info = risk_sharing_table(scheme, 1_000_000)
    assert table["share"].sum() == pytest.approx(1.0) and table["loss_rmb"].sum() == pytest.approx(1_000_000)
    assert table["is_bank"].sum() == 1
    expected_bank = {"guangzhou-55": 0.5, "5311": 0.1, "541": 0.1, "zhongshan": 0.26, "pudong": 0.05, "suzhou": 0.2, "none": 1.0}[scheme]
    assert info["bank_share"] == expected_bank


def test_unknown_scheme_is_refused():
    with pytest.raises(AssumptionError, match=r"Unknown risk-sharing scheme 'shenzhen'. Fix: use one of"):
        risk_sharing_table("shenzhen", 1.0)


def test_override_without_reason_is_refused():
    with pytest.raises(OverrideError, match=r"has no 'reason'. Fix: every manual override needs a written reason"):
        Override.from_dict({"patent_id": "P", "field": "sharing_rate", "value": 0.01, "officer": "张经理"})
    raw = application(overrides=[{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.01, "reason": "  ", "officer": "张经理"}])
    with pytest.raises(OverrideError, match="has no 'reason'"):
        LoanApplication.from_dict(raw)


def test_an_override_is_stored_beside_the_model_value(tmp_path):
    raw = application(overrides=[
        {"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.005, "reason": "产品毛利低于行业均值", "officer": "张经理"},
        {"patent_id": "SYN-CN-T002", "field": "internal_value_rmb", "value": 100_000, "reason": "参考近期同类转让价格", "officer": "李经理"},
    ])
    plain, overridden = value(application()), value(raw)
    p0, p1 = plain.patents.set_index("patent_id"), overridden.patents.set_index("patent_id")
    assert p1.loc["SYN-CN-T001", "income_value_rmb"] < p0.loc["SYN-CN-T001", "income_value_rmb"]
    assert p1.loc["SYN-CN-T002", "internal_value_rmb"] == 100_000 and p1.loc["SYN-CN-T002", "internal_value_source"] == "override"
    o = overridden.overrides.set_index("field")
    assert o.loc["sharing_rate", "model_value"] == pytest.approx(p0.loc["SYN-CN-T001", "sharing_rate"])
    assert o.loc["internal_value_rmb", "model_value"] == pytest.approx(p0.loc["SYN-CN-T002", "reconciled_value_rmb"])
    db = record_valuation(overridden, tmp_path / "audit.db")
    stored = read_table("overrides", db)
    assert stored["reason"].tolist() == ["产品毛利低于行业均值", "参考近期同类转让价格"]
    assert stored["model_value"].notna().all() and (stored["model_value"] != stored["override_value"]).all()
    v = read_table("valuations", db)
    assert v["valuation_id"].tolist() == [overridden.valuation_id] and v["user"].item() == "tester"
    assert json.loads(v["provenance_json"].item())["input_hash"] == overridden.provenance["input_hash"]


def test_the_audit_store_refuses_an_override_without_reason(tmp_path):
    import sqlite3

    r = value(application(overrides=[{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.01, "reason": "x", "officer": "y"}]))
    r.overrides.loc[0, "reason"] = " "
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        record_valuation(r, tmp_path / "audit.db")
    assert read_table("valuations", tmp_path / "audit.db").empty  # nothing half-written


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"requested_amount_rmb": "three million"}, r"The 'requested_amount_rmb' of application SYN-APP-T1 must be a number. Got 'three million'"),
        ({"term_years": -1}, r"The 'term_years' of application SYN-APP-T1 must be in \(0, 30\]. Got -1"),
        ({"borrower": ""}, r"The 'borrower' of application SYN-APP-T1 is missing"),
        ({"valuation_date": "30/06/2026"}, r"The 'valuation_date' of application SYN-APP-T1 must be a date written YYYY-MM-DD. Got '30/06/2026'"),
        ({"valuation_date": "2026-13-45"}, r"must be a date written YYYY-MM-DD. Got '2026-13-45'"),
        ({"revenue_forecast": {}}, r"The 'revenue_forecast' of application SYN-APP-T1 is missing"),
        ({"patents": {"records": [patent(1, claims_total=-5)]}}, r"(?s)The 'patents' of application SYN-APP-T1 are invalid: .*row 1 \(SYN-CN-T001\): column 'claims_total' = -5: below the minimum 0"),
    ],
)
def test_a_bad_field_gets_an_error_naming_it(changes, message):
    with pytest.raises(ApplicationError, match=message):
        LoanApplication.from_dict(application(**changes))


def test_application_from_a_file_with_ids(tmp_path):
    import yaml

    pd.DataFrame([patent(1), patent(2), patent(3)]).to_csv(tmp_path / "book.csv", index=False)
    raw = application(patents={"file": "book.csv", "ids": ["SYN-CN-T001", "SYN-CN-T003"]})
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    app = LoanApplication.load(tmp_path / "app.yaml")
    assert app.patents["patent_id"].tolist() == ["SYN-CN-T001", "SYN-CN-T003"]
    raw["patents"]["ids"] = ["SYN-CN-T009"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ApplicationError, match=r"name patents not in book.csv: \['SYN-CN-T009'\]"):
        LoanApplication.load(tmp_path / "bad.yaml")


def test_with_registered_models_methods_are_reconciled_and_explained(registry):
    _, uri, _ = registry
    raw = application(models={"renewal": "models:/ipvalue-renewal@champion", "value": "models:/ipvalue-value@champion"})
    r = value(raw, tracking_uri=uri)
    p = r.patents
    assert {"p_fee_2", "expected_economic_life_years", "ml_value_p50_rmb"} <= set(p.columns)
    np.testing.assert_allclose(p["reconciled_value_rmb"], p[["income_value_rmb", "ml_value_p50_rmb"]].min(axis=1))
    assert (p["economic_life_source"] == "input").all()
    assert set(r.reasons["model"]) == {"renewal", "value"} and r.reasons["reason_zh"].str.len().min() > 5
    assert r.provenance["renewal_model"] == "models:/ipvalue-renewal@champion" and r.provenance["renewal_run_id"]
    payload = json.loads(r.to_json())
    assert payload["summary"]["decision"] in ("eligible", "not eligible")
    assert payload["provenance"]["feature_spec_hash"] and payload["provenance"]["assumption_set_hash"]
