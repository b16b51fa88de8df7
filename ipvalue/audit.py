"""The audit trail: every valuation, manual override, user, token revocation and promotion of a
calibrated set, in one hash chain anchored outside the store.

Tables (plain SQL types, portable to PostgreSQL)
------------------------------------------------
valuations(valuation_id, application_id, valued_at, user, input_hash, decision, internal_value_rmb,
           loan_cap_rmb, provenance_json, result_json, branch, act, supersedes, request_key, request_sha256)
overrides(valuation_id, patent_id, field, model_value, override_value, reason, officer, recorded_at)
users(token_id, name, role, branch, token_sha256, created_at, created_by)   (service identities, ROLES)
token_revocations(token_id, revoked_at, revoked_by)
set_promotions(seq, set_name, set_version, folder, content_sha256, calibrated_from, calibration_run,
               ledger_sha256, gates_json, calibrated_by, promoted_by, token_id, promoted_at, reason)
audit_chain(seq, kind, valuation_id, token_id, prev_hash, record_hash, link_hmac)
audit_meta(name, value)                                               (schema_version)

Guarantees
----------
* **Append-only in fact**: triggers refuse every ``UPDATE`` and ``DELETE`` on every table,
  whoever connects (sqlite3 shell, pandas, another program).
* **One hash chain for everything recorded**: each valuation (with its overrides), each user
  token issued, each revocation and each validator's promotion of a calibrated set is a link of
  ``audit_chain`` (``kind`` ``valuation``, ``user``, ``revocation``, ``promotion``) whose ``record_hash`` is the SHA-256 of the previous link's hash and the
  canonical JSON (sorted keys, UTF-8) of its rows; the first link's ``prev_hash`` is
  :data:`GENESIS`. A user row or a revocation that is not in the chain is found by :func:`verify`
  and never authenticates (:func:`authenticate`).
* **Anchored outside the store** (F9): with an audit key (a 32-byte secret in a file the bank
  keeps, ``$IPVALUE_AUDIT_KEY_FILE`` or ``key_file=``; created 0600 when first needed, never
  stored in the database) every link carries ``link_hmac`` = HMAC-SHA256(key, seq, record_hash),
  so a chain re-hashed with the public :func:`record_hash` no longer verifies; and each write
  appends a **checkpoint** (seq, head hash, time, the key's id, the previous checkpoint's HMAC,
  its own HMAC) to an append-only JSON-lines file the bank keeps (``$IPVALUE_AUDIT_CHECKPOINTS``,
  default ``<key file>.checkpoints.jsonl``) and to the log (logger ``ipvalue.audit.checkpoint``),
  so records removed from the end of the store are found. :func:`verify` checks all of it.
  **Without a key** the chain is kept but not anchored: someone who can write the database can cut
  its latest records or re-hash it, and ``verify`` says so (``anchored`` False; the CLI exits 1).
  A store whose links are signed refuses an unsigned write (no key given) and a write with
  another key.
* **Reasons and officers** must hold a visible character: checked in Python (Unicode-aware, a
  reason of full-width spaces ``U+3000`` is refused) and by the table's CHECK, which trims the
  Unicode blanks listed in :data:`BLANKS` (SQLite's plain ``trim`` strips ASCII spaces only).
* **Writers queue, nothing lost**: every chain write holds the chain lock (SQLite ``BEGIN
  IMMEDIATE`` on a WAL store; PostgreSQL ``LOCK TABLE audit_chain``). A writer waits
  :data:`BUSY_TIMEOUT_S` per attempt and retries with jittered exponential backoff until
  :func:`chain_wait_s` (default :data:`CHAIN_WAIT_S`, ``$IPVALUE_AUDIT_WAIT_S``) has passed;
  the schema and the journal mode are written only when a store is created (they took write locks
  outside the busy handler on every connect).
* **A team's store on PostgreSQL**: ``--audit-db postgresql://user@host/db`` (or
  ``$IPVALUE_AUDIT_DB``) holds the same tables (DOUBLE PRECISION for SQLite's 8-byte REAL), the
  same append-only guarantee (a plpgsql trigger refuses UPDATE, DELETE and TRUNCATE) and the same
  queueing; the password of a URL never appears in a message. Needs ``psycopg2``.
* **Private files** (F15): a SQLite store is created 0600 in a folder created 0700 (SQLite gives
  its ``-wal`` and ``-shm`` files the database's mode); the key and checkpoint files are 0600.
* **Clear failures**: a read-only, corrupt or truncated store raises
  :class:`~ipvalue.exceptions.AuditStoreError` naming the file and the fix. **An older store**
  (audit schema 1: users outside the chain, no signatures) is refused, not migrated: keep it
  read-only as the archive it is (an earlier ipvalue verifies it) and start a new store.
* **Identities from authentication**: API tokens are stored as their SHA-256 only (a token is 32
  random bytes, so a plain digest is enough; the token itself is shown once, at creation).
  :func:`add_user` issues one (one active role per name: F5), :func:`authenticate` maps a token
  to ``(name, role)``, :func:`revoke_user` revokes a name's tokens.
* **Promotions of calibrated sets** (:func:`record_set_promotion`): a validator's promotion of a
  set that ``ipvalue calibrate`` wrote is a ``set_promotions`` row chained as a ``promotion``
  link (its ``token_id`` is the validator's token; the row's ``seq`` is the link's), written with
  the installed set in one transaction; :func:`set_promotion` reads one back with its link
  checked, which is what the loader of the bank's sets asks (:mod:`ipvalue.config`).
* **Outputs and the record as one unit**: :func:`recording` inserts first (so a broken store fails
  before any output is written), lets the caller write the report inside the ``with`` block, and
  commits only when the block succeeds; if the block raises, nothing is recorded. The chain lock
  is held for the whole block: render what takes long before entering it.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import math
import os
import random
import re
import secrets
import sqlite3
import tempfile
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

try:  # a team's PostgreSQL store (optional: pip install psycopg2-binary)
    import psycopg2
    import psycopg2.extensions
except ImportError:  # pragma: no cover - SQLite stores need nothing
    psycopg2 = None

from ipvalue.exceptions import AuditStoreError, DomainError, OverrideError
from ipvalue.files import open_private, private_folder

logger = logging.getLogger(__name__)
checkpoint_log = logging.getLogger("ipvalue.audit.checkpoint")

ENV_AUDIT_PATH = "IPVALUE_AUDIT_DB"
#: The audit key file (a secret the bank keeps outside the database).
ENV_KEY_FILE = "IPVALUE_AUDIT_KEY_FILE"
#: The checkpoint file (append-only JSON lines); default: the key file's name + ``.checkpoints.jsonl``.
ENV_CHECKPOINTS = "IPVALUE_AUDIT_CHECKPOINTS"
#: Seconds a writer may wait for the chain lock in all (attempts and backoff together).
ENV_WAIT = "IPVALUE_AUDIT_WAIT_S"
DEFAULT_PATH = Path("audit") / "ipvalue-audit.db"
GENESIS = "0" * 64
#: Layout of this version's store (``audit_meta.schema_version``); 1 was the chain of valuations only,
#: 2 had no chained promotions of calibrated sets, 3 no branches, acts, versions or request keys.
SCHEMA_VERSION = "4"
#: Seconds one attempt waits for another writer's transaction (SQLite busy timeout, PostgreSQL
#: lock timeout) before backing off and trying again.
BUSY_TIMEOUT_S = 5.0
#: Seconds a writer waits for the chain lock in all: enough for a queue of CLI runs each writing
#: its report inside the lock; then the write fails with the fix.
CHAIN_WAIT_S = 600.0
#: Longest pause between two attempts (seconds); pauses start at 50 ms and double, jittered.
MAX_BACKOFF_S = 2.0
#: White space that does not make a reason: ASCII blanks, NBSP, Ogham space, U+2000-U+200B, NNBSP,
#: MMSP, ideographic space U+3000, BOM.
BLANKS = " \t\n\v\f\r\u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200C)) + "\u202f\u205f\u3000\ufeff"
_SQL_BLANKS = "char(" + ",".join(str(ord(c)) for c in BLANKS) + ")"
TABLES = ("valuations", "overrides", "users", "token_revocations", "set_promotions", "audit_chain", "audit_meta")
#: Kinds of chain link: what each one records.
LINK_KINDS = ("valuation", "user", "revocation", "promotion")
#: Roles of the service: officers value and override, reviewers sign off "review required"
#: valuations, validators promote models, admins manage the service (reload models).
ROLES = ("officer", "reviewer", "validator", "admin")
#: A user name: what the audit records carry as the identity.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_VALUATION_COLUMNS = (
    "valuation_id", "application_id", "valued_at", "user", "input_hash", "decision",
    "internal_value_rmb", "loan_cap_rmb", "provenance_json", "result_json",
    "branch", "act", "supersedes", "request_key", "request_sha256",
)
#: What a recorded valuation is: a valuation of an application (new, or valued again), an
#: officer's override of the latest version, a reviewer's sign-off of the latest version.
ACTS = ("valuation", "override", "sign-off")
#: The branch a user belongs to when none is given (a bank's head office).
DEFAULT_BRANCH = "head-office"
#: A branch name: what scoping compares.
BRANCH_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_USER_COLUMNS = ("token_id", "name", "role", "branch", "token_sha256", "created_at", "created_by")
_QUOTED_VALUATION_COLUMNS = ", ".join(f'"{c}"' for c in _VALUATION_COLUMNS)  # "user" is reserved in PostgreSQL
_OVERRIDE_COLUMNS = ("valuation_id", "patent_id", "field", "model_value", "override_value", "reason", "officer", "recorded_at")
_CHAIN_COLUMNS = ("seq", "kind", "valuation_id", "token_id", "prev_hash", "record_hash", "link_hmac")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS valuations (
    valuation_id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    valued_at TEXT NOT NULL,
    "user" TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    decision TEXT NOT NULL,
    internal_value_rmb REAL NOT NULL,
    loan_cap_rmb REAL NOT NULL,
    provenance_json TEXT NOT NULL,
    result_json TEXT NOT NULL,
    branch TEXT NOT NULL,
    act TEXT NOT NULL CHECK (act IN ({", ".join(repr(a) for a in ACTS)})),
    supersedes TEXT UNIQUE REFERENCES valuations(valuation_id),
    request_key TEXT UNIQUE,
    request_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS overrides (
    valuation_id TEXT NOT NULL REFERENCES valuations(valuation_id),
    patent_id TEXT NOT NULL,
    field TEXT NOT NULL,
    model_value REAL,
    override_value REAL NOT NULL,
    reason TEXT NOT NULL CHECK (length(trim(reason, {_SQL_BLANKS})) > 0),
    officer TEXT NOT NULL CHECK (length(trim(officer, {_SQL_BLANKS})) > 0),
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    token_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ({", ".join(repr(r) for r in ROLES)})),
    branch TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS token_revocations (
    token_id INTEGER NOT NULL UNIQUE REFERENCES users(token_id),
    revoked_at TEXT NOT NULL,
    revoked_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS set_promotions (
    seq INTEGER PRIMARY KEY,
    set_name TEXT NOT NULL,
    set_version INTEGER NOT NULL,
    folder TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    calibrated_from TEXT NOT NULL,
    calibration_run TEXT NOT NULL,
    ledger_sha256 TEXT NOT NULL,
    gates_json TEXT NOT NULL,
    calibrated_by TEXT,
    promoted_by TEXT NOT NULL,
    token_id INTEGER NOT NULL REFERENCES users(token_id),
    promoted_at TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (length(trim(reason, {_SQL_BLANKS})) > 0),
    UNIQUE (set_name, set_version)
);
CREATE TABLE IF NOT EXISTS audit_chain (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ({", ".join(repr(k) for k in LINK_KINDS)})),
    valuation_id TEXT UNIQUE REFERENCES valuations(valuation_id),
    token_id INTEGER REFERENCES users(token_id),
    prev_hash TEXT NOT NULL,
    record_hash TEXT NOT NULL,
    link_hmac TEXT,
    CHECK ((kind = 'valuation') = (valuation_id IS NOT NULL)),
    CHECK ((kind = 'valuation') = (token_id IS NULL))
);
CREATE TABLE IF NOT EXISTS audit_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO audit_meta (name, value) VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT (name) DO NOTHING;
""" + "".join(
    f"""
CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}
BEGIN SELECT RAISE(ABORT, 'the audit store is append-only: {op} on {table} refused'); END;"""
    for table in TABLES
    for op in ("UPDATE", "DELETE")
)
_SQLITE_OBJECTS = {*TABLES, *(f"{t}_no_{op}" for t in TABLES for op in ("update", "delete"))}


