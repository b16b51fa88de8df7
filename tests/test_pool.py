"""Pool analytics and monitoring alerts on a hand-built book."""

import pandas as pd
import pytest

from ipvalue.frame import validate_patent_frame
from ipvalue.pool import monitoring_alerts, pool_summary

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def book():
    raw = pd.DataFrame({
        "patent_id": [f"CN{i}" for i in range(1, 8)],
        "jurisdiction": "CN",
        "patent_type": ["invention", "invention", "utility_model", "utility_model", "design", "invention", "invention"],
        "filing_date": ["2018-01-01"] * 5 + ["2005-01-01", "2018-01-01"],
        "grant_date": ["2020-01-01"] * 5 + ["2008-01-01", "2020-01-01"],
        "legal_status": ["in_force", "in_force", "in_force", "lapsed", "in_force", "in_force", "in_force"],
        "fees_paid_until": ["2027-01-01", "2026-07-20", "2026-03-01", None, "2027-01-01", "2027-01-01", "2027-01-01"],
        "ipc_main": ["H04L 29/06", "H04L 29/06", "A61K 31/00", "B23K 26/00", "G06F 3/00", "C08L 23/00", "H01M 10/05"],
        "applicants": ["甲公司", "甲公司", "乙公司", "乙公司", "丙公司", "丁公司", "戊公司"],
    })
    frame = validate_patent_frame(raw).valid
    frame["loan_end_date"] = ["2027-12-31"] * 5 + ["2026-12-31", "2030-01-01"]
    return frame


@pytest.fixture
def scored():
    return pd.DataFrame({"patent_id": [f"CN{i}" for i in range(1, 7)], "value_p50_rmb": [4e6, 2e6, 1e6, 5e5, 3e5, 2e5]})


def test_pool_tables(book, scored, data_dir):
    t = pool_summary(book, scored, valuation_date="2026-06-30")
    o = t["overview"].iloc[0]
    assert (o["patents"], o["scored_patents"], o["unscored_patents"], o["borrowers"]) == (7, 6, 1, 4)  # 戊公司 has no score
    # CN4 lapsed and CN6 expired (filed 2005, 20-year term): no collateral, 0 in the pool whatever the model said
    assert o["not_in_force_patents_at_zero"] == 2
    assert o["total_value_rmb"] == 8e6 - 5e5 - 2e5 and o["median_value_rmb"] == (3e5 + 1e6) / 2
    b = t["top_borrowers"]
    assert b["borrower"].tolist()[:2] == ["甲公司", "乙公司"] and b["share_of_value"].iloc[0] == pytest.approx(6e6 / 7.3e6)
    assert o["top5_borrower_share"] == pytest.approx(1.0)
    types = t["by_patent_type"].set_index("patent_type")
    assert types.loc["invention", "value_rmb"] == 6e6 and types.loc["utility_model", "patents"] == 2
    assert t["top_industries"]["industry"].iloc[0] == "Electrical engineering"
    assert t["top_industries"]["share_of_value"].iloc[0] == pytest.approx(6.3e6 / 7.3e6)  # H04L and G06F
    bands = t["value_bands"].set_index("value_band")["patents"]
    assert bands.to_dict() == {"<50万": 3, "50-100万": 0, "100-500万": 3, "500-1000万": 0, "≥1000万": 0}
    assert t["grades"]["patents"].sum() == 6


def test_missing_value_column_is_a_clear_error(book, scored):
    with pytest.raises(ValueError, match=r"no column 'value_p90_rmb'. Fix: pass value_column="):
        pool_summary(book, scored, value_column="value_p90_rmb", valuation_date="2026-06-30")


def test_alerts_of_each_kind(book, scored):
    previous = scored.assign(value_p50_rmb=[4e6, 4e6, 1e6, 5e5, 3e5, 2e5])
    a = monitoring_alerts(book, as_of="2026-06-30", scored=scored, previous=previous, fee_due_days=60, value_drop=0.2)
    got = sorted(zip(a["patent_id"], a["alert"]))
    assert got == sorted([
        ("CN2", "fee_due"),            # paid to 2026-07-20: due in 20 days
        ("CN2", "value_drop"),         # 4M -> 2M
        ("CN3", "fee_overdue"),        # paid only to 2026-03-01, within the 183-day grace: still in force
        ("CN4", "status"),             # lapsed
        ("CN6", "status"),             # filed 2005: term over in 2025
    ])
    assert a.set_index(["patent_id", "alert"]).loc[("CN2", "value_drop"), "detail"] == "value 4,000,000 -> 2,000,000 RMB (-50%)"


