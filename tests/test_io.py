"""Loaders: mapped exports (Chinese / English headers, GBK, Excel, Parquet) and the real public data."""

import pandas as pd
import pytest

from ipvalue.exceptions import ColumnError, EmptyInputError, SpecError, InputFileError
from ipvalue.io import (
    ColumnMapping,
    load_ipc_concordance,
    load_oce_claims,
    load_oce_litigation,
    load_oecd_cohorts,
    read_patents,
    write_atomic,
)

CN_EXPORT = pd.DataFrame(
    {
        "公开（公告）号": ["CN112345678B", "CN212345678U", "CN312345678S", "CN112345679A"],
        "申请号": ["CN202010000001.1", "CN202020000002.2", "CN202030000003.3", "CN202110000004.4"],
        "申请日": ["2020-01-02", "2020-02-03", "2020-03-04", "2021-04-05"],
        "授权公告日": ["2022-05-06", "2020-09-10", "2020-08-01", ""],
        "专利类型": ["发明", "实用新型", "外观设计", "发明申请"],
        "当前法律状态": ["有效", "未缴年费专利权终止", "有效", "实质审查"],
        "权利要求数量": ["12", "8", "1", "10"],
        "独立权利要求数量": ["2", "1", "1", "1"],
        "被引证次数": ["3", "0", "0", "1"],
        "引证次数": ["7", "2", "0", "5"],
        "简单同族数量": ["4", "1", "1", "1"],
        "IPC主分类号": ["G06F16/00", "H02J7/00", "", "A61K31/00"],
        "IPC分类号": ["G06F16/00；G06N3/08", "H02J7/00", "", "A61K31/00 | A61P35/00"],
        "申请人": ["合成示例科技有限公司", "张三", "合成示例大学", "合成示例研究院"],
        "摘要": ["...", "...", "...", "..."],
    }
)


def test_chinese_headers_and_values_map_to_the_contract(tmp_path):
    path = tmp_path / "cnipa_export.csv"
    CN_EXPORT.to_csv(path, index=False, encoding="utf-8")
    res = read_patents(path)
    assert len(res.valid) == 4 and len(res.quarantine) == 0
    v = res.valid
    assert v["patent_type"].tolist() == ["invention", "utility_model", "design", "invention"]
    assert v["legal_status"].tolist() == ["in_force", "lapsed", "in_force", "pending"]
    assert v["jurisdiction"].unique().tolist() == ["CN"]  # derived from the id prefix, and said so
    assert any("jurisdiction derived" in n for n in res.notes)
    assert any("'摘要'" in n for n in res.notes)  # ignored column is reported, not silently dropped
    assert v["ipc_codes"].tolist()[0] == "G06F16/00;G06N3/08"  # full-width separator folded
    assert v["ipc_codes"].tolist()[3] == "A61K31/00;A61P35/00"


def test_gbk_encoded_csv_is_read(tmp_path):
    path = tmp_path / "gbk.csv"
    CN_EXPORT.to_csv(path, index=False, encoding="gbk")
    with pytest.raises(UnicodeDecodeError):
        path.read_text(encoding="utf-8")
    res = read_patents(path)
    assert len(res.valid) == 4
    assert res.valid["applicants"].iloc[0] == "合成示例科技有限公司"
    assert "gbk.csv decoded as gb18030" in res.notes


def test_wrong_encoding_given_explicitly_is_a_clear_error(tmp_path):
    path = tmp_path / "gbk.csv"
    CN_EXPORT.to_csv(path, index=False, encoding="gbk")
    with pytest.raises(InputFileError, match=r"could not be decoded .*Fix: pass encoding="):
        read_patents(path, encoding="utf-8")


@pytest.mark.parametrize("encoding", ["utf_16", "utf_32"])
def test_an_encoding_that_needs_a_byte_order_mark_on_a_file_without_one_is_an_input_error(tmp_path, encoding):
    from ipvalue.io.register import read_register

    path = tmp_path / "gbk.csv"
    CN_EXPORT.to_csv(path, index=False, encoding="gbk")
    for read in (read_patents, read_register):
        with pytest.raises(InputFileError, match=rf"could not be decoded as {encoding} \(UTF-(16|32) stream does not start with BOM\)"):
            read(path, encoding=encoding)
    CN_EXPORT.to_csv(path, index=False, encoding="utf-16")  # Excel's "Unicode text": with its mark, read
    assert len(read_patents(path, encoding="utf_16").valid) == 4


