"""The CNIPA legal-status event loader: the synthetic fixture's stories give the expected register
facts (tests/fixtures/cnipa-register-synthetic.README.md)."""

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from ipvalue.exceptions import InputFileError
from ipvalue.io.register import load_code_table, normalise_application_number, parse_register, read_register, register_status, unmatched_events

FIXTURE = Path(__file__).parent / "fixtures" / "cnipa-register-synthetic.csv"
AS_OF = "2026-06-30"


@pytest.fixture(scope="module")
def register():
    return read_register(FIXTURE)


@pytest.fixture(scope="module")
def patents():
    return pd.DataFrame({"patent_id": ["A", "B", "C", "D", "X"],
                         "application_number": ["201810000001.1", "CN202110000002.X", "201910000003.5", "2017100000042", None]})


def test_the_gbk_export_is_read_with_every_row_kept(register):
    assert register.notes == ["cnipa-register-synthetic.csv decoded as gb18030"]
    assert len(register.events) == 16 and register.events["known"].sum() == 15
    assert register.events.loc[register.events["code"] == "PE01", "meaning_zh"].iloc[0] == "专利权质押合同登记的生效"


def test_unknown_codes_and_unmatched_events_are_reported_not_dropped(register, patents):
    assert register.unknown[["row", "code"]].to_dict("records") == [{"row": 15, "code": "ZZ99"}]
    facts = register_status(register, patents, as_of=AS_OF)
    assert facts.loc[3, "unknown_codes"] == "ZZ99"
    assert unmatched_events(register, patents)["application_number"].tolist() == ["2020100000999"]


def test_register_stories_give_the_expected_facts(register, patents):
    f = register_status(register, patents, as_of=AS_OF)
    # A: pledge registered then released (same 登记号) is not active; ordinary licence; preservation lifted
    assert f.loc[0, ["active_pledges", "ordinary_licences", "exclusive_licences"]].tolist() == [0, 1, 0]
    assert not f.loc[0, "preservation_in_force"]
    # B: a lapse then a restoration is in force
    assert f.loc[1, "register_status"] == "in_force" and f.loc[1, "restorations"] == 1
    # C: an unnumbered pledge and a preservation in force, an exclusive licence; the 2027 release is after the date
    assert f.loc[2, ["active_pledges", "exclusive_licences"]].tolist() == [1, 1] and f.loc[2, "preservation_in_force"]
    assert f.loc[2, "licence_types"] == "exclusive"
    # D: transferred, an invalidation event, lapsed without restoration
    assert f.loc[3, ["register_status", "transfers", "invalidation_events"]].tolist() == ["lapsed", 1, 1]
    assert f.loc[3, "last_transfer_on"] == pd.Timestamp("2022-08-26")
    # X: no application number: not in the register
    assert not f.loc[4, "in_register"] and f.loc[4, "register_events"] == 0


def test_events_after_the_date_count_once_the_date_passes(register, patents):
    later = register_status(register, patents, as_of="2027-06-30")
    assert later.loc[2, "active_pledges"] == 0  # PC01 of 2027-01-15 released it


def test_a_release_listed_before_its_registration_on_the_same_day_still_closes_it(patents):
    raw = pd.DataFrame({"申请号": ["201810000001.1"] * 2, "法律状态公告日": ["2024-01-01"] * 2, "事件代码": ["PC01", "PE01"], "法律状态信息": ["", ""]})
    assert register_status(parse_register(raw), patents, as_of=AS_OF).loc[0, "active_pledges"] == 0


def test_the_code_comes_from_the_status_text_when_there_is_no_code_column(patents):
    raw = pd.DataFrame({"申请号": ["201810000001.1"], "法律状态公告日": ["2024年01月05日"], "法律状态": ["专利权的保全"]})
    f = register_status(parse_register(raw), patents, as_of=AS_OF)
    assert f.loc[0, "preservation_in_force"]


def test_an_excel_export_in_utf8_headers_reads_the_same(tmp_path, register, patents):
    raw = pd.read_csv(FIXTURE, encoding="gbk", dtype=str)
    raw.to_excel(tmp_path / "register.xlsx", index=False)
    again = register_status(read_register(tmp_path / "register.xlsx"), patents, as_of=AS_OF)
    pd.testing.assert_frame_equal(again, register_status(register, patents, as_of=AS_OF))


@pytest.mark.parametrize("raw, message", [
    (pd.DataFrame({"申请号": ["1"], "事件代码": ["PE01"]}), r"no column for \['event_date'\].*法律状态公告日"),
    (pd.DataFrame({"申请号": ["1", "2"], "法律状态公告日": ["2024-01-01", "2024-13-01"], "事件代码": ["PE01", "PC01"]}), r"row 2, column 'event_date': unreadable or missing date '2024-13-01'"),
    (pd.DataFrame({"申请号": ["1", None], "法律状态公告日": ["2024-01-01", "2024-01-02"], "事件代码": ["PE01", "PC01"]}), r"row 2, column 'application_number': no application number"),
])
def test_bad_rows_are_refused_naming_row_column_and_value(raw, message):
    with pytest.raises(InputFileError, match=message):
        parse_register(raw, source="test export")


def test_every_code_has_a_meaning_and_a_source_and_says_it_is_unchecked():
    table, table_id = load_code_table()
    assert {"CF01", "RR01", "PE01", "PC01", "PM01", "TR01", "EE01", "EC01", "EM01", "PP01", "PD01", "IW01", "IP01"} <= set(table.index)
    assert table["source"].str.len().min() > 10 and not table["checked"].any() and table_id.startswith("cnipa-events-v1-")


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="0123456789", min_size=12, max_size=12), st.sampled_from(["", "CN", "ZL", "zl ", "CN "]), st.booleans())
def test_application_numbers_match_with_or_without_prefix_and_dot(digits, prefix, dot):
    written = prefix + digits + (".1" if dot else "1")
    assert normalise_application_number(pd.Series([written])).iloc[0] == digits + "1"


# --- issue 27 F11: errors that were 500s at the input layer ------------------------------------------


@pytest.mark.parametrize("encoding", ["x", "hex", ["gbk"]])
def test_an_unknown_register_encoding_is_an_input_error_naming_the_field(encoding):
    with pytest.raises(InputFileError, match=r"The 'encoding' of cnipa-register-synthetic.csv must be the name of a text encoding. Got .*"
                                             r"Fix: use utf-8, gbk, gb18030 or big5, or leave it out"):
        read_register(FIXTURE, encoding=encoding)
    assert len(read_register(FIXTURE, encoding="gbk").events) == 16


def test_a_lone_surrogate_in_a_register_row_is_an_input_error():
    from ipvalue.exceptions import PatentFrameError

    raw = pd.DataFrame({"申请号": ["201810000001.1", "201810000001.1"], "法律状态公告日": ["2020-01-01", "2021-01-01"],
                        "事件代码": ["PE01", "PC01"], "法律状态信息": ["登记号：Y1", "登记号：Y1\ud800"]}, dtype=object)
    with pytest.raises(PatentFrameError, match=r"register, row 2, column '法律状态信息': holds a lone surrogate U\+D800"):
        parse_register(raw, source="register")
