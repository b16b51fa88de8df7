"""The officers' and reviewers' page: the complete application form (every field the CLI reads,
all problems at once in Chinese with English beside, entered values kept), the work queues, the
decision page, and two browser walks in Chromium (sign-in to an eligible decision with the CLI's
figures; a reviewer's queue to a sign-off)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import requests

from ipvalue.audit import add_user
from ipvalue.cli import main
from ipvalue.service.pages import application_from_form
from tests.conftest import synthetic_application, synthetic_patent
from tests.test_service import Server, upload

pytestmark = pytest.mark.filterwarnings("ignore")
OWNER = "页面表单测试科技有限公司"  # a borrower of this module's own (the exposure check reads the store)


def entered(**fields):
    base = {"application_id": "SYN-APP-F1", "borrower": OWNER, "requested_amount_rmb": "1,200,000", "term_years": "2", "valuation_date": "2026-06-30",
            "revenue_mode": "growth", "revenue_base_rmb": "40,000,000", "revenue_growth": "5", "tax_rate": "0.15", "wacc": "7.5",
            "rd_cost_rmb": "3,000,000", "rd_cost_year": "2022", "upload_id": "abc.csv", "comparables_upload": "def.csv", "risk_sharing": "5311"}
    return {"fields": {**base, **fields}, "ids": ["SYN-CN-T001"], "registered_pledges": [],
            "documents": [{"row": 0, "patent_id": "SYN-CN-T001", "kind": "fee_prepayment", "reference": "R1", "co_owner": "", "paid_until": "2029-07-01"}],
            "overrides": [], "schedule": [""] * 10,
            "financials": [{"year": "2023", "revenue_rmb": "36,000,000", "operating_margin": "7"}, {"year": "", "revenue_rmb": "", "operating_margin": ""}]}


def test_the_form_becomes_the_clis_application_rates_in_percent_amounts_with_separators():
    raw, problems = application_from_form(entered(), ["SYN-CN-T001", "SYN-CN-T002"])
    assert problems == []
    assert raw["requested_amount_rmb"] == 1_200_000 and raw["revenue_forecast"] == {"base_rmb": 40_000_000, "growth": 0.05}
    assert raw["wacc"] == 0.075 and raw["tax_rate"] == 0.15 and raw["rd_cost"] == {"rmb": 3_000_000, "year": 2022}
    assert raw["financials"] == [{"year": 2023, "revenue_rmb": 36_000_000, "operating_margin": 0.07}]
    assert raw["documents"] == [{"patent_id": "SYN-CN-T001", "kind": "fee_prepayment", "reference": "R1", "paid_until": "2029-07-01"}]
    assert raw["patents"] == {"file": "abc.csv", "ids": ["SYN-CN-T001"]} and raw["comparables"] == "def.csv"


def test_a_tax_rate_outside_the_choice_list_is_a_problem_not_the_default():
    raw, problems = application_from_form(entered(tax_rate="0.05"), ["SYN-CN-T001"])
    assert [(p.field, p.zh) for p in problems] == [("tax_rate", "请从列表中选择税率")] and "tax_rate" not in raw
    raw, problems = application_from_form(entered(tax_rate=""), ["SYN-CN-T001"])
    assert problems == [] and "tax_rate" not in raw  # left blank: the assumption set's rate


def test_every_problem_of_a_form_is_named_at_once_in_chinese_with_english_beside():
    bad = entered(requested_amount_rmb="1,0,0", term_years="", revenue_growth="250", wacc="abc", rd_cost_year="", valuation_date="2026-13-40")
    bad["ids"] = []
    bad["documents"].append({"row": 1, "patent_id": "SYN-CN-T001", "kind": "co_owner_consent", "reference": "", "co_owner": "", "paid_until": ""})
    raw, problems = application_from_form(bad, ["SYN-CN-T001"])
    fields = [p.field for p in problems]
    assert fields == ["requested_amount_rmb", "term_years", "valuation_date", "ids", "revenue_growth", "wacc", "rd_cost_year",
                      "doc_patent_id_0", "doc_patent_id_1", "doc_reference_1", "doc_co_owner_1"]
    by = {p.field: p for p in problems}
    assert by["requested_amount_rmb"].zh.startswith("“1,0,0”不是数字") and by["term_years"].zh == "必填" and by["term_years"].en == "required"
    assert by["revenue_growth"].zh == "须不小于 -50 %、不大于 100 %；收到 250" and by["revenue_growth"].en == "must be at least -50 % and at most 100 %; got 250"
    assert by["requested_amount_rmb"].label == ("申请金额（元）", "requested amount (RMB)") and by["doc_co_owner_1"].label == ("证明材料", "supporting documents")
    assert all(p.label[0] and "_" not in p.label[1] for p in problems)  # every field named as the form labels it
    assert all(re.search(r"[\u4e00-\u9fff]", p.zh) for p in problems)
    assert not any("str is not" in p.en or "_rmb" in p.en for p in problems)


# --- over HTTP ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("pages"))
    yield s
    s.stop()


def signed_in(server, role="officer") -> requests.Session:
    browser = requests.Session()
    browser.headers["Origin"] = server.url
    r = browser.post(server.url + "/ui/login", data={"token": server.tokens[role]}, allow_redirects=False, timeout=30)
    assert r.status_code == 303
    return browser


def export(tmp_path: Path) -> Path:
    patents = [synthetic_patent(1, applicants=OWNER), synthetic_patent(2, patent_type="utility_model", filing_date="2021-01-01", publication_date="2021-08-01",
                                                                      grant_date="2021-08-01", applicants=OWNER)]
    pd.DataFrame(patents).to_csv(tmp_path / "incopat-export.csv", index=False)
    return tmp_path / "incopat-export.csv"


def test_a_bad_submission_lists_every_problem_and_keeps_what_was_entered(server, tmp_path):
    browser = signed_in(server)
    with open(export(tmp_path), "rb") as f:
        form = browser.post(server.url + "/ui/upload", files={"file": ("incopat-export.csv", f)}, timeout=60)
    assert form.status_code == 200 and "SYN-CN-T001" in form.text and OWNER in form.text
    upload_id = re.search(r'name="upload_id" value="([^"]+)"', form.text).group(1)
    data = {"upload_id": upload_id, "upload_name": "incopat-export.csv", "ids": ["SYN-CN-T002"], "application_id": "SYN-APP-BAD", "borrower": OWNER,
            "requested_amount_rmb": "1,0,0", "term_years": "", "valuation_date": "2026-06-30", "revenue_mode": "growth", "revenue_base_rmb": "40,000,000",
            "revenue_growth": "250", "doc_kind_0": "fee_prepayment", "doc_patent_id_0": "SYN-CN-T002", "doc_reference_0": "FEE-2", "action": "value"}
    with open(comparables(tmp_path, 1_000_000), "rb") as f:
        r = browser.post(server.url + "/ui/valuations", data=data, files={"comparables_file": ("comparables.csv", f)}, timeout=60)
    assert r.status_code == 422
    assert "请修改以下 4 处" in r.text and "Please correct 4 item(s)" in r.text
    for text in ("申请金额（元）", "“1,0,0”不是数字", "贷款期限（年）", "必填", "须不小于 -50 %、不大于 100 %；收到 250", "第 1 行"):
        assert text in r.text, text
    assert 'value="1,0,0"' in r.text and 'value="40,000,000"' in r.text and 'value="FEE-2"' in r.text
    assert re.search(r'name="ids" value="SYN-CN-T002" id="pick-2" checked', r.text) and not re.search(r'value="SYN-CN-T001" id="pick-1" checked', r.text)
    assert "str is not" not in r.text
    assert "已上传 uploaded: comparables.csv" in r.text and re.search(r'name="comparables_upload" value="[0-9a-f]{32}\.csv"', r.text)  # the file stays chosen


def test_an_application_file_is_valued_with_the_files_it_names(server, tmp_path):
    browser = signed_in(server)
    raw = synthetic_application(application_id="SYN-APP-FILE", borrower=OWNER, patents={"file": "incopat-export.csv", "ids": ["SYN-CN-T001", "SYN-CN-T002"]},
                                documents=synthetic_application()["documents"])
    (tmp_path / "application.json").write_text(json.dumps(raw), encoding="utf-8")
    path = export(tmp_path)
    with open(tmp_path / "application.json", "rb") as a, open(path, "rb") as p:
        r = browser.post(server.url + "/ui/application-file", files=[("application", ("application.json", a)), ("attachments", ("incopat-export.csv", p))], timeout=120)
    assert r.status_code == 200 and "/ui/valuations/" in r.url, r.text[-2000:]
    assert 'data-decision="eligible"' in r.text and "符合内部评估质押条件" in r.text
    with open(tmp_path / "application.json", "rb") as a:
        missing = browser.post(server.url + "/ui/application-file", files=[("application", ("application.json", a))], timeout=120)
    import yaml

    text = yaml.safe_dump({**raw, "application_id": "SYN-APP-FILE-Y"}, allow_unicode=True).replace("'2026-06-30'", "2026-06-30")  # unquoted: a YAML date
    assert "valuation_date: 2026-06-30" in text
    with open(path, "rb") as p:
        r = browser.post(server.url + "/ui/application-file", files=[("application", ("application.yaml", text.encode())), ("attachments", ("incopat-export.csv", p))],
                         timeout=120)
    assert 'data-decision="eligible"' in r.text, re.sub(r"(?s).*<main>", "", r.text)[:1500]
    assert missing.status_code == 422 and "incopat-export.csv" in missing.text and "引用的文件未上传" in missing.text, re.sub(r"(?s).*<main>", "", missing.text)[:1500]


def test_each_user_lands_on_their_queue(server, tmp_path):
    officer = signed_in(server).get(server.url + "/ui", timeout=30)
    assert officer.status_code == 200 and "我的评估" in officer.text and 'id="file"' in officer.text
    reviewer = signed_in(server, "reviewer").get(server.url + "/ui", timeout=30)
    assert reviewer.status_code == 200 and "待我签批" in reviewer.text and 'id="file"' not in reviewer.text and "上传" not in reviewer.text
    other = signed_in(server, "officer-b")
    assert "SYN-APP-FILE" not in other.get(server.url + "/ui", timeout=30).text  # another branch's valuations are not listed


# --- in Chromium ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chrome():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium / chromedriver not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000", "--lang=zh-CN"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


class Page:
    """The page as a user drives it: sign in, fill by field id, choose, click, wait, screenshot."""

    def __init__(self, driver, url: str, shots: Path):
        from selenium.webdriver.common.by import By

        self.driver, self.url, self.shots, self.by = driver, url, shots, By

    def wait(self, element_id: str, timeout: float = 180):
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(ec.presence_of_element_located((self.by.ID, element_id)))

    def sign_in(self, token: str):
        self.driver.delete_all_cookies()
        self.driver.get(self.url + "/ui")
        self.wait("token").send_keys(token)
        self.driver.find_element(self.by.ID, "login").click()

    def fill(self, values: dict):
        for element_id, value in values.items():
            element = self.driver.find_element(self.by.ID, element_id)
            if element.get_attribute("type") == "date":  # a date input takes the date as its value (typing follows the browser's locale)
                self.driver.execute_script("arguments[0].value = arguments[1]", element, value)
            elif element.tag_name == "select":
                from selenium.webdriver.support.ui import Select

                Select(element).select_by_value(value)
            elif element.get_attribute("type") == "file":
                element.send_keys(str(value))
            else:
                element.clear()
                element.send_keys(value)

    def click(self, element_id: str):
        self.driver.find_element(self.by.ID, element_id).click()

    def shot(self, name: str) -> Path:
        """The whole page as a PNG (the window stretched to the page's height)."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1400, min(max(height + 140, 800), 8000))
        self.driver.execute_script("window.scrollTo(0, 0)")
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1400, 1000)
        return path