def test_excel_and_parquet_give_the_same_frame(tmp_path):
    CN_EXPORT.to_excel(tmp_path / "x.xlsx", index=False)
    CN_EXPORT.to_parquet(tmp_path / "x.parquet", index=False)
    a = read_patents(tmp_path / "x.xlsx").valid
    b = read_patents(tmp_path / "x.parquet").valid
    pd.testing.assert_frame_equal(a, b)


def test_quarantine_keeps_the_source_row_and_headers(tmp_path):
    bad = CN_EXPORT.copy()
    bad.loc[1, "授权公告日"] = "2019-01-01"  # before filing
    bad.loc[2, "权利要求数量"] = "-1"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    res = read_patents(path)
    assert len(res.valid) + len(res.quarantine) == 4
    assert res.quarantine["row"].tolist() == [2, 3]
    assert "公开（公告）号" in res.quarantine.columns
    assert res.quarantine["reasons"].tolist() == ["grant_date: grant date is before the filing date", "claims_total: below the minimum 0"]


def test_missing_required_columns_one_error_with_suggestions(tmp_path):
    path = tmp_path / "m.csv"
    CN_EXPORT.drop(columns=["专利类型", "申请日"]).assign(申请日期=["2020-01-01"] * 4).to_csv(path, index=False)
    with pytest.raises(ColumnError, match=r"missing required column\(s\) 'patent_type', 'filing_date' \(did you mean '申请日期'\?\)"):
        read_patents(path)


