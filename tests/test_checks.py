"""The eligibility checks: each one fails with its reason."""

import pytest

from ipvalue.lending import LoanApplication, value_application
from tests.conftest import NO_OTHER_APPLICATIONS

pytestmark = pytest.mark.filterwarnings("ignore")


def value(raw, **kw):
    kw.setdefault("applications", NO_OTHER_APPLICATIONS)
    return value_application(LoanApplication.from_dict(raw), user="tester", **kw)


def check(result, scope, name):
    row = result.checks[(result.checks["scope"] == scope) & (result.checks["check"] == name)]
    assert len(row) == 1
    return bool(row["passed"].iloc[0])


@pytest.mark.parametrize(
    "changes, scope, name",
    [
        ({"legal_status": "lapsed"}, "SYN-CN-T001", "right_in_force"),
        ({"applicants": "另一家公司"}, "SYN-CN-T001", "owner_is_borrower"),
        ({"filing_date": "2007-01-01", "grant_date": "2009-01-01"}, "SYN-CN-T001", "life_covers_term"),
        ({"fees_paid_until": "2026-01-01"}, "SYN-CN-T001", "annual_fees_current"),
    ],
)
def test_each_patent_check_can_fail_with_its_reason(changes, scope, name, make_application):
    raw = make_application()
    raw["patents"]["records"][0].update(changes)
    r = value(raw)
    assert not check(r, scope, name)
    assert r.summary["decision"] == "not eligible"
    failed = r.checks[~r.checks["passed"]]
    assert failed["reason_zh"].str.len().min() > 3 and failed["reason_en"].str.len().min() > 10


def test_an_active_pledge_registration_fails(make_application):
    r = value(make_application(registered_pledges=["SYN-CN-T002"]))
    assert not check(r, "SYN-CN-T002", "not_already_pledged") and check(r, "SYN-CN-T001", "not_already_pledged")


def test_a_request_above_the_cap_fails(make_application):
    r = value(make_application(requested_amount_rmb=50_000_000 / 6))
    assert not check(r, "application", "requested_within_loan_cap")