_PG_ID = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
_PG_BLANKS = "||".join(f"chr({ord(c)})" for c in BLANKS)
#: The same tables on PostgreSQL: DOUBLE PRECISION for SQLite's 8-byte REAL, btrim for trim, an
#: identity column for the token id, one plpgsql function refusing UPDATE, DELETE and TRUNCATE.
_PG_SCHEMA = (
    _SCHEMA.split("\nCREATE TRIGGER", 1)[0]
    .replace(" REAL", " DOUBLE PRECISION")
    .replace(f"trim(reason, {_SQL_BLANKS})", f"btrim(reason, {_PG_BLANKS})")
    .replace(f"trim(officer, {_SQL_BLANKS})", f"btrim(officer, {_PG_BLANKS})")
    .replace("token_id INTEGER PRIMARY KEY", f"token_id {_PG_ID}")
    .replace("token_id INTEGER NOT NULL UNIQUE", "token_id BIGINT NOT NULL UNIQUE")
    .replace("token_id INTEGER NOT NULL REFERENCES", "token_id BIGINT NOT NULL REFERENCES")
    .replace("token_id INTEGER REFERENCES", "token_id BIGINT REFERENCES")
    .replace("seq INTEGER PRIMARY KEY", "seq BIGINT PRIMARY KEY")
    + """
CREATE OR REPLACE FUNCTION ipvalue_append_only() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN RAISE EXCEPTION 'the audit store is append-only: % on % refused', TG_OP, TG_TABLE_NAME; END $f$;"""
    + "".join(f"""
CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION ipvalue_append_only();
CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ipvalue_append_only();"""
              for table in TABLES)
)
_PG_TRIGGERS = [f"{t}_{kind}" for t in TABLES for kind in ("append_only", "no_truncate")]
_DB_ERRORS = (sqlite3.Error,) + ((psycopg2.Error,) if psycopg2 is not None else ())
#: Advisory lock id serialising schema creation among a team's first connections.
_PG_SCHEMA_LOCK = 7_240_217
#: PostgreSQL errors after which a chain write is tried again: lock timeout, deadlock, serialisation.
_PG_RETRY_CODES = ("55P03", "40P01", "40001")
_OLDER_STORE = ("was made by an earlier ipvalue (audit schema 1: users and revocations outside the hash chain, no signed head). "
                "Fix: keep it read-only as the archive it is (the ipvalue version that wrote it verifies it) and start a new store "
                "with --audit-db / $IPVALUE_AUDIT_DB; issue the users' tokens again there")
_OLDER_STORE_2 = ("was made by an earlier ipvalue (audit schema 2: its chain cannot hold the promotions of calibrated sets). "
                  "Fix: keep it read-only as the archive it is (the ipvalue version that wrote it verifies it) and start a new store "
                  "with --audit-db / $IPVALUE_AUDIT_DB; issue the users' tokens again there")


def audit_path(path: str | Path | None = None) -> Path | str:
    """``path``, else ``$IPVALUE_AUDIT_DB``, else ``audit/ipvalue-audit.db`` under the working
    directory. A ``postgresql://`` URL (a team's store) is returned as it is."""
    target = path or os.environ.get(ENV_AUDIT_PATH) or DEFAULT_PATH
    return str(target) if is_postgres(target) else Path(target)


def is_postgres(target) -> bool:
    """Whether ``target`` names a PostgreSQL store (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def chain_wait_s(wait_s: float | None = None) -> float:
    """Seconds a writer waits for the chain lock: ``wait_s``, else ``$IPVALUE_AUDIT_WAIT_S``, else
    :data:`CHAIN_WAIT_S`."""
    value = wait_s if wait_s is not None else os.environ.get(ENV_WAIT, CHAIN_WAIT_S)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        raise AuditStoreError(f"The wait for the audit chain lock (${ENV_WAIT} or wait_s) must be a number of seconds > 0. Got {value!r}. "
                              f"Fix: unset it (default {CHAIN_WAIT_S:,.0f} s) or give seconds, e.g. 900.")
    return seconds


def store_display(path=None) -> str:
    """The store's name for messages (``path``, else the configured store; see :func:`audit_path`):
    a URL without its password."""
    return _display(audit_path(path))


def _display(path) -> str:
    """The store's name for messages: a URL without its password."""
    if not is_postgres(path):
        return str(path)
    parts = urlsplit(path)
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        netloc[0] = netloc[0].split(":", 1)[0] + (":***" if ":" in netloc[0] else "")
    return urlunsplit(parts._replace(netloc="@".join(netloc)))


# --- connections ---------------------------------------------------------------------------------


class _PostgresConnection:
    """The few :class:`sqlite3.Connection` methods this module uses, on psycopg2 (autocommit, so
    BEGIN / COMMIT are explicit as on SQLite; ``?`` placeholders become ``%s``; ``BEGIN
    IMMEDIATE`` takes the chain lock, waiting at most :data:`BUSY_TIMEOUT_S`, as on SQLite)."""

    def __init__(self, raw):
        self.raw = raw

    @staticmethod
    def _sql(sql: str) -> str:
        if sql == "BEGIN IMMEDIATE":
            return f"BEGIN; SET LOCAL lock_timeout = {max(int(BUSY_TIMEOUT_S * 1000), 1)}; LOCK TABLE audit_chain IN SHARE ROW EXCLUSIVE MODE"
        return sql.replace("?", "%s")

    def execute(self, sql: str, params=None):
        cur = self.raw.cursor()
        cur.execute(self._sql(sql), tuple(params) if params is not None else None)
        return cur

    def executemany(self, sql: str, rows):
        cur = self.raw.cursor()
        cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        return cur

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE

    def close(self) -> None:
        self.raw.close()


def _is_busy(exc: Exception) -> bool:
    """Whether ``exc`` means another writer holds the lock (try again), not a broken store."""
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc) or "busy" in str(exc)
    return psycopg2 is not None and isinstance(exc, psycopg2.Error) and exc.pgcode in _PG_RETRY_CODES


def _retrying(attempt, path, wait_s: float | None, what: str):
    """Run ``attempt()`` until it succeeds, retrying while another writer holds the lock, with
    jittered exponential backoff, for at most :func:`chain_wait_s` seconds in all."""
    wait = chain_wait_s(wait_s)
    deadline = time.monotonic() + wait
    pause, tries = 0.05, 0
    while True:
        try:
            return attempt()
        except _DB_ERRORS as exc:
            tries += 1
            left = deadline - time.monotonic()
            if not _is_busy(exc) or left <= 0:
                if _is_busy(exc):
                    raise AuditStoreError(f"Audit store {_display(path)!r}: another writer held the audit chain for more than {wait:,.0f} s "
                                          f"({what}; {tries} attempt(s): {str(exc).strip()}). Fix: find the process holding the store "
                                          f"(a stuck valuation or job) and end it, or allow a longer wait (${ENV_WAIT}).") from exc
                raise
            logger.info("audit store %s busy (%s): waiting for the chain lock, attempt %d", _display(path), what, tries)
            time.sleep(min(pause * random.uniform(0.5, 1.5), left))
            pause = min(pause * 2, MAX_BACKOFF_S)


@contextmanager
def _rollback_on_error(con):
    """Roll back the connection's open transaction when the block raises."""
    try:
        yield
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


def _begin_chain(con, path, wait_s: float | None = None) -> None:
    """Take the chain lock: ``BEGIN IMMEDIATE`` (SQLite) / ``LOCK TABLE audit_chain`` (PostgreSQL),
    retried with backoff while another writer holds it."""

    def attempt():
        with _rollback_on_error(con):
            con.execute("BEGIN IMMEDIATE")

    _retrying(attempt, path, wait_s, "taking the chain lock")