def test_empty_file_and_header_only_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EmptyInputError, match="is an empty file"):
        read_patents(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("patent_id,jurisdiction,patent_type,filing_date\n")
    with pytest.raises(EmptyInputError, match="header but no data rows"):
        read_patents(tmp_path / "header.csv")


def test_custom_mapping_must_target_contract_columns():
    with pytest.raises(SpecError, match=r"unknown PatentFrame column\(s\) \['claim_count'\]; e.g. 'claims' -> 'claim_count'"):
        ColumnMapping.load({"columns": {"Claims": "claim_count"}})


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    out = write_atomic(pd.DataFrame({"a": [1, 2]}), tmp_path / "sub" / "o.parquet")
    assert pd.read_parquet(out)["a"].tolist() == [1, 2]
    assert [p.name for p in out.parent.iterdir()] == ["o.parquet"]


# --- the real public data in ../shared/data -------------------------------------------------


def test_university_maintenance_rows_and_invariants(data_dir):
    from ipvalue.io import load_university_maintenance

    university, quarantine = load_university_maintenance(data_dir, return_quarantine=True)
    assert len(university) + len(quarantine) == 9633
    assert quarantine["reasons"].tolist() == ["priority_date: priority date is after the filing date"]
    assert university["patent_id"].is_unique
    assert (university["grant_date"] >= university["filing_date"]).all()
    assert university["grant_date"].dt.year.between(2004, 2007).all()
    assert university["fees_paid"].between(0, 3).all()
    assert set(university["cpc_section"]) <= set("ABCDEFGH")
    assert university["fees_paid"].value_counts().to_dict() == {2: 4540, 1: 2421, 3: 1544, 0: 1127}


def test_oecd_cohort_table(data_dir):
    t = load_oecd_cohorts(data_dir)
    assert len(t) == 23340
    assert t["filing_year"].between(1978, 2017).all() and t["tech_field"].between(1, 35).all()
    assert t["variable"].nunique() == 17
    q = t[["p1", "p10", "p25", "p50", "p75", "p90", "p99"]].to_numpy()
    assert (q[:, 1:] >= q[:, :-1]).all(), "quantiles must be non-decreasing"


def test_ipc_concordance(data_dir):
    c = load_ipc_concordance(data_dir)
    assert len(c) == 761 and c["field_nr"].nunique() == 35 and c["sector"].nunique() == 5
    assert c.loc[c["ipc_prefix"] == "H04N  21", "field_nr"].item() == 4


def test_oce_claims_sample(data_dir):
    c = load_oce_claims(data_dir)
    assert len(c) == 3000 and c["patent_id"].is_unique
    assert (c["claims_independent"] <= c["claims_total"]).all()
    assert c["first_claim_word_count"].notna().mean() > 0.95


def test_oce_litigation_sample(data_dir):
    e = load_oce_litigation(data_dir)
    assert len(e) > 4000 and e["date"].notna().all()
    assert e["date"].dt.year.between(1990, 2020).all()
    assert not e.duplicated(["patent_id", "case_number"]).any()


# --- issue 15: hostile and broken input ------------------------------------------------------

import datetime as _dt  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ipvalue.exceptions import PatentFrameError  # noqa: E402
from ipvalue.io import neutralise_formulas, sweep_temporary_files  # noqa: E402

HEADER = "patent_id,jurisdiction,patent_type,filing_date\n"


def test_csv_outputs_neutralise_formulas_but_keep_negative_numbers(tmp_path):
    # issue 15 finding 11
    frame = pd.DataFrame({"patent_id": ["=HYPERLINK(\"http://x\",\"a\")", "+cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "-12.5", "CN1"], "n": [1, 2, 3, 4, 5, 6]})
    assert neutralise_formulas(frame)["patent_id"].tolist() == ["'=HYPERLINK(\"http://x\",\"a\")", "'+cmd|' /C calc'!A0", "'@SUM(A1)", "'\tx", "-12.5", "CN1"]
    out = write_atomic(frame, tmp_path / "q.csv")
    back = pd.read_csv(out, dtype=str)
    assert back["patent_id"].str[0].isin(["'", "-", "C"]).all() and back.loc[4, "patent_id"] == "-12.5"
    assert frame.loc[0, "patent_id"].startswith("=")  # input not mutated


@pytest.mark.parametrize("body", ["CN1,CN,invention,2020-01-01,extra\n", 'CN1,CN,"invention,2020-01-01\n'])
def test_ragged_rows_and_unclosed_quotes_are_input_errors(tmp_path, body):
    # issue 15 finding 8: pandas ParserError ended in exit 70
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "CN0,CN,invention,2020-01-01\n" + body, encoding="utf-8")
    with pytest.raises(InputFileError, match=r"bad.csv is not a well-formed table: .*Fix: every row needs as many fields"):
        read_patents(path)


def test_an_html_table_named_xls_is_refused_with_a_fix(tmp_path):
    path = tmp_path / "export.xls"
    path.write_text("<html><body><table><tr><td>专利号</td></tr></table></body></html>", encoding="utf-8")
    with pytest.raises(InputFileError, match="HTML table saved with an Excel name.*save it as .xlsx or CSV"):
        read_patents(path)


def test_excel_date_cells_and_serials_are_read(tmp_path):
    # issue 15 finding 5: both became 1970-01-01
    path = tmp_path / "book.xlsx"
    pd.DataFrame(
        {"patent_id": ["CN1", "CN2", "CN3"], "jurisdiction": ["CN"] * 3, "patent_type": ["invention"] * 3,
         "filing_date": [_dt.datetime(2020, 7, 1), 44013, "2020年3月15日"]}
    ).to_excel(path, index=False)
    res = read_patents(path)
    assert res.valid["filing_date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-07-01", "2020-07-01", "2020-03-15"]


def test_integer_typed_date_columns_are_refused(tmp_path):
    path = tmp_path / "days.parquet"
    pd.DataFrame({"patent_id": ["CN1"], "jurisdiction": ["CN"], "patent_type": ["invention"], "filing_date": [18444]}).to_parquet(path)
    res = read_patents(path)
    assert res.valid.empty and "integer-typed date column" in res.problems.loc[0, "problem"]


def test_ambiguous_day_month_dates_are_refused_unless_the_format_is_declared(tmp_path):
    path = tmp_path / "dates.csv"
    path.write_text(HEADER + "CN1,CN,invention,05/03/2020\nCN2,CN,invention,15/03/2020\n", encoding="utf-8")
    res = read_patents(path)
    assert res.valid["patent_id"].tolist() == ["CN2"] and res.valid["filing_date"].iloc[0] == pd.Timestamp("2020-03-15")
    assert res.problems.loc[0, "problem"] == "day and month can be read both ways"
    declared = read_patents(path, date_format="%d/%m/%Y")
    assert declared.valid["filing_date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-03-05", "2020-03-15"]


def test_big5_text_is_not_silently_read_as_gb18030(tmp_path):
    path = tmp_path / "big5.csv"
    names = "國立臺灣大學,財團法人工業技術研究院,鴻海精密工業股份有限公司,台灣積體電路製造股份有限公司"
    path.write_bytes((HEADER.strip() + ",applicants\n" + "".join(f"CN{i},CN,invention,2020-01-01,{n}\n" for i, n in enumerate(names.split(",")))).encode("big5"))
    with pytest.raises(InputFileError, match="looks like Big5.*encoding='big5'"):
        read_patents(path)
    assert read_patents(path, encoding="big5").valid["applicants"].iloc[0] == "國立臺灣大學"


def test_temporary_files_of_an_earlier_run_are_swept(tmp_path):
    stale = tmp_path / ".out.csv.abc123.tmp"
    stale.write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".out.csv.def456.tmp"
    fresh.write_text("live")
    assert sweep_temporary_files(tmp_path, older_than=time.time() - 60) == [stale]
    assert fresh.exists() and not stale.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=300),
    st.lists(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8), min_size=0, max_size=6), max_size=6).map(
        lambda rows: (HEADER + "\n".join(",".join(r) for r in rows)).encode("utf-8")
    ),
))
def test_random_bytes_and_csv_shapes_raise_only_documented_input_errors(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        read_patents(path)
    except (PatentFrameError, SpecError):
        pass


def test_a_merged_owner_cell_in_excel_gives_every_row_its_owner(tmp_path):
    # issue 15 finding 5: the second row of a merged 申请人 cell had no owner
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["公开(公告)号", "申请日", "专利类型", "申请人"])
    sheet.append(["CN111111111B", "2018-01-01", "发明", "甲科技有限公司"])
    sheet.append(["CN222222222B", "2018-02-01", "发明", None])
    sheet.merge_cells("D2:D3")
    book.save(tmp_path / "export.xlsx")
    result = read_patents(tmp_path / "export.xlsx")
    assert result.valid["applicants"].tolist() == ["甲科技有限公司", "甲科技有限公司"]


