"""One workflow (value → record → report) behind every entry point: the CLI, the demo (tests/test_cli.py)
and the service go through ``ipvalue.workflow.value_and_record``, with the same exposure lookup,
checks, audit record and report. A borrower's second application that breaks the ¥10M on total
exposure is refused alike by the CLI and the HTTP API."""

from __future__ import annotations

import json

import pytest

from ipvalue import workflow
from ipvalue.audit import Identity, read_audit_table
from ipvalue.cli import main
from tests.conftest import synthetic_application

pytestmark = pytest.mark.filterwarnings("ignore")


def big_application(application_id: str, amount: float) -> dict:
    """An application whose collateral carries a ¥9M loan: the product sells ¥3 billion a year."""
    return synthetic_application(application_id=application_id, requested_amount_rmb=amount, revenue_forecast={"base_rmb": 3_000_000_000, "growth": 0.05})


def test_the_cli_and_the_service_record_through_the_one_workflow(tmp_path, monkeypatch):
    from ipvalue.service.core import ServiceSettings, ValuationService

    calls, real = [], workflow.value_and_record
    monkeypatch.setattr(workflow, "value_and_record", lambda app, **kw: calls.append((app.application_id, str(kw["store"]))) or real(app, **kw))
    (tmp_path / "app.json").write_text(json.dumps(synthetic_application(application_id="SYN-CLI-1")), encoding="utf-8")
    db = tmp_path / "audit.db"
    assert main(["value", str(tmp_path / "app.json"), "--out", str(tmp_path / "reports"), "--audit-db", str(db), "--user", "cli-user"]) == 0
    service = ValuationService(ServiceSettings(audit_db=db, state_dir=tmp_path / "state"))
    service.models = {}
    service.value(synthetic_application(application_id="SYN-API-1"), Identity("officer-1", "officer"))
    assert calls == [("SYN-CLI-1", str(db)), ("SYN-API-1", str(db))]
    recorded = read_audit_table("valuations", db)
    assert recorded["application_id"].tolist() == ["SYN-CLI-1", "SYN-API-1"] and recorded["user"].tolist() == ["cli-user", "officer-1"]
    # the same record and report data on both paths: the report's sections are in the recorded JSON
    for row in recorded.itertuples():
        assert json.loads(row.result_json)["report"]["sections"][0]["id"] == "summary"


def exposure_check(payload: dict) -> dict:
    return next(c for c in payload["checks"] if c["check"] == "total_exposure_within_internal_limit")


@pytest.mark.slow
def test_a_split_loan_is_refused_by_the_cli_and_the_api_alike_on_sqlite(tmp_path, monkeypatch):
    from tests.test_service import Server

    (tmp_path / "srv").mkdir()
    server = Server(tmp_path / "srv")
    monkeypatch.setenv("IPVALUE_AUDIT_KEY_FILE", str(server.key))  # the CLI run on the bank's store, with the bank's key
    try:
        first = server.post("/v1/valuations", big_application("SYN-SPLIT-1", 9_000_000))
        assert first.status_code == 201, first.text
        assert first.json()["summary"]["decision"] == "eligible", first.json()["checks"]
        api = server.post("/v1/valuations", big_application("SYN-SPLIT-2", 9_000_000)).json()
        (tmp_path / "app.json").write_text(json.dumps(big_application("SYN-SPLIT-3", 9_000_000)), encoding="utf-8")
        assert main(["value", str(tmp_path / "app.json"), "--out", str(tmp_path / "reports"), "--audit-db", str(server.db), "--user", "cli"]) == 1
        cli = json.loads(next((tmp_path / "reports").glob("SYN-SPLIT-3-*.json")).read_text(encoding="utf-8"))
    finally:
        server.stop()
    for refused in (api, cli):
        check = exposure_check(refused)
        assert check["status"] == "fail" and refused["summary"]["decision"] == "not eligible"
        assert "SYN-SPLIT-1" in check["reason_en"] and "splitting a loan does not lower the exposure" in check["reason_en"]
    assert exposure_check(api)["reason_zh"].split("（")[0] == exposure_check(cli)["reason_zh"].split("（")[0]  # the same total of 18,000,000