def test_the_ten_million_boundary_includes_ten_million_as_configured(make_application, tmp_path, monkeypatch):
    """"单笔1000万元以下" includes ¥10,000,000 itself (民法典 第1259条); a bank may exclude it."""
    at = value(make_application(requested_amount_rmb=10_000_000))
    assert check(at, "application", "amount_within_internal_limit") and at.summary["internal_valuation_route"]
    above = value(make_application(requested_amount_rmb=10_000_000.01))
    assert not check(above, "application", "amount_within_internal_limit")
    assert above.summary["decision"] == "external appraisal required" and not above.summary["internal_valuation_route"]
    reason = above.checks.set_index("check").loc["amount_within_internal_limit", "reason_en"]
    assert reason.startswith("requested 10,000,000.01 RMB")  # cents shown: not rounded to the limit
    import yaml

    from ipvalue.config import load_yaml

    raw, _ = load_yaml("pledge-policy-cn")
    raw.update(name="bank-policy", version=1)
    raw["internal_valuation_limit_rmb"]["inclusive"] = False
    (tmp_path / "assumptions").mkdir()
    (tmp_path / "assumptions" / "bank-policy.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("IPVALUE_CONFIG_DIR", str(tmp_path))
    exclusive = value(make_application(requested_amount_rmb=10_000_000, pledge_policy="bank-policy"))
    assert not check(exclusive, "application", "amount_within_internal_limit")


# --- register, documents and total exposure (issue 16) ---------------------------------------------

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from ipvalue.audit import pledge_applications, recording  # noqa: E402
from ipvalue.lending.checks import open_exposure  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "cnipa-register-synthetic.csv"
UNIVERSITY = "合成示例理工大学"


def status(result, scope, name):
    row = result.checks[(result.checks["scope"] == scope) & (result.checks["check"] == name)]
    assert len(row) == 1, f"{scope} {name}: {len(row)} rows"
    return row["status"].iloc[0]


def test_a_co_owned_patent_needs_every_co_owners_consent(make_application):
    raw = make_application()
    raw["patents"]["records"][0]["applicants"] = f"{raw['borrower']};{UNIVERSITY}"
    r = value(raw)
    assert check(r, "SYN-CN-T001", "owner_is_borrower") and status(r, "SYN-CN-T001", "co_owner_consent") == "needs_document"
    assert r.summary["decision"] == "documents required" and not r.summary["eligible"]
    reason = r.checks.set_index(["scope", "check"]).loc[("SYN-CN-T001", "co_owner_consent")]
    assert "专利法第14条" in reason["reason_zh"] and f"缺少 {UNIVERSITY} 的书面同意" in reason["reason_zh"] and "every co-owner's consent" in reason["reason_en"]
    raw["documents"].append({"patent_id": "SYN-CN-T001", "kind": "co_owner_consent", "co_owner": " 合成示例理工大学 ", "reference": "SYN-同意书-001"})
    r = value(raw)
    assert status(r, "SYN-CN-T001", "co_owner_consent") == "pass" and r.summary["decision"] == "eligible"


def test_a_utility_model_needs_its_evaluation_report(make_application):
    raw = make_application()
    raw["documents"] = [d for d in raw["documents"] if d["kind"] != "evaluation_report"]
    r = value(raw)
    assert status(r, "SYN-CN-T002", "evaluation_report") == "needs_document" and r.summary["decision"] == "documents required"
    assert [c for c in r.checks["check"] if c == "evaluation_report"] == ["evaluation_report"]  # the invention needs none


def test_fees_must_be_paid_through_the_term_plus_buffer(make_application):
    raw = make_application()
    raw["documents"] = [d for d in raw["documents"] if not (d["kind"] == "fee_prepayment" and d["patent_id"] == "SYN-CN-T001")]
    r = value(raw)  # fees paid until 2027-03-01; the term (2 y) plus buffer (1 y) runs to 2029-06-30
    assert check(r, "SYN-CN-T001", "annual_fees_current") and status(r, "SYN-CN-T001", "fees_paid_through_term") == "needs_document"
    assert "2029-06-30" in r.checks.set_index(["scope", "check"]).loc[("SYN-CN-T001", "fees_paid_through_term"), "reason_en"]
    raw["documents"].append({"patent_id": "SYN-CN-T001", "kind": "fee_prepayment", "reference": "R", "paid_until": "2029-06-29"})
    assert status(value(raw), "SYN-CN-T001", "fees_paid_through_term") == "needs_document"  # one day short
    raw["documents"][-1]["paid_until"] = "2029-06-30"
    assert status(value(raw), "SYN-CN-T001", "fees_paid_through_term") == "pass"


def test_the_expected_period_in_force_must_cover_the_term_and_prepaid_fees_count(make_application):
    r = value(make_application())
    p = r.patents.set_index("patent_id")
    # fees prepaid to 2029-07-01: no lapse risk before it, so the utility model (4.5 years of legal life) is in force through term + buffer
    assert p.loc["SYN-CN-T002", "expected_in_force_years"] >= 3.0 and check(r, "SYN-CN-T002", "in_force_covers_term")
    raw = make_application(overrides=[{"patent_id": "SYN-CN-T001", "field": "economic_life_years", "value": 2.5, "reason": "技术替代快", "officer": "张经理"}])
    r = value(raw)
    assert check(r, "SYN-CN-T001", "life_covers_term") and not check(r, "SYN-CN-T001", "in_force_covers_term")
    assert "expected period in force 2.5 years" in r.checks.set_index(["scope", "check"]).loc[("SYN-CN-T001", "in_force_covers_term"), "reason_en"]


def test_register_facts_fail_the_checks(make_application, tmp_path):
    shutil.copy(FIXTURE, tmp_path / "register.csv")
    raw = make_application(register={"file": "register.csv"})
    raw["patents"]["records"][0]["application_number"] = "201910000003.5"  # pledged, frozen, exclusive licence
    raw["patents"]["records"][1]["application_number"] = "202110000002.X"  # lapsed, then restored
    from ipvalue.lending import LoanApplication

    r = value_application(LoanApplication.from_dict(raw, base_dir=tmp_path), user="tester", applications=NO_OTHER_APPLICATIONS)
    assert not check(r, "SYN-CN-T001", "not_already_pledged") and not check(r, "SYN-CN-T001", "no_preservation")
    assert status(r, "SYN-CN-T001", "exclusive_licence") == "needs_document"
    assert "独占许可" in r.checks.set_index(["scope", "check"]).loc[("SYN-CN-T001", "exclusive_licence"), "reason_zh"]
    assert check(r, "SYN-CN-T002", "right_in_force") and check(r, "SYN-CN-T002", "register_extract")
    assert check(r, "SYN-CN-T002", "not_already_pledged") and check(r, "SYN-CN-T002", "no_preservation")


def test_a_register_file_outside_the_application_folder_is_refused(make_application, tmp_path):
    from ipvalue.exceptions import ApplicationError
    from ipvalue.lending import LoanApplication

    with pytest.raises(ApplicationError, match="'register.file' .* points outside the application's folder"):
        LoanApplication.from_dict(make_application(register={"file": "../register.csv"}), base_dir=tmp_path)


def test_a_split_loan_is_refused_on_the_borrowers_total_exposure(make_application, tmp_path):
    """¥100,000 recorded as eligible; a second application of ¥9,900,000 reaches exactly ¥10,000,000
    (inclusive: passes); ¥9,900,000.01 does not."""
    store = tmp_path / "audit.db"
    first = value(make_application())
    with recording(first, store):
        pass
    recorded = pledge_applications(store)
    assert recorded[["application_id", "decision", "requested_amount_rmb"]].to_dict("records") == [
        {"application_id": "SYN-APP-T1", "decision": "eligible", "requested_amount_rmb": 100_000.0}]
    at = value(make_application(application_id="SYN-APP-T2", requested_amount_rmb=9_900_000), applications=recorded)
    assert check(at, "application", "total_exposure_within_internal_limit")
    above = value(make_application(application_id="SYN-APP-T2", requested_amount_rmb=9_900_000.01), applications=recorded)
    assert check(above, "application", "amount_within_internal_limit") and not check(above, "application", "total_exposure_within_internal_limit")
    assert "SYN-APP-T1 100,000" in above.checks.set_index("check").loc["total_exposure_within_internal_limit", "reason_en"]
    same = value(make_application(requested_amount_rmb=9_900_000.01), applications=recorded)  # revaluing the same application: not counted twice
    assert check(same, "application", "total_exposure_within_internal_limit")


def test_only_the_same_borrowers_open_applications_count(make_application):
    from ipvalue.lending import LoanApplication

    app = LoanApplication.from_dict(make_application())
    recorded = pd.DataFrame({
        "application_id": ["A", "B", "C", "D", "E"],
        "borrower": [app.borrower, "另一家公司", app.borrower, "合成示例测试科技有限公司 ", app.borrower],
        "decision": ["eligible", "eligible", "not eligible", "review required", "eligible"],
        "requested_amount_rmb": [1e6, 2e6, 3e6, 4e6, 5e6], "term_years": [2, 2, 2, 2, 1],
        "valuation_date": ["2025-01-01", "2025-01-01", "2025-01-01", "2025-01-01", "2025-01-01"],  # E matured on 2026-01-01
    })
    assert open_exposure(recorded, app)["application_id"].tolist() == ["A", "D"]


def test_pledge_applications_of_a_store_that_does_not_exist_is_empty(tmp_path):
    assert pledge_applications(tmp_path / "none.db").empty and not (tmp_path / "none.db").exists()


def test_a_valuation_date_in_the_future_or_before_filing_is_flagged(make_application):
    import pandas as pd

    future = str((pd.Timestamp.today() + pd.Timedelta(days=400)).date())
    assert not check(value(make_application(valuation_date=future)), "application", "valuation_date_plausible")
    assert not check(value(make_application(valuation_date="2017-01-01")), "application", "valuation_date_plausible")
    assert check(value(make_application()), "application", "valuation_date_plausible")