def comparables(folder: Path, price: float) -> Path:
    """The bank's comparable transfers of like inventions, priced near ``price``."""
    pd.DataFrame([{"transaction_id": f"SYN-TX-{i}", "date": "2025-12-31", "kind": "transfer", "price_rmb": round(price * k, -2), "patent_type": "invention",
                   "ipc_main": "G06F 16/00", "remaining_life_years": 12.0, "source": "SYNTHETIC"} for i, k in enumerate((0.9, 1.0, 1.1))]
                 ).to_csv(folder / "comparables.csv", index=False)
    return folder / "comparables.csv"


FINANCIALS = [{"year": 2023, "revenue_rmb": 34_550_000, "operating_margin": 0.07}, {"year": 2024, "revenue_rmb": 36_280_000, "operating_margin": 0.08},
              {"year": 2025, "revenue_rmb": 38_100_000, "operating_margin": 0.075}]
DOCUMENTS = synthetic_application()["documents"]


@pytest.mark.slow
@pytest.mark.browser
def test_an_officer_goes_from_sign_in_to_an_eligible_decision_with_the_clis_figures(server, chrome, tmp_path):
    page = Page(chrome, server.url, tmp_path)
    path = export(tmp_path)
    ids = ["SYN-CN-T001", "SYN-CN-T002"]
    # the bank's comparables, priced near the income approach's figure for the invention (so the methods agree)
    probe = server.post("/v1/valuations", synthetic_application(application_id="SYN-APP-PROBE", borrower=OWNER, requested_amount_rmb=10_000,
                                                               patents={"file": upload(server, path).json()["upload_id"], "ids": ids}, documents=DOCUMENTS))
    assert probe.status_code == 201, probe.text
    comparables(tmp_path, probe.json()["patents"][0]["market_value_rmb"])

    page.sign_in(server.tokens["officer"])
    page.wait("file")
    page.fill({"file": path})
    page.click("upload")
    page.wait("submit")
    for box in ("pick-1", "pick-2"):
        page.click(box)
    page.fill({"application_id": "SYN-APP-UI-A", "requested_amount_rmb": "150,000", "term_years": "2", "valuation_date": "2026-06-30",
               "purpose": "流动资金 working capital", "revenue_base_rmb": "40,000,000", "revenue_growth": "5", "tax_rate": "0.15", "wacc": "7.5",
               "rd_cost_rmb": "3,000,000", "rd_cost_year": "2022", "comparables_file": tmp_path / "comparables.csv", "risk_sharing": "5311"})
    for i, row in enumerate(FINANCIALS):
        page.fill({f"fin_year_{i}": str(row["year"]), f"fin_revenue_rmb_{i}": f"{row['revenue_rmb']:,}", f"fin_operating_margin_{i}": f"{100 * row['operating_margin']:g}"})
    for i, d in enumerate(DOCUMENTS):
        page.fill({f"doc_patent_id_{i}": d["patent_id"], f"doc_kind_{i}": d["kind"], f"doc_reference_{i}": d["reference"], **({f"doc_paid_until_{i}": d["paid_until"]} if "paid_until" in d else {})})
    page.shot("officer-form")
    page.click("submit")
    decision = page.wait("decision")
    page.shot("decision")
    assert decision.get_attribute("data-decision") == "eligible", re.sub(r"(?s).*<main>", "", chrome.page_source)[:3000]
    assert "符合内部评估质押条件" in decision.text
    assert {c.get_attribute("id") for c in chrome.find_elements(page.by.CSS_SELECTOR, "figure")} >= {"chart-value-chain", "chart-survival"}
    page_figures = {key: chrome.find_element(page.by.ID, key).text for key in ("market_value", "collateral_value", "cap")}

    # the same application through the CLI
    shutil.copy(path, tmp_path / "cli-export.csv")
    raw = {"application_id": "SYN-APP-UI-A", "borrower": OWNER, "requested_amount_rmb": 150_000, "term_years": 2, "purpose": "流动资金 working capital",
           "valuation_date": "2026-06-30", "patents": {"file": "cli-export.csv", "ids": ids}, "revenue_forecast": {"base_rmb": 40_000_000, "growth": 0.05},
           "financials": FINANCIALS, "tax_rate": 0.15, "wacc": 0.075, "rd_cost": {"rmb": 3_000_000, "year": 2022}, "comparables": "comparables.csv",
           "documents": DOCUMENTS, "risk_sharing": "5311"}
    (tmp_path / "application.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPVALUE_TOKEN", add_user("cli-officer", "officer", tmp_path / "cli-audit.db"))
        mp.delenv("IPVALUE_AUDIT_KEY_FILE", raising=False)
        assert main(["value", str(tmp_path / "application.json"), "--out", str(tmp_path / "reports"), "--audit-db", str(tmp_path / "cli-audit.db")]) == 0
    cli = json.loads(next((tmp_path / "reports").glob("*.json")).read_text(encoding="utf-8"))["summary"]
    vid = chrome.current_url.rsplit("/", 1)[-1]
    http = server.get(f"/v1/valuations/{vid}").json()
    assert http["methods"] and any(m["method"] == "market" for m in http["methods"])  # the comparables file was used
    figures = ("value_in_use_rmb", "market_value_rmb", "collateral_value_rmb", "loan_cap_rmb", "decision")
    assert {k: http["summary"][k] for k in figures} == {k: cli[k] for k in figures}
    assert page_figures == {"market_value": f"¥{cli['market_value_rmb']:,.0f}", "collateral_value": f"¥{cli['collateral_value_rmb']:,.0f}",
                            "cap": f"¥{cli['loan_cap_rmb']:,.0f}"}
    page.click("report")  # rendered after the decision page was answered, or on demand
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(chrome, 180).until(lambda d: "专利权质押内部评估报告" in d.page_source and "SYN-APP-UI-A" in d.page_source)


