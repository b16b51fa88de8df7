"""The audit store: append-only in fact, hash-chained, Unicode-aware reasons, safe under concurrency."""

import multiprocessing
import os
import sqlite3
from types import SimpleNamespace

import pandas as pd
import pytest

from ipvalue.audit import GENESIS, read_audit_table, record_hash, record_valuation, recording, verify
from ipvalue.exceptions import AuditStoreError, DomainError, OverrideError


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
    assert report.ok and report.n_records == 2 and str(report) == "audit chain intact: 2 valuation(s)"


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
        con.execute("INSERT INTO valuations VALUES ('X', 'A', 't', 'u', 'h', 'eligible', 1, 1, '{}', '{}')")
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
