"""The eligibility checks: each one fails with its reason."""

import pytest

from ipvalue.lending import LoanApplication, value_application

pytestmark = pytest.mark.filterwarnings("ignore")


def value(raw, **kw):
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