@pytest.mark.slow
@pytest.mark.browser
def test_a_reviewer_walks_the_queue_to_a_sign_off_and_the_officer_sees_it_eligible(server, chrome, tmp_path):
    page = Page(chrome, server.url, tmp_path)
    ids = ["SYN-CN-T001", "SYN-CN-T002"]
    patents = {"file": upload(server, export(tmp_path)).json()["upload_id"], "ids": ids}
    plain = server.post("/v1/valuations", synthetic_application(application_id="SYN-APP-UI-B0", borrower=OWNER, requested_amount_rmb=10_000, patents=patents,
                                                               documents=DOCUMENTS)).json()
    far = upload(server, comparables(tmp_path, 20 * plain["patents"][0]["market_value_rmb"])).json()["upload_id"]  # far above the income approach
    r = server.post("/v1/valuations", synthetic_application(application_id="SYN-APP-UI-B", borrower=OWNER, requested_amount_rmb=100_000, patents=patents,
                                                           documents=DOCUMENTS, comparables=far))
    assert r.status_code == 201 and r.json()["summary"]["decision"] == "review required", r.text

    page.sign_in(server.tokens["reviewer"])
    queue = page.wait("queue-awaiting")
    assert "待我签批" in queue.text and "SYN-APP-UI-B" in queue.text and not chrome.find_elements(page.by.ID, "file")  # no upload form for a reviewer
    page.shot("reviewer-queue")
    queue.find_element(page.by.LINK_TEXT, "SYN-APP-UI-B").click()
    assert page.wait("decision").get_attribute("data-decision") == "review required"
    assert "评估方法结果不一致" in page.wait("disagreement").text
    page.fill({"sign_off_reason": "可比交易为同类专利包整体转让，已核实 (SYNTHETIC)"})
    page.shot("sign-off")
    page.click("sign_off")
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    # the page is replaced while it is read (the sign-off posts, then the decision page loads): an element
    # of the old page is gone (missing, stale, or "does not belong to the document"); read again until the new one says so
    WebDriverWait(chrome, 180, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.find_element(page.by.ID, "decision").get_attribute("data-decision") == "eligible")
    assert "可比交易为同类专利包整体转让" in chrome.page_source and not chrome.find_elements(page.by.ID, "sign_off")
    chrome.get(server.url + "/ui")
    assert "SYN-APP-UI-B" not in page.wait("queue-awaiting").text  # it left the queue

    page.sign_in(server.tokens["officer"])
    mine = page.wait("queue-mine")
    row = next(r for r in mine.find_elements(page.by.CSS_SELECTOR, "tr.queue-row") if r.get_attribute("data-application") == "SYN-APP-UI-B")
    assert "符合内部评估质押条件" in row.text and "复核签批" in row.text
    row.find_element(page.by.LINK_TEXT, "SYN-APP-UI-B").click()
    assert page.wait("decision").get_attribute("data-decision") == "eligible"
    assert "reviewer-1" in chrome.page_source


