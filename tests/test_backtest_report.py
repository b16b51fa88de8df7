"""The calibration's back-test report: addressable sections of the report data model (Chinese first,
English beside), its charts (values against deal prices and appraisals, the P10 coverage, losses
against the cap, overrides by branch and officer over time), rendered in Chromium and printed to
a PDF whose text layer holds both languages."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest

from ipvalue.calibration import PilotTruth, load_ledger, make_pilot_ledger, write_ledger
from ipvalue.calibration.backtest import run_backtest
from ipvalue.calibration.estimate import SetsInUse, Settings
from ipvalue.calibration.report import backtest_report, write_backtest_report
from ipvalue.config import load_yaml
from ipvalue.report import Report, render_html
from tests.conftest import PDF_ENGINES, pdf_font_problems, printing_with, require_or_skip

pytestmark = pytest.mark.filterwarnings("ignore")

CHARTS = ("chart-values-vs-deals", "chart-values-vs-appraisals", "chart-p10-coverage", "chart-losses-vs-cap", "chart-override-frequency",
          "chart-override-size", "chart-override-drift")
TITLES = ("校准回测报告", "回测结论", "估值与成交价、外部评估值", "处置视角P10覆盖率", "损失与可贷上限", "人工调整：按分行、客户经理与时间", "系数估计")
TITLES_EN = ("Calibration back-test report", "Values against deal prices and external appraisals", "Coverage of the disposal view's P10",
             "Losses against the cap", "Overrides by branch, officer and time")


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ledger")
    write_ledger(make_pilot_ledger(PilotTruth(), seed=0), folder)
    ledger = load_ledger(folder, as_of=PilotTruth().as_of)
    raw, _ = load_yaml("calibration-cn")
    raw["interval"]["draws"]["value"] = 400
    return ledger, run_backtest(ledger, SetsInUse.load(), Settings.load(raw), seed=0)


@pytest.fixture(scope="module")
def report(backtest):
    ledger, bt = backtest
    return backtest_report(ledger, bt, run_id="RUN-T", settings_name="calibration-cn-v1")


def test_the_report_holds_the_back_test_as_sections_tables_and_chart_data(backtest, report):
    ledger, bt = backtest
    assert report.ids == ["conclusion", "accuracy", "coverage", "losses", "overrides", "coefficients", "provenance", "overrides-by-officer"]
    assert report.meta["passed"] == all(bt.gates.values()) and report.meta["split_date"] == str(bt.split_date.date())
    assert [c.id for s in report.sections for c in s.charts] == list(CHARTS)
    deals = report.select("accuracy").charts[0]
    observed = bt.tables["values"]["deal_price_rmb"].notna().sum()
    assert deals.kind == "scatter" and [len(s["x"]) for s in deals.series] == [observed, observed]
    accuracy = {r["metric_en"]: r for r in report.select("accuracy").tables[0].rows}
    summary = bt.summary.set_index("metric")
    bias = accuracy["bias against deal prices (median log ratio)"]
    assert bias["before"] == pytest.approx(summary.at["bias vs deal prices", "before"]) and bias["after"] == pytest.approx(summary.at["bias vs deal prices", "after"])
    assert bias["metric_zh"] == "偏差：对成交价（对数比中位数）" and len(accuracy) == 6
    coverage = report.select("coverage").tables[0].rows
    assert [r["beaten"] for r in coverage] == [int(bt.tables["coverage"]["beaten_before"].sum()), int(bt.tables["coverage"]["beaten_after"].sum())]
    assert coverage[1]["low"] <= coverage[1]["share"] <= coverage[1]["high"]
    drift = report.select("overrides").charts[2]
    assert drift.kind == "barh" and PilotTruth().drifting_officer in drift.series[0]["x"]
    assert f"Officers drifting upward: {PilotTruth().drifting_officer}" in " ".join(en for _, en in report.select("overrides").paragraphs)
    assert any("SYNTHETIC" in en for _, en in report.select("conclusion").paragraphs)  # a synthetic ledger says so
    again = Report.from_dict(json.loads(report.to_json()))  # the JSON carries every section, table and chart
    assert again.ids == report.ids and again.select("coverage").charts[0].series == report.select("coverage").charts[0].series
    assert not np.isnan(json.loads(report.to_json())["sections"][1]["tables"][0]["rows"][0]["after"])


def test_the_html_is_self_contained_bilingual_and_renders_in_chromium(report, chromium, tmp_path):
    from selenium.webdriver.common.by import By

    html = render_html(report)
    assert not re.search(r'(src|href)="https?://', html) and html.count('src="data:image/svg+xml;base64,') == len(CHARTS)
    for zh, en in (("回测结论", "Conclusion"), ("损失与可贷上限", "Losses against the cap")):
        assert f"{zh} <span class=\"en\">{en}</span>" in html
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    chromium.get(path.as_uri())
    for element_id in ("verdict", "gates-table", "accuracy-table", "coverage-table", "losses-table", "overrides-by-branch-table", "override-drift-table",
                       "coefficients-table", "provenance-table"):
        element = chromium.find_element(By.ID, element_id)
        element.location_once_scrolled_into_view  # noqa: B018 - scroll it into view
        assert element.is_displayed(), element_id
    assert "every gate passed" in chromium.find_element(By.ID, "verdict").text or "a gate failed" in chromium.find_element(By.ID, "verdict").text
    for chart in CHARTS:
        img = chromium.find_element(By.ID, chart)
        img.location_once_scrolled_into_view  # noqa: B018
        assert img.is_displayed() and chromium.execute_script("return arguments[0].naturalWidth", img) > 100, chart
    chromium.execute_cdp_cmd("DOM.enable", {})
    chromium.execute_cdp_cmd("CSS.enable", {})
    root = chromium.execute_cdp_cmd("DOM.getDocument", {})["root"]["nodeId"]
    node = chromium.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": "#section-coverage h2"})["nodeId"]
    fonts = chromium.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    assert any("CJK" in f["familyName"] for f in fonts), fonts


@pytest.mark.slow
@pytest.mark.parametrize("engine", PDF_ENGINES)
def test_the_pdf_text_layer_holds_the_chinese_and_english_titles(report, tmp_path, engine):
    with printing_with(engine):
        paths = write_backtest_report(report, tmp_path, pdf=True)
    assert paths["pdf"].read_bytes().startswith(b"%PDF") and json.loads(paths["json"].read_text(encoding="utf-8"))["title_en"] == TITLES_EN[0]
    assert pdf_font_problems(paths["pdf"]) == []
    text = subprocess.run(["pdftotext", str(paths["pdf"]), "-"], capture_output=True, text=True, check=True).stdout
    flat = re.sub(r"\s", "", text)
    for title in TITLES:
        assert title in flat, title
    for title in TITLES_EN:
        assert re.sub(r"\s", "", title) in flat, title
