"""The audit store: append-only in fact, hash-chained, anchored by a key and checkpoints kept
outside it, Unicode-aware reasons, writers that queue instead of failing, on SQLite and PostgreSQL."""

import json
import multiprocessing
import os
import sqlite3
import stat
import time
from types import SimpleNamespace

import pandas as pd
import pytest

import ipvalue.audit as audit
from ipvalue.audit import (
    GENESIS, add_user, authenticate, load_key, pledge_applications, read_audit_table, record_hash, record_valuation, recording, revoke_user,
    verify, write_checkpoint,
)
from ipvalue.exceptions import AuditStoreError, DomainError, OverrideError


@pytest.fixture(autouse=True)
def no_audit_environment(monkeypatch):
    """Each test names its key and checkpoint files: none comes from the environment."""
    for name in (audit.ENV_KEY_FILE, audit.ENV_CHECKPOINTS, audit.ENV_WAIT, audit.ENV_AUDIT_PATH):
        monkeypatch.delenv(name, raising=False)


def fake_result(vid="V1", reason="市场数据更新", officer="张三", cap=250_000.0):
    overrides = pd.DataFrame(
        [{"patent_id": "CN1", "field": "sharing_rate", "model_value": 0.03, "override_value": 0.02, "reason": reason, "officer": officer}]
    )
    return SimpleNamespace(
        valuation_id=vid,
        application=SimpleNamespace(application_id="APP-1"),
        provenance={"valued_at": "2026-03-15T10:00:00", "user": "u", "input_hash": "h" * 16},
        summary={"decision": "eligible", "internal_value_rmb": 1_000_000.0, "loan_cap_rmb": cap},
        overrides=overrides,
        to_json=lambda: '{"x": 1}',
    )


def test_records_are_chained_and_verify(tmp_path):
    db = tmp_path / "a.db"
    record_valuation(fake_result("V1"), db)
    record_valuation(fake_result("V2"), db)
    chain = read_audit_table("audit_chain", db)
    assert chain["seq"].tolist() == [1, 2]
    assert chain.loc[0, "prev_hash"] == GENESIS and chain.loc[1, "prev_hash"] == chain.loc[0, "record_hash"]
    v = read_audit_table("valuations", db).iloc[0].to_dict()
    o = read_audit_table("overrides", db).iloc[0].to_dict()
    assert chain.loc[0, "record_hash"] == record_hash(GENESIS, v, [o])
    report = verify(db)
    assert report.ok and report.n_records == 2 and str(report).splitlines()[0] == "audit chain intact: 2 valuation(s)"
    assert not report.anchored and not report.passed and str(report).splitlines()[1].startswith("NOT ANCHORED: no audit key is given")


@pytest.mark.parametrize("sql", ["UPDATE valuations SET loan_cap_rmb = 9e9", "DELETE FROM valuations", "DELETE FROM overrides", "UPDATE audit_chain SET seq = 5"])
def test_update_and_delete_are_refused_by_the_store_itself(tmp_path, sql):
    # issue 15 finding 9: UPDATE / DELETE through sqlite3 succeeded and read_table showed the tampered cap.
    db = tmp_path / "a.db"
    record_valuation(fake_result(), db)
    with sqlite3.connect(db) as con, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute(sql)
    assert read_audit_table("valuations", db)["loan_cap_rmb"].tolist() == [250_000.0]


def test_tampering_with_the_triggers_dropped_is_found_by_verify(tmp_path):
    db = tmp_path / "a.db"
    for vid in ("V1", "V2", "V3"):
        record_valuation(fake_result(vid), db)
    with sqlite3.connect(db) as con:
        con.execute("DROP TRIGGER valuations_no_update")
        con.execute("UPDATE valuations SET loan_cap_rmb = 9e9 WHERE valuation_id = 'V2'")
    report = verify(db)
    assert not report.ok and report.first_broken == "V2" and "differ from what was recorded" in report.problem


def test_a_row_inserted_around_the_module_is_found(tmp_path):
    db = tmp_path / "a.db"
    record_valuation(fake_result("V1"), db)
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO valuations VALUES ('X', 'A', 't', 'u', 'h', 'eligible', 1, 1, '{}', '{}', 'head-office', 'valuation', NULL, NULL, NULL)")
    assert verify(db).first_broken == "X"