# --- bounded reads (issue 27: F2 caps, F11 errors that were 500s, F15 private files) ------------------

import stat  # noqa: E402
import zipfile  # noqa: E402

from benchmarks.upload_memory import write_xlsx  # noqa: E402
from ipvalue.io import DEFAULT_LIMITS, UPLOAD_LIMITS, ReadLimits, open_private, private_folder, read_table, write_bytes_atomic, write_text_atomic  # noqa: E402
from ipvalue.io.tables import scan_xlsx  # noqa: E402

ROW = ["CN1", "CN", "invention", "2020-01-01"]


def _csv(path, n):
    path.write_text(HEADER + "".join(f"CN{i},CN,invention,2020-01-01\n" for i in range(n)), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["csv", "xlsx", "parquet"])
@pytest.mark.parametrize("limits, message", [
    (ReadLimits(max_rows=9), r"data rows.*, above the 9 max rows of a read \(ReadLimits.max_rows\)"),
    (ReadLimits(max_cells=39), r"cells \(rows × columns.*above the 39 max cells of a read \(ReadLimits.max_cells\)"),
    (ReadLimits(max_bytes=200), r"bytes .*above the 200 max bytes of a read \(ReadLimits.max_bytes\)"),
])
def test_rows_cells_and_bytes_beyond_the_limits_are_refused_naming_the_limit_and_the_fix(tmp_path, kind, limits, message):
    frame = pd.DataFrame([[f"CN{i}", "CN", "invention", "2020-01-01"] for i in range(10)], columns=HEADER.strip().split(","))
    path = tmp_path / f"book.{kind}"
    {"csv": lambda: frame.to_csv(path, index=False), "xlsx": lambda: write_xlsx(path, list(frame.columns), frame.to_numpy().tolist()),
     "parquet": lambda: frame.to_parquet(path)}[kind]()
    with pytest.raises(InputFileError, match=message + r".*Fix: export only the patents needed"):
        read_table(path, limits=limits)
    assert len(read_table(path, limits=ReadLimits(max_rows=10, max_cells=40, max_bytes=100_000))[0]) == 10  # at the limit: read


