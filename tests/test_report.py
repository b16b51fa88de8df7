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
    paths = write_reports(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([paths["html"].name, paths["json"].name])
    payload = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert payload["valuation_id"] == result.valuation_id
    assert payload["summary"]["loan_cap_rmb"] == pytest.approx(result.summary["loan_cap_rmb"])
    assert len(payload["checks"]) == len(result.checks) and payload["overrides"][0]["officer"] == "张经理"


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
    path = write_reports(result, tmp_path)["html"]
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
        driver.save_screenshot(str(tmp_path / "report.png"))  # kept out of the repository
    finally:
        driver.quit()
