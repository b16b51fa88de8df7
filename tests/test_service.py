"""The valuation service over HTTP: a real ``ipvalue serve`` on a free loopback port (stopped by
PID), the same figures as the CLI, 401 / 403, overrides and sign-offs recorded with the
authenticated identity, the officers' page in Chromium, an API fuzz run, concurrent writers."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import requests

from ipvalue.audit import add_user, read_audit_table, read_valuation, verify
from ipvalue.cli import main
from ipvalue.exceptions import DomainError
from tests.conftest import synthetic_application, synthetic_patent

pytestmark = pytest.mark.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``ipvalue serve`` in a subprocess on 127.0.0.1; tokens for each role (branch head-office), a
    second officer and reviewer, and an officer of another branch (``officer-b``, branch-b)."""

    def __init__(self, folder: Path, *args: str, tracking_uri: str | None = None, audit_db=None, tokens: dict | None = None):
        self.folder, self.port = folder, free_port()
        self.tracking_uri = tracking_uri or f"sqlite:///{folder / 'mlflow.db'}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = audit_db or folder / "audit.db"
        self.key = folder / "audit.key"  # the bank's audit key, outside the database: the chain is anchored
        if tokens is None:
            tokens = {role: add_user(f"{role}-1", role, self.db, key_file=self.key) for role in ("officer", "reviewer", "validator", "admin")}
            tokens["officer2"] = add_user("officer-2", "officer", self.db, key_file=self.key)
            tokens["reviewer2"] = add_user("reviewer-2", "reviewer", self.db, key_file=self.key)
            tokens["officer-b"] = add_user("officer-b", "officer", self.db, key_file=self.key, branch="branch-b")
        self.tokens = tokens
        command = [sys.executable, "-c", "import sys; from ipvalue.cli import main; sys.exit(main(sys.argv[1:]))", "serve", "--port", str(self.port),
                   "--audit-db", str(self.db), "--state-dir", str(folder / "state"),
                   "--tracking-uri", self.tracking_uri, *args]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "IPVALUE_AUDIT_KEY_FILE": str(self.key)}
        self.log = open(folder / "server.log", "ab")
        self.process = subprocess.Popen(command, cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ipvalue serve exited {self.process.returncode}: {(folder / 'server.log').read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ipvalue serve not ready in {START_TIMEOUT_S} s: {(folder / 'server.log').read_text()[-3000:]}")

    def headers(self, role="officer") -> dict:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post(self, path, body=None, role="officer", headers=None, **kw):
        return requests.post(self.url + path, json=body, headers={**(self.headers(role) if role else {}), **(headers or {})}, timeout=120, **kw)

    def get(self, path, role="officer"):
        return requests.get(self.url + path, headers=self.headers(role) if role else {}, timeout=60)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A service without registered models (income, market and cost approaches)."""
    s = Server(tmp_path_factory.mktemp("service"))
    yield s
    s.stop()


def upload(server, path: Path, role="officer"):
    with open(path, "rb") as f:
        return requests.post(server.url + "/v1/uploads", files={"file": (path.name, f)}, headers=server.headers(role), timeout=60)


# --- authentication and roles ------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [("post", "/v1/valuations"), ("get", "/v1/valuations/abc"), ("get", "/v1/models"), ("post", "/v1/score")])
def test_without_a_token_the_service_answers_401(server, method, path):
    r = getattr(requests, method)(server.url + path, json={}, timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "ipvalue users add" in r.json()["detail"]
    bad = getattr(requests, method)(server.url + path, json={}, headers={"Authorization": "Bearer ipv_not-a-token"}, timeout=30)
    assert bad.status_code == 401


@pytest.mark.parametrize("role, path, body", [
    ("reviewer", "/v1/valuations", {}), ("validator", "/v1/valuations", {}), ("admin", "/v1/valuations", {}),
    ("officer", "/v1/valuations/abc/sign-off", {"reason": "x"}), ("officer", "/v1/models/reload", None), ("officer", "/v1/models/promote", {}),
    ("reviewer", "/v1/score", {"patents": []}),
])
def test_a_wrong_role_is_403(server, role, path, body):
    r = server.post(path, body, role=role)
    assert r.status_code == 403, r.text
    assert f"has role {role!r}; this action needs role" in r.json()["detail"]


def test_a_revoked_token_is_401(server, monkeypatch):
    token = add_user("leaver", "officer", server.db, key_file=server.key)
    assert requests.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
    assert main(["users", "revoke", "leaver", "--audit-db", str(server.db), "--audit-key", str(server.key)]) == 3  # admins manage users: a token is needed
    monkeypatch.setenv("IPVALUE_TOKEN", server.tokens["admin"])
    assert main(["users", "revoke", "leaver", "--audit-db", str(server.db), "--audit-key", str(server.key)]) == 0
    assert requests.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 401


# --- valuations -------------------------------------------------------------------------------


def test_a_valuation_is_recorded_with_the_authenticated_identity_and_its_report_served(server):
    r = server.post("/v1/valuations", synthetic_application())
    assert r.status_code == 201, r.text
    body = r.json()
    vid = body["valuation_id"]
    assert r.headers["location"] == f"/v1/valuations/{vid}" and body["links"]["report"] == f"/v1/valuations/{vid}/report"
    assert body["provenance"]["user"] == "officer-1" and body["provenance"]["user_role"] == "officer"
    # the answer is the recorded JSON text sent on as it is, with the links as its last key
    assert r.headers["content-type"] == "application/json" and list(body)[-1] == "links"
    assert body == {**json.loads(read_valuation(vid, server.db)["result_json"]), "links": body["links"]}
    stored = read_audit_table("valuations", server.db).set_index("valuation_id").loc[vid]
    assert stored["user"] == "officer-1" and stored["decision"] == body["summary"]["decision"] == "eligible"
    got = server.get(f"/v1/valuations/{vid}", role="reviewer").json()
    assert got["summary"] == body["summary"]
    for _ in range(60):  # rendered after the response
        report = server.get(f"/v1/valuations/{vid}/report")
        if report.status_code == 200:
            break
        assert report.status_code == 202
        time.sleep(0.5)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html") and vid in report.text
    assert server.get("/v1/valuations/ffffffffffff").status_code == 404
    assert server.get("/v1/valuations/..%2F..%2Fetc").status_code == 404


def test_a_recorded_text_that_is_not_json_is_refused_as_the_json_encoder_refuses_it(tmp_path):
    # NaN is not JSON: sent on as it is, a client's parser would fail; the encoder refuses it (a 500)
    from types import SimpleNamespace

    from fastapi import BackgroundTasks

    from ipvalue.service.app import _created
    from ipvalue.service.core import Answer

    service = SimpleNamespace(folder=lambda vid: tmp_path, write_report=lambda *a: None)
    ok = _created(service, Answer("v1", '{"valuation_id": "v1", "summary": {"loan_cap_rmb": 1.5}}'), BackgroundTasks())
    assert ok.status_code == 201 and json.loads(ok.body) == {"valuation_id": "v1", "summary": {"loan_cap_rmb": 1.5}, "links": json.loads(ok.body)["links"]}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        _created(service, Answer("v1", '{"valuation_id": "v1", "summary": {"loan_cap_rmb": NaN}}'), BackgroundTasks())


@pytest.mark.parametrize("change, status, message", [
    ({"requested_amount_rmb": "abc"}, 422, r"The 'requested_amount_rmb' of application SYN-APP-T1 must be a number \(number\). Got 'abc'"),
    ({"overides": []}, 422, r"has an unknown field 'overides'"),
    ({"review": {"reviewer": "me", "reason": "ok"}}, 422, r"The 'review' of application SYN-APP-T1 is not part of an application. Fix: remove it: a sign-off is a separate act"),
    ({"models": {"value": "models:/elsewhere@champion"}}, 422, r"The 'models' of application SYN-APP-T1 must be the models this bank values with"),
    ({"patents": {"file": "../../audit.db"}}, 422, r"points outside the application's folder"),
    ({"overrides": [{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.01, "reason": "r", "officer": "someone-else"}]}, 422,
     r"names officer 'someone-else', but the signed-in user is 'officer-1'"),
])
def test_invalid_applications_are_422_naming_the_field(server, change, status, message):
    r = server.post("/v1/valuations", synthetic_application(**change))
    assert r.status_code == status, r.text
    assert re.search(message, r.json()["detail"]), r.json()["detail"]


@pytest.mark.parametrize("data, message", [("{", "not valid UTF-8 JSON"), ('{"a": 1, "a": 2}', r"repeats the key\(s\) \['a'\]"),
                                           ('{"requested_amount_rmb": NaN}', "NaN, which is not a number in JSON"),
                                           ('{"requested_amount_rmb": ' + "9" * 5000 + "}", "not valid UTF-8 JSON: ValueError"),
                                           ("[" * 100_000 + "]" * 100_000, "not valid UTF-8 JSON: RecursionError")])
def test_malformed_json_is_400(server, data, message):
    r = requests.post(server.url + "/v1/valuations", data=data, headers={**server.headers(), "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and re.search(message, r.json()["detail"]), r.text


def test_an_override_without_a_reason_is_refused_and_one_with_a_reason_supersedes(server):
    vid = server.post("/v1/valuations", synthetic_application()).json()["valuation_id"]
    change = {"patent_id": "SYN-CN-T001", "field": "internal_value_rmb", "value": 500_000}
    for reason in (None, "   ", "\u3000"):
        r = server.post(f"/v1/valuations/{vid}/overrides", change if reason is None else {**change, "reason": reason})
        assert r.status_code == 422
        assert r.json()["detail"].endswith("has no 'reason'. Fix: every manual override needs a written reason.")
    n = len(read_audit_table("valuations", server.db))
    r = server.post(f"/v1/valuations/{vid}/overrides", {**change, "reason": "独立评估报告 2026-05"}, role="officer2")
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["provenance"]["supersedes"] == vid and new["provenance"]["user"] == "officer-2"
    assert new["overrides"] == [{"patent_id": "SYN-CN-T001", "field": "internal_value_rmb", "model_value": pytest.approx(new["patents"][0]["model_market_value_rmb"]),
                                 "override_value": 500_000.0, "reason": "独立评估报告 2026-05", "officer": "officer-2"}]
    assert new["patents"][0]["internal_value_rmb"] == 500_000.0
    stored = read_audit_table("overrides", server.db)
    assert stored.loc[stored["valuation_id"] == new["valuation_id"], "officer"].tolist() == ["officer-2"]
    assert len(read_audit_table("valuations", server.db)) == n + 1  # the first valuation is kept, unchanged
    assert server.post(f"/v1/valuations/{vid}/overrides", {**change, "reason": "r", "officer": "x"}).status_code == 422


def test_a_reviewer_signs_off_a_review_required_valuation(server, tmp_path):
    plain = server.post("/v1/valuations", synthetic_application()).json()
    income = max(p["market_value_rmb"] for p in plain["patents"])
    pd.DataFrame([{"transaction_id": f"T{i}", "date": "2025-06-30", "kind": "transfer", "price_rmb": 20 * income * k, "patent_type": "invention",
                   "ipc_main": "G06F 16/00", "remaining_life_years": 12.0} for i, k in enumerate((1.0, 1.1, 1.2))]).to_csv(tmp_path / "comparables.csv", index=False)
    up = upload(server, tmp_path / "comparables.csv")
    assert up.status_code == 201 and up.json()["patents"] == [] and "not_a_patent_export" in up.json()
    unsigned = server.post("/v1/valuations", synthetic_application(comparables=up.json()["upload_id"])).json()
    vid = unsigned["valuation_id"]
    assert unsigned["summary"]["decision"] == "review required"
    assert server.post(f"/v1/valuations/{vid}/sign-off", {"reason": "ok"}).status_code == 403
    blank = server.post(f"/v1/valuations/{vid}/sign-off", {"reason": " "}, role="reviewer")
    assert blank.status_code == 422 and "A sign-off needs a written 'reason'" in blank.json()["detail"]
    r = server.post(f"/v1/valuations/{vid}/sign-off", {"reason": "可比交易为同类专利包整体转让，已核实"}, role="reviewer")
    assert r.status_code == 201, r.text
    signed = r.json()
    assert signed["summary"]["review"] == {"reviewer": "reviewer-1", "reason": "可比交易为同类专利包整体转让，已核实", "signed_valuation_id": vid,
                                           "figures_hash": unsigned["summary"]["figures_hash"]}
    assert signed["summary"]["decision"] == "eligible" and signed["provenance"]["supersedes"] == vid and signed["provenance"]["user"] == "reviewer-1"
    again = server.post(f"/v1/valuations/{signed['valuation_id']}/sign-off", {"reason": "again"}, role="reviewer")
    assert again.status_code == 409 and "only a 'review required' valuation is signed off" in again.json()["detail"]


def test_score_without_a_value_model_is_409(server):
    r = server.post("/v1/score", {"patents": [synthetic_patent(1)]})
    assert r.status_code == 409 and "serves no value model" in r.json()["detail"]


# --- the same figures as the CLI, with registered models -------------------------------------------


@pytest.fixture(scope="module")
def model_server(registry, tmp_path_factory):
    folder, uri, _ = registry
    s = Server(tmp_path_factory.mktemp("model-service"), "--model", "models:/ipvalue-renewal@champion", "--model", "models:/ipvalue-value@champion",
               tracking_uri=uri)
    yield s
    s.stop()


def test_an_uploaded_export_is_valued_over_http_with_the_same_figures_as_the_cli(model_server, registry, tmp_path):
    _, uri, _ = registry
    patents = [synthetic_patent(i) for i in range(1, 4)] + [synthetic_patent(9, applicants="别人的公司")]
    pd.DataFrame(patents).to_csv(tmp_path / "export.csv", index=False)
    up = upload(model_server, tmp_path / "export.csv")
    assert up.status_code == 201 and [p["patent_id"] for p in up.json()["patents"]] == [p["patent_id"] for p in patents]
    ids = ["SYN-CN-T001", "SYN-CN-T002", "SYN-CN-T003"]
    models = {"renewal": "models:/ipvalue-renewal@champion", "value": "models:/ipvalue-value@champion"}
    raw = synthetic_application(patents={"file": up.json()["upload_id"], "ids": ids}, models=models)
    http = model_server.post("/v1/valuations", raw)
    assert http.status_code == 201, http.text
    http = http.json()

    shutil.copy(tmp_path / "export.csv", tmp_path / "export-cli.csv")
    (tmp_path / "application.json").write_text(json.dumps({**raw, "patents": {"file": "export-cli.csv", "ids": ids}}), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IPVALUE_TOKEN", add_user("cli-officer", "officer", tmp_path / "cli-audit.db"))
        mp.delenv("IPVALUE_AUDIT_KEY_FILE", raising=False)
        code = main(["value", str(tmp_path / "application.json"), "--out", str(tmp_path / "reports"), "--audit-db", str(tmp_path / "cli-audit.db"),
                     "--tracking-uri", uri])
    assert code in (0, 1)
    cli = json.loads(next((tmp_path / "reports").glob("*.json")).read_text(encoding="utf-8"))
    figures = ["market_value_rmb", "value_in_use_rmb", "collateral_value_rmb", "pledge_value_rmb", "loan_cap_rmb", "decision", "eligible"]
    assert {k: http["summary"][k] for k in figures} == {k: cli["summary"][k] for k in figures}
    assert [p["market_value_rmb"] for p in http["patents"]] == [p["market_value_rmb"] for p in cli["patents"]]
    assert [p["method_ml_rmb"] for p in http["patents"]] == [p["method_ml_rmb"] for p in cli["patents"]]
    assert http["provenance"]["value_model_version"] == cli["provenance"]["value_model_version"] != ""

    listed = model_server.get("/v1/models", role="reviewer").json()["models"]
    assert {(m["name"], m["alias"]) for m in listed} == {("ipvalue-renewal", "champion"), ("ipvalue-value", "champion")}
    assert all(m["version"] for m in listed)


def test_a_small_book_is_scored_and_a_large_one_refused(model_server):
    book = [synthetic_patent(1), synthetic_patent(2), {**synthetic_patent(3), "patent_type": "gadget"}]
    r = model_server.post("/v1/score", {"patents": book})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rows_in"], body["rows_scored"], body["rows_quarantined"]) == (3, 2, 1)
    assert body["scored"][0]["value_p10_rmb"] <= body["scored"][0]["value_p50_rmb"] <= body["scored"][0]["value_p90_rmb"]
    big = model_server.post("/v1/score", {"patents": [synthetic_patent(1)] * 1001})
    assert big.status_code == 422 and "1 to 1,000 rows. Got 1,001. Fix: score larger books with 'ipvalue score'" in big.json()["detail"]


# --- concurrent writers and the audit chain ----------------------------------------------------------


@pytest.mark.slow
def test_50_concurrent_valuations_leave_50_chained_records_and_verify_finds_an_edit(tmp_path, capsys):
    s = Server(tmp_path, "--workers", "2")
    try:
        apps = [synthetic_application(application_id=f"SYN-APP-C{i:02d}", requested_amount_rmb=300_000 + i) for i in range(50)]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda raw: s.post("/v1/valuations", raw).status_code, apps))
    finally:
        s.stop()
    assert codes == [201] * 50
    valuations, chain = read_audit_table("valuations", s.db), read_audit_table("audit_chain", s.db)
    assert chain["seq"].tolist() == list(range(1, len(chain) + 1))  # the seven users, then the valuations: one chain, no gap
    chained = chain[chain["kind"] == "valuation"]
    assert len(valuations) == 50 and len(chained) == 50 and set(chained["valuation_id"]) == set(valuations["valuation_id"])
    assert sorted(valuations["application_id"]) == sorted(a["application_id"] for a in apps)
    assert set(valuations["user"]) == {"officer-1"}
    capsys.readouterr()
    assert main(["audit", "verify", "--audit-db", str(s.db), "--audit-key", str(s.key)]) == 0
    assert capsys.readouterr().out.startswith("audit chain intact: 50 valuation(s), 7 user and revocation record(s); anchored")

    victim = chained["valuation_id"].iloc[16]
    with sqlite3.connect(s.db) as con:  # by hand: drop the trigger, edit the row
        con.execute("DROP TRIGGER valuations_no_update")
        con.execute("UPDATE valuations SET loan_cap_rmb = loan_cap_rmb * 2 WHERE valuation_id = ?", (victim,))
    assert main(["audit", "verify", "--audit-db", str(s.db), "--audit-key", str(s.key)]) == 1
    assert capsys.readouterr().out.strip().startswith(f"audit chain BROKEN at valuation {victim!r}: the row or its overrides differ from what was recorded")
    assert not verify(s.db, key_file=s.key).ok


# --- the officers' page (Chromium) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chrome():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")
        pytest.skip("chromium / chromedriver not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.mark.slow
@pytest.mark.browser
def test_an_officer_uploads_picks_fills_submits_sees_the_decision_and_overrides(server, chrome, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(element_id):
        return WebDriverWait(chrome, 120).until(ec.presence_of_element_located((By.ID, element_id)))

    owner = "页面测试科技有限公司"  # a borrower of its own: the module's other tests open many applications of the default one (its exposure)
    patents = [synthetic_patent(1, applicants=owner), synthetic_patent(2, patent_type="utility_model", filing_date="2021-01-01", publication_date="2021-08-01",
                                                                     grant_date="2021-08-01", applicants=owner)]
    pd.DataFrame(patents).to_csv(tmp_path / "incopat-export.csv", index=False)
    chrome.get(server.url + "/ui")
    wait("token").send_keys(server.tokens["officer"])
    chrome.find_element(By.ID, "login").click()
    wait("file").send_keys(str(tmp_path / "incopat-export.csv"))
    chrome.find_element(By.ID, "upload").click()
    wait("submit")
    assert "SYN-CN-T001" in chrome.page_source and "借款人" in chrome.page_source
    for box in chrome.find_elements(By.NAME, "ids"):
        box.click()
    for field, value in {"application_id": "SYN-APP-UI1", "requested_amount_rmb": "100000", "term_years": "2",
                         "revenue_base_rmb": "40000000", "revenue_growth": "5"}.items():  # rates in percent on the page
        element = chrome.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    chrome.execute_script("arguments[0].value = '2026-06-30'", chrome.find_element(By.ID, "valuation_date"))  # a date input (typing follows the locale)
    chrome.find_element(By.ID, "submit").click()
    decision = wait("decision")
    # no documents given: the utility model's 评价报告 and the fee receipts are missing
    assert decision.get_attribute("data-decision") == "documents required" and "需补充材料" in decision.text, chrome.find_element(By.ID, "failed_checks").text
    first = chrome.current_url.rsplit("/", 1)[-1]
    stored = read_audit_table("valuations", server.db).set_index("valuation_id").loc[first]
    assert stored["application_id"] == "SYN-APP-UI1" and stored["user"] == "officer-1"

    chrome.find_element(By.ID, "override_value").send_keys("0.01")  # no reason: refused, said on the page
    chrome.find_element(By.ID, "override").click()
    assert "every manual override needs a written reason" in wait("error").text
    chrome.find_element(By.ID, "override_value").send_keys("0.01")
    chrome.find_element(By.ID, "override_reason").send_keys("许可合同约定分成率 1%")
    chrome.find_element(By.ID, "override").click()
    WebDriverWait(chrome, 120).until(lambda d: "/ui/valuations/" in d.current_url and first not in d.current_url)
    wait("decision")
    assert "许可合同约定分成率 1%" in chrome.page_source and "supersedes" in chrome.page_source
    # F13: the API documentation, signed in by the page's session, drawn from the service's own assets under its CSP
    chrome.get(server.url + "/docs")
    title = WebDriverWait(chrome, 120).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title")))
    assert "ipvalue valuation service" in title.text
    chrome.get(server.url + "/redoc")
    WebDriverWait(chrome, 120).until(lambda d: "ipvalue valuation service" in d.find_element(By.TAG_NAME, "body").text)


# --- API fuzzing -------------------------------------------------------------------------------------------


def test_an_api_fuzz_run_finds_no_server_error(server, tmp_path):
    st = Path(sys.executable).with_name("schemathesis")
    if not st.exists():
        if os.environ.get("CI"):
            pytest.fail("CI needs schemathesis (pip install 'ipvalue[test]')")
        pytest.skip("schemathesis not installed")
    run = subprocess.run([str(st), "run", server.url + "/openapi.json", "--checks", "not_a_server_error", "--max-examples", "25",
                          "--header", f"Authorization: Bearer {server.tokens['officer']}", "--request-timeout", "60",
                          "--generation-deterministic", "--exclude-path", "/v1/models/promote", "--exclude-path", "/v1/models/reload"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_a_validator_promotes_signed_by_their_identity_and_the_models_reload(model_server):
    from mlflow import MlflowClient

    from ipvalue.tracking import use_tracking

    version = next(m["version"] for m in model_server.get("/v1/models").json()["models"] if m["name"] == "ipvalue-value")
    body = {"model_uri": f"models:/ipvalue-value/{version}", "reason": "validation report VR-2026-07: gates passed", "alias": "challenger"}
    assert model_server.post("/v1/models/promote", {**body, "reason": " "}, role="validator").status_code == 422
    r = model_server.post("/v1/models/promote", body, role="validator")
    assert r.status_code == 200, r.text
    assert r.json()["promoted"]["alias"] == "challenger" and r.json()["promoted"]["version"] == version
    use_tracking(model_server.tracking_uri)
    tags = MlflowClient().get_model_version("ipvalue-value", version).tags
    assert tags["validated_by"] == "validator-1" and tags["validation_reason"] == body["reason"]
    reloaded = model_server.post("/v1/models/reload", None, role="admin")
    assert reloaded.status_code == 200 and {m["uri"] for m in reloaded.json()["models"]} == {"models:/ipvalue-renewal@champion", "models:/ipvalue-value@champion"}


def test_an_upload_is_read_once_and_unknown_ids_in_it_are_named(server, tmp_path):
    pd.DataFrame([synthetic_patent(1), synthetic_patent(2)]).to_csv(tmp_path / "export.csv", index=False)
    up = upload(server, tmp_path / "export.csv").json()
    again = upload(server, tmp_path / "export.csv").json()
    assert again["upload_id"] == up["upload_id"] and up["upload_id"].endswith(".csv")
    r = server.post("/v1/valuations", synthetic_application(patents={"file": up["upload_id"], "ids": ["SYN-CN-T001", "SYN-CN-T404"]}))
    assert r.status_code == 422 and r.json()["detail"].endswith(f"name patents not in {up['upload_id']}: ['SYN-CN-T404']. Fix: check the ids.")
    ok = server.post("/v1/valuations", synthetic_application(patents={"file": up["upload_id"], "ids": ["syn-cn-t002"]}))
    assert ok.status_code == 201 and [p["patent_id"] for p in ok.json()["patents"]] == ["SYN-CN-T002"]
    bad = requests.post(server.url + "/v1/uploads", files={"file": ("x.exe", b"MZ")}, headers=server.headers(), timeout=30)
    assert bad.status_code == 422 and "is not one of ['.csv', '.xlsx', '.xls', '.parquet']" in bad.json()["detail"]


def test_the_openapi_document_has_typed_models_from_the_one_table_a_bearer_scheme_and_structured_errors(server):
    from ipvalue.lending.application import APPLICATION_FIELDS

    assert requests.get(server.url + "/openapi.json", timeout=30).status_code == 401  # F12: behind authentication
    spec = server.get("/openapi.json").json()
    post = spec["paths"]["/v1/valuations"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LoanApplication"}
    schema = spec["components"]["schemas"]["LoanApplication"]
    assert list(schema["properties"]) == list(APPLICATION_FIELDS) and schema["additionalProperties"] is False
    assert schema["required"] == ["application_id", "borrower", "requested_amount_rmb", "term_years", "valuation_date", "patents"]
    assert schema["properties"]["requested_amount_rmb"]["type"] == "number" and schema["properties"]["borrower"]["type"] == "string"
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {"type": "http", "scheme": "bearer", "description": pytest.approx(spec["components"]["securitySchemes"]["HTTPBearer"]["description"])}
    assert post["security"] == [{"HTTPBearer": []}]
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ValuationOut"}
    assert post["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert set(spec["components"]["schemas"]["Problem"]["properties"]) == {"field", "message", "fix"}
    # all the type errors of a request at once, each naming its field and the fix
    r = server.post("/v1/valuations", synthetic_application(borrower={"a": {"b": 1}}, requested_amount_rmb="1,0,0", term_years=True))
    assert r.status_code == 422
    assert [(e["field"], bool(e["fix"])) for e in r.json()["errors"]] == [("borrower", True), ("requested_amount_rmb", True), ("term_years", True)]


def test_a_valuation_recorded_elsewhere_is_served_as_json_and_its_missing_report_is_404(server):
    from ipvalue.audit import record_valuation
    from tests.test_audit import fake_result

    with pytest.MonkeyPatch.context() as mp:  # e.g. an 'ipvalue value' run on the same store, with the bank's key
        mp.setenv("IPVALUE_AUDIT_KEY_FILE", str(server.key))
        elsewhere = fake_result("CLI-RUN-1")
        elsewhere.to_json = lambda: json.dumps({"x": 1, "summary": {"borrower": "另一家公司", "requested_amount_rmb": 1.0, "term_years": 1, "valuation_date": "2026-01-01"}})
        record_valuation(elsewhere, server.db)
    assert server.get("/v1/valuations/CLI-RUN-1").json()["x"] == 1
    r = server.get("/v1/valuations/CLI-RUN-1/report")
    assert r.status_code == 404 and "has no report sections in its record" in r.json()["detail"]
    over = server.post("/v1/valuations/CLI-RUN-1/overrides", {"patent_id": "CN1", "field": "sharing_rate", "value": 0.01, "reason": "r"})
    assert over.status_code == 409 and "was not made by this service" in over.json()["detail"]


# --- issue 27: the credit-process controls, finding by finding ---------------------------------------------------


def comparables_upload(server, tmp_path, income: float, role="officer") -> str:
    """The bank's comparables, far above the income approach: the methods disagree (review required)."""
    pd.DataFrame([{"transaction_id": f"T{i}", "date": "2025-06-30", "kind": "transfer", "price_rmb": 20 * income * k, "patent_type": "invention",
                   "ipc_main": "G06F 16/00", "remaining_life_years": 12.0} for i, k in enumerate((1.0, 1.1, 1.2))]).to_csv(tmp_path / "comparables.csv", index=False)
    return upload(server, tmp_path / "comparables.csv", role=role).json()["upload_id"]


def review_required(server, tmp_path, application_id: str) -> dict:
    plain = server.post("/v1/valuations", synthetic_application(application_id=application_id + "-P")).json()
    assert "patents" in plain, plain
    income = max(p["market_value_rmb"] for p in plain["patents"])
    r = server.post("/v1/valuations", synthetic_application(application_id=application_id, comparables=comparables_upload(server, tmp_path, income)))
    assert r.status_code == 201 and r.json()["summary"]["decision"] == "review required", r.text
    return r.json()


def n_valuations(server) -> int:
    return len(read_audit_table("valuations", server.db))


def test_f3_an_override_after_a_sign_off_lapses_it(server, tmp_path):
    unsigned = review_required(server, tmp_path, "SYN-F3")
    signed = server.post(f"/v1/valuations/{unsigned['valuation_id']}/sign-off", {"reason": "可比交易已核实"}, role="reviewer").json()
    assert signed["summary"]["decision"] == "eligible" and signed["summary"]["review"]["figures_hash"] == unsigned["summary"]["figures_hash"]
    after = server.post(f"/v1/valuations/{signed['valuation_id']}/overrides",
                        {"patent_id": "SYN-CN-T001", "field": "internal_value_rmb", "value": 5e8, "reason": "按新合同"})
    assert after.status_code == 201, after.text
    assert after.json()["summary"]["decision"] == "review required" and after.json()["summary"]["review"] is None
    assert after.json()["provenance"]["supersedes"] == signed["valuation_id"]


def test_f4_an_officers_material_override_needs_review(server):
    vid = server.post("/v1/valuations", synthetic_application(application_id="SYN-F4")).json()["valuation_id"]
    r = server.post(f"/v1/valuations/{vid}/overrides", {"patent_id": "SYN-CN-T001", "field": "internal_value_rmb", "value": 9e9, "reason": "自评"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["summary"]["decision"] == "review required" and not body["summary"]["eligible"] and body["summary"]["material_overrides"] == 1
    flag = next(f for f in body["flags"] if f["code"] == "material_override")
    assert flag["scope"] == "SYN-CN-T001" and "beyond the policy's threshold" in flag["reason_en"]
    lower = server.post(f"/v1/valuations/{body['valuation_id']}/overrides", {"patent_id": "SYN-CN-T001", "field": "internal_value_rmb", "value": 1000.0,
                                                                             "reason": "保守"})
    assert lower.json()["summary"]["material_overrides"] == 0  # lowering a figure is never material
    # F7: an overridden "review required" valuation can be signed off, by a reviewer who did not override it
    review = server.post(f"/v1/valuations/{body['valuation_id']}/sign-off", {"reason": "r"}, role="reviewer")
    assert review.status_code == 409 and review.json()["latest_valuation_id"] == lower.json()["valuation_id"]


def test_f5_f7_a_preparer_never_signs_off_and_an_overridden_valuation_can_be_signed_off(server, monkeypatch):
    dual = add_user("dual-1", "officer", server.db, key_file=server.key)
    vid = requests.post(server.url + "/v1/valuations", json=synthetic_application(application_id="SYN-F5"), headers={"Authorization": f"Bearer {dual}"},
                        timeout=120).json()["valuation_id"]
    over = server.post(f"/v1/valuations/{vid}/overrides", {"patent_id": "SYN-CN-T001", "field": "internal_value_rmb", "value": 9e9, "reason": "r"},
                       role="officer2").json()
    assert over["summary"]["decision"] == "review required"
    with pytest.raises(DomainError, match="already holds the active role 'officer'"):  # one role per name
        add_user("dual-1", "reviewer", server.db, key_file=server.key)
    monkeypatch.setenv("IPVALUE_TOKEN", server.tokens["admin"])
    assert main(["users", "revoke", "dual-1", "--audit-db", str(server.db), "--audit-key", str(server.key)]) == 0
    reviewer = add_user("dual-1", "reviewer", server.db, key_file=server.key)  # the same person, later a reviewer
    n = n_valuations(server)
    own = requests.post(server.url + f"/v1/valuations/{over['valuation_id']}/sign-off", json={"reason": "自审"},
                        headers={"Authorization": f"Bearer {reviewer}"}, timeout=120)
    assert own.status_code == 403 and "may not sign it off (审贷分离" in own.json()["detail"] and n_valuations(server) == n
    signed = server.post(f"/v1/valuations/{over['valuation_id']}/sign-off", {"reason": "调整有据"}, role="reviewer")
    assert signed.status_code == 201 and signed.json()["summary"]["decision"] == "eligible", signed.text
    assert [o["officer"] for o in signed.json()["overrides"]] == ["officer-2"]


def test_f6_the_service_values_with_its_own_configuration(server):
    n = n_valuations(server)
    for change, field in [({"pledge_policy": "cn-pledge-2025"}, "pledge_policy"), ({"assumption_set": "my-own"}, "assumption_set"),
                          ({"risk_sharing": "no-such-scheme"}, "risk_sharing"), ({"models": {}}, None), ({"models": {"value": "models:/x@champion"}}, "models")]:
        r = server.post("/v1/valuations", synthetic_application(application_id="SYN-F6", **change))
        if field is None:  # naming no models is naming the configured ones (here: none served)
            assert r.status_code == 201, r.text
            n += 1
            continue
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == [field], r.text
        assert "the bank's configuration" in r.json()["detail"] or "this bank values with" in r.json()["detail"]
    assert n_valuations(server) == n
    served = server.get("/v1/models").json()["configuration"]
    assert served["pledge_policies"] == ["pledge-policy-cn"] and served["source"] == "shipped defaults"


def test_f7_twenty_parallel_overrides_leave_one_live_successor_and_two_sign_offs_cannot_both_stick(server, tmp_path):
    vid = server.post("/v1/valuations", synthetic_application(application_id="SYN-F7")).json()["valuation_id"]
    change = {"patent_id": "SYN-CN-T001", "field": "sharing_rate", "reason": "许可合同"}
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda i: server.post(f"/v1/valuations/{vid}/overrides", {**change, "value": 0.01 + i / 1000}), range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 19
    winner = next(a.json()["valuation_id"] for a in answers if a.status_code == 201)
    assert {a.json()["latest_valuation_id"] for a in answers if a.status_code == 409} == {winner}
    versions = read_audit_table("valuations", server.db).query("application_id == 'SYN-F7'")
    assert len(versions) == 2 and versions["supersedes"].dropna().tolist() == [vid]
    # If-Match naming another version is refused before anything is valued
    assert server.post(f"/v1/valuations/{winner}/overrides", {**change, "value": 0.02}, headers={"If-Match": f'"{vid}"'}).status_code == 412

    unsigned = review_required(server, tmp_path, "SYN-F7S")
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda role: server.post(f"/v1/valuations/{unsigned['valuation_id']}/sign-off", {"reason": "ok"}, role=role),
                             ["reviewer", "reviewer2"]))
    assert sorted(a.status_code for a in both) == [201, 409]
    assert len(read_audit_table("valuations", server.db).query("application_id == 'SYN-F7S' and act == 'sign-off'")) == 1


def test_idempotency_keys_return_the_first_answer_and_refuse_another_body(server):
    key = {"Idempotency-Key": "3f0c9b8e-idem-0001"}
    first = server.post("/v1/valuations", synthetic_application(application_id="SYN-IDEM"), headers=key)
    n = n_valuations(server)
    again = server.post("/v1/valuations", synthetic_application(application_id="SYN-IDEM"), headers=key)
    assert first.status_code == again.status_code == 201 and again.json()["valuation_id"] == first.json()["valuation_id"] and n_valuations(server) == n
    other = server.post("/v1/valuations", synthetic_application(application_id="SYN-IDEM", requested_amount_rmb=400_000), headers=key)
    assert other.status_code == 409 and "Idempotency-Key was used before with another request body" in other.json()["detail"]
    assert server.post("/v1/valuations", synthetic_application(application_id="SYN-IDEM"), role="officer2", headers=key).json()["valuation_id"] != \
        first.json()["valuation_id"]  # a key is the user's own


def test_f10_each_user_sees_and_acts_on_their_branchs_valuations_and_uploads(server, tmp_path):
    mine = server.post("/v1/valuations", synthetic_application(application_id="SYN-F10")).json()
    vid = mine["valuation_id"]
    for path in (f"/v1/valuations/{vid}", f"/v1/valuations/{vid}/report"):
        assert server.get(path, role="officer-b").status_code == 404
    assert server.post(f"/v1/valuations/{vid}/overrides", {"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.01, "reason": "r"},
                       role="officer-b").status_code == 404
    assert server.post("/v1/valuations", synthetic_application(application_id="SYN-F10"), role="officer-b").status_code == 403
    pd.DataFrame([synthetic_patent(1)]).to_csv(tmp_path / "a.csv", index=False)
    up = upload(server, tmp_path / "a.csv").json()["upload_id"]
    stolen = server.post("/v1/valuations", synthetic_application(application_id="SYN-F10B", patents={"file": up, "ids": ["SYN-CN-T001"]}), role="officer-b")
    assert stolen.status_code == 422, stolen.text
    queue = server.get("/v1/valuations?mine=true&limit=200").json()
    assert vid in [i["valuation_id"] for i in queue["items"]] and {i["branch"] for i in queue["items"]} == {"head-office"}
    assert server.get("/v1/valuations", role="officer-b").json()["items"] == [] or \
        {i["branch"] for i in server.get("/v1/valuations", role="officer-b").json()["items"]} == {"branch-b"}
    assert server.get("/v1/valuations?branch=branch-b").status_code == 403
    awaiting = server.get("/v1/valuations?status=review_required", role="reviewer").json()
    assert all(i["decision"] == "review required" for i in awaiting["items"])
    assert server.get("/v1/valuations", role="validator").status_code == 403 and server.get(f"/v1/valuations/{vid}", role="admin").status_code == 403
    assert server.get("/v1/users", role="officer").status_code == 403
    made = server.post("/v1/users", {"name": "new-officer", "role": "officer", "branch": "branch-c"}, role="admin")
    assert made.status_code == 201 and made.json()["token"].startswith("ipv_")
    assert requests.get(server.url + "/v1/valuations", headers={"Authorization": f"Bearer {made.json()['token']}"}, timeout=30).json()["branch"] == "branch-c"


def test_f11_requests_that_were_500s_are_4xx_with_nothing_written(server, tmp_path):
    n = n_valuations(server)
    for change in ({"pledge_policy": "cn-pledge-2025"}, {"risk_sharing": "x"}, {"valuation_date": "9999-12-31"},
                   {"borrower": "\ud800"}, {"register": {"file": "r.csv", "encoding": "x"}}):
        r = server.post("/v1/valuations", synthetic_application(application_id="SYN-F11", **change))
        assert r.status_code == 422, (change, r.text)
    surrogate = requests.post(server.url + "/v1/valuations", data=b'{"application_id": "A", "borrower": "\\ud800"}',
                              headers={**server.headers(), "Content-Type": "application/json"}, timeout=30)
    assert surrogate.status_code == 422 and "lone surrogate" in surrogate.json()["detail"]
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    bad = upload(server, tmp_path / "bad.parquet")
    assert bad.status_code == 422 and "bad.parquet" not in os.listdir(server.folder / "state" / "uploads" / "head-office")
    assert n_valuations(server) == n
    alias = server.post("/v1/models/promote", {"model_uri": "models:/ipvalue-value/1", "reason": "r", "alias": "../../x"}, role="validator")
    assert alias.status_code == 422 and "must be one of ['champion', 'challenger']" in alias.json()["detail"]


def test_f12_messages_name_no_server_path_and_ops_endpoints_say_little_without_a_token(server):
    r = server.post("/v1/valuations", synthetic_application(patents={"file": "missing-upload.csv", "ids": ["X"]}))
    assert r.status_code == 422 and str(server.folder) not in r.text and "/tmp" not in r.text, r.text
    assert requests.get(server.url + "/readyz", timeout=30).json() == {"status": "ready"}
    assert "models" in server.get("/readyz").json()
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert requests.get(server.url + path, timeout=30).status_code == 401
    docs = server.get("/docs")
    assert docs.status_code == 200 and "http" not in docs.text.replace("http-equiv", "")  # no CDN: every asset from this service
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-init.js", "redoc.standalone.js"):
        assert requests.get(server.url + f"/docs/assets/{asset}", timeout=30).status_code == 200
    assert docs.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")


def test_f13_cross_site_posts_are_refused_sessions_end_on_sign_out_and_pages_carry_security_headers(server):
    assert requests.post(server.url + "/ui/login", data={"token": server.tokens["officer"]}, headers={"Origin": "https://evil.example"},
                         allow_redirects=False, timeout=30).status_code == 403
    assert requests.post(server.url + "/ui/login", data={"token": server.tokens["officer"]}, allow_redirects=False, timeout=30).status_code == 403
    browser = requests.Session()
    signed_in = browser.post(server.url + "/ui/login", data={"token": server.tokens["officer"]}, headers={"Origin": server.url}, allow_redirects=False, timeout=30)
    assert signed_in.status_code == 303
    cookie = browser.cookies.get("ipvalue_session")
    assert cookie and server.tokens["officer"] not in signed_in.headers["set-cookie"] and "HttpOnly" in signed_in.headers["set-cookie"]
    assert "Max-Age" in signed_in.headers["set-cookie"] and "SameSite=strict" in signed_in.headers["set-cookie"]
    forged = requests.post(server.url + "/ui/valuations", data={"application_id": "X"}, cookies={"ipvalue_session": cookie},
                           headers={"Origin": "https://evil.example"}, allow_redirects=False, timeout=30)
    assert forged.status_code == 403
    assert browser.get(server.url + "/v1/valuations", timeout=30).status_code == 200
    browser.post(server.url + "/ui/logout", headers={"Origin": server.url}, timeout=30)
    assert requests.get(server.url + "/v1/valuations", cookies={"ipvalue_session": cookie}, timeout=30).status_code == 401
    for path in ("/ui", "/v1/models"):
        h = server.get(path).headers
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff" and h["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in h["content-security-policy"] and "script-src" not in h["content-security-policy"]


def test_f14_a_page_amount_of_1_0_0_is_refused_not_read_as_100(server):
    from ipvalue.service.pages import _number

    assert _number("1,000,000") == 1_000_000.0 and _number("1,0,0") == "1,0,0" and _number("12.5") == 12.5
    r = server.post("/v1/valuations", synthetic_application(application_id="SYN-F14", requested_amount_rmb="1,0,0"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "requested_amount_rmb"
    text = json.dumps(synthetic_application(application_id="SYN-F14", borrower="@@"))
    deep = text.replace('"@@"', '{"a": ' * 950 + "1" + "}" * 950)  # the review's 950-deep borrower
    r = requests.post(server.url + "/v1/valuations", data=deep.encode(), headers={**server.headers(), "Content-Type": "application/json"}, timeout=60)
    assert r.status_code in (400, 422) and not (read_audit_table("valuations", server.db)["application_id"] == "SYN-F14").any()


def test_f15_state_files_are_private(server, tmp_path):
    pd.DataFrame([synthetic_patent(1)]).to_csv(tmp_path / "p.csv", index=False)
    up = upload(server, tmp_path / "p.csv").json()["upload_id"]
    vid = server.post("/v1/valuations", synthetic_application(application_id="SYN-F15")).json()["valuation_id"]
    server.get(f"/v1/valuations/{vid}/report")
    state = server.folder / "state"
    for path in (state / "uploads" / "head-office" / up, state / "valuations" / vid / "application.json", state / "valuations" / vid / "report.html",
                 state / "sessions.db", server.db):
        assert path.stat().st_mode & 0o777 == 0o600, path
    for folder in (state, state / "uploads", state / "uploads" / "head-office", state / "valuations" / vid):
        assert folder.stat().st_mode & 0o077 == 0, folder


def test_f16_a_report_missing_after_a_kill_is_rendered_on_start_and_the_pdf_is_served(tmp_path):
    s = Server(tmp_path)
    try:
        vid = s.post("/v1/valuations", synthetic_application(application_id="SYN-F16")).json()["valuation_id"]
        report = tmp_path / "state" / "valuations" / vid / "report.html"
        for _ in range(60):
            if report.is_file():
                break
            time.sleep(0.5)
    finally:
        s.process.kill()  # kill -9
        s.process.wait(timeout=30)
        s.log.close()
    report.unlink()
    again = Server(tmp_path, tokens=s.tokens)
    try:
        for _ in range(120):  # rendered by the start, without a request
            if report.is_file():
                break
            time.sleep(0.5)
        assert report.is_file() and vid in report.read_text(encoding="utf-8")
        from ipvalue.report import pdf_unavailable

        if pdf_unavailable() is None:
            pdf = again.get(f"/v1/valuations/{vid}/report?format=pdf")
            assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
        assert again.get(f"/v1/valuations/{vid}/report?format=docx").status_code == 422
    finally:
        again.stop()


# --- F2 / F8: bounded input, measured on the server process ------------------------------------------------------------


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":")) / 1024


def raw_post(server, path: str, headers: dict, body_chunks, read_timeout=30) -> tuple[int, float]:
    """A POST over a plain socket: the headers, then the body chunks given (maybe fewer than the
    Content-Length announces), then the answer; returns the status and the bytes sent (MB)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=read_timeout)
    conn.putrequest("POST", path)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    sent = 0
    try:
        for chunk in body_chunks:
            conn.send(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        status = conn.getresponse().status
    except (ConnectionResetError, http.client.RemoteDisconnected):
        status = -1
    conn.close()
    return status, sent / 2**20


def test_f8_a_300_mb_upload_is_refused_from_its_headers_without_being_read(server):
    pid = server.process.pid
    before = rss_mb(pid)
    megabyte = b"x" * 2**20
    # the answer comes before a byte of the body was sent: nothing of it was read, let alone spooled
    status, sent = raw_post(server, "/v1/uploads", {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(300 * 2**20)}, [])
    assert status == 401 and sent == 0
    status, _ = raw_post(server, "/v1/uploads", {**server.headers(), "Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(300 * 2**20)}, [])
    assert status == 413
    status, _ = raw_post(server, "/v1/valuations", {"Content-Type": "application/json", "Content-Length": str(300 * 2**20)}, [])
    assert status == 401
    half = b"x" * 600_000
    status, sent = raw_post(server, "/v1/valuations", {**server.headers(), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                            [b"%x\r\n%s\r\n" % (len(half), half)] * 2)
    assert status == 413  # a chunked body is cut at the limit (1 MB), without its end
    assert rss_mb(pid) - before < 50


def test_f2_hostile_uploads_keep_the_server_process_small(server, tmp_path):
    from benchmarks.upload_memory import HEADER, patent_row, write_csv, write_xlsx

    pid = server.process.pid
    before = rss_mb(pid, "VmHWM")
    csv = write_csv(tmp_path / "dup.csv", 20_000, duplicate=True)
    r = upload(server, csv)
    assert r.status_code == 201 and r.json()["patents"] == [] and r.json()["rows_quarantined"] == 20_000
    assert len(r.json()["quarantine"]) <= 1000
    xlsx = write_xlsx(tmp_path / "dup.xlsx", HEADER, (patent_row(i, True) for i in range(200_000)))
    assert xlsx.stat().st_size < 400_000
    r = upload(server, xlsx)
    assert r.status_code == 422 and "above the 100,000 max rows of a read" in r.json()["detail"], r.text  # refused by the row limit, from the sheet's XML
    peak = rss_mb(pid, "VmHWM")
    print(f"server peak RSS {before:.0f} MB before, {peak:.0f} MB after a 20,000-row duplicate CSV ({csv.stat().st_size / 1e3:.0f} kB) "
          f"and a 200,000-row .xlsx ({xlsx.stat().st_size / 1e3:.0f} kB)")
    assert peak - before < 150


def test_a_bank_configuration_file_pins_what_applications_name_and_the_docs_can_be_switched_off(tmp_path):
    (tmp_path / "valuation.yaml").write_text("name: bank-2026\nassumption_sets: [cn-pledge-2025]\npledge_policies: [pledge-policy-cn]\n"
                                             "risk_sharing: [none, guangzhou-55]\n", encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("pledge_policies: [cn-pledge-2025]\n", encoding="utf-8")  # an income set named as a policy
    assert main(["serve", "--config", str(tmp_path / "bad.yaml"), "--audit-db", str(tmp_path / "x.db")]) == 4  # refused at start, not per request
    s = Server(tmp_path, "--config", str(tmp_path / "valuation.yaml"), "--no-docs")
    try:
        refused = s.post("/v1/valuations", synthetic_application(risk_sharing="5311"))
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "risk_sharing"
        assert "must be one of ['none', 'guangzhou-55'] (the bank's configuration)" in refused.json()["detail"]
        ok = s.post("/v1/valuations", synthetic_application(risk_sharing=None))
        assert ok.status_code == 201 and ok.json()["provenance"]["configuration"] == "bank-2026"
        assert ok.json()["summary"]["risk_sharing_scheme"] and ok.json()["summary"]["bank_share_of_loss"] == 1.0  # 'none': the bank bears it all
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert s.get(path).status_code == 404
    finally:
        s.stop()



def test_a_serving_process_keeps_its_loaded_objects_out_of_collections_and_frees_replaced_models(tmp_path):
    code = """
import gc, json, tempfile, weakref
from pathlib import Path
from ipvalue.service import ServiceSettings, ValuationService, create_app
tmp = Path(tempfile.mkdtemp())
service = ValuationService(ServiceSettings(audit_db=tmp / "audit.db", state_dir=tmp / "state", tracking_uri=f"sqlite:///{tmp}/mlflow.db"))
create_app(service=service)
before = gc.get_freeze_count()
service.freeze_long_lived()
frozen = gc.get_freeze_count()
class Model:  # a model's objects hold reference cycles
    pass
old = Model(); old.me = old
service.models = {"models:/old@champion": old}
service.freeze_long_lived()  # the old model is among the frozen objects now
gone = weakref.ref(old)
del old
service.load_models()  # a reload replaces it: it must be collectable, not kept frozen for ever
print(json.dumps({"before": before, "frozen": frozen, "refrozen": gc.get_freeze_count(), "old_model_freed": gone() is None}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == 0 and seen["frozen"] > 10_000 and seen["refrozen"] > 10_000
    assert seen["old_model_freed"]
