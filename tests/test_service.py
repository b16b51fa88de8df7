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

from ipvalue.audit import add_user, read_audit_table, verify
from ipvalue.cli import main
from tests.conftest import synthetic_application, synthetic_patent

pytestmark = pytest.mark.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``ipvalue serve`` in a subprocess on 127.0.0.1; tokens for each role."""

    def __init__(self, folder: Path, *args: str, tracking_uri: str | None = None):
        self.folder, self.port = folder, free_port()
        self.tracking_uri = tracking_uri or f"sqlite:///{folder / 'mlflow.db'}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = folder / "audit.db"
        self.key = folder / "audit.key"  # the bank's audit key, outside the database: the chain is anchored
        self.tokens = {role: add_user(f"{role}-1", role, self.db, key_file=self.key) for role in ("officer", "reviewer", "validator", "admin")}
        self.tokens["officer2"] = add_user("officer-2", "officer", self.db, key_file=self.key)
        command = [sys.executable, "-c", "import sys; from ipvalue.cli import main; sys.exit(main(sys.argv[1:]))", "serve", "--port", str(self.port),
                   "--audit-db", str(self.db), "--state-dir", str(folder / "state"),
                   "--tracking-uri", self.tracking_uri, *args]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "IPVALUE_AUDIT_KEY_FILE": str(self.key)}
        self.log = open(folder / "server.log", "wb")
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

    def post(self, path, body=None, role="officer", **kw):
        return requests.post(self.url + path, json=body, headers=self.headers(role) if role else {}, timeout=120, **kw)

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


def test_a_revoked_token_is_401(server):
    token = add_user("leaver", "officer", server.db, key_file=server.key)
    assert requests.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
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


@pytest.mark.parametrize("change, status, message", [
    ({"requested_amount_rmb": "abc"}, 422, r"The 'requested_amount_rmb' \(loan amount requested, RMB\) of application SYN-APP-T1 must be in"),
    ({"overides": []}, 422, r"unknown field\(s\) \['overides'\]"),
    ({"review": {"reviewer": "me", "reason": "ok"}}, 422, r"'review' of an application is given through the sign-off of a reviewer"),
    ({"models": {"value": "models:/elsewhere@champion"}}, 422, r"which this service does not serve"),
    ({"patents": {"file": "../../audit.db"}}, 422, r"points outside the application's folder"),
    ({"overrides": [{"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.01, "reason": "r", "officer": "someone-else"}]}, 422,
     r"names officer 'someone-else', but the signed-in user is 'officer-1'"),
])
def test_invalid_applications_are_422_naming_the_field(server, change, status, message):
    r = server.post("/v1/valuations", synthetic_application(**change))
    assert r.status_code == status, r.text
    assert re.search(message, r.json()["detail"]), r.json()["detail"]


@pytest.mark.parametrize("data, message", [("{", "not valid UTF-8 JSON"), ('{"a": 1, "a": 2}', r"repeats the key\(s\) \['a'\]"),
                                           ('{"requested_amount_rmb": NaN}', "NaN, which is not a number in JSON")])
def test_malformed_json_is_400(server, data, message):
    r = requests.post(server.url + "/v1/valuations", data=data, headers={**server.headers(), "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and re.search(message, r.json()["detail"])


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
    assert signed["summary"]["review"] == {"reviewer": "reviewer-1", "reason": "可比交易为同类专利包整体转让，已核实"}
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
    code = main(["value", str(tmp_path / "application.json"), "--out", str(tmp_path / "reports"), "--audit-db", str(tmp_path / "cli-audit.db"),
                 "--tracking-uri", uri, "--user", "cli"])
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
    assert chain["seq"].tolist() == list(range(1, len(chain) + 1))  # the five users, then the valuations: one chain, no gap
    chained = chain[chain["kind"] == "valuation"]
    assert len(valuations) == 50 and len(chained) == 50 and set(chained["valuation_id"]) == set(valuations["valuation_id"])
    assert sorted(valuations["application_id"]) == sorted(a["application_id"] for a in apps)
    assert set(valuations["user"]) == {"officer-1"}
    capsys.readouterr()
    assert main(["audit", "verify", "--audit-db", str(s.db), "--audit-key", str(s.key)]) == 0
    assert capsys.readouterr().out.startswith("audit chain intact: 50 valuation(s), 5 user and revocation record(s); anchored")

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

    patents = [synthetic_patent(1), synthetic_patent(2, patent_type="utility_model", filing_date="2021-01-01", publication_date="2021-08-01", grant_date="2021-08-01")]
    pd.DataFrame(patents).to_csv(tmp_path / "incopat-export.csv", index=False)
    chrome.get(server.url + "/ui")
    wait("token").send_keys(server.tokens["officer"])
    chrome.find_element(By.ID, "login").click()
    wait("file").send_keys(str(tmp_path / "incopat-export.csv"))
    chrome.find_element(By.ID, "upload").click()
    wait("submit")
    assert "SYN-CN-T001" in chrome.page_source and "借款人 Borrower" in chrome.page_source
    for box in chrome.find_elements(By.NAME, "ids"):
        box.click()
    for field, value in {"application_id": "SYN-APP-UI1", "requested_amount_rmb": "300000", "term_years": "2", "valuation_date": "2026-06-30",
                         "revenue_base_rmb": "40000000", "revenue_growth": "0.05"}.items():
        element = chrome.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    chrome.find_element(By.ID, "submit").click()
    decision = wait("decision")
    # the page takes no documents yet: the utility model's 评价报告 and the fee receipts are missing
    assert decision.get_attribute("data-decision") == "documents required" and "需补充材料" in decision.text
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


def test_the_openapi_request_schema_is_the_applications_one_table(server):
    from ipvalue.lending.application import APPLICATION_FIELDS

    spec = requests.get(server.url + "/openapi.json", timeout=30).json()
    schema = spec["paths"]["/v1/valuations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert list(schema["properties"]) == list(APPLICATION_FIELDS) and schema["additionalProperties"] is False
    assert schema["required"] == ["application_id", "borrower", "requested_amount_rmb", "term_years", "valuation_date", "patents"]
    assert schema["properties"]["requested_amount_rmb"] == {"type": "number", "description": "Loan amount requested, RMB."}


def test_a_valuation_recorded_elsewhere_is_served_as_json_and_its_missing_report_is_404(server):
    from ipvalue.audit import record_valuation
    from tests.test_audit import fake_result

    with pytest.MonkeyPatch.context() as mp:  # e.g. an 'ipvalue value' run on the same store, with the bank's key
        mp.setenv("IPVALUE_AUDIT_KEY_FILE", str(server.key))
        record_valuation(fake_result("CLI-RUN-1"), server.db)
    assert server.get("/v1/valuations/CLI-RUN-1").json()["x"] == 1
    r = server.get("/v1/valuations/CLI-RUN-1/report")
    assert r.status_code == 404 and "has no rendered report" in r.json()["detail"]
    over = server.post("/v1/valuations/CLI-RUN-1/overrides", {"patent_id": "CN1", "field": "sharing_rate", "value": 0.01, "reason": "r"})
    assert over.status_code == 409 and "was not made by this service" in over.json()["detail"]
