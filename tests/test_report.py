"""The valuation report: self-contained HTML that renders in Chromium with its key parts visible;
JSON for the loan system."""

import json
import os
import re
import shutil

import pytest

from ipvalue.report import render_html, write_reports
from ipvalue.lending import LoanApplication, value_application

pytestmark = pytest.mark.filterwarnings("ignore")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def result(make_application):
    raw = make_application(overrides=[{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.005, "reason": "产品毛利低于行业", "officer": "张经理"}])
    return value_application(LoanApplication.from_dict(raw), user="tester")


def test_html_is_self_contained_and_bilingual(result):
    html = render_html(result)
    assert not re.search(r'(src|href)="https?://', html), "the report must not load anything from the network"
    assert html.count('src="data:image/png;base64,') == 3
    for text in ("内部评估价值 Internal value", "准入检查 Eligibility checks", "风险分担 Risk sharing", "溯源 Provenance", "产品毛利低于行业"):
        assert text in html
    for key in ("assumption_set_hash", "feature_spec_hash", "input_hash", "ipvalue_version", "value_model"):
        assert f">{key}</th>" in html


def test_reports_are_written_atomically_with_matching_json(result, tmp_path):
    paths = write_reports(result, tmp_path, pdf=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([paths["html"].name, paths["json"].name])
    payload = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert payload["valuation_id"] == result.valuation_id
    assert payload["summary"]["loan_cap_rmb"] == pytest.approx(result.summary["loan_cap_rmb"])
    assert len(payload["checks"]) == len(result.checks) and payload["overrides"][0]["officer"] == "张经理"


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_in_chromium_with_key_elements_visible(result, tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
    except ImportError:
        selenium_missing = True
    else:
        selenium_missing = False
    if not (CHROMIUM and CHROMEDRIVER) or selenium_missing:
        message = "Chromium check skipped: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and the test extra (selenium)"
        if os.environ.get("IPVALUE_REQUIRE_CHROMIUM"):
            pytest.fail(message)
        pytest.skip(message)
    path = write_reports(result, tmp_path, pdf=False)["html"]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(path.resolve().as_uri())
        for element_id in ("decision", "summary-table", "internal-value", "loan-cap", "patents-table", "checks-table", "risk-table",
                           "reasons-table" if len(result.reasons) else "points-table", "overrides-table", "provenance-table"):
            element = driver.find_element(By.ID, element_id)
            element.location_once_scrolled_into_view  # noqa: B018 - scroll it into view
            assert element.is_displayed(), f"#{element_id} is not visible"
        assert "eligible" in driver.find_element(By.ID, "decision").text
        for chart in ("chart-cashflows", "chart-distribution", "chart-drivers"):
            img = driver.find_element(By.ID, chart)
            assert img.is_displayed() and driver.execute_script("return arguments[0].naturalWidth", img) > 100, chart
        assert driver.find_element(By.ID, "internal-value").text.replace(",", "").isdigit()
        # Chinese text is drawn with a CJK face, not boxes: the platform font Chromium used for a title
        driver.execute_cdp_cmd("DOM.enable", {})
        driver.execute_cdp_cmd("CSS.enable", {})
        root = driver.execute_cdp_cmd("DOM.getDocument", {})["root"]["nodeId"]
        for selector in ("#section-purpose h2", "#section-scope td"):
            node = driver.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
            fonts = driver.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
            assert any("CJK" in f["familyName"] for f in fonts), f"{selector} rendered with {fonts}: install fonts-noto-cjk"
        driver.save_screenshot(str(tmp_path / "report.png"))  # kept out of the repository
    finally:
        driver.quit()


SECTIONS = ["purpose", "value-type", "valuation-date", "basis", "assumptions", "scope", "methods", "parameters",
            "sensitivity", "special-matters", "validity", "limits", "sign-off"]
TITLES = ["评估目的", "价值类型及定义", "评估基准日", "评估依据", "评估假设", "评估对象与范围", "评估方法选择及理由", "参数表",
          "各方法结果及调和", "敏感性分析", "处置分析", "准入检查", "特别事项说明", "评估结论有效期及重估触发", "使用限制", "签署"]


def test_the_internal_report_has_every_section_in_html_and_json(result, tmp_path):
    html = render_html(result)
    for sid in SECTIONS:
        assert f'<section id="section-{sid}">' in html, sid
    for title in TITLES:
        assert title in html, title
    for table in ("scope-table", "method-choice-table", "assumption-parameters-table", "sensitivity-table", "signoff-table", "documents-table"):
        assert f'<table id="{table}">' in html, table
    assert "SYN-PJBG-2026-002" in html and "discount_rate" in html  # the 评价报告 in the scope table; the discount-rate build-up in the parameters
    payload = json.loads(write_reports(result, tmp_path, pdf=False)["json"].read_text(encoding="utf-8"))
    assert [s["id"] for s in payload["report"]] == SECTIONS
    assert payload["report"][0]["title_zh"] == "评估目的"


def test_special_matters_name_the_co_owner_and_the_sign_off_block_the_reviewer(make_application):
    raw = make_application(review={"reviewer": "李复核", "reason": "方法差异已核"})
    raw["patents"]["records"][0]["applicants"] = raw["borrower"] + ";合成示例理工大学"
    raw["documents"].append({"patent_id": "SYN-CN-T001", "kind": "co_owner_consent", "co_owner": "合成示例理工大学", "reference": "SYN-同意书-001"})
    html = render_html(value_application(LoanApplication.from_dict(raw), user="王评估"))
    special = html[html.index('id="section-special-matters"'):html.index('id="section-validity"')]
    assert "合成示例理工大学" in special and "专利法第14条" in special
    signoff = html[html.index('id="section-sign-off"'):]
    assert "王评估" in signoff


@pytest.mark.slow
def test_the_pdf_embeds_a_cjk_font_and_its_text_layer_holds_the_chinese_titles(result, tmp_path):
    import subprocess

    if not (shutil.which("pdftotext") and shutil.which("pdffonts")):
        message = "PDF check skipped: install poppler-utils and fonts-noto-cjk"
        if os.environ.get("IPVALUE_REQUIRE_CHROMIUM"):
            pytest.fail(message)
        pytest.skip(message)
    pdf = write_reports(result, tmp_path, pdf=True)["pdf"]
    assert pdf.read_bytes().startswith(b"%PDF")
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"CJK\S*\s.*\byes\s+yes\b", fonts), fonts  # a CJK face, embedded (subset)
    text = re.sub(r"\s", "", subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout)
    for title in TITLES:
        assert title in text, title
