"""One workflow (value → record → report) behind every entry point: the CLI, the demo (tests/test_cli.py)
and the service go through ``ipvalue.workflow.value_and_record``, with the same exposure lookup,
checks, audit record and report. A borrower's second application that breaks the ¥10M on total
exposure is refused alike by the CLI and the HTTP API, on SQLite and on PostgreSQL, and two
applications valued at the same time cannot both pass (the exposure is read again under the
chain lock)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ipvalue import workflow
from ipvalue.audit import Identity, add_user, authenticate, read_audit_table, verify
from ipvalue.cli import main
from ipvalue.lending import LoanApplication
from tests.conftest import synthetic_application
from tests.test_audit import fresh_postgres, postgres_url  # noqa: F401 - the throw-away PostgreSQL cluster's fixtures

pytestmark = pytest.mark.filterwarnings("ignore")


def big_application(application_id: str, amount: float) -> dict:
    """An application whose collateral carries a ¥9M loan: the product sells ¥3 billion a year."""
    return synthetic_application(application_id=application_id, requested_amount_rmb=amount, revenue_forecast={"base_rmb": 3_000_000_000, "growth": 0.05})


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """An audit store of each kind (PostgreSQL on a throw-away cluster; skipped where absent)."""
    return tmp_path / "audit.db" if request.param == "sqlite" else request.getfixturevalue("fresh_postgres")


def test_the_cli_and_the_service_record_through_the_one_workflow(tmp_path, monkeypatch):
    from ipvalue.service.core import ServiceSettings, ValuationService

    calls, real = [], workflow.value_and_record
    monkeypatch.setattr(workflow, "value_and_record", lambda app, **kw: calls.append((app.application_id, str(kw["store"]))) or real(app, **kw))
    (tmp_path / "app.json").write_text(json.dumps(synthetic_application(application_id="SYN-CLI-1")), encoding="utf-8")
    db = tmp_path / "audit.db"
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("cli-user", "officer", db))
    assert main(["value", str(tmp_path / "app.json"), "--out", str(tmp_path / "reports"), "--audit-db", str(db)]) == 0
    service = ValuationService(ServiceSettings(audit_db=db, state_dir=tmp_path / "state"))
    service.models = {}
    service.value(synthetic_application(application_id="SYN-API-1"), Identity("officer-1", "officer"))
    assert calls == [("SYN-CLI-1", str(db)), ("SYN-API-1", str(db))]
    recorded = read_audit_table("valuations", db)
    assert recorded["application_id"].tolist() == ["SYN-CLI-1", "SYN-API-1"] and recorded["user"].tolist() == ["cli-user", "officer-1"]
    provenance = json.loads(recorded["provenance_json"].iloc[0])
    assert provenance["authenticated_by"].startswith("api token (command line; os user ") and provenance["os_user"]
    # the same record and report data on both paths: the report's sections are in the recorded JSON
    for row in recorded.itertuples():
        assert json.loads(row.result_json)["report"]["sections"][0]["id"] == "summary"


def test_the_cli_takes_no_name_as_identity(tmp_path, monkeypatch, capsys):
    (tmp_path / "app.json").write_text(json.dumps(synthetic_application()), encoding="utf-8")
    monkeypatch.delenv("IPVALUE_TOKEN", raising=False)
    monkeypatch.setenv("IPVALUE_TOKEN_FILE", str(tmp_path / "no-token"))
    assert main(["value", str(tmp_path / "app.json"), "--audit-db", str(tmp_path / "a.db"), "--user", "boss"]) == 2
    assert "--user is not proof of identity" in capsys.readouterr().err
    assert main(["value", str(tmp_path / "app.json"), "--audit-db", str(tmp_path / "a.db")]) == 3
    assert "No API token" in capsys.readouterr().err
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("rev", "reviewer", tmp_path / "a.db"))
    assert main(["value", str(tmp_path / "app.json"), "--audit-db", str(tmp_path / "a.db")]) == 3
    assert "this act needs role officer" in capsys.readouterr().err


def exposure_check(payload: dict) -> dict:
    return next(c for c in payload["checks"] if c["check"] == "total_exposure_within_internal_limit")


@pytest.mark.slow
def test_a_split_loan_is_refused_by_the_cli_and_the_api_alike_on_both_stores(tmp_path, monkeypatch, store):
    from tests.test_service import Server

    (tmp_path / "srv").mkdir()
    server = Server(tmp_path / "srv", audit_db=store)
    monkeypatch.setenv("IPVALUE_AUDIT_KEY_FILE", str(server.key))  # the CLI run on the bank's store, with the bank's key
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("cli-officer", "officer", store, key_file=server.key))
    try:
        first = server.post("/v1/valuations", big_application("SYN-SPLIT-1", 9_000_000))
        assert first.status_code == 201, first.text
        assert first.json()["summary"]["decision"] == "eligible", first.json()["checks"]
        api = server.post("/v1/valuations", big_application("SYN-SPLIT-2", 9_000_000)).json()
        (tmp_path / "app.json").write_text(json.dumps(big_application("SYN-SPLIT-3", 9_000_000)), encoding="utf-8")
        assert main(["value", str(tmp_path / "app.json"), "--out", str(tmp_path / "reports"), "--audit-db", str(store)]) == 1
        cli = json.loads(next((tmp_path / "reports").glob("SYN-SPLIT-3-*.json")).read_text(encoding="utf-8"))
    finally:
        server.stop()
    for refused in (api, cli):
        check = exposure_check(refused)
        assert check["status"] == "fail" and refused["summary"]["decision"] == "not eligible"
        assert "SYN-SPLIT-1" in check["reason_en"] and "splitting a loan does not lower the exposure" in check["reason_en"]
    assert exposure_check(api)["reason_zh"].split("（")[0] == exposure_check(cli)["reason_zh"].split("（")[0]  # the same total of 18,000,000


def test_two_applications_valued_at_the_same_moment_cannot_both_pass_the_exposure_rule(monkeypatch, store):
    """Both valuations read the store before either records (a barrier holds them there): the
    second to take the chain lock finds the first's record, writes nothing and values again."""
    officer = authenticate(add_user("officer-1", "officer", store), store)
    barrier, real = threading.Barrier(2, timeout=120), workflow.value_application
    seen = threading.local()

    def value_then_wait(app, **kw):
        result = real(app, **kw)
        if not getattr(seen, "waited", False):
            seen.waited = True
            barrier.wait()  # both have read the exposure and valued: the window the old workflow left open
        return result

    monkeypatch.setattr(workflow, "value_application", value_then_wait)

    def value(application_id):
        app = LoanApplication.from_dict(big_application(application_id, 9_000_000))
        return workflow.value_and_record(app, store=store, identity=officer, models={}).result.summary["decision"]

    with ThreadPoolExecutor(2) as pool:
        decisions = sorted(pool.map(value, ["SYN-RACE-1", "SYN-RACE-2"]))
    assert decisions == ["eligible", "not eligible"]
    assert len(read_audit_table("valuations", store)) == 2 and verify(store).ok