# --- hardening: what a hostile or careless submission meets ---------------------------------------------------


def form_for(browser, server, tmp_path) -> dict:
    """The export uploaded on the page; a complete, valid form (the fields a test then spoils)."""
    with open(export(tmp_path), "rb") as f:
        form = browser.post(server.url + "/ui/upload", files={"file": ("incopat-export.csv", f)}, timeout=60)
    assert form.status_code == 200, form.text[-1500:]
    upload_id = re.search(r'name="upload_id" value="([^"]+)"', form.text).group(1)
    return {"upload_id": upload_id, "upload_name": "incopat-export.csv", "ids": ["SYN-CN-T001"], "application_id": "SYN-APP-HUGE", "borrower": OWNER,
            "requested_amount_rmb": "100,000", "term_years": "2", "valuation_date": "2026-06-30", "revenue_mode": "growth",
            "revenue_base_rmb": "40,000,000", "revenue_growth": "5", "wacc": "7.5", "action": "value"}


def recorded(server, application_id: str) -> int:
    return server.get(f"/v1/valuations?application_id={application_id}&all_versions=true").json()["total"]


@pytest.mark.parametrize("field, extra, label", [
    ("revenue_growth", {}, "收入年增长率（%）"), ("wacc", {}, "加权平均资本成本 WACC（%）"), ("tax_rate_other", {"tax_rate": "other"}, "所得税率"),
    ("fin_operating_margin_0", {"fin_year_0": "2024", "fin_revenue_rmb_0": "36,000,000"}, "借款人财务报表"),
    ("ovr_value_0", {"ovr_patent_id_0": "SYN-CN-T001", "ovr_field_0": "sharing_rate", "ovr_reason_0": "r"}, "人工调整")])