def _connect_postgres(url: str) -> _PostgresConnection:
    if psycopg2 is None:
        raise AuditStoreError(f"Audit store {_display(url)!r} is PostgreSQL, but psycopg2 is not installed. Fix: pip install psycopg2-binary.")
    try:
        raw = psycopg2.connect(url, connect_timeout=10)
        raw.autocommit = True
    except psycopg2.Error as exc:
        raise _store_error(url, exc) from exc
    con = _PostgresConnection(raw)
    try:
        if not _pg_schema_present(con):  # the first connection creates the schema; DDL on every connect would deadlock with writers

            def create():
                with _rollback_on_error(con):
                    con.execute(f"BEGIN; SET LOCAL lock_timeout = {max(int(BUSY_TIMEOUT_S * 1000), 1)}; SELECT pg_advisory_xact_lock({_PG_SCHEMA_LOCK})")
                    if not _pg_schema_present(con):
                        _refuse_older_layout(con, url)
                        con.execute(_PG_SCHEMA)
                    con.execute("COMMIT")

            _retrying(create, url, None, "creating the schema")
        _refuse_older_layout(con, url)
    except AuditStoreError:
        con.close()
        raise
    except psycopg2.Error as exc:
        con.close()
        raise _store_error(url, exc) from exc
    return con


def _pg_schema_present(con) -> bool:
    present = con.execute("SELECT count(*) FROM pg_trigger WHERE tgname = ANY(?)", (_PG_TRIGGERS,)).fetchone()[0]
    return present == len(_PG_TRIGGERS)


def _columns(con, table: str) -> list[str]:
    if isinstance(con, _PostgresConnection):
        return [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                                          "AND table_name = ? ORDER BY ordinal_position", (table,))]
    return [r[1] for r in con.execute(f"PRAGMA table_info({table})")]  # noqa: S608 - a name of TABLES


def _refuse_older_layout(con, path) -> None:
    """Refuse a store with another column layout (an older ipvalue's), naming the fix."""
    chain, valuations, users = _columns(con, "audit_chain"), _columns(con, "valuations"), _columns(con, "users")
    if chain and tuple(chain) != _CHAIN_COLUMNS:
        raise AuditStoreError(f"Audit store {_display(path)!r} {_OLDER_STORE}.")
    if chain and not _columns(con, "set_promotions"):
        raise AuditStoreError(f"Audit store {_display(path)!r} {_OLDER_STORE_2}.")
    if valuations and tuple(valuations) == _VALUATION_COLUMNS[:10] or users and "branch" not in users:
        raise AuditStoreError(f"Audit store {_display(path)!r} was made by an earlier ipvalue (audit schema 3: no branches, versions or request keys). "
                              "Fix: keep it read-only as the archive it is (the ipvalue version that wrote it verifies it) and start a new store "
                              "with --audit-db / $IPVALUE_AUDIT_DB; issue the users' tokens again there, with their branches.")
    if valuations and tuple(valuations) != _VALUATION_COLUMNS:
        raise AuditStoreError(f"Audit store {_display(path)!r}: table valuations has columns {valuations}; no column layout this version knows. "
                              "Fix: the store was made by another ipvalue version: keep it as an archive and start a new store.")


def _frame(con, sql: str, params=None) -> pd.DataFrame:
    cursor = con.execute(sql) if params is None else con.execute(sql, params)
    return pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])


def _dict_rows(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def _store_error(path, exc: Exception) -> AuditStoreError:
    text = str(exc).strip()
    if "readonly" in text or "read-only" in text or "unable to open" in text or "Permission denied" in text:
        fix = "make the file and its folder writable by this user, or point --audit-db / $IPVALUE_AUDIT_DB at a writable store"
    elif "not a database" in text or "malformed" in text or "disk image" in text:
        fix = "the file is corrupt or truncated: restore it from the last backup (do not delete it: it is the audit record), then run 'ipvalue audit verify'"
    elif "append-only" in text:
        fix = "audit records are never changed or deleted; record a correction as a new valuation or override"
    elif "no column" in text or "has no column" in text or "no such" in text or "does not exist" in text:
        fix = "the store was made by another ipvalue version: keep it read-only as an archive and start a new store"
    elif "locked" in text or "busy" in text or "lock timeout" in text:
        fix = f"another writer holds the store: wait and retry, or find the process holding it (${ENV_WAIT} sets how long a writer waits)"
    else:
        fix = "check the disk (space, permissions) and the file, then retry"
    return AuditStoreError(f"Audit store {_display(path)!r}: {text}. Fix: {fix}.")


def store_exists(path: str | Path | None = None) -> bool:
    """Whether the store holds audit tables (read-only: a missing SQLite file is not created, an
    empty PostgreSQL database is not given the schema).

    Raises
    ------
    AuditStoreError
        The store cannot be reached or read.
    """
    path = audit_path(path)
    if not is_postgres(path):
        if path.exists() and not path.is_file():
            raise AuditStoreError(f"Audit store {str(path)!r} is not a file (a folder?). Fix: point --audit-db / $IPVALUE_AUDIT_DB at the store's file.")
        return path.is_file() and path.stat().st_size > 0
    if psycopg2 is None:
        raise AuditStoreError(f"Audit store {_display(path)!r} is PostgreSQL, but psycopg2 is not installed. Fix: pip install psycopg2-binary.")
    try:
        with closing(psycopg2.connect(path, connect_timeout=10)) as raw:
            with raw.cursor() as cur:
                cur.execute("SELECT to_regclass('valuations') IS NOT NULL")
                return bool(cur.fetchone()[0])
    except psycopg2.Error as exc:
        raise _store_error(path, exc) from exc


def connect(path: Path | str):
    """Open the store, creating it (and its schema) when it does not exist.

    SQLite: a new file is created 0600 in a folder created 0700, switched to WAL and given its
    schema under the write lock (retried while another process creates it too); an existing
    store is only checked (no write, so readers never queue behind writers). PostgreSQL: the
    schema is created once, under an advisory lock.

    Raises
    ------
    AuditStoreError
        An unreadable, corrupt or read-only store, or one made by an older ipvalue.
    """
    if is_postgres(path):
        return _connect_postgres(path)
    try:
        if not path.exists():
            private_folder(path.parent)
            try:
                open_private(path, "xb").close()
            except FileExistsError:  # another process created it first
                pass
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise _store_error(path, exc) from exc
    try:
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}
        if not _SQLITE_OBJECTS <= present:
            _refuse_older_layout(con, path)
            _retrying(lambda: _create_sqlite_schema(con), path, None, "creating the schema")
        _refuse_older_layout(con, path)
    except AuditStoreError:
        con.close()
        raise
    except _DB_ERRORS as exc:
        con.close()
        raise _store_error(path, exc) from exc
    return con


def _create_sqlite_schema(con) -> None:
    """WAL (persistent; it needs no other transaction open), then the schema in one write
    transaction (IF NOT EXISTS: what another process created meanwhile is kept)."""
    if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        con.execute("PRAGMA journal_mode = WAL")
    with _rollback_on_error(con):
        con.executescript("BEGIN IMMEDIATE;\n" + _SCHEMA + "\nCOMMIT;")


# --- the audit key and the checkpoints (the anchor outside the store) ------------------------------


@dataclass(frozen=True)
class AuditKey:
    """The bank's audit key: a 32-byte secret read from a file outside the database.

    Attributes
    ----------
    path : Path
        The key file (64 hexadecimal characters, mode 0600).
    key_id : str
        A public fingerprint of the key (16 hex characters), written into each checkpoint so a
        checkpoint made with another key is named as such.
    """

    path: Path
    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"ipvalue-audit-key-id\n" + self.secret).hexdigest()[:16]

    def sign(self, message: bytes) -> str:
        """HMAC-SHA256 of ``message`` under the key, hex."""
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


def load_key(key_file: str | Path | None = None, *, create: bool = False) -> AuditKey | None:
    """The audit key from ``key_file``, else ``$IPVALUE_AUDIT_KEY_FILE``; None when neither is set.

    Parameters
    ----------
    key_file : str or Path, optional
    create : bool, default=False
        Create the file (32 random bytes, hex, mode 0600, in a folder created 0700) when it does
        not exist: what a write does the first time. Verification never creates a key.

    Raises
    ------
    AuditStoreError
        The file is missing (and ``create`` is False), readable by other users, or not a key.
    """
    target = key_file or os.environ.get(ENV_KEY_FILE)
    if not target:
        return None
    path = Path(target)
    if not path.exists():
        if not create:
            raise AuditStoreError(f"Audit key file {str(path)!r} does not exist. Fix: give the key file that signed the store "
                                  f"(--audit-key / ${ENV_KEY_FILE}); a lost key cannot be replaced, so keep a copy in the bank's key safe.")
        private_folder(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            os.link(tmp, path)  # atomic and never replaces: a writer starting at the same time keeps the first key
            logger.warning("created the audit key %s (mode 0600): keep a copy in the bank's key safe; without it the store cannot be verified", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AuditStoreError(f"Audit key file {str(path)!r} is readable by other users (mode {mode:04o}). Fix: chmod 600 {path}.")
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise AuditStoreError(f"Audit key file {str(path)!r} does not hold a key (64 hexadecimal characters). Fix: give the key file that signed the store.")
    return AuditKey(path, bytes.fromhex(text))


def checkpoint_path(checkpoint_file: str | Path | None = None, key: AuditKey | None = None) -> Path | None:
    """The checkpoint file: ``checkpoint_file``, else ``$IPVALUE_AUDIT_CHECKPOINTS``, else
    ``<key file>.checkpoints.jsonl`` beside the key; None without a key (nothing to sign with)."""
    target = checkpoint_file or os.environ.get(ENV_CHECKPOINTS)
    if target:
        return Path(target)
    return key.path.with_name(key.path.name + ".checkpoints.jsonl") if key is not None else None


def link_hmac(key: AuditKey, seq: int, record_hash: str) -> str:
    """The HMAC a link carries: of its sequence number and its record hash."""
    return key.sign(f"ipvalue-audit-link\n{int(seq)}\n{record_hash}".encode("ascii"))


def _checkpoint_mac(key: AuditKey, entry: dict) -> str:
    body = {k: entry[k] for k in ("seq", "head", "at", "key", "prev")}
    return key.sign(b"ipvalue-audit-checkpoint\n" + json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii"))


def _ready_checkpoints(path: Path | None) -> Path | None:
    """Create the checkpoint file (0600) if needed: a file that cannot be written fails before
    anything is recorded."""
    if path is not None:
        try:
            private_folder(path.parent)
            open_private(path, "a").close()
        except OSError as exc:
            raise AuditStoreError(f"Audit checkpoint file {str(path)!r} cannot be written ({exc.strerror or exc}). "
                                  f"Fix: make it (and its folder) writable by this user, or point --checkpoints / ${ENV_CHECKPOINTS} elsewhere.") from exc
    return path


def _append_checkpoint(path: Path, key: AuditKey, seq: int, head: str) -> dict:
    """Append one checkpoint line (under an exclusive lock of the file), chained to the line before."""
    with open_private(path, "a") as out:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX)
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 4096))
            tail = [line for line in fh.read().splitlines() if line.strip()]
        try:
            prev = json.loads(tail[-1])["hmac"] if tail else GENESIS
        except (ValueError, KeyError, TypeError):
            prev = "unreadable"  # the line before was damaged: verify names it
        entry = {"seq": int(seq), "head": head, "at": _now(), "key": key.key_id, "prev": prev}
        entry["hmac"] = _checkpoint_mac(key, entry)
        line = json.dumps(entry, sort_keys=True)
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())
    checkpoint_log.info("%s", line)
    return entry


