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


# --- issue 27: memory linear in the file (F2), lone surrogates refused (F11) --------------------------

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

from ipvalue.exceptions import DomainError  # noqa: E402
from ipvalue.frame import DUPLICATE_ROWS_SHOWN, check_unicode_text, check_unicode_tree, frame_from_records  # noqa: E402


def test_a_duplicated_id_shows_the_first_rows_and_a_count_not_every_row(tiny_frame):
    frame = pd.concat([tiny_frame.iloc[[0]]] * 8 + [tiny_frame.iloc[[1]]], ignore_index=True)
    res = validate_patent_frame(frame)
    shown = res.problems.set_index("row")["value"]
    assert DUPLICATE_ROWS_SHOWN == 5
    assert set(shown.loc[1:8]) == {"rows 1, 2, 3, 4, 5 and 3 more (8 rows)"} and 9 not in shown.index
    assert len(res.quarantine) == 8 and res.quarantine["reasons"].eq("patent_id: duplicated id").all()


_PEAK = textwrap.dedent("""
    import json, resource, sys
    import pandas as pd
    from ipvalue.frame import validate_patent_frame
    with open("/proc/self/status") as fh:  # an address-space cap: the quadratic message reached 5 GB
        held = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (held + 3 * 2**30, resource.RLIM_INFINITY))
    n, duplicated = int(sys.argv[1]), sys.argv[2] == "duplicated"
    ids = ["CN100000001B"] * n if duplicated else [f"CN1{i:08d}B" for i in range(n)]
    frame = pd.DataFrame({"patent_id": ids, "jurisdiction": "CN", "patent_type": "invention", "filing_date": "2020-01-01"})
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        result = validate_patent_frame(frame)
        outcome = len(result.quarantine)
    except MemoryError:
        outcome = "MemoryError"
    print(json.dumps({"grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, "quarantined": outcome}))
""")


def _validation_peak(n: int, kind: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PEAK, str(n), kind], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_validating_20000_copies_of_one_id_takes_memory_like_a_valid_file_of_the_same_size():
    # F2: the duplicate-id message listed every row for every row (n²): 20,000 rows passed 5 GB
    valid, duplicated = _validation_peak(20_000, "valid"), _validation_peak(20_000, "duplicated")
    assert duplicated["quarantined"] == 20_000 and valid["quarantined"] == 0
    assert duplicated["grew_mb"] < valid["grew_mb"] + 100, (valid, duplicated)


def test_a_lone_surrogate_in_a_record_is_refused_naming_row_and_column():
    # F11: a lone surrogate in a text field reached the hashing / JSON writing (a 500)
    records = [{"patent_id": "CN1", "jurisdiction": "CN", "patent_type": "invention", "filing_date": "2020-01-01", "applicants": "甲"},
               {"patent_id": "CN2", "jurisdiction": "CN", "patent_type": "invention", "filing_date": "2020-01-01", "applicants": "乙\udc8f公司"}]
    with pytest.raises(PatentFrameError, match=r"^application patents, row 2, column 'applicants': holds a lone surrogate U\+DC8F at character 2, "
                                               r"which is not Unicode text \(1 such cell\(s\)\). Fix: send the text as UTF-8") as caught:
        frame_from_records(records, source="application patents")
    assert caught.value.problems[["row", "column", "value"]].values.tolist() == [[2, "applicants", "乙\\udc8f公司"]]
    frame = pd.DataFrame(records, dtype=object)
    with pytest.raises(PatentFrameError, match="lone surrogate"):
        validate_patent_frame(frame)
    assert len(validate_patent_frame(frame_from_records(records[:1])).valid) == 1


def test_lone_surrogates_anywhere_in_a_request_are_named_by_their_path():
    with pytest.raises(DomainError, match=r"The 'application.patents.records\[1\].applicants' holds a lone surrogate U\+D800 at character 1"):
        check_unicode_tree({"borrower": "甲", "patents": {"records": [{"applicants": "x"}, {"applicants": "\ud800"}]}}, "application")
    with pytest.raises(DomainError, match=r"The 'request \(a key\)' holds a lone surrogate"):
        check_unicode_tree({"\udfff": 1})
    assert check_unicode_text("😀 pairs are fine", "borrower") == "😀 pairs are fine"
    with pytest.raises(DomainError, match=r"The 'borrower' holds a lone surrogate U\+DE00"):
        check_unicode_text("a\ude00", "borrower")
