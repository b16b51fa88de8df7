"""Service identities in the audit store: API tokens hashed at rest, one role per name, revocation;
the ``ipvalue users`` and ``ipvalue audit verify | checkpoint`` commands."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

import ipvalue.audit as audit
from ipvalue.audit import Identity, ROLES, add_user, authenticate, list_users, revoke_user, token_digest
from ipvalue.cli import main
from ipvalue.exceptions import DomainError


@pytest.fixture(autouse=True)
def no_audit_environment(monkeypatch):
    for name in (audit.ENV_KEY_FILE, audit.ENV_CHECKPOINTS, audit.ENV_AUDIT_PATH):
        monkeypatch.delenv(name, raising=False)


def test_a_token_authenticates_its_user_and_role_and_only_its_hash_is_stored(tmp_path):
    db = tmp_path / "audit.db"
    tokens = {role: add_user(f"u-{role}", role, db) for role in ROLES}
    for role, token in tokens.items():
        assert authenticate(token, db) == Identity(f"u-{role}", role)
    assert token_digest("abc") == hashlib.sha256(b"abc").hexdigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    raw = db.read_bytes() + (db.with_name("audit.db-wal").read_bytes() if db.with_name("audit.db-wal").exists() else b"")
    assert all(t.encode() not in raw for t in tokens.values())
    assert all(token_digest(t).encode() in raw for t in tokens.values())
    assert list_users(db).columns.tolist() == ["token_id", "name", "role", "branch", "created_at", "created_by", "revoked_at"]


@pytest.mark.parametrize("token", ["", "ipv_wrong", None, 12, "x" * 300])
def test_an_unknown_or_malformed_token_is_nobody(tmp_path, token):
    db = tmp_path / "audit.db"
    add_user("alice", "officer", db)
    assert authenticate(token, db) is None


def test_revoking_a_user_ends_every_token_and_a_new_token_works(tmp_path):
    db = tmp_path / "audit.db"
    old = [add_user("alice", "officer", db), add_user("alice", "officer", db)]  # a second token for the same role
    assert revoke_user("alice", db) == 2 and revoke_user("alice", db) == 0
    assert [authenticate(t, db) for t in old] == [None, None]
    new = add_user("alice", "reviewer", db)  # after the revocation, another role
    assert authenticate(new, db) == Identity("alice", "reviewer")
    assert list_users(db)["revoked_at"].notna().tolist() == [True, True, False]


def test_one_name_holds_one_active_role(tmp_path, capsys):
    # F5: one name could hold officer and reviewer tokens and sign off its own valuation
    db = tmp_path / "audit.db"
    add_user("alice", "officer", db)
    with pytest.raises(DomainError, match=r"User 'alice' already holds the active role 'officer'; one name holds one role, so that nobody "
                                          r"signs off their own valuation \(审贷分离\). Got role 'reviewer'. Fix: revoke it first \('ipvalue users revoke alice'\)"):
        add_user("alice", "reviewer", db)
    assert list_users(db)["role"].tolist() == ["officer"]  # nothing written
    assert main(["users", "add", "alice", "--role", "admin", "--audit-db", str(db)]) == 3
    assert "already holds the active role 'officer'" in capsys.readouterr().err


@pytest.mark.parametrize("name, role, message", [
    ("", "officer", "A user name must be letters"), ("a b", "officer", "A user name must be letters"), ("张三", "officer", "A user name must be letters"),
    ("alice", "boss", r"The role of user 'alice' must be one of \['officer', 'reviewer', 'validator', 'admin'\]. Got 'boss'"),
])
def test_bad_names_and_roles_are_refused(tmp_path, name, role, message):
    with pytest.raises(DomainError, match=message):
        add_user(name, role, tmp_path / "audit.db")


@pytest.mark.parametrize("sql", ["UPDATE users SET role = 'admin'", "DELETE FROM users", "DELETE FROM token_revocations"])
def test_the_users_tables_are_append_only(tmp_path, sql):
    db = tmp_path / "audit.db"
    add_user("alice", "officer", db)
    revoke_user("alice", db)
    with sqlite3.connect(db) as con, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute(sql)


def test_users_cli_adds_lists_and_revokes(tmp_path, capsys):
    db = str(tmp_path / "audit.db")
    assert main(["users", "add", "rita", "--role", "reviewer", "--audit-db", db]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert authenticate(token, db) == Identity("rita", "reviewer")
    assert main(["users", "list", "--audit-db", db]) == 0
    listed = capsys.readouterr().out
    assert "rita" in listed and token not in listed and token_digest(token) not in listed
    assert main(["users", "revoke", "rita", "--audit-db", db]) == 0 and authenticate(token, db) is None
    assert main(["users", "revoke", "nobody", "--audit-db", db]) == 1
    with pytest.raises(SystemExit):
        main(["users", "add", "rita", "--role", "boss", "--audit-db", db])


def test_audit_verify_on_a_missing_store_is_an_input_error(tmp_path, capsys):
    assert main(["audit", "verify", "--audit-db", str(tmp_path / "none.db")]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_audit_verify_exits_0_only_when_intact_and_anchored_and_checkpoint_writes_one(tmp_path, capsys):
    db, key = str(tmp_path / "audit.db"), str(tmp_path / "keys" / "audit.key")
    assert main(["users", "add", "rita", "--role", "reviewer", "--audit-db", db]) == 0  # written without the key
    capsys.readouterr()
    assert main(["audit", "verify", "--audit-db", db]) == 1
    out = capsys.readouterr().out
    assert out.startswith("audit chain intact: 0 valuation(s), 1 user and revocation record(s)\nNOT ANCHORED: no audit key is given")
    assert main(["users", "add", "wang", "--role", "officer", "--audit-db", db, "--audit-key", key]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--audit-db", db, "--audit-key", key]) == 0
    assert "anchored: record 2 signed, last checkpoint at record 2" in capsys.readouterr().out
    checkpoints = str(tmp_path / "elsewhere.jsonl")
    assert main(["audit", "verify", "--audit-db", db, "--audit-key", key, "--checkpoints", checkpoints]) == 1
    assert main(["audit", "checkpoint", "--audit-db", db, "--audit-key", key, "--checkpoints", checkpoints]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("checkpoint: record 2 head ")
    assert main(["audit", "verify", "--audit-db", db, "--audit-key", key, "--checkpoints", checkpoints]) == 0
    with sqlite3.connect(db) as con:
        con.execute("DROP TRIGGER users_no_delete")
        con.execute("DROP TRIGGER audit_chain_no_delete")
        con.execute("DELETE FROM audit_chain WHERE seq = 2")
        con.execute("DELETE FROM users WHERE name = 'wang'")
    capsys.readouterr()
    assert main(["audit", "verify", "--audit-db", db, "--audit-key", key]) == 1
    assert "records were removed from its end (truncated)" in capsys.readouterr().out