def _after_commit_checkpoint(path: Path | None, key: AuditKey | None, seq: int, head: str) -> None:
    """The automatic checkpoint of a committed write. The record stands either way: a failure here
    is logged (verify then reports the records after the last checkpoint)."""
    if path is None or key is None:
        return
    try:
        _append_checkpoint(path, key, seq, head)
    except OSError as exc:
        logger.error("audit checkpoint of record %d not written to %s: %s", seq, path, exc)


def write_checkpoint(path: str | Path | None = None, *, key_file: str | Path | None = None,
                     checkpoint_file: str | Path | None = None) -> dict:
    """Append a checkpoint of the store's current head to the checkpoint file (and the log).

    Returns
    -------
    dict
        ``seq``, ``head`` (the head's record hash), ``at`` (UTC), ``key`` (the key's id),
        ``prev`` (the previous checkpoint's HMAC), ``hmac``.

    Raises
    ------
    AuditStoreError
        No key is configured (a checkpoint is signed), the store is empty or unreadable, or the
        head's link does not verify under the key.
    """
    path = audit_path(path)
    key = load_key(key_file, create=True)
    if key is None:
        raise AuditStoreError(f"A checkpoint is signed with the audit key, and none is given. Fix: set ${ENV_KEY_FILE} or pass --audit-key.")
    target = _ready_checkpoints(checkpoint_path(checkpoint_file, key))
    with closing(connect(path)) as con:
        try:
            head = con.execute("SELECT seq, record_hash, link_hmac FROM audit_chain ORDER BY seq DESC LIMIT 1").fetchone()
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    if head is None:
        raise AuditStoreError(f"Audit store {_display(path)!r} holds no record yet: nothing to checkpoint.")
    _check_head(head, key, path)
    return _append_checkpoint(target, key, head[0], head[1])


def _check_head(head, key: AuditKey | None, path) -> None:
    """Before a write: a signed store needs its key, and the key must have signed the head."""
    if head is None or head[2] is None:
        return
    if key is None:
        raise AuditStoreError(f"Audit store {_display(path)!r} is anchored (its records are signed), but no audit key is given. "
                              f"Fix: set ${ENV_KEY_FILE} (or --audit-key) to the bank's key file for this store.")
    if not hmac.compare_digest(link_hmac(key, head[0], head[1]), head[2]):
        raise AuditStoreError(f"Audit store {_display(path)!r}: the audit key {str(key.path)!r} did not sign its latest record (seq {head[0]}): "
                              "either it is another store's key or the record was rewritten. Fix: give this store's key; run 'ipvalue audit verify'.")


# --- the chain -------------------------------------------------------------------------------------


def _body_hash(prev_hash: str, body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical).hexdigest()


def _canonical_overrides(overrides: list[dict]) -> list[dict]:
    return sorted(overrides, key=lambda o: json.dumps(o, sort_keys=True, ensure_ascii=False))


def record_hash(prev_hash: str, valuation: dict, overrides: list[dict]) -> str:
    """SHA-256 of the previous hash and the canonical JSON of a valuation row and its overrides."""
    return _body_hash(prev_hash, {"valuation": valuation, "overrides": _canonical_overrides(overrides)})


def _link_body(kind: str, row: dict, overrides: list[dict] | None = None) -> dict:
    """What a link's hash covers: the valuation with its overrides, or the user / revocation row."""
    if kind == "valuation":
        return {"valuation": row, "overrides": _canonical_overrides(overrides or [])}
    return {kind: row}


def _append_link(con, path, kind: str, ref, body: dict, key: AuditKey | None) -> tuple[int, str]:
    """Chain one record (inside the caller's chain transaction): its seq and record hash."""
    head = con.execute("SELECT seq, record_hash, link_hmac FROM audit_chain ORDER BY seq DESC LIMIT 1").fetchone()
    _check_head(head, key, path)
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    digest = _body_hash(prev, body)
    con.execute("INSERT INTO audit_chain (seq, kind, valuation_id, token_id, prev_hash, record_hash, link_hmac) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, kind, ref if kind == "valuation" else None, ref if kind != "valuation" else None, prev, digest,
                 link_hmac(key, seq, digest) if key is not None else None))
    return seq, digest


@contextmanager
def _chain_write(path, *, key_file=None, checkpoint_file=None, wait_s=None):
    """Connection, chain lock and key for a write of users or revocations; commits at the end of
    the block and then writes the checkpoint. Yields ``(con, key, links)``: append ``(seq, hash)``
    of each link to ``links``."""
    key = load_key(key_file, create=True)
    checkpoints = _ready_checkpoints(checkpoint_path(checkpoint_file, key))
    links: list[tuple[int, str]] = []
    with closing(connect(path)) as con:
        try:
            _begin_chain(con, path, wait_s)
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
        try:
            with _rollback_on_error(con):
                yield con, key, links
                con.execute("COMMIT")
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    if links:
        _after_commit_checkpoint(checkpoints, key, *links[-1])


def _blank(text) -> bool:
    return text is None or not str(text).strip(BLANKS)


def _rows(result, *, with_result: bool = True) -> tuple[dict, list[dict]]:
    prov = result.provenance
    valuation = {
        "valuation_id": str(result.valuation_id),
        "application_id": str(result.application.application_id),
        "valued_at": str(prov["valued_at"]),
        "user": str(prov["user"]),
        "input_hash": str(prov["input_hash"]),
        "decision": str(result.summary["decision"]),
        "internal_value_rmb": float(result.summary["internal_value_rmb"]),
        "loan_cap_rmb": float(result.summary["loan_cap_rmb"]),
        "provenance_json": json.dumps(prov, ensure_ascii=False, default=str, sort_keys=True),
        "result_json": result.to_json() if with_result else "",
        "branch": str(prov.get("branch") or DEFAULT_BRANCH),
        "act": str(prov.get("act") or "valuation"),
        "supersedes": str(prov["supersedes"]) if prov.get("supersedes") else None,
        "request_key": str(prov["request_key"]) if prov.get("request_key") else None,
        "request_sha256": str(prov["request_sha256"]) if prov.get("request_sha256") else None,
    }
    if valuation["act"] not in ACTS:
        raise DomainError(f"The 'act' of valuation {valuation['valuation_id']!r} must be one of {list(ACTS)}. Got {valuation['act']!r}.")
    for name in ("internal_value_rmb", "loan_cap_rmb"):
        if not math.isfinite(valuation[name]):
            raise DomainError(f"The '{name}' of valuation {valuation['valuation_id']!r} is {valuation[name]!r}. Fix: a recorded value must be finite; check the inputs that produced it.")
    overrides = []
    for o in result.overrides.itertuples():
        where = f"override of {o.field!r} on patent {o.patent_id!r}"
        if _blank(o.reason):
            raise OverrideError(f"The {where} has a blank reason {o.reason!r}. Fix: every manual override needs a written reason.")
        if _blank(o.officer):
            raise OverrideError(f"The {where} has a blank officer {o.officer!r}. Fix: name the officer making it.")
        model_value = None if o.model_value is None or pd.isna(o.model_value) else float(o.model_value)
        if not math.isfinite(float(o.override_value)) or (model_value is not None and not math.isfinite(model_value)):
            raise OverrideError(f"The {where} has value {o.override_value!r} (model {o.model_value!r}). Fix: values must be finite numbers.")
        overrides.append({
            "valuation_id": valuation["valuation_id"], "patent_id": str(o.patent_id), "field": str(o.field),
            "model_value": model_value, "override_value": float(o.override_value),
            "reason": str(o.reason), "officer": str(o.officer), "recorded_at": valuation["valued_at"],
        })
    return valuation, overrides