def test_concurrent_split_loans_over_http_with_two_workers_leave_one_eligible(tmp_path, store):
    from tests.test_service import Server

    server = Server(tmp_path, "--workers", "2", audit_db=store)
    try:
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda i: server.post("/v1/valuations", big_application(f"SYN-CONC-{i}", 9_000_000)), range(3)))
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [201] * 3
    assert sorted(a.json()["summary"]["decision"] for a in answers) == ["eligible", "not eligible", "not eligible"]


def test_the_cli_applies_a_bank_configuration_file_when_there_is_one(tmp_path, monkeypatch, capsys):
    (tmp_path / "conf" ).mkdir()
    (tmp_path / "conf" / "valuation.yaml").write_text("name: bank-2026\nrisk_sharing: [none]\n", encoding="utf-8")
    (tmp_path / "app.json").write_text(json.dumps(synthetic_application()), encoding="utf-8")
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("cli-user", "officer", tmp_path / "a.db"))
    monkeypatch.setenv("IPVALUE_CONFIG_DIR", str(tmp_path / "conf"))
    assert main(["value", str(tmp_path / "app.json"), "--out", str(tmp_path / "r"), "--audit-db", str(tmp_path / "a.db")]) == 3
    assert "The 'risk_sharing' of application SYN-APP-T1 must be one of ['none'] (the bank's configuration). Got '5311'" in capsys.readouterr().err
    monkeypatch.delenv("IPVALUE_CONFIG_DIR")
    assert main(["value", str(tmp_path / "app.json"), "--out", str(tmp_path / "r"), "--audit-db", str(tmp_path / "a.db")]) == 0  # no file: as named