def test_a_number_with_a_huge_exponent_is_refused_by_field_not_a_server_error(server, tmp_path, field, extra, label):
    browser = signed_in(server)
    data = {**form_for(browser, server, tmp_path), **extra, field: "1e9999999"}
    r = browser.post(server.url + "/ui/valuations", data=data, timeout=60)
    assert r.status_code == 422, r.text[-1500:]
    assert "“1e9999999”不是数字" in r.text and label in r.text and 'value="1e9999999"' in r.text
    assert recorded(server, "SYN-APP-HUGE") == 0


def test_an_override_typed_with_a_huge_exponent_is_refused_on_the_decision_page(server, tmp_path):
    made = server.post("/v1/valuations", synthetic_application(application_id="SYN-APP-OVR-E", borrower=OWNER, patents={"records": [synthetic_patent(1, applicants=OWNER)]},
                                                               documents=DOCUMENTS[:1] + DOCUMENTS[3:4]))
    assert made.status_code == 201, made.text
    vid = made.json()["valuation_id"]
    browser = signed_in(server)
    for value in ("1e9999999", "9" * 400):
        r = browser.post(server.url + f"/ui/valuations/{vid}/overrides", data={"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": value, "reason": "r"}, timeout=60)
        assert r.status_code == 422 and "is not a number" in r.text and value[:30] in r.text, r.text[-1500:]
    assert recorded(server, "SYN-APP-OVR-E") == 1