@contextmanager
def recording(result, path: str | Path | None = None, *, key_file: str | Path | None = None,
              checkpoint_file: str | Path | None = None, wait_s: float | None = None, guard=None, written: dict | None = None):
    """Record a valuation, let the caller write its outputs, and commit both as one unit.

    The insert runs first (a read-only, corrupt or locked store fails before any output exists);
    the caller writes the report inside the block; the record is committed when the block ends
    without error and rolled back if it raises. The chain lock is held from the insert to the
    commit, so other writers wait for the block: render before it, write files inside it. After
    the commit, with a key, a checkpoint of the record is appended to the checkpoint file.

    Parameters
    ----------
    result : ValuationResult
        Needs ``valuation_id``, ``application.application_id``, ``provenance`` (``valued_at``,
        ``user``, ``input_hash``), ``summary`` (``decision``, ``internal_value_rmb``,
        ``loan_cap_rmb`` in RMB), ``overrides`` (a DataFrame) and ``to_json()``.
    path : str or Path, optional
        The store; see :func:`audit_path`.
    key_file : str or Path, optional
        The audit key (default ``$IPVALUE_AUDIT_KEY_FILE``; created 0600 when it does not exist
        yet). Without one the record is chained but not signed.
    checkpoint_file : str or Path, optional
        Default :func:`checkpoint_path`.
    wait_s : float, optional
        Longest wait for the chain lock (default :func:`chain_wait_s`).
    guard : callable, optional
        ``guard(con)``, run under the chain lock before the insert, with the store's connection
        (read what other writers committed: :func:`pledge_applications`,
        :func:`application_versions`, :func:`find_request` take ``connection=``). It may set
        ``result.provenance`` entries (``supersedes``), return another result to record instead
        (valued again under the lock), or raise to refuse the record: nothing is written and the
        exception propagates. This is where a writer re-checks what it read before the lock (the
        borrower's exposure, the application's latest version).
    written : dict, optional
        Filled with the valuation row as inserted (``result_json``: the result's JSON text, so a
        caller that answers with it does not encode the result again).

    Yields
    ------
    Path or str
        The store.

    Examples
    --------
    >>> with recording(result, db):                       # doctest: +SKIP
    ...     write_text_atomic(html, out / "report.html")
    """
    path = audit_path(path)
    _rows(result, with_result=False)  # a bad record is refused before the store is touched
    key = load_key(key_file, create=True)
    checkpoints = _ready_checkpoints(checkpoint_path(checkpoint_file, key))
    con = connect(path)
    try:
        try:
            _begin_chain(con, path, wait_s)
            with _rollback_on_error(con):
                if guard is not None:
                    result = guard(con) or result
                valuation, overrides = _rows(result)
                if written is not None:
                    written.update(valuation)
                con.execute(f"INSERT INTO valuations ({_QUOTED_VALUATION_COLUMNS}) VALUES ({', '.join('?' * len(_VALUATION_COLUMNS))})",
                            [valuation[c] for c in _VALUATION_COLUMNS])
                con.executemany(f"INSERT INTO overrides ({', '.join(_OVERRIDE_COLUMNS)}) VALUES ({', '.join('?' * len(_OVERRIDE_COLUMNS))})",
                                [[o[c] for c in _OVERRIDE_COLUMNS] for o in overrides])
                seq, digest = _append_link(con, path, "valuation", valuation["valuation_id"], _link_body("valuation", valuation, overrides), key)
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
        try:
            yield path
        except BaseException:
            con.execute("ROLLBACK")
            raise
        try:
            con.execute("COMMIT")
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    finally:
        con.close()
    _after_commit_checkpoint(checkpoints, key, seq, digest)


def record_valuation(result, path: str | Path | None = None, **options) -> Path:
    """Insert one valuation and its overrides (and its chain link) in a single transaction;
    ``options`` as :func:`recording` takes them."""
    with recording(result, path, **options) as stored:
        return stored


def read_audit_table(table: str, path: str | Path | None = None) -> pd.DataFrame:
    """One table of the store (:data:`TABLES`) as a DataFrame (governance review)."""
    if table not in TABLES:
        raise ValueError(f"The audit store has tables {TABLES}. Got {table!r}. Fix: use one of them.")
    path = audit_path(path)
    with closing(connect(path)) as con:
        try:
            return _frame(con, f"SELECT * FROM {table}")  # noqa: S608 - table name checked above
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc


#: Columns of :func:`pledge_applications`.
PLEDGE_APPLICATION_COLUMNS = ["application_id", "valuation_id", "valued_at", "decision", "borrower", "requested_amount_rmb", "term_years", "valuation_date"]


def pledge_applications(path: str | Path | None = None, *, connection=None) -> pd.DataFrame:
    """The latest recorded valuation of each application, as the exposure rule reads them.

    One row per ``application_id`` (its last valuation in chain order): ``valuation_id``,
    ``valued_at``, ``decision``, ``borrower``, ``requested_amount_rmb``, ``term_years``,
    ``valuation_date`` (from the stored result's summary). Works on SQLite and PostgreSQL.
    Read-only: nothing is written, not even a schema.

    Returns
    -------
    pandas.DataFrame
        Empty (with the columns) only for a store that does not exist yet: no SQLite file, or a
        PostgreSQL database without the audit tables.

    connection : optional
        An open connection of the store (inside a writer's chain lock: see
        :func:`recording`'s ``guard``); else one is opened.

    Raises
    ------
    AuditStoreError
        The store exists but cannot be read (unreachable, corrupt, older layout, a stored result
        that is not JSON). The caller refuses the application: its exposure is unknown, and
        valuing it as "this request only" would let a split loan through.
    """
    path = audit_path(path)
    sql = ("SELECT v.application_id, v.valuation_id, v.valued_at, v.decision, v.result_json FROM valuations v "
           "JOIN audit_chain c ON c.valuation_id = v.valuation_id WHERE c.seq = (SELECT max(d.seq) FROM valuations w "
           "JOIN audit_chain d ON d.valuation_id = w.valuation_id WHERE w.application_id = v.application_id) ORDER BY c.seq")
    if connection is not None:
        rows = _read(connection, path, sql)
    elif not store_exists(path):
        return pd.DataFrame(columns=PLEDGE_APPLICATION_COLUMNS)
    else:
        with closing(connect(path)) as con:
            rows = _read(con, path, sql)
    rows = rows.drop_duplicates("application_id", keep="last").reset_index(drop=True)

    def summary(valuation_id: str, text: str) -> dict:
        try:
            found = json.loads(text).get("summary")
        except (TypeError, ValueError, AttributeError):
            found = None
        if not isinstance(found, dict):
            raise AuditStoreError(f"Audit store {_display(path)!r}: the stored result of valuation {valuation_id!r} has no readable summary, "
                                  "so the borrower's exposure cannot be read. Fix: run 'ipvalue audit verify' and restore the store from its backup.")
        return found

    s = pd.DataFrame([summary(v, t) for v, t in zip(rows["valuation_id"], rows["result_json"])], index=rows.index)
    for name in ("borrower", "requested_amount_rmb", "term_years", "valuation_date"):
        rows[name] = s[name] if name in s else None
    return rows[PLEDGE_APPLICATION_COLUMNS]


def _read(con, path, sql: str, params=None) -> pd.DataFrame:
    try:
        return _frame(con, sql, params)
    except _DB_ERRORS as exc:
        raise _store_error(path, exc) from exc


def _with_connection(path, connection, sql: str, params=None) -> pd.DataFrame:
    """``sql`` on ``connection``, else on a new connection of ``path`` (an empty store has no rows)."""
    if connection is not None:
        return _read(connection, path, sql, params)
    with closing(connect(path)) as con:
        return _read(con, path, sql, params)


def chain_head(path: str | Path | None = None, *, connection=None) -> int:
    """The sequence number of the chain's last record (0 for an empty or missing store)."""
    path = audit_path(path)
    if connection is None and not store_exists(path):
        return 0
    found = _with_connection(path, connection, "SELECT max(seq) AS seq FROM audit_chain")["seq"].iloc[0]
    return 0 if found is None or pd.isna(found) else int(found)


def borrowers_since(seq: int, path: str | Path | None = None, *, connection=None) -> pd.DataFrame:
    """The valuations recorded after chain record ``seq``: ``application_id``, ``valuation_id``,
    ``borrower`` (from the stored summary). What a writer checks under the lock against what it
    read before (only the records written since are read, whatever the store's size)."""
    path = audit_path(path)
    rows = _with_connection(path, connection, "SELECT v.application_id, v.valuation_id, v.result_json FROM valuations v "
                                              "JOIN audit_chain c ON c.valuation_id = v.valuation_id WHERE c.seq > ? ORDER BY c.seq", (int(seq),))

    def borrower(text):
        try:
            return str((json.loads(text).get("summary") or {}).get("borrower") or "")
        except (TypeError, ValueError, AttributeError):
            return ""

    return rows.assign(borrower=rows["result_json"].map(borrower))[["application_id", "valuation_id", "borrower"]]


#: Columns of :func:`application_versions` and :func:`list_valuations`.
VERSION_COLUMNS = ["seq", "valuation_id", "application_id", "valued_at", "user", "decision", "branch", "act", "supersedes",
                   "internal_value_rmb", "loan_cap_rmb"]
_VERSION_SELECT = ("SELECT c.seq, v.valuation_id, v.application_id, v.valued_at, v.\"user\", v.decision, v.branch, v.act, v.supersedes, "
                   "v.internal_value_rmb, v.loan_cap_rmb FROM valuations v JOIN audit_chain c ON c.valuation_id = v.valuation_id")


def application_versions(application_id: str, path: str | Path | None = None, *, connection=None) -> pd.DataFrame:
    """Every recorded version of one application, in chain order (the last row is the live one).

    Columns :data:`VERSION_COLUMNS`: ``act`` (valuation, override, sign-off), ``user`` (who
    acted), ``branch`` (the application's branch), ``supersedes`` (the version it replaced).
    """
    path = audit_path(path)
    return _with_connection(path, connection, _VERSION_SELECT + " WHERE v.application_id = ? ORDER BY c.seq", (str(application_id),))


def version_overrides(valuation_ids, path: str | Path | None = None, *, connection=None) -> pd.DataFrame:
    """The overrides recorded with the valuations ``valuation_ids`` (officer, field, values, reason)."""
    path = audit_path(path)
    ids = [str(v) for v in valuation_ids]
    if not ids:
        return pd.DataFrame(columns=list(_OVERRIDE_COLUMNS))
    return _with_connection(path, connection, f"SELECT * FROM overrides WHERE valuation_id IN ({', '.join('?' * len(ids))})", ids)


def find_request(request_key: str, path: str | Path | None = None, *, connection=None) -> dict | None:
    """The valuation recorded for an idempotency key (``valuation_id``, ``request_sha256``), or None."""
    path = audit_path(path)
    if connection is None and not store_exists(path):
        return None
    rows = _with_connection(path, connection, "SELECT valuation_id, request_sha256 FROM valuations WHERE request_key = ?", (str(request_key),))
    return rows.iloc[0].to_dict() if len(rows) else None