def test_life_ending_before_the_loan_is_flagged(book):
    b = book.copy()
    b.loc[b["patent_id"] == "CN7", "loan_end_date"] = "2038-06-01"  # CN7 expires 2038-01-01
    a = monitoring_alerts(b, as_of="2026-06-30")
    assert ("CN7", "life_before_loan_end") in set(zip(a["patent_id"], a["alert"]))


def test_the_pool_workbook_has_typed_formatted_tables_with_chinese_headings(book, scored, tmp_path):
    from openpyxl import load_workbook

    from ipvalue.pool import readable_tables, write_pool_workbook

    tables = pool_summary(book, scored, valuation_date="2026-06-30")
    alerts = monitoring_alerts(book, as_of="2026-06-30")
    path = write_pool_workbook(readable_tables(tables, alerts), tmp_path / "pool.xlsx", notes=[("基准日 As of", "2026-06-30")])
    wb = load_workbook(path)
    assert wb.sheetnames == ["概览 Overview", "按专利类型 By patent type", "前五大借款人 Top 5 borrowers", "前三大技术部门 Top 3 sectors",
                             "价值区间 Value bands", "评级分布 Grades", "监控预警 Alerts", "说明 About"]
    for sheet in wb.worksheets:
        assert sheet.freeze_panes == "A2"
    overview = {r[0].value: r[1] for r in wb["概览 Overview"].iter_rows(min_row=2)}
    total = overview["总价值（元） Total value (RMB)"]
    assert total.data_type == "n" and total.value == pytest.approx(7.3e6) and total.number_format == "#,##0"
    share = overview["前五大借款人集中度 Top-5 borrower share"]
    assert share.value == pytest.approx(1.0) and share.number_format == "0.0%"
    assert overview["借款人数 Borrowers"].value == 4 and overview["借款人数 Borrowers"].number_format == "#,##0"
    types = wb["按专利类型 By patent type"]
    assert [c.value for c in types[1]] == ["专利类型 Patent type", "专利数 Patents", "价值（元） Value (RMB)", "价值占比 Share of value"]
    rows = {r[0].value: r for r in types.iter_rows(min_row=2)}
    assert rows["发明 invention"][2].value == 6e6 and rows["发明 invention"][3].number_format == "0.0%"
    assert {r[1].value for r in wb["监控预警 Alerts"].iter_rows(min_row=2)} >= {"权利终止 right ended", "年费逾期 fee overdue"}


def test_printed_tables_show_no_scientific_notation():
    from ipvalue.pool import format_table, readable_tables

    tables = {"overview": pd.DataFrame([{"patents": 3, "total_value_rmb": 5.123506e8, "top5_borrower_share": 0.123456}]),
              "by_patent_type": pd.DataFrame({"patent_type": ["invention"], "patents": [3], "value_rmb": [5.123506e8], "share_of_value": [1.0]})}
    readable = readable_tables(tables)
    overview = format_table(readable["overview"]).to_string(index=False)
    assert "512,350,600" in overview and "12.3%" in overview and "e+" not in overview
    types = format_table(readable["by_patent_type"])
    assert types.iloc[0].tolist() == ["发明 invention", "3", "512,350,600", "100.0%"]


def test_the_pool_command_writes_a_workbook_and_alerts_excel_reads(book, scored, tmp_path, capsys):
    import csv

    from ipvalue.cli import main

    book.drop(columns=["loan_end_date"]).to_csv(tmp_path / "book.csv", index=False)
    scored.to_parquet(tmp_path / "scored.parquet")
    assert main(["pool", str(tmp_path / "book.csv"), "--scored", str(tmp_path / "scored.parquet"), "--as-of", "2026-06-30", "--out", str(tmp_path / "pool")]) == 1
    out = capsys.readouterr().out
    assert "总价值（元） Total value (RMB)" in out and "e+0" not in out and "pool.xlsx" in out
    assert (tmp_path / "pool" / "alerts.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    with open(tmp_path / "pool" / "alerts.csv", encoding="utf-8-sig", newline="") as fh:
        alerts = list(csv.DictReader(fh))
    assert list(alerts[0]) == ["patent_id", "alert", "severity", "detail"] and {a["alert"] for a in alerts} >= {"status", "fee_overdue"}
    assert (tmp_path / "pool" / "pool.xlsx").exists() and (tmp_path / "pool" / "pool_summary.json").exists()