@pytest.mark.parametrize("content, reason", [(b"[" * 5000 + b"]" * 5000, "nested too deeply"), (b'{"requested_amount_rmb": ' + b"9" * 5000 + b"}", "ValueError"),
                                             (b'{"requested_amount_rmb": NaN}', "NaN")])
def test_a_hostile_json_application_file_is_a_422_not_a_server_error(server, content, reason):
    browser = signed_in(server)
    r = browser.post(server.url + "/ui/application-file", files=[("application", ("application.json", content))], timeout=60)
    assert r.status_code == 422 and "application.json" in r.text and reason in r.text, r.text[-1500:]


def test_an_unreadable_upload_is_named_as_the_officer_named_it_with_no_server_path(server, tmp_path):
    browser = signed_in(server)
    content = "patent_id,title\nCN1,专利\n".encode("utf-8") + b"CN2,\xff\xfe\x80\xff\n"
    r = browser.post(server.url + "/ui/upload", files={"file": ("我的导出.csv", content)}, timeout=60)
    assert r.status_code == 422, r.text[-1500:]
    error = re.search(r'(?s)id="error"[^>]*>(.*?)</', r.text).group(1)
    assert "我的导出.csv" in error and "could not be decoded" in error, error
    assert str(server.folder) not in r.text and "/tmp" not in r.text and "uploads/" not in r.text and not re.search(r"[0-9a-f]{32}", error), error