def test_a_small_xlsx_of_200k_rows_is_refused_from_its_xml_before_pandas_builds_a_table(tmp_path, monkeypatch):
    # F2: a 180 KB .xlsx of 200,000 rows was OOM-killed at 22.7 GB
    path = write_xlsx(tmp_path / "bomb.xlsx", HEADER.strip().split(","), (ROW for _ in range(200_000)))
    assert path.stat().st_size < 200_000
    monkeypatch.setattr(pd, "read_excel", lambda *a, **k: pytest.fail("the workbook was opened before its limits were checked"))
    with pytest.raises(InputFileError, match=r"bomb.xlsx has data rows: more than 100,000, above the 100,000 max rows"):
        read_patents(path, limits=UPLOAD_LIMITS)


def test_an_xlsx_whose_members_declare_more_than_the_limit_is_refused_before_opening(tmp_path, monkeypatch):
    path = write_xlsx(tmp_path / "zip.xlsx", HEADER.strip().split(","), [ROW])
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("xl/media/padding.bin", b"\0" * 3_000_000, compress_type=zipfile.ZIP_DEFLATED)  # deflates to a few kB
    assert path.stat().st_size < 20_000
    monkeypatch.setattr(pd, "read_excel", lambda *a, **k: pytest.fail("opened"))
    with pytest.raises(InputFileError, match=r"expands \(its zip members' declared sizes\) to bytes 3,00\d,\d{3}, above the 1,000,000 max bytes"):
        read_table(path, limits=ReadLimits(max_bytes=1_000_000))


@pytest.mark.parametrize("sheet, message", [
    ('<dimension ref="A1:XFD1048576"/><sheetData><row r="1"><c t="inlineStr"><is><t>patent_id</t></is></c></row></sheetData>',
     r"declares its sheet as A1:XFD1048576 \(1,048,576 rows × 16,384 columns\).*Fix: save the sheet again"),
    ('<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>patent_id</t></is></c></row><row r="3000"><c r="XFD3000"/></row></sheetData>',
     r"spans cells \(rows × columns, 2,999 × 16,384\) 49,135,616, above the 5,000,000 max cells"),
])
def test_a_sheet_padded_to_millions_of_cells_is_refused(tmp_path, sheet, message):
    path = write_xlsx(tmp_path / "wide.xlsx", ["patent_id"], [])
    with zipfile.ZipFile(path) as archive:
        parts = {n: archive.read(n) for n in archive.namelist()}
    parts["xl/worksheets/sheet1.xml"] = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + sheet + "</worksheet>").encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    with pytest.raises(InputFileError, match=message):
        scan_xlsx(path, 0, UPLOAD_LIMITS)


