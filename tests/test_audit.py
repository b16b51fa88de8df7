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