@pytest.mark.parametrize("reason", ["\u3000\u3000", " ", "\u00a0\t", ""])
def test_blank_reasons_including_full_width_spaces_are_refused_in_python_and_in_the_table(tmp_path, reason):
    db = tmp_path / "a.db"
    with pytest.raises(OverrideError, match="blank reason"):
        record_valuation(fake_result(reason=reason), db)
    assert read_audit_table("valuations", db).empty
    with sqlite3.connect(db) as con, pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        con.execute("INSERT INTO overrides VALUES ('V', 'P', 'f', 1, 2, ?, '张三', 't')", (reason,))


def test_infinite_values_are_not_recorded(tmp_path):
    with pytest.raises(DomainError, match="'loan_cap_rmb' of valuation 'V1' is inf"):
        record_valuation(fake_result(cap=float("inf")), tmp_path / "a.db")


def test_recording_commits_only_when_the_outputs_were_written(tmp_path):
    db = tmp_path / "a.db"
    with pytest.raises(OSError, match="disk full"), recording(fake_result("V1"), db):
        raise OSError("disk full")  # the report could not be written
    assert read_audit_table("valuations", db).empty
    with recording(fake_result("V2"), db):
        (tmp_path / "report.html").write_text("ok")
    assert read_audit_table("valuations", db)["valuation_id"].tolist() == ["V2"] and verify(db).ok


def test_read_only_corrupt_and_truncated_stores_give_a_clear_error(tmp_path):
    good = tmp_path / "good.db"
    record_valuation(fake_result("V1"), good)
    with sqlite3.connect(good) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AuditStoreError, match=r"corrupt\.db'.*Fix: the file is corrupt or truncated"):
        record_valuation(fake_result("V2"), corrupt)
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(AuditStoreError, match="Fix: the file is corrupt or truncated"):
        verify(truncated)
    folder_as_db = tmp_path / "folder.db"
    folder_as_db.mkdir()
    with pytest.raises(AuditStoreError, match=r"folder\.db'.*unable to open"):
        record_valuation(fake_result("V2"), folder_as_db)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_store_gives_a_clear_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    ro = folder / "a.db"
    record_valuation(fake_result("V1"), ro)
    ro.chmod(0o444)
    folder.chmod(0o555)
    try:
        with pytest.raises(AuditStoreError, match="Fix: make the file and its folder writable"):
            record_valuation(fake_result("V2"), ro)
    finally:
        folder.chmod(0o755)
        ro.chmod(0o644)


def _write_many(args):
    db, worker, n = args
    for i in range(n):
        record_valuation(fake_result(f"W{worker}-{i}"), db)


def test_concurrent_writers_lose_nothing_and_the_chain_holds(tmp_path):
    db = tmp_path / "a.db"
    record_valuation(fake_result("V0"), db)  # create the store once
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_write_many, [(db, w, 10) for w in range(4)])
    report = verify(db)
    assert report.ok and report.n_records == 41
    assert read_audit_table("audit_chain", db)["seq"].tolist() == list(range(1, 42))