def test_scan_finds_the_sheet_by_name_and_number_and_returns_its_merged_ranges(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "封面"
    sheet = book.create_sheet("专利")
    sheet.append(["公开(公告)号", "申请人"])
    sheet.append(["CN1", "甲"])
    sheet.merge_cells("B2:B3")
    book.save(tmp_path / "two.xlsx")
    assert scan_xlsx(tmp_path / "two.xlsx", "专利") == scan_xlsx(tmp_path / "two.xlsx", 1) == ["B2:B3"]
    assert scan_xlsx(tmp_path / "two.xlsx", 0) == []
    with pytest.raises(InputFileError, match=r"Worksheet '目录' not found.*Fix: pass the sheet's name or number"):
        read_table(tmp_path / "two.xlsx", sheet_name="目录")


@pytest.mark.parametrize("content, message", [
    (b"PAR1 this is not parquet PAR1", r"cannot be read as a Parquet file \(.*Fix: write it again with pandas"),
    (None, r"column 'applicants' has type list<element: string>, which a patent table cannot hold"),
    ("truncated", r"cannot be read as a Parquet file"),
])
def test_a_bad_parquet_upload_is_an_input_error_not_a_crash(tmp_path, content, message):
    # F11: a bad Parquet upload was a 500
    path = tmp_path / "upload.parquet"
    frame = pd.DataFrame({"patent_id": ["CN1"], "jurisdiction": ["CN"], "patent_type": ["invention"], "filing_date": ["2020-01-01"]})
    if content is None:
        frame.assign(applicants=[["甲", "乙"]]).to_parquet(path)
    elif content == "truncated":
        frame.to_parquet(path)
        path.write_bytes(path.read_bytes()[:-40])
    else:
        path.write_bytes(content)
    with pytest.raises(InputFileError, match=message):
        read_patents(path)


@pytest.mark.parametrize("encoding", ["x", "base64", "zlib", 5])
def test_an_unknown_encoding_is_an_input_error_naming_it(tmp_path, encoding):
    # F11: read_register(..., encoding="x") was a LookupError (500)
    with pytest.raises(InputFileError, match=rf"The 'encoding' of book.csv must be the name of a text encoding. Got {encoding!r}. Fix: use utf-8, gbk"):
        read_patents(_csv(tmp_path / "book.csv", 2), encoding=encoding)


def test_default_limits_hold_a_collateral_book():
    assert (DEFAULT_LIMITS.max_rows, UPLOAD_LIMITS.max_rows) == (1_000_000, 100_000)
    assert UPLOAD_LIMITS.max_bytes >= 10 * 20_000_000  # the service's 20 MB body, decompressed 10x


def test_state_files_are_created_0600_and_folders_0700_whatever_the_umask(tmp_path):
    # F15: the audit database and uploads were world-readable
    old = os.umask(0o022)
    try:
        folder = private_folder(tmp_path / "state" / "uploads")
        with open_private(folder / "upload.csv", "xb") as fh:
            fh.write(b"a,b\n")
        with open_private(folder / "log.jsonl") as fh:
            fh.write("line\n")
        written = write_bytes_atomic(b"%PDF", folder / "report.pdf")
        html = write_text_atomic("<html>", folder / "report.html")
        parquet = write_atomic(pd.DataFrame({"a": [1]}), folder / "valid.parquet")
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in (folder / "upload.csv", folder / "log.jsonl", written, html, parquet)] == [0o600] * 5
    assert [stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "state", folder)] == [0o700] * 2
    with pytest.raises(FileExistsError):
        open_private(folder / "upload.csv", "xb")
    with pytest.raises(ValueError, match="The 'mode' of open_private must be one of a, w, x"):
        open_private(folder / "x", "r")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_read_limits_are_whole_numbers_of_at_least_one(bad):
    with pytest.raises(ValueError, match=r"The 'max_rows' of ReadLimits must be a whole number >= 1. Got"):
        ReadLimits(max_rows=bad)


@pytest.mark.parametrize("header, sep", [("patent_id\\rjurisdiction", ","), ("patent_id", ","), ("a;b;c", ";"), ("a\\tb", "\\t"), ("a|b", "|"), ("a,b", ",")])
def test_the_delimiter_is_one_a_csv_export_uses(tmp_path, header, sep):
    """A one-column header made the sniffer pick a letter or a line break (score then exited 70)."""
    from ipvalue.io.tables import sniff_delimiter

    path = tmp_path / "book.csv"
    path.write_bytes((header.encode().decode("unicode_escape") + "\\n1\\n").encode())
    assert sniff_delimiter(path, "utf-8") == sep.encode().decode("unicode_escape")


@pytest.mark.parametrize("content", [b"\n", b"\r\n\r\n", b"\n\n\n"])
def test_a_file_of_blank_lines_is_an_empty_input_not_a_crash(tmp_path, content):
    from ipvalue.exceptions import EmptyInputError

    (tmp_path / "blank.csv").write_bytes(content)
    with pytest.raises(EmptyInputError, match=r"blank.csv holds no header row \(only blank lines\)"):
        read_patents(tmp_path / "blank.csv")
