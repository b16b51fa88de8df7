"""``ipvalue review``: a sign-off in the CLI is a reviewer's own act, authenticated by a token, by
someone other than the preparer, on the application exactly as valued, and bound to its figures
(F5 in the CLI: a preparer's "自审" was accepted)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from ipvalue.audit import add_user, read_audit_table, revoke_user
from ipvalue.cli import main
from tests.conftest import synthetic_application

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def review_required(tmp_path, monkeypatch):
    """An application valued by officer 'wang' through the CLI to "review required" (comparables
    far above the income approach); returns (folder, store, valuation id)."""
    db = tmp_path / "audit.db"
    monkeypatch.delenv("IPVALUE_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("IPVALUE_TOKEN_FILE", str(tmp_path / "no-token-file"))
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("wang", "officer", db))
    (tmp_path / "plain.json").write_text(json.dumps(synthetic_application(application_id="SYN-REV-P")), encoding="utf-8")
    main(["value", str(tmp_path / "plain.json"), "--out", str(tmp_path / "plain"), "--audit-db", str(db)])
    income = max(p["market_value_rmb"] for p in json.loads(next((tmp_path / "plain").glob("*.json")).read_text(encoding="utf-8"))["patents"])
    pd.DataFrame([{"transaction_id": f"T{i}", "date": "2025-06-30", "kind": "transfer", "price_rmb": 20 * income * k, "patent_type": "invention",
                   "ipc_main": "G06F 16/00", "remaining_life_years": 12.0} for i, k in enumerate((1.0, 1.1, 1.2))]).to_csv(tmp_path / "comparables.csv", index=False)
    (tmp_path / "app.json").write_text(json.dumps(synthetic_application(application_id="SYN-REV", comparables="comparables.csv")), encoding="utf-8")
    assert main(["value", str(tmp_path / "app.json"), "--out", str(tmp_path / "reports"), "--audit-db", str(db)]) == 1
    vid = read_audit_table("valuations", db).query("application_id == 'SYN-REV'")["valuation_id"].iloc[-1]
    return tmp_path, db, vid


def sign_off(folder, db, vid, *extra):
    return main(["review", "sign-off", vid, "--application", str(folder / "app.json"), "--reason", "可比交易已核实", "--out", str(folder / "signed"),
                 "--audit-db", str(db), *extra])


def test_a_reviewer_signs_off_in_the_cli_and_the_preparer_cannot(review_required, monkeypatch, capsys):
    folder, db, vid = review_required
    assert sign_off(folder, db, vid) == 3 and "this act needs role reviewer" in capsys.readouterr().err  # the officer's token
    revoke_user("wang", db)
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("wang", "reviewer", db))  # the preparer, later a reviewer: still 自审
    assert sign_off(folder, db, vid) == 3 and "may not sign it off (审贷分离" in capsys.readouterr().err
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("zhao", "reviewer", db))
    assert sign_off(folder, db, vid) == 0
    out = capsys.readouterr().out
    assert f"signed off {vid} as zhao" in out and "eligible" in out
    versions = read_audit_table("valuations", db).query("application_id == 'SYN-REV'")
    assert versions["act"].tolist() == ["valuation", "sign-off"] and versions["user"].tolist() == ["wang", "zhao"]
    assert versions["supersedes"].iloc[-1] == vid and versions["decision"].iloc[-1] == "eligible"
    assert sign_off(folder, db, vid) == 3 and "no longer the latest version" in capsys.readouterr().err  # two sign-offs never both stick
    assert main(["review", "queue", "--audit-db", str(db)]) == 0 and "0 valuation(s) of branch head-office awaiting sign-off" in capsys.readouterr().out


def test_a_sign_off_needs_the_application_as_valued(review_required, monkeypatch, capsys):
    folder, db, vid = review_required
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("zhao", "reviewer", db))
    assert main(["review", "queue", "--audit-db", str(db)]) == 1
    queue = capsys.readouterr().out
    assert vid in queue and "e+0" not in queue and re.search(r"\d{1,3}(,\d{3})+", queue)  # money with separators, never 1.3e+06
    raw = json.loads((folder / "app.json").read_text(encoding="utf-8"))
    (folder / "app.json").write_text(json.dumps({**raw, "requested_amount_rmb": 200_000}), encoding="utf-8")
    assert sign_off(folder, db, vid) == 3 and "is not the one valued in" in capsys.readouterr().err
    assert len(read_audit_table("valuations", db).query("application_id == 'SYN-REV'")) == 1


def test_users_are_managed_by_an_admin_once_there_is_one(tmp_path, monkeypatch, capsys):
    db = tmp_path / "audit.db"
    monkeypatch.delenv("IPVALUE_TOKEN", raising=False)
    monkeypatch.setenv("IPVALUE_TOKEN_FILE", str(tmp_path / "no-token-file"))
    assert main(["users", "add", "root-admin", "--role", "admin", "--audit-db", str(db)]) == 0  # the bootstrap
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["users", "add", "li", "--role", "officer", "--branch", "shanghai-pudong", "--audit-db", str(db)]) == 3
    assert "No API token" in capsys.readouterr().err
    monkeypatch.setenv("IPVALUE_TOKEN", token)
    assert main(["users", "add", "li", "--role", "officer", "--branch", "shanghai-pudong", "--audit-db", str(db)]) == 0
    users = read_audit_table("users", db).set_index("name")
    assert users.loc["li", "branch"] == "shanghai-pudong" and users.loc["li", "created_by"].startswith("root-admin (admin; os user ")
    assert users.loc["root-admin", "created_by"].endswith("(os user; bootstrap: no admin yet)")
    assert main(["users", "add", "li", "--role", "officer", "--branch", "beijing", "--audit-db", str(db)]) == 3
    assert "one name belongs to one branch" in capsys.readouterr().err
    assert main(["users", "add", "x", "--role", "officer", "--branch", "Bad Branch", "--audit-db", str(db)]) == 3