def test_an_export_above_one_applications_size_is_refused_at_upload_with_the_fix(server, tmp_path):
    from ipvalue.service.pages import MAX_FORM_PATENTS

    patents = [synthetic_patent(i, applicants=OWNER) for i in range(1, MAX_FORM_PATENTS + 2)]
    pd.DataFrame(patents).to_csv(tmp_path / "whole-register.csv", index=False)
    browser = signed_in(server)
    with open(tmp_path / "whole-register.csv", "rb") as f:
        r = browser.post(server.url + "/ui/upload", files={"file": ("whole-register.csv", f)}, timeout=120)
    assert r.status_code == 422 and 'name="ids"' not in r.text, r.text[-1500:]
    assert f"该导出文件含 {MAX_FORM_PATENTS + 1:,} 项有效专利" in r.text, re.sub(r"(?s).*<main>", "", r.text)[:1500]
    assert "filter the export to the borrower&#39;s patents, or use an application file" in r.text
    with open(tmp_path / "whole-register.csv", "rb") as f:
        upload_id = browser.post(server.url + "/v1/uploads", files={"file": ("whole-register.csv", f)}, timeout=120).json()["upload_id"]
    r = browser.post(server.url + "/ui/valuations", data={"upload_id": upload_id, "action": "more_rows"}, timeout=120)  # nor through the form's own post
    assert r.status_code == 422 and 'name="ids"' not in r.text and "use an application file" in r.text


