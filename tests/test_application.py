"""Loan applications: fields, patents from records or a file, overrides."""

import pandas as pd
import pytest

from ipvalue.exceptions import ApplicationError, OverrideError
from ipvalue.lending import LoanApplication, Override

pytestmark = pytest.mark.filterwarnings("ignore")


def test_override_without_reason_is_refused(make_application):
    with pytest.raises(OverrideError, match=r"has no 'reason'. Fix: every manual override needs a written reason"):
        Override.from_dict({"patent_id": "P", "field": "sharing_rate", "value": 0.01, "officer": "张经理"})
    raw = make_application(overrides=[{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.01, "reason": "  ", "officer": "张经理"}])
    with pytest.raises(OverrideError, match="has no 'reason'"):
        LoanApplication.from_dict(raw)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"requested_amount_rmb": "three million"}, r"The 'requested_amount_rmb' of application SYN-APP-T1 must be a number. Got 'three million'"),
        ({"term_years": -1}, r"The 'term_years' of application SYN-APP-T1 must be in \(0, 30\]. Got -1"),
        ({"borrower": ""}, r"The 'borrower' of application SYN-APP-T1 is missing"),
        ({"valuation_date": "30/06/2026"}, r"The 'valuation_date' of application SYN-APP-T1 must be a date written YYYY-MM-DD. Got '30/06/2026'"),
        ({"valuation_date": "2026-13-45"}, r"must be a date written YYYY-MM-DD. Got '2026-13-45'"),
        ({"revenue_forecast": {}}, r"The 'revenue_forecast' of application SYN-APP-T1 is missing"),
    ],
)
def test_a_bad_field_gets_an_error_naming_it(changes, message, make_application):
    with pytest.raises(ApplicationError, match=message):
        LoanApplication.from_dict(make_application(**changes))


def test_a_bad_patent_record_gets_an_error_naming_its_row_and_column(make_application, make_patent):
    raw = make_application(patents={"records": [make_patent(1, claims_total=-5)]})
    message = r"(?s)The 'patents' of application SYN-APP-T1 are invalid: .*row 1 \(SYN-CN-T001\): column 'claims_total' = -5: below the minimum 0"
    with pytest.raises(ApplicationError, match=message):
        LoanApplication.from_dict(raw)


def test_application_from_a_file_with_ids(tmp_path, make_application, make_patent):
    import yaml

    pd.DataFrame([make_patent(1), make_patent(2), make_patent(3)]).to_csv(tmp_path / "book.csv", index=False)
    raw = make_application(patents={"file": "book.csv", "ids": ["SYN-CN-T001", "SYN-CN-T003"]})
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    app = LoanApplication.load(tmp_path / "app.yaml")
    assert app.patents["patent_id"].tolist() == ["SYN-CN-T001", "SYN-CN-T003"]
    raw["patents"]["ids"] = ["SYN-CN-T009"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ApplicationError, match=r"name patents not in book.csv: \['SYN-CN-T009'\]"):
        LoanApplication.load(tmp_path / "bad.yaml")