# --- the same store on PostgreSQL (a team's store), on a throw-away cluster -----------------------------


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL cluster on 127.0.0.1 (as tests/test_team_server.py starts one),
    stopped by its postmaster's PID."""
    import glob
    import shutil
    import signal
    import socket
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    pytest.importorskip("psycopg2")
    if not found or (os.geteuid() == 0 and shutil.which("runuser") is None):
        message = "PostgreSQL audit-store check skipped: install Debian's postgresql (apt-get install postgresql)"
        if os.environ.get("IPVALUE_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    bindir = Path(found[-1]).parent

    def as_postgres(args):
        runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(runner + [str(a) for a in args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]

    root = Path(tempfile.mkdtemp(prefix="ipvalue-audit-pg-"))
    pgdata = root / "pgdata"
    pgdata.mkdir()
    os.chmod(root, 0o777)
    if os.geteuid() == 0:
        shutil.chown(pgdata, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    as_postgres([bindir / "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    as_postgres([bindir / "pg_ctl", "-D", pgdata, "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "-l", root / "pg.log", "-w", "start"])
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    try:
        as_postgres([bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "audit"])
        yield f"postgresql://postgres@127.0.0.1:{port}/audit"
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 60
        while (pgdata / "postmaster.pid").exists() and time.time() < deadline:
            time.sleep(0.3)
        shutil.rmtree(root, ignore_errors=True)


def _write_many_pg(args):
    url, worker, n = args
    for i in range(n):
        record_valuation(fake_result(f"P{worker}-{i}", cap=250_000.0 + i), url)


@pytest.mark.slow
@pytest.mark.postgres
def test_on_postgres_concurrent_writers_chain_verify_and_a_hand_edit_is_found(postgres_url):
    import psycopg2

    from ipvalue.audit import add_user, authenticate

    record_valuation(fake_result("P0"), postgres_url)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_write_many_pg, [(postgres_url, w, 10) for w in range(4)])
    report = verify(postgres_url)
    assert report.ok and report.n_records == 41, str(report)
    assert read_audit_table("audit_chain", postgres_url)["seq"].tolist() == list(range(1, 42))
    v = read_audit_table("valuations", postgres_url).set_index("valuation_id").loc["P3-7"]
    assert v["loan_cap_rmb"] == 250_007.0 and v["user"] == "u"
    token = add_user("wang", "reviewer", postgres_url)
    assert authenticate(token, postgres_url).role == "reviewer"

    con = psycopg2.connect(postgres_url)
    con.autocommit = True
    cur = con.cursor()
    for sql in ("UPDATE valuations SET loan_cap_rmb = 9e9", "DELETE FROM overrides", "TRUNCATE audit_chain", "UPDATE users SET role = 'admin'"):
        with pytest.raises(psycopg2.Error, match="the audit store is append-only"):
            cur.execute(sql)
    with pytest.raises(OverrideError, match="blank reason"):
        record_valuation(fake_result("P-blank", reason="\u3000"), postgres_url)
    with pytest.raises(psycopg2.Error, match="check"):
        cur.execute("INSERT INTO overrides VALUES ('P0', 'CN1', 'sharing_rate', 0.03, 0.02, %s, 'x', 't')", ("\u3000 ",))
    cur.execute("ALTER TABLE valuations DISABLE TRIGGER valuations_append_only")  # by hand, as an owner could
    cur.execute("UPDATE valuations SET loan_cap_rmb = loan_cap_rmb * 2 WHERE valuation_id = 'P2-5'")
    con.close()
    broken = verify(postgres_url)
    assert not broken.ok and broken.first_broken == "P2-5" and broken.problem == "the row or its overrides differ from what was recorded"


def test_a_postgres_url_password_never_appears_in_an_error():
    from ipvalue.audit import connect

    pytest.importorskip("psycopg2")
    with pytest.raises(AuditStoreError) as caught:
        connect("postgresql://auditor:s3cret@127.0.0.1:1/audit")
    assert "s3cret" not in str(caught.value) and "postgresql://auditor:***@127.0.0.1:1/audit" in str(caught.value)


@pytest.fixture
def fresh_postgres(postgres_url):
    """A new, empty database on the throw-away cluster (each test its own store)."""
    import uuid

    import psycopg2

    name = "audit_" + uuid.uuid4().hex[:12]
    con = psycopg2.connect(postgres_url)
    con.autocommit = True
    con.cursor().execute(f"CREATE DATABASE {name}")
    con.close()
    return postgres_url.rsplit("/", 1)[0] + "/" + name


# --- F17: the borrower's exposure is read on both stores; a store that cannot be read is an error --------


def _valued(vid, application_id, borrower, amount):
    result = fake_result(vid)
    result.application = SimpleNamespace(application_id=application_id)
    summary = {"borrower": borrower, "requested_amount_rmb": amount, "term_years": 2, "valuation_date": "2026-06-30", "decision": "eligible"}
    result.to_json = lambda: json.dumps({"summary": summary}, ensure_ascii=False)
    return result


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_pledge_applications_reads_the_latest_valuation_of_each_application_on_both_stores(tmp_path, request, store):
    # F17: on PostgreSQL the exposure lookup crashed ('str' object has no attribute 'exists')
    target = tmp_path / "a.db" if store == "sqlite" else request.getfixturevalue("fresh_postgres")
    assert pledge_applications(target).empty  # nothing recorded yet: the store does not exist
    if store == "postgres":
        assert not audit.store_exists(target)  # and reading it created no schema
    for vid, app, amount in (("V1", "APP-1", 9_000_000), ("V2", "APP-2", 9_000_000), ("V3", "APP-1", 8_000_000)):
        record_valuation(_valued(vid, app, "某某科技有限公司", amount), target)
    rows = pledge_applications(target)
    assert rows[["application_id", "valuation_id", "borrower", "requested_amount_rmb"]].values.tolist() == [
        ["APP-2", "V2", "某某科技有限公司", 9_000_000], ["APP-1", "V3", "某某科技有限公司", 8_000_000]]


def test_a_store_that_cannot_be_read_is_an_error_never_an_empty_exposure(tmp_path, postgres_url):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not sqlite" * 200)
    with pytest.raises(AuditStoreError, match=r"corrupt\.db'.*Fix: the file is corrupt"):
        pledge_applications(corrupt)
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(AuditStoreError, match=r"folder.db' is not a file \(a folder\?\)"):
        pledge_applications(tmp_path / "folder.db")
    closed = postgres_url.rsplit(":", 1)[0] + ":1/audit"  # nothing listens on port 1
    with pytest.raises(AuditStoreError, match=r"Audit store 'postgresql://postgres@127.0.0.1:1/audit'"):
        pledge_applications(closed)
    db = tmp_path / "a.db"
    record_valuation(_valued("V1", "APP-1", "甲", 1.0), db)
    with sqlite3.connect(db) as con:
        con.execute("DROP TRIGGER valuations_no_update")
        con.execute("UPDATE valuations SET result_json = 'not json'")
    with pytest.raises(AuditStoreError, match=r"the stored result of valuation 'V1' has no readable summary, so the borrower's exposure cannot be read"):
        pledge_applications(db)


# --- writers queue: ten processes started at once, on a new store, all recorded --------------------------


def _queued_writer(target, start, errors, i, hold_s):
    start.wait()
    try:
        pledge_applications(target)  # as 'ipvalue value' reads the exposure first (the records others wrote meanwhile have a summary)
        with recording(_valued(f"Q{i:02d}", f"APP-Q{i:02d}", "某某科技有限公司", 1e6), target):
            time.sleep(hold_s)  # the report being written, inside the chain lock
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        errors.put(f"{i}: {type(exc).__name__}: {exc}")
        raise SystemExit(3)


def _ten_writers_at_once(target, monkeypatch, hold_s=0.3):
    monkeypatch.setattr(audit, "BUSY_TIMEOUT_S", 0.2)  # each attempt gives up long before the queue is through: the retries carry it
    ctx = multiprocessing.get_context("fork")
    start, errors = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_queued_writer, args=(target, start, errors, i, hold_s)) for i in range(10)]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    return [w.exitcode for w in workers], found


