"""The PatentFrame contract: typing, every rejection rule, and rows in = valid + quarantined."""

import pandas as pd
import pytest

from ipvalue.exceptions import ColumnError, EmptyInputError, PatentFrameError
from ipvalue.frame import COLUMNS, contract_table, validate_patent_frame


def test_valid_rows_are_typed_and_complete(tiny_frame):
    res = validate_patent_frame(tiny_frame)
    assert len(res.valid) == 3 and len(res.quarantine) == 0
    assert list(res.valid.columns) == [c.name for c in COLUMNS]
    assert str(res.valid["filing_date"].dtype).startswith("datetime64")
    assert res.valid["claims_total"].tolist() == [10.0, 6.0, 20.0]
    # optional columns absent from the input are present and empty
    assert res.valid["family_size"].isna().all()


def test_input_is_not_mutated(tiny_frame):
    before = tiny_frame.copy()
    validate_patent_frame(tiny_frame)
    pd.testing.assert_frame_equal(tiny_frame, before)


@pytest.mark.parametrize(
    "column, value, problem",
    [
        ("patent_type", "plant", "unknown value"),
        ("filing_date", "2019-13-45", "not a date"),
        ("grant_date", "2010-01-01", "grant date is before the filing date"),
        ("claims_total", "-3", "below the minimum 0"),
        ("claims_total", "ten", "not a number"),
        ("claims_total", "2.5", "not a whole number"),
        ("claims_independent", "99", "more independent claims than claims in total"),
        ("jurisdiction", "China", "not a two-letter office code"),
        ("legal_status", "sleeping", "unknown value"),
    ],
)
def test_each_rule_quarantines_the_row_and_names_row_column_value_fix(tiny_frame, column, value, problem):
    tiny_frame.loc[1, column] = value
    res = validate_patent_frame(tiny_frame)
    assert len(res.valid) == 2 and len(res.quarantine) == 1
    p = res.problems.iloc[0]
    assert (p["row"], p["patent_id"], p["column"], p["value"], p["problem"]) == (2, "CN222222222U", column, value, problem)
    assert p["fix"]
    assert res.quarantine["reasons"].iloc[0] == f"{column}: {problem}"
    assert f"row 2 (CN222222222U): column '{column}' = '{value}'" in res.report()


def test_duplicated_ids_quarantine_every_copy(tiny_frame):
    tiny_frame.loc[2, "patent_id"] = "CN111111111B"
    res = validate_patent_frame(tiny_frame)
    assert res.quarantine["row"].tolist() == [1, 3]
    assert set(res.problems["value"]) == {"rows 1, 3"}
    assert res.n_input == 3


def test_strict_mode_raises_with_the_problems(tiny_frame):
    tiny_frame.loc[0, "patent_type"] = "plant"
    with pytest.raises(PatentFrameError, match=r"1 of 3 rows break the PatentFrame contract") as info:
        validate_patent_frame(tiny_frame, strict=True)
    assert info.value.problems["column"].tolist() == ["patent_type"]


def test_missing_required_columns_are_listed_together_with_suggestions(tiny_frame):
    frame = tiny_frame.drop(columns=["patent_type", "filing_date"]).rename(columns={"jurisdiction": "jurisdction"})
    frame["filing_dt"] = "2020-01-01"
    with pytest.raises(ColumnError, match=r"'jurisdiction' \(did you mean 'jurisdction'\?\), 'patent_type', 'filing_date' \(did you mean 'filing_dt'\?\)"):
        validate_patent_frame(frame)


def test_empty_frame_is_an_error(tiny_frame):
    with pytest.raises(EmptyInputError, match="has no data rows"):
        validate_patent_frame(tiny_frame.iloc[0:0])


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="expects a pandas DataFrame. Got list"):
        validate_patent_frame([{"patent_id": "x"}])


def test_us_utility_model_is_rejected(tiny_frame):
    tiny_frame.loc[2, "patent_type"] = "utility_model"
    res = validate_patent_frame(tiny_frame)
    assert res.problems["problem"].tolist() == ["the US grants no utility models"]


def test_contract_table_lists_every_column_with_a_description():
    table = contract_table()
    assert len(table) == len(COLUMNS)
    assert table["description"].str.len().min() > 10
    assert set(table.loc[table["required"], "column"]) == {"patent_id", "jurisdiction", "patent_type", "filing_date"}