def list_valuations(path: str | Path | None = None, *, branch: str, user: str | None = None, decision: str | None = None,
                    application_id: str | None = None, live_only: bool = True, limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
    """One branch's recorded valuations, newest first, filtered and paginated (work queues).

    Parameters
    ----------
    branch : str
        Only this branch's applications (scoping: required).
    user : str, optional
        Only applications this user valued or overrode ("my valuations").
    decision : str, optional
        Only versions with this decision (e.g. ``'review required'``: awaiting sign-off).
    application_id : str, optional
    live_only : bool, default=True
        Only the latest version of each application (the one a sign-off or override acts on).
    limit, offset : int
        Page size (1-500) and start.

    Returns
    -------
    (pandas.DataFrame, int)
        The page (:data:`VERSION_COLUMNS`) and how many rows match in all.
    """
    path = audit_path(path)
    if not store_exists(path):
        return pd.DataFrame(columns=VERSION_COLUMNS), 0
    where, params = ["v.branch = ?"], [str(branch)]
    if live_only:
        where.append("NOT EXISTS (SELECT 1 FROM valuations w JOIN audit_chain d ON d.valuation_id = w.valuation_id "
                     "WHERE w.application_id = v.application_id AND d.seq > c.seq)")
    if user:
        where.append("v.application_id IN (SELECT a.application_id FROM valuations a WHERE a.\"user\" = ? AND a.act <> 'sign-off' "
                     "UNION SELECT b.application_id FROM valuations b JOIN overrides o ON o.valuation_id = b.valuation_id WHERE o.officer = ?)")
        params += [str(user), str(user)]
    if decision:
        where.append("v.decision = ?")
        params.append(str(decision))
    if application_id:
        where.append("v.application_id = ?")
        params.append(str(application_id))
    clause = " WHERE " + " AND ".join(where)
    with closing(connect(path)) as con:
        total = int(_read(con, path, "SELECT count(*) AS n FROM valuations v JOIN audit_chain c ON c.valuation_id = v.valuation_id" + clause, params)["n"].iloc[0])
        page = _read(con, path, _VERSION_SELECT + clause + f" ORDER BY c.seq DESC LIMIT {int(limit)} OFFSET {int(offset)}", params)
    return page, total


# --- verification ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditVerification:
    """What :func:`verify` found.

    Attributes
    ----------
    ok : bool
        No check failed: every link holds, every row is chained, every checkpoint matches.
    n_records : int
        Valuations in the store.
    first_broken : str or None
        What the first failed check names: a ``valuation_id``, a user name, ``'token 7'``, a
        promoted set (``'disposal-cn-v2'``), or a checkpoint line (``'line 3'``).
    problem : str
        What is wrong with it ('' when ok).
    kind : str
        What ``first_broken`` is: ``valuation``, ``user``, ``revocation``, ``promotion`` or ``checkpoint``.
    anchored : bool
        The store was checked against the key and a checkpoint file (so truncation and
        re-hashing would have been found). Without it, ``ok`` says only that the chain is
        consistent in itself.
    n_identity_records : int
        User and revocation records in the chain.
    head_seq : int
        The last record's sequence number.
    checkpoint_seq : int or None
        The highest record named by a checkpoint.
    notes : tuple of str
        What limits the verdict (no key, no checkpoint, records before the key, records after
        the last checkpoint).
    n_promotions : int
        Promotions of calibrated sets in the chain.
    """

    ok: bool
    n_records: int
    first_broken: str | None = None
    problem: str = ""
    kind: str = "valuation"
    anchored: bool = False
    n_identity_records: int = 0
    head_seq: int = 0
    checkpoint_seq: int | None = None
    notes: tuple[str, ...] = ()
    n_promotions: int = 0

    @property
    def passed(self) -> bool:
        """Intact and anchored: what ``ipvalue audit verify`` exits 0 for."""
        return self.ok and self.anchored

    def __str__(self) -> str:
        if not self.ok:
            return f"audit chain BROKEN at {self.kind} {self.first_broken!r}: {self.problem}"
        head = f"audit chain intact: {self.n_records} valuation(s)"
        if self.n_identity_records:
            head += f", {self.n_identity_records} user and revocation record(s)"
        if self.n_promotions:
            head += f", {self.n_promotions} set promotion(s)"
        if self.anchored:
            head += f"; anchored: record {self.head_seq} signed, last checkpoint at record {self.checkpoint_seq}"
        return "\n".join([head, *self.notes])


def _read_checkpoints(path: Path) -> list:
    """The checkpoint file's lines: parsed entries, or the line number of a line that is not one."""
    entries = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                ok = (isinstance(entry, dict) and isinstance(entry.get("seq"), int) and entry["seq"] > 0
                      and all(isinstance(entry.get(k), str) for k in ("head", "at", "key", "prev", "hmac")))
            except ValueError:
                ok = False
            entries.append((number, entry if ok else None))
    return entries


def verify(path: str | Path | None = None, *, key_file: str | Path | None = None, checkpoint_file: str | Path | None = None) -> AuditVerification:
    """Recompute the hash chain, check the signatures and the checkpoints, and report the first
    problem.

    Checks, in order: every link in sequence, chained to the one before, its rows (valuation and
    overrides, user, revocation, promotion) hashing to what was recorded, and with a key its HMAC (a
    record unsigned after signed ones counts as a removed signature); every valuation, override,
    user, revocation and promotion row in the chain (a promotion's link names its validator's token); every checkpoint line well formed, with a key made with it and
    chained to the line before, and naming a record the store still has with the same hash (a
    checkpoint beyond the store's last record means records were removed: truncation).

    Parameters
    ----------
    path : str or Path, optional
        The store; see :func:`audit_path`.
    key_file : str or Path, optional
        The audit key (default ``$IPVALUE_AUDIT_KEY_FILE``); never created here.
    checkpoint_file : str or Path, optional
        Default :func:`checkpoint_path`.

    Returns
    -------
    AuditVerification
        ``ok`` when no check failed; ``anchored`` when the key and the checkpoints were there to
        check against.
    """
    path = audit_path(path)
    if not store_exists(path):
        raise AuditStoreError(f"Audit store {_display(path)!r} does not exist. Fix: check --audit-db / $IPVALUE_AUDIT_DB.")
    key = load_key(key_file)
    checkpoints = checkpoint_path(checkpoint_file, key)
    with closing(connect(path)) as con:
        try:
            valuations = {r["valuation_id"]: r for r in _dict_rows(con.execute("SELECT * FROM valuations"))}
            overrides: dict[str, list[dict]] = {}
            for r in _dict_rows(con.execute("SELECT * FROM overrides")):
                overrides.setdefault(r["valuation_id"], []).append(r)
            users = {r["token_id"]: r for r in _dict_rows(con.execute("SELECT * FROM users"))}
            revocations = {r["token_id"]: r for r in _dict_rows(con.execute("SELECT * FROM token_revocations"))}
            promotions = {r["seq"]: r for r in _dict_rows(con.execute("SELECT * FROM set_promotions"))}
            chain = _dict_rows(con.execute("SELECT * FROM audit_chain ORDER BY seq"))
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    n_identity = sum(link["kind"] in ("user", "revocation") for link in chain)
    n_promotions = sum(link["kind"] == "promotion" for link in chain)

    def broken(kind: str, name, problem: str) -> AuditVerification:
        return AuditVerification(False, len(valuations), str(name), problem, kind=kind, n_identity_records=n_identity, head_seq=len(chain),
                                 n_promotions=n_promotions)

    def reference(link: dict):
        """The row a link chains: a valuation id, a promotion's seq, or a user's / revocation's token id."""
        return link["valuation_id"] if link["kind"] == "valuation" else link["seq"] if link["kind"] == "promotion" else link["token_id"]

    def label(link: dict) -> tuple[str, str]:
        if link["kind"] == "valuation":
            return "valuation", link["valuation_id"]
        if link["kind"] == "promotion":
            row = promotions.get(link["seq"])
            return "promotion", f"{row['set_name']}-v{row['set_version']}" if row else f"record {link['seq']}"
        user = users.get(link["token_id"])
        return link["kind"], user["name"] if link["kind"] == "user" and user else f"token {link['token_id']}"

    prev, signed_from = GENESIS, None
    rows = {"valuation": valuations, "user": users, "revocation": revocations, "promotion": promotions}
    for expected_seq, link in enumerate(chain, start=1):
        kind, name = label(link)
        if link["seq"] != expected_seq:
            return broken(kind, name, f"sequence {link['seq']} where {expected_seq} was expected (a link was removed)")
        if link["prev_hash"] != prev:
            return broken(kind, name, "prev_hash does not match the previous record's hash")
        ref = reference(link)
        if kind not in rows or ref not in rows[kind]:
            return broken(kind, name, f"the chained {kind} row is missing")
        if kind == "promotion" and rows[kind][ref]["token_id"] != link["token_id"]:
            return broken(kind, name, "the promotion's link names another validator's token than its row")
        body = _link_body(kind, rows[kind][ref], overrides.get(ref, []) if kind == "valuation" else None)
        if _body_hash(prev, body) != link["record_hash"]:
            return broken(kind, name, "the row or its overrides differ from what was recorded" if kind == "valuation" else f"the {kind} row differs from what was recorded")
        if link["link_hmac"] is None:
            if signed_from is not None:
                return broken(kind, name, f"the record (seq {link['seq']}) is not signed although record {signed_from} before it is: its signature was removed")
        else:
            signed_from = signed_from or link["seq"]
            if key is not None and not hmac.compare_digest(link_hmac(key, link["seq"], link["record_hash"]), link["link_hmac"]):
                return broken(kind, name, f"its HMAC (seq {link['seq']}) does not match under the audit key: the chain was re-hashed "
                                          "(or the key is another store's)")
        prev = link["record_hash"]

    chained = {kind: [reference(link) for link in chain if link["kind"] == kind] for kind in LINK_KINDS}
    for kind in LINK_KINDS:
        twice = sorted({r for r in chained[kind] if chained[kind].count(r) > 1}, key=str)
        if twice:
            return broken(kind, twice[0], f"the {kind} is chained twice")
    for vid in sorted(set(valuations) - set(chained["valuation"])):
        return broken("valuation", vid, "valuation row not in the chain (inserted around ipvalue.audit)")
    for token_id in sorted(set(users) - set(chained["user"])):
        u = users[token_id]
        return broken("user", u["name"], f"user row (role {u['role']}, token {token_id}) not in the chain (inserted around ipvalue.audit): it never authenticates")
    for token_id in sorted(set(revocations) - set(chained["revocation"])):
        return broken("revocation", f"token {token_id}", "revocation row not in the chain (inserted around ipvalue.audit)")
    for seq in sorted(set(promotions) - set(chained["promotion"])):
        row = promotions[seq]
        return broken("promotion", f"{row['set_name']}-v{row['set_version']}", "promotion row not in the chain (inserted around ipvalue.audit): "
                                                                              "the loader of the bank's sets does not accept it")
    for vid in sorted(set(overrides) - set(valuations)):
        return broken("valuation", vid, "overrides for a valuation that is not recorded")

    notes: list[str] = []
    checkpoint_seq = None
    if checkpoints is not None and checkpoints.is_file():
        expected_prev = GENESIS
        for number, entry in _read_checkpoints(checkpoints):
            where = f"line {number}"
            if entry is None:
                return broken("checkpoint", where, f"{checkpoints.name} line {number} is not a checkpoint (the file was edited)")
            if key is not None:
                if entry["key"] != key.key_id:
                    return broken("checkpoint", where, f"made with another key ({entry['key']}, this key is {key.key_id})")
                if entry["prev"] != expected_prev:
                    return broken("checkpoint", where, "does not follow the line before it: a checkpoint was removed or the file edited")
                if not hmac.compare_digest(_checkpoint_mac(key, entry), entry["hmac"]):
                    return broken("checkpoint", where, "its HMAC does not match under the audit key: the line was forged or edited")
                expected_prev = entry["hmac"]
            if entry["seq"] > len(chain):
                return broken("checkpoint", where, f"the checkpoint of {entry['at']} names record {entry['seq']} (head {entry['head'][:12]}…), "
                                                   f"but the store ends at record {len(chain)}: records were removed from its end (truncated)")
            if chain[entry["seq"] - 1]["record_hash"] != entry["head"]:
                return broken("checkpoint", where, f"the store's record {entry['seq']} differs from the checkpoint of {entry['at']}: "
                                                   "the chain was rewritten from there")
            checkpoint_seq = max(checkpoint_seq or 0, entry["seq"])

    if key is None:
        notes.append(f"NOT ANCHORED: no audit key is given (--audit-key / ${ENV_KEY_FILE}): someone who can write the database could "
                     "remove its latest records or re-hash the chain, and this check would not see it")
    elif chain and chain[-1]["link_hmac"] is None:
        notes.append("NOT ANCHORED: no record is signed: the store was written without the audit key. "
                     f"Fix: give the key (${ENV_KEY_FILE}) to every writer; the next record will be signed")
    elif checkpoint_seq is None:
        where = f"in {str(checkpoints)!r}" if checkpoints is not None else "configured"
        notes.append(f"NOT ANCHORED: no checkpoint {where}: removing the latest records would not be found. Fix: 'ipvalue audit checkpoint' "
                     f"(and keep the file where the database's users cannot change it)")
    if signed_from and signed_from > 1:
        notes.append(f"records 1-{signed_from - 1} were written before the audit key was used; signed record {signed_from} fixes them as they stood then")
    if checkpoint_seq is not None and checkpoint_seq < len(chain):
        notes.append(f"{len(chain) - checkpoint_seq} record(s) after the last checkpoint (record {checkpoint_seq}): removing them would not be found "
                     "until the next checkpoint ('ipvalue audit checkpoint')")
    anchored = key is not None and checkpoint_seq is not None and (not chain or chain[-1]["link_hmac"] is not None)
    return AuditVerification(True, len(valuations), anchored=anchored, n_identity_records=n_identity, head_seq=len(chain), n_promotions=n_promotions,
                             checkpoint_seq=checkpoint_seq, notes=tuple(notes))


# --- service identities -------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """An authenticated user: the ``name`` every audit record carries, the ``role`` and the
    ``branch`` whose applications the user sees and acts on."""

    name: str
    role: str
    branch: str = DEFAULT_BRANCH


def token_digest(token: str) -> str:
    """SHA-256 hex of an API token: what the store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_ACTIVE = "token_id NOT IN (SELECT token_id FROM token_revocations) AND token_id NOT IN (SELECT token_id FROM audit_chain WHERE kind = 'revocation')"


def add_user(name: str, role: str, path: str | Path | None = None, *, branch: str = DEFAULT_BRANCH, created_by: str = "cli",
             key_file: str | Path | None = None, checkpoint_file: str | Path | None = None, wait_s: float | None = None) -> str:
    """Issue an API token for ``name`` with ``role``; returns the token (shown once, never stored).

    The user row and its chain link are written in one transaction under the chain lock. One
    name holds one role (审贷分离: whoever prepares a valuation must not be able to sign it off):
    a second token for the role a name already holds is issued; another role is refused while
    the name holds an active one.

    Parameters
    ----------
    name, role : str
    path : str or Path, optional
        The store.
    branch : str, default=DEFAULT_BRANCH
        The branch whose applications the user sees and acts on (officers, reviewers); one
        branch per name, like the role.
    created_by : str, default="cli"
        Who issued it (recorded).
    key_file, checkpoint_file, wait_s
        As :func:`recording` takes them.

    Raises
    ------
    DomainError
        ``name`` is not a user name (:data:`USER_NAME`), ``role`` not one of :data:`ROLES`, or the
        name holds another active role.
    """
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise DomainError(f"A user name must be letters, digits, '.', '_', '@' or '-' (up to 64, recorded in the audit trail). Got {name!r}.")
    if role not in ROLES:
        raise DomainError(f"The role of user {name!r} must be one of {list(ROLES)}. Got {role!r}.")
    if not isinstance(branch, str) or not BRANCH_NAME.fullmatch(branch):
        raise DomainError(f"The branch of user {name!r} must be lower-case letters, digits, '.', '_' or '-' (up to 64). Got {branch!r}. "
                          "Fix: name the branch as the bank's other systems do, e.g. beijing-haidian.")
    token = "ipv_" + secrets.token_urlsafe(32)
    path = audit_path(path)
    with _chain_write(path, key_file=key_file, checkpoint_file=checkpoint_file, wait_s=wait_s) as (con, key, links):
        active = con.execute(f"SELECT role, branch FROM users WHERE name = ? AND {_ACTIVE}", (name,)).fetchall()
        held = sorted({r[0] for r in active} - {role})
        if held:
            raise DomainError(f"User {name!r} already holds the active role {held[0]!r}; one name holds one role, so that nobody signs off "
                              f"their own valuation (审贷分离). Got role {role!r}. Fix: revoke it first ('ipvalue users revoke {name}'), "
                              "or give the second person their own name.")
        branches = sorted({r[1] for r in active} - {branch})
        if branches:
            raise DomainError(f"User {name!r} belongs to branch {branches[0]!r}; one name belongs to one branch. Got branch {branch!r}. "
                              f"Fix: revoke the name's tokens first ('ipvalue users revoke {name}') when the user moves.")
        token_id = con.execute("INSERT INTO users (name, role, branch, token_sha256, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?) RETURNING token_id",
                               (name, role, branch, token_digest(token), _now(), created_by)).fetchone()[0]
        row = _dict_rows(con.execute("SELECT * FROM users WHERE token_id = ?", (token_id,)))[0]
        links.append(_append_link(con, path, "user", token_id, _link_body("user", row), key))
    return token


def revoke_user(name: str, path: str | Path | None = None, *, revoked_by: str = "cli", key_file: str | Path | None = None,
                checkpoint_file: str | Path | None = None, wait_s: float | None = None) -> int:
    """Revoke every active token of ``name`` (each revocation a chain record); returns how many."""
    path = audit_path(path)
    with _chain_write(path, key_file=key_file, checkpoint_file=checkpoint_file, wait_s=wait_s) as (con, key, links):
        for (token_id,) in con.execute(f"SELECT token_id FROM users WHERE name = ? AND {_ACTIVE} ORDER BY token_id", (name,)).fetchall():
            con.execute("INSERT INTO token_revocations (token_id, revoked_at, revoked_by) VALUES (?, ?, ?)", (token_id, _now(), revoked_by))
            row = _dict_rows(con.execute("SELECT * FROM token_revocations WHERE token_id = ?", (token_id,)))[0]
            links.append(_append_link(con, path, "revocation", token_id, _link_body("revocation", row), key))
    return len(links)


def authenticate(token, path: str | Path | None = None, *, key_file: str | Path | None = None) -> Identity | None:
    """The identity behind an API token, or None for an unknown or revoked token, or one whose user
    row is not in the chain as recorded (a row inserted or edited around this module), or whose
    record's signature does not hold under the audit key (``key_file``, default
    ``$IPVALUE_AUDIT_KEY_FILE``; created when configured and missing, as a write would)."""
    if not isinstance(token, str) or not token or len(token) > 256:
        return None
    return authenticate_digest(token_digest(token), path, key_file=key_file)


def authenticate_digest(digest: str, path: str | Path | None = None, *, key_file: str | Path | None = None) -> Identity | None:
    """:func:`authenticate` from the token's SHA-256 (what a server-side session keeps instead of
    the token): None unless the token is active and its user record holds."""
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        return None
    path = audit_path(path)
    key = load_key(key_file, create=True)
    with closing(connect(path)) as con:
        try:
            found = _dict_rows(con.execute(
                "SELECT u.*, c.seq, c.prev_hash, c.record_hash, c.link_hmac FROM users u JOIN audit_chain c ON c.kind = 'user' AND c.token_id = u.token_id "
                "WHERE u.token_sha256 = ? AND u.token_id NOT IN (SELECT token_id FROM token_revocations) "
                "AND u.token_id NOT IN (SELECT token_id FROM audit_chain WHERE kind = 'revocation')", (digest,)))
            first_signed = con.execute("SELECT seq FROM audit_chain WHERE link_hmac IS NOT NULL ORDER BY seq LIMIT 1").fetchone() if found else None
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    if not found:
        return None
    user = found[0]
    row = {k: user[k] for k in _USER_COLUMNS}
    if _body_hash(user["prev_hash"], _link_body("user", row)) != user["record_hash"]:
        logger.warning("user %r (token %s) differs from its audit record: refused", user["name"], user["token_id"])
        return None
    if user["link_hmac"] is not None and key is not None and not hmac.compare_digest(link_hmac(key, user["seq"], user["record_hash"]), user["link_hmac"]):
        logger.warning("user %r (token %s): its audit record's signature does not hold under the audit key: refused", user["name"], user["token_id"])
        return None
    if user["link_hmac"] is None and first_signed is not None and first_signed[0] < user["seq"]:
        logger.warning("user %r (token %s): its audit record is unsigned in a signed store: refused", user["name"], user["token_id"])
        return None
    return Identity(user["name"], user["role"], user["branch"])


# --- promotions of calibrated sets ---------------------------------------------------------------

#: Columns of a ``set_promotions`` row (the order of the table).
PROMOTION_COLUMNS = ("seq", "set_name", "set_version", "folder", "content_sha256", "calibrated_from", "calibration_run", "ledger_sha256",
                     "gates_json", "calibrated_by", "promoted_by", "token_id", "promoted_at", "reason")


def record_set_promotion(promotion: dict, token: str, path: str | Path | None = None, *, key_file: str | Path | None = None,
                         checkpoint_file: str | Path | None = None, wait_s: float | None = None, while_recording=None) -> dict:
    """Record a validator's promotion of a calibrated set: a ``set_promotions`` row chained as a
    ``promotion`` link, in one transaction under the chain lock (what the set's installation,
    ``while_recording``, writes is part of it: if it fails, nothing is recorded).

    The caller checks the candidate (its calibration run, gates, who calibrated it); this records
    who promoted what, and refuses, inside the lock, what would make the record wrong: a token that
    is not an active validator's (revoked meanwhile, or another role), a blank reason, a set name
    and version already promoted.

    Parameters
    ----------
    promotion : dict
        ``set_name``, ``set_version`` (int), ``folder`` (where the bank's sets of its kind are
        read), ``content_sha256`` (:func:`ipvalue.config.set_content_sha256`), ``calibrated_from``,
        ``calibration_run``, ``ledger_sha256``, ``gates`` (``{gate: passed}``), ``calibrated_by``
        (the authenticated user who ran the calibration, or None), ``reason``.
    token : str
        The validator's API token.
    path : str or Path, optional
        The store; see :func:`audit_path`.
    key_file, checkpoint_file, wait_s
        As :func:`recording` takes them.
    while_recording : callable, optional
        ``f(row)`` run inside the transaction after the link is written (``row`` with ``seq``,
        ``promoted_by``, ``promoted_at``, ``record_hash``): it installs the set.

    Returns
    -------
    dict
        The recorded row plus ``record_hash`` (its chain link's hash).

    Raises
    ------
    DomainError
        Not an active validator's token, a blank reason, or the set's version already promoted.
    """
    if _blank(promotion.get("reason")):
        raise DomainError(f"The 'reason' of the promotion of {promotion.get('set_name')}-v{promotion.get('set_version')} is blank. "
                          "Fix: state why the set is approved, e.g. the back-test's conclusion.")
    path = audit_path(path)
    with _chain_write(path, key_file=key_file, checkpoint_file=checkpoint_file, wait_s=wait_s) as (con, key, links):
        found = con.execute("SELECT u.token_id, u.name, u.role FROM users u JOIN audit_chain c ON c.kind = 'user' AND c.token_id = u.token_id "
                            "WHERE u.token_sha256 = ? AND u.token_id NOT IN (SELECT token_id FROM token_revocations) "
                            "AND u.token_id NOT IN (SELECT token_id FROM audit_chain WHERE kind = 'revocation')", (token_digest(str(token)),)).fetchone()
        if found is None or found[2] != "validator":
            who = "an unknown or revoked token" if found is None else f"user {found[1]!r} (role {found[2]!r})"
            raise DomainError(f"A promotion is recorded for an active validator only; the token is {who}. Fix: the validator promotes with "
                              "their own API token (ipvalue users add NAME --role validator).")
        name, version = str(promotion["set_name"]), int(promotion["set_version"])
        earlier = con.execute("SELECT seq, promoted_by, promoted_at FROM set_promotions WHERE set_name = ? AND set_version = ?", (name, version)).fetchone()
        if earlier is not None:
            raise DomainError(f"Set {name}-v{version} was promoted already (audit record {earlier[0]}, by {earlier[1]} at {earlier[2]}). "
                              "Fix: a set's version is promoted once; calibrate again for a new version.")
        head = con.execute("SELECT seq FROM audit_chain ORDER BY seq DESC LIMIT 1").fetchone()
        row = {"seq": (head[0] if head else 0) + 1, "set_name": name, "set_version": version, "folder": str(promotion["folder"]),
               "content_sha256": str(promotion["content_sha256"]), "calibrated_from": str(promotion["calibrated_from"]),
               "calibration_run": str(promotion["calibration_run"]), "ledger_sha256": str(promotion["ledger_sha256"]),
               "gates_json": json.dumps({str(k): bool(v) for k, v in dict(promotion["gates"]).items()}, sort_keys=True),
               "calibrated_by": None if promotion.get("calibrated_by") is None else str(promotion["calibrated_by"]),
               "promoted_by": found[1], "token_id": found[0], "promoted_at": _now(), "reason": str(promotion["reason"]).strip()}
        con.execute(f"INSERT INTO set_promotions ({', '.join(PROMOTION_COLUMNS)}) VALUES ({', '.join('?' * len(PROMOTION_COLUMNS))})",
                    [row[c] for c in PROMOTION_COLUMNS])
        stored = _dict_rows(con.execute("SELECT * FROM set_promotions WHERE seq = ?", (row["seq"],)))[0]
        seq, digest = _append_link(con, path, "promotion", found[0], _link_body("promotion", stored), key)
        if seq != row["seq"]:  # pragma: no cover - the chain lock is held
            raise AuditStoreError(f"Audit store {_display(path)!r}: the promotion's link took sequence {seq}, not {row['seq']}. Fix: retry.")
        links.append((seq, digest))
        stored["record_hash"] = digest
        if while_recording is not None:
            while_recording(stored)
    return stored


def set_promotion(set_name: str, set_version: int, path: str | Path | None = None, *, key_file: str | Path | None = None) -> dict | None:
    """The recorded promotion of set ``set_name``-v``set_version``, with its chain link checked, or
    None when the store records none.

    Checked (as :func:`authenticate` checks a user): the row is chained (a ``promotion`` link of the
    same sequence number and validator's token) and hashes to what the link recorded; under the
    audit key (``key_file``, default ``$IPVALUE_AUDIT_KEY_FILE``) the link's signature holds, and
    in a signed store the link is signed; the validator's user row names the validator. A row
    inserted or edited around this module reads as not recorded. Read-only.

    Returns
    -------
    dict or None
        The ``set_promotions`` row plus ``record_hash``.

    Raises
    ------
    AuditStoreError
        The store does not exist or cannot be read, or the key file is missing or unreadable.
    """
    path = audit_path(path)
    if not store_exists(path):
        raise AuditStoreError(f"Audit store {_display(path)!r} does not exist. Fix: point $IPVALUE_AUDIT_DB (or --audit-db) at the bank's store.")
    key = load_key(key_file)
    with closing(connect(path)) as con:
        try:
            rows = _dict_rows(con.execute("SELECT * FROM set_promotions WHERE set_name = ? AND set_version = ?", (str(set_name), int(set_version))))
            if not rows:
                return None
            row = rows[0]
            link = _dict_rows(con.execute("SELECT * FROM audit_chain WHERE seq = ?", (row["seq"],)))
            user = _dict_rows(con.execute("SELECT name, role FROM users WHERE token_id = ?", (row["token_id"],)))
            first_signed = con.execute("SELECT seq FROM audit_chain WHERE link_hmac IS NOT NULL ORDER BY seq LIMIT 1").fetchone()
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    what = f"set {set_name}-v{set_version}"
    if not link or link[0]["kind"] != "promotion" or link[0]["token_id"] != row["token_id"]:
        logger.warning("the promotion of %s is not in the audit chain (inserted around ipvalue.audit): not recorded", what)
        return None
    link = link[0]
    if _body_hash(link["prev_hash"], _link_body("promotion", row)) != link["record_hash"]:
        logger.warning("the promotion of %s differs from its audit record: not recorded", what)
        return None
    if link["link_hmac"] is not None and key is not None and not hmac.compare_digest(link_hmac(key, link["seq"], link["record_hash"]), link["link_hmac"]):
        logger.warning("the promotion of %s: its audit record's signature does not hold under the audit key: not recorded", what)
        return None
    if link["link_hmac"] is None and first_signed is not None and first_signed[0] < link["seq"]:
        logger.warning("the promotion of %s: its audit record is unsigned in a signed store: not recorded", what)
        return None
    if not user or user[0]["role"] != "validator" or user[0]["name"] != row["promoted_by"]:
        logger.warning("the promotion of %s names a user who is not its validator: not recorded", what)
        return None
    return {**row, "record_hash": link["record_hash"]}


def list_users(path: str | Path | None = None) -> pd.DataFrame:
    """One row per token: name, role, branch, created_at, created_by, revoked_at (never the digest)."""
    path = audit_path(path)
    with closing(connect(path)) as con:
        try:
            return _frame(con, "SELECT u.token_id, u.name, u.role, u.branch, u.created_at, u.created_by, r.revoked_at FROM users u "
                           "LEFT JOIN token_revocations r USING (token_id) ORDER BY u.token_id")
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc


def read_valuation(valuation_id: str, path: str | Path | None = None) -> dict | None:
    """One recorded valuation row (``result_json`` included), or None when it is not recorded."""
    path = audit_path(path)
    with closing(connect(path)) as con:
        try:
            rows = _dict_rows(con.execute("SELECT * FROM valuations WHERE valuation_id = ?", (str(valuation_id),)))
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    return rows[0] if rows else None


def _now() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat(timespec="microseconds")