def test_ten_writers_started_at_once_on_a_new_sqlite_store_all_record_and_the_chain_verifies(tmp_path, monkeypatch):
    # issue 27: six 'ipvalue value' runs on one SQLite store: 2 of 6 exit 3 "database is locked"
    db = tmp_path / "new" / "a.db"
    codes, errors = _ten_writers_at_once(db, monkeypatch)
    assert codes == [0] * 10, errors
    report = verify(db)
    assert report.ok and report.n_records == 10 and sorted(read_audit_table("valuations", db)["valuation_id"]) == [f"Q{i:02d}" for i in range(10)]
    assert read_audit_table("audit_chain", db)["seq"].tolist() == list(range(1, 11))


def test_ten_writers_started_at_once_on_a_new_postgres_store_all_record_and_the_chain_verifies(fresh_postgres, monkeypatch):
    codes, errors = _ten_writers_at_once(fresh_postgres, monkeypatch)
    assert codes == [0] * 10, errors
    report = verify(fresh_postgres)
    assert report.ok and report.n_records == 10 and read_audit_table("audit_chain", fresh_postgres)["seq"].tolist() == list(range(1, 11))


def test_a_writer_that_waits_beyond_its_bound_fails_with_the_fix(tmp_path, monkeypatch):
    db = tmp_path / "a.db"
    record_valuation(fake_result("V0"), db)
    monkeypatch.setattr(audit, "BUSY_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(AuditStoreError, match=r"another writer held the audit chain for more than 1 s .*Fix: find the process holding the store"):
            record_valuation(fake_result("V1"), db, wait_s=1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with pytest.raises(AuditStoreError, match=r"must be a number of seconds > 0. Got 'soon'"):
        record_valuation(fake_result("V1"), db, wait_s="soon")


# --- F15: private files -----------------------------------------------------------------------------------


def test_the_store_its_wal_and_shm_the_key_and_the_checkpoints_are_created_0600(tmp_path):
    old = os.umask(0o022)
    try:
        db = tmp_path / "audit" / "a.db"
        key = tmp_path / "keys" / "audit.key"
        record_valuation(fake_result("V1"), db, key_file=key)
        holder = sqlite3.connect(db)  # the -wal and -shm files exist while a connection is open
        holder.execute("SELECT count(*) FROM valuations").fetchone()
        files = [db, db.with_name("a.db-wal"), db.with_name("a.db-shm"), key, key.with_name("audit.key.checkpoints.jsonl")]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        holder.close()
    finally:
        os.umask(old)
    assert modes == {p.name: 0o600 for p in files}
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700


# --- F9: an anchored audit trail -----------------------------------------------------------------------


@pytest.fixture
def anchored(tmp_path):
    """A SQLite store with a key and checkpoints: three valuations, two users, one revocation."""
    db, key = tmp_path / "a.db", tmp_path / "bank" / "audit.key"
    opts = {"key_file": key}
    record_valuation(fake_result("V1"), db, **opts)
    officer = add_user("wang", "officer", db, **opts)
    add_user("zhao", "reviewer", db, **opts)
    record_valuation(fake_result("V2"), db, **opts)
    revoke_user("zhao", db, **opts)
    record_valuation(fake_result("V3"), db, **opts)
    return SimpleNamespace(db=db, key=key, opts=opts, checkpoints=key.with_name("audit.key.checkpoints.jsonl"), officer=officer)


def _by_hand(db, *sql, params=()):
    """What someone with the database file can do: drop the triggers, then change rows."""
    with sqlite3.connect(db) as con:
        for table in audit.TABLES:
            for op in ("update", "delete"):
                con.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
        for statement in sql:
            con.execute(statement, params)


def test_an_anchored_store_verifies_with_its_key_and_checkpoints(anchored):
    report = verify(anchored.db, key_file=anchored.key)
    assert report.passed and report.head_seq == 6 and report.checkpoint_seq == 6 and report.n_identity_records == 3
    assert str(report) == "audit chain intact: 3 valuation(s), 3 user and revocation record(s); anchored: record 6 signed, last checkpoint at record 6"
    chain = read_audit_table("audit_chain", anchored.db)
    assert chain["kind"].tolist() == ["valuation", "user", "user", "valuation", "revocation", "valuation"] and chain["link_hmac"].notna().all()
    lines = [json.loads(line) for line in anchored.checkpoints.read_text().splitlines()]
    assert [c["seq"] for c in lines] == [1, 2, 3, 4, 5, 6] and lines[0]["prev"] == GENESIS and lines[1]["prev"] == lines[0]["hmac"]
    assert stat.S_IMODE(anchored.key.stat().st_mode) == 0o600
    wal = anchored.db.with_name("a.db-wal")
    raw = anchored.db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert anchored.key.read_text().strip().encode() not in raw  # the key is never in the database


def test_removing_the_latest_records_is_found_against_the_checkpoint(anchored):
    # F9: 'audit verify' said "intact" after the last records were deleted
    _by_hand(anchored.db, "DELETE FROM overrides WHERE valuation_id = 'V3'", "DELETE FROM audit_chain WHERE seq = 6", "DELETE FROM valuations WHERE valuation_id = 'V3'")
    report = verify(anchored.db, key_file=anchored.key)
    assert not report.ok and report.kind == "checkpoint" and report.first_broken == "line 6"
    assert "names record 6 (head " in report.problem and "but the store ends at record 5: records were removed from its end (truncated)" in report.problem


def test_a_record_edited_and_the_chain_rehashed_with_the_public_hash_is_found_by_its_hmac(anchored):
    # F9: an edited record with the chain re-hashed by the public function passed
    _by_hand(anchored.db, "UPDATE valuations SET loan_cap_rmb = 9e9 WHERE valuation_id = 'V2'")
    with sqlite3.connect(anchored.db) as con:  # recompute every hash from V2 on, as an attacker with the code can
        rows = {r[0]: r for r in con.execute("SELECT seq, kind, valuation_id, token_id, prev_hash FROM audit_chain ORDER BY seq")}
        con.row_factory = sqlite3.Row
        prev = con.execute("SELECT record_hash FROM audit_chain WHERE seq = 3").fetchone()[0]
        for seq in (4, 5, 6):
            _, kind, vid, token_id, _ = rows[seq]
            if kind == "valuation":
                body = audit._link_body(kind, dict(con.execute("SELECT * FROM valuations WHERE valuation_id = ?", (vid,)).fetchone()),
                                        [dict(r) for r in con.execute("SELECT * FROM overrides WHERE valuation_id = ?", (vid,))])
            else:
                body = audit._link_body(kind, dict(con.execute("SELECT * FROM token_revocations WHERE token_id = ?", (token_id,)).fetchone()))
            digest = audit._body_hash(prev, body)
            con.execute("UPDATE audit_chain SET prev_hash = ?, record_hash = ? WHERE seq = ?", (prev, digest, seq))
            prev = digest
    assert verify(anchored.db).ok  # without the key the re-hashed chain looks consistent: not anchored
    report = verify(anchored.db, key_file=anchored.key)
    assert not report.ok and report.first_broken == "V2" and "its HMAC (seq 4) does not match under the audit key: the chain was re-hashed" in report.problem
    _by_hand(anchored.db, "UPDATE audit_chain SET link_hmac = NULL WHERE seq >= 4")  # and stripping the signatures
    report = verify(anchored.db, key_file=anchored.key)
    assert not report.ok and "is not signed although record 1 before it is: its signature was removed" in report.problem


def test_an_admin_row_inserted_in_users_is_found_and_never_authenticates(anchored):
    # F9: an admin row inserted in 'users' passed verify
    token = "ipv_mallory"
    _by_hand(anchored.db, "INSERT INTO users (name, role, branch, token_sha256, created_at, created_by) VALUES ('mallory', 'admin', 'head-office', ?, 't', 'x')",
             params=(audit.token_digest(token),))
    report = verify(anchored.db, key_file=anchored.key)
    assert not report.ok and report.kind == "user" and report.first_broken == "mallory"
    assert "user row (role admin, token 3) not in the chain (inserted around ipvalue.audit): it never authenticates" in report.problem
    assert authenticate(token, anchored.db, key_file=anchored.key) is None
    assert authenticate(anchored.officer, anchored.db, key_file=anchored.key).name == "wang"


def test_a_user_chained_by_hand_with_the_public_hash_is_found_by_its_missing_signature(anchored):
    token = "ipv_mallory"
    _by_hand(anchored.db, "INSERT INTO users (token_id, name, role, branch, token_sha256, created_at, created_by) VALUES (9, 'mallory', 'admin', 'head-office', ?, 't', 'x')",
             params=(audit.token_digest(token),))
    with sqlite3.connect(anchored.db) as con:
        con.row_factory = sqlite3.Row
        head = con.execute("SELECT record_hash FROM audit_chain WHERE seq = 6").fetchone()[0]
        row = dict(con.execute("SELECT * FROM users WHERE token_id = 9").fetchone())
        con.execute("INSERT INTO audit_chain VALUES (7, 'user', NULL, 9, ?, ?, NULL)", (head, audit._body_hash(head, audit._link_body("user", row))))
    assert authenticate(token, anchored.db, key_file=anchored.key) is None
    report = verify(anchored.db, key_file=anchored.key)
    assert not report.ok and report.first_broken == "mallory" and "not signed although record 1 before it is" in report.problem


def test_a_revocation_removed_by_hand_is_found_and_the_token_stays_revoked(anchored, tmp_path):
    token = add_user("li", "officer", anchored.db, **anchored.opts)
    revoke_user("li", anchored.db, **anchored.opts)
    _by_hand(anchored.db, "DELETE FROM token_revocations WHERE token_id = 3")
    assert authenticate(token, anchored.db, key_file=anchored.key) is None
    report = verify(anchored.db, key_file=anchored.key)
    assert not report.ok and report.kind == "revocation" and report.problem == "the chained revocation row is missing"


@pytest.mark.parametrize("edit, problem", [
    (lambda lines: lines[:2] + lines[3:], "does not follow the line before it: a checkpoint was removed or the file edited"),
    (lambda lines: lines[:-1] + [lines[-1].replace('"seq": 6', '"seq": 5')], "its HMAC does not match under the audit key"),
    (lambda lines: lines + ["{not json"], "is not a checkpoint (the file was edited)"),
])
def test_an_edited_checkpoint_file_is_found(anchored, edit, problem):
    lines = anchored.checkpoints.read_text().splitlines()
    anchored.checkpoints.write_text("\n".join(edit(lines)) + "\n")
    report = verify(anchored.db, key_file=anchored.key)
    assert not report.ok and report.kind == "checkpoint" and problem in report.problem


def test_writes_need_the_store_s_own_key_once_it_is_signed(anchored, tmp_path):
    with pytest.raises(AuditStoreError, match=r"is anchored \(its records are signed\), but no audit key is given. Fix: set \$IPVALUE_AUDIT_KEY_FILE"):
        record_valuation(fake_result("V9"), anchored.db)
    with pytest.raises(AuditStoreError, match=r"the audit key '.*other.key' did not sign its latest record \(seq 6\)"):
        add_user("qian", "officer", anchored.db, key_file=tmp_path / "other.key")
    assert read_audit_table("audit_chain", anchored.db)["seq"].max() == 6  # nothing written


def test_a_key_readable_by_others_or_missing_at_verify_is_refused(anchored, tmp_path):
    anchored.key.chmod(0o640)
    with pytest.raises(AuditStoreError, match=r"is readable by other users \(mode 0640\). Fix: chmod 600"):
        verify(anchored.db, key_file=anchored.key)
    with pytest.raises(AuditStoreError, match=r"Audit key file '.*lost.key' does not exist. Fix: give the key file that signed the store"):
        verify(anchored.db, key_file=tmp_path / "lost.key")


def test_without_checkpoints_or_without_a_key_verify_says_not_anchored(anchored, tmp_path):
    report = verify(anchored.db, key_file=anchored.key, checkpoint_file=tmp_path / "none.jsonl")
    assert report.ok and not report.passed and "NOT ANCHORED: no checkpoint in" in str(report)
    entry = write_checkpoint(anchored.db, key_file=anchored.key, checkpoint_file=tmp_path / "none.jsonl")
    assert entry["seq"] == 6 and verify(anchored.db, key_file=anchored.key, checkpoint_file=tmp_path / "none.jsonl").passed
    with pytest.raises(AuditStoreError, match="A checkpoint is signed with the audit key, and none is given"):
        write_checkpoint(anchored.db)


def test_a_store_written_before_the_key_is_anchored_from_its_first_signed_record(tmp_path):
    db, key = tmp_path / "a.db", tmp_path / "audit.key"
    record_valuation(fake_result("V1"), db)
    record_valuation(fake_result("V2"), db)
    record_valuation(fake_result("V3"), db, key_file=key)
    report = verify(db, key_file=key)
    assert report.passed and "records 1-2 were written before the audit key was used; signed record 3 fixes them" in str(report)


def test_an_older_store_is_refused_with_the_fix_not_migrated(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE audit_chain (seq INTEGER PRIMARY KEY, valuation_id TEXT NOT NULL UNIQUE, prev_hash TEXT NOT NULL, record_hash TEXT NOT NULL)")
    for action in (lambda: record_valuation(fake_result("V1"), db), lambda: verify(db), lambda: pledge_applications(db)):
        with pytest.raises(AuditStoreError, match=r"was made by an earlier ipvalue \(audit schema 1: users and revocations outside the hash chain.*"
                                                  r"Fix: keep it read-only as the archive it is.*start a new store"):
            action()
    with sqlite3.connect(db) as con:
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["audit_chain"]  # untouched


def test_a_schema_3_store_is_refused_with_the_fix(tmp_path):
    db = tmp_path / "v3.db"
    with sqlite3.connect(db) as con:  # schema 3's users: no branch
        con.execute("CREATE TABLE users (token_id INTEGER PRIMARY KEY, name TEXT, role TEXT, token_sha256 TEXT, created_at TEXT, created_by TEXT)")
    with pytest.raises(AuditStoreError, match=r"audit schema 3: no branches, versions or request keys\). Fix: keep it read-only"):
        record_valuation(fake_result("V1"), db)


def test_a_guard_runs_under_the_chain_lock_and_its_refusal_writes_nothing(tmp_path):
    db = tmp_path / "a.db"
    record_valuation(fake_result("V1"), db)
    seen = []

    def refuse(con):
        seen.append(audit.application_versions("APP-1", connection=con)["valuation_id"].tolist())
        raise ValueError("refused under the lock")

    with pytest.raises(ValueError, match="refused under the lock"):
        record_valuation(fake_result("V2"), db, guard=refuse)
    assert seen == [["V1"]] and read_audit_table("valuations", db)["valuation_id"].tolist() == ["V1"] and verify(db).ok
    result = fake_result("V3")
    result.provenance.update(branch="shanghai", act="override", supersedes="V1", request_key="k" * 64, request_sha256="b" * 64)
    record_valuation(result, db)
    row = read_audit_table("valuations", db).set_index("valuation_id").loc["V3"]
    assert (row["branch"], row["act"], row["supersedes"]) == ("shanghai", "override", "V1")
    assert audit.find_request("k" * 64, db) == {"valuation_id": "V3", "request_sha256": "b" * 64}
    page, total = audit.list_valuations(db, branch="shanghai")
    assert total == 1 and page["valuation_id"].tolist() == ["V3"]
    assert audit.list_valuations(db, branch="head-office", live_only=False)[1] == 1  # V1 (V2 was never written)
    twin = fake_result("V4")
    twin.provenance.update(supersedes="V1")
    with pytest.raises(AuditStoreError, match="UNIQUE"):  # two versions never supersede the same one
        record_valuation(twin, db)


def test_on_postgres_truncation_and_an_inserted_user_are_found(fresh_postgres, tmp_path):
    import psycopg2

    key = tmp_path / "audit.key"
    for vid in ("P1", "P2", "P3"):
        record_valuation(fake_result(vid), fresh_postgres, key_file=key)
    add_user("wang", "officer", fresh_postgres, key_file=key)
    assert verify(fresh_postgres, key_file=key).passed
    con = psycopg2.connect(fresh_postgres)
    con.autocommit = True
    cur = con.cursor()
    cur.execute("INSERT INTO users (name, role, branch, token_sha256, created_at, created_by) VALUES ('mallory', 'admin', 'head-office', 'x', 't', 'x')")
    report = verify(fresh_postgres, key_file=key)
    assert not report.ok and report.first_broken == "mallory"
    for table in ("users", "audit_chain"):
        cur.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")  # by hand, as an owner could
    cur.execute("DELETE FROM users WHERE name = 'mallory'")
    cur.execute("DELETE FROM audit_chain WHERE seq = 4")
    cur.execute("DELETE FROM users WHERE name = 'wang'")
    con.close()
    report = verify(fresh_postgres, key_file=key)
    assert not report.ok and "but the store ends at record 3: records were removed from its end (truncated)" in report.problem