def test_an_application_file_accepts_only_the_files_it_names_and_keeps_none_when_refused(server, tmp_path):
    from ipvalue.service.pages import MAX_ATTACHMENTS

    browser = signed_in(server)
    uploads = server.folder / "state" / "uploads" / "head-office"
    raw = synthetic_application(application_id="SYN-APP-ATT", borrower=OWNER, patents={"file": "incopat-export.csv", "ids": ["SYN-CN-T001", "SYN-CN-T002"]},
                                documents=DOCUMENTS)
    application = ("application", ("application.json", json.dumps(raw).encode()))
    patents = ("attachments", ("incopat-export.csv", export(tmp_path).read_bytes() + b"\n"))  # content of this test's own: a new upload
    before = sorted(p.name for p in uploads.iterdir()) if uploads.is_dir() else []

    stray = ("attachments", ("holiday-photos.csv", b"a,b\n1,2\n"))
    r = browser.post(server.url + "/ui/application-file", files=[application, patents, stray], timeout=120)
    assert r.status_code == 422 and "holiday-photos.csv" in r.text and "附件未被申请文件引用" in r.text, r.text[-1500:]

    many = [("attachments", (f"extra-{i}.csv", f"a,b\n{i},2\n".encode())) for i in range(MAX_ATTACHMENTS)]
    r = browser.post(server.url + "/ui/application-file", files=[application, patents, *many], timeout=120)
    assert r.status_code == 422 and f"above the {MAX_ATTACHMENTS} accepted" in r.text, r.text[-1500:]

    refused = ("application", ("application.json", json.dumps({**raw, "requested_amount_rmb": -5}).encode()))  # the service refuses it
    r = browser.post(server.url + "/ui/application-file", files=[refused, patents], timeout=120)
    assert r.status_code == 422 and recorded(server, "SYN-APP-ATT") == 0, r.text[-1500:]

    unknown = ("application", ("application.json", json.dumps({**raw, "colour": "blue"}).encode()))  # refused before any file is read
    r = browser.post(server.url + "/ui/application-file", files=[unknown, patents], timeout=120)
    assert r.status_code == 422 and "colour" in r.text
    assert (sorted(p.name for p in uploads.iterdir()) if uploads.is_dir() else []) == before


def test_a_reviewer_on_the_applications_chain_does_not_see_it_awaiting_their_sign_off(server, tmp_path):
    from ipvalue.audit import revoke_user

    server.tokens["dual"] = add_user("dual-1", "officer", server.db, key_file=server.key)
    plain = server.post("/v1/valuations", synthetic_application(application_id="SYN-APP-DUAL-P"), role="dual").json()
    income = max(p["market_value_rmb"] for p in plain["patents"])
    pd.DataFrame([{"transaction_id": f"T{i}", "date": "2025-06-30", "kind": "transfer", "price_rmb": 20 * income * k, "patent_type": "invention",
                   "ipc_main": "G06F 16/00", "remaining_life_years": 12.0} for i, k in enumerate((1.0, 1.1, 1.2))]).to_csv(tmp_path / "far.csv", index=False)
    far = upload(server, tmp_path / "far.csv", role="dual").json()["upload_id"]
    mine = server.post("/v1/valuations", synthetic_application(application_id="SYN-APP-DUAL", comparables=far), role="dual")
    assert mine.status_code == 201 and mine.json()["summary"]["decision"] == "review required", mine.text
    revoke_user("dual-1", server.db, key_file=server.key)
    server.tokens["dual-reviewer"] = add_user("dual-1", "reviewer", server.db, key_file=server.key)  # the same person, now a reviewer

    queue = signed_in(server, "dual-reviewer").get(server.url + "/ui", timeout=30)
    awaiting = re.search(r'(?s)id="queue-awaiting".*?</section>', queue.text).group(0)
    assert queue.status_code == 200 and "SYN-APP-DUAL<" not in awaiting and "SYN-APP-DUAL-P" not in awaiting, awaiting
    page = signed_in(server, "dual-reviewer").get(server.url + f"/ui/valuations/{mine.json()['valuation_id']}", timeout=60)
    assert page.status_code == 200 and 'id="sign_off"' not in page.text
    other = signed_in(server, "reviewer").get(server.url + "/ui", timeout=30)
    assert "SYN-APP-DUAL<" in re.search(r'(?s)id="queue-awaiting".*?</section>', other.text).group(0)  # another reviewer sees it to sign


def test_signing_out_deletes_the_cookie_with_the_cookies_own_attributes(server):
    browser = signed_in(server)
    r = browser.post(server.url + "/ui/logout", allow_redirects=False, timeout=30)
    cookie = r.headers["set-cookie"]
    assert r.status_code == 303 and "Max-Age=0" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict"), cookie


def test_an_upload_without_a_file_is_asked_for_not_a_server_error(server):
    r = signed_in(server).post(server.url + "/ui/upload", data={"note": "no file"}, timeout=30)
    assert r.status_code == 422 and "请选择专利导出文件" in r.text
