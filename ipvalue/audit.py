"""The audit trail: every valuation and every manual override, in a local SQLite store.

Tables (plain SQL types, portable to PostgreSQL)
------------------------------------------------
valuations(valuation_id, application_id, valued_at, user, input_hash, decision, internal_value_rmb,
           loan_cap_rmb, provenance_json, result_json)
overrides(valuation_id, patent_id, field, model_value, override_value, reason, officer, recorded_at)
audit_chain(seq, valuation_id, prev_hash, record_hash)
users(token_id, name, role, token_sha256, created_at, created_by)     (service identities, ROLES)
token_revocations(token_id, revoked_at, revoked_by)

Guarantees
----------
* **Append-only in fact**: triggers refuse every ``UPDATE`` and ``DELETE`` on the three tables,
  whoever connects (sqlite3 shell, pandas, another program).
* **Hash chain**: each valuation's ``record_hash`` is the SHA-256 of the previous record's hash
  and the canonical JSON (sorted keys, UTF-8) of its row and its overrides; the first record's
  ``prev_hash`` is :data:`GENESIS`. :func:`verify` recomputes the chain and names the first
  broken link, so a change made with the triggers dropped, or a row inserted around this module,
  is found. (The service issue's ``ipvalue audit verify`` calls :func:`verify`.)
* **Reasons and officers** must hold a visible character: checked in Python (Unicode-aware, a
  reason of full-width spaces ``U+3000`` is refused) and by the table's CHECK, which trims the
  Unicode blanks listed in :data:`BLANKS` (SQLite's plain ``trim`` strips ASCII spaces only).
* **Concurrent writers**: WAL journal, a busy timeout and ``BEGIN IMMEDIATE`` around each insert,
  so writers queue and the chain never forks or interleaves.
* **A team's store on PostgreSQL**: ``--audit-db postgresql://user@host/db`` (or
  ``$IPVALUE_AUDIT_DB``) holds the same tables (DOUBLE PRECISION for SQLite's 8-byte REAL), the
  same append-only guarantee (a plpgsql trigger refuses UPDATE, DELETE and TRUNCATE) and the same
  queueing (each insert locks ``audit_chain``; a lock timeout replaces the busy timeout); the
  password of a URL never appears in a message. Needs ``psycopg2``.
* **Clear failures**: a read-only, corrupt, truncated or older-schema store raises
  :class:`~ipvalue.exceptions.AuditStoreError` naming the file and the fix.
* **Identities from authentication**: API tokens are stored as their SHA-256 only (a token is 32
  random bytes, so a plain digest is enough; the token itself is shown once, at creation).
  :func:`add_user` issues one, :func:`authenticate` maps a token to ``(name, role)``,
  :func:`revoke_user` revokes a name's tokens; the two tables are append-only too (a role change
  is a new token and a revocation, both kept).
* **Outputs and the record as one unit**: :func:`recording` inserts first (so a broken store fails
  before any output is written), lets the caller write the report inside the ``with`` block, and
  commits only when the block succeeds; if the block raises, nothing is recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

try:  # a team's PostgreSQL store (optional: pip install psycopg2-binary)
    import psycopg2
    import psycopg2.extensions
except ImportError:  # pragma: no cover - SQLite stores need nothing
    psycopg2 = None

from ipvalue.exceptions import AuditStoreError, DomainError, OverrideError

ENV_AUDIT_PATH = "IPVALUE_AUDIT_DB"
DEFAULT_PATH = Path("audit") / "ipvalue-audit.db"
GENESIS = "0" * 64
#: Seconds a writer waits for another writer's transaction before giving up.
BUSY_TIMEOUT_S = 30.0
#: White space that does not make a reason: ASCII blanks, NBSP, Ogham space, U+2000-U+200B, NNBSP,
#: MMSP, ideographic space U+3000, BOM.
BLANKS = " \t\n\v\f\r\u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200C)) + "\u202f\u205f\u3000\ufeff"
_SQL_BLANKS = "char(" + ",".join(str(ord(c)) for c in BLANKS) + ")"
TABLES = ("valuations", "overrides", "audit_chain", "users", "token_revocations")
#: Roles of the service: officers value and override, reviewers sign off "review required"
#: valuations, validators promote models, admins manage the service (reload models).
ROLES = ("officer", "reviewer", "validator", "admin")
#: A user name: what the audit records carry as the identity.
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_VALUATION_COLUMNS = (
    "valuation_id", "application_id", "valued_at", "user", "input_hash", "decision",
    "internal_value_rmb", "loan_cap_rmb", "provenance_json", "result_json",
)
_QUOTED_VALUATION_COLUMNS = ", ".join(f'"{c}"' for c in _VALUATION_COLUMNS)  # "user" is reserved in PostgreSQL
_OVERRIDE_COLUMNS = ("valuation_id", "patent_id", "field", "model_value", "override_value", "reason", "officer", "recorded_at")

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
    result_json TEXT NOT NULL
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
CREATE TABLE IF NOT EXISTS audit_chain (
    seq INTEGER PRIMARY KEY,
    valuation_id TEXT NOT NULL UNIQUE REFERENCES valuations(valuation_id),
    prev_hash TEXT NOT NULL,
    record_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    token_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ({", ".join(repr(r) for r in ROLES)})),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS token_revocations (
    token_id INTEGER NOT NULL UNIQUE REFERENCES users(token_id),
    revoked_at TEXT NOT NULL,
    revoked_by TEXT NOT NULL
);
""" + "".join(
    f"""
CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}
BEGIN SELECT RAISE(ABORT, 'the audit store is append-only: {op} on {table} refused'); END;"""
    for table in TABLES
    for op in ("UPDATE", "DELETE")
)


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
    .replace("seq INTEGER PRIMARY KEY", "seq BIGINT PRIMARY KEY")
    + """
CREATE OR REPLACE FUNCTION ipvalue_append_only() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN RAISE EXCEPTION 'the audit store is append-only: % on % refused', TG_OP, TG_TABLE_NAME; END $f$;"""
    + "".join(f"""
CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION ipvalue_append_only();
CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ipvalue_append_only();"""
              for table in TABLES)
)
_DB_ERRORS = (sqlite3.Error,) + ((psycopg2.Error,) if psycopg2 is not None else ())
#: Advisory lock id serialising schema creation among a team's first connections.
_PG_SCHEMA_LOCK = 7_240_217


def audit_path(path: str | Path | None = None) -> Path | str:
    """``path``, else ``$IPVALUE_AUDIT_DB``, else ``audit/ipvalue-audit.db`` under the working
    directory. A ``postgresql://`` URL (a team's store) is returned as it is."""
    target = path or os.environ.get(ENV_AUDIT_PATH) or DEFAULT_PATH
    return str(target) if is_postgres(target) else Path(target)


def is_postgres(target) -> bool:
    """Whether ``target`` names a PostgreSQL store (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def _display(path) -> str:
    """The store's name for messages: a URL without its password."""
    if not is_postgres(path):
        return str(path)
    parts = urlsplit(path)
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        netloc[0] = netloc[0].split(":", 1)[0] + (":***" if ":" in netloc[0] else "")
    return urlunsplit(parts._replace(netloc="@".join(netloc)))


class _PostgresConnection:
    """The few :class:`sqlite3.Connection` methods this module uses, on psycopg2 (autocommit, so
    BEGIN / COMMIT are explicit as on SQLite; ``?`` placeholders become ``%s``; ``BEGIN
    IMMEDIATE`` takes a lock on the chain, so writers queue as on SQLite)."""

    def __init__(self, raw):
        self.raw = raw

    @staticmethod
    def _sql(sql: str) -> str:
        if sql == "BEGIN IMMEDIATE":
            return "BEGIN; LOCK TABLE audit_chain IN SHARE ROW EXCLUSIVE MODE"
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
        con.execute(f"SET lock_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        triggers = [f"{t}_{kind}" for t in TABLES for kind in ("append_only", "no_truncate")]
        present = con.execute("SELECT count(*) FROM pg_trigger WHERE tgname = ANY(?)", (triggers,)).fetchone()[0]
        if present != len(triggers):  # the first connection creates the schema; DDL on every connect would deadlock with writers
            con.execute(f"BEGIN; SELECT pg_advisory_xact_lock({_PG_SCHEMA_LOCK})")
            con.execute(_PG_SCHEMA)
            con.execute("COMMIT")
        columns = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                                             "AND table_name = 'valuations' ORDER BY ordinal_position")]
        if tuple(columns) != _VALUATION_COLUMNS:
            raise AuditStoreError(f"Audit store {_display(url)!r}: table valuations has columns {columns}; no column layout this version knows. "
                                  "Fix: the store was made by another ipvalue version: keep it as an archive and start a new store.")
    except psycopg2.Error as exc:
        con.close()
        raise _store_error(url, exc) from exc
    return con


def _dict_rows(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def _frame(con, sql: str, params=None) -> pd.DataFrame:
    cursor = con.execute(sql) if params is None else con.execute(sql, params)
    return pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])


def _store_error(path, exc: Exception) -> AuditStoreError:
    text = str(exc).strip()
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        fix = "make the file and its folder writable by this user, or point --audit-db / $IPVALUE_AUDIT_DB at a writable store"
    elif "not a database" in text or "malformed" in text or "disk image" in text:
        fix = "the file is corrupt or truncated: restore it from the last backup (do not delete it: it is the audit record), then run 'ipvalue audit verify'"
    elif "append-only" in text:
        fix = "audit records are never changed or deleted; record a correction as a new valuation or override"
    elif "no column" in text or "has no column" in text or "no such" in text:
        fix = "the store was made by another ipvalue version: keep it read-only as an archive and start a new store"
    else:
        fix = "check the disk (space, permissions) and the file, then retry"
    return AuditStoreError(f"Audit store {_display(path)!r}: {text}. Fix: {fix}.")


def connect(path: Path | str):
    """Open (creating if needed) the store: WAL, busy timeout, schema and triggers (SQLite), or
    the same schema on a PostgreSQL URL (lock timeout, append-only triggers)."""
    if is_postgres(path):
        return _connect_postgres(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise _store_error(path, exc) from exc
    try:
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode = WAL")
        con.executescript(_SCHEMA)
        columns = [r[1] for r in con.execute("PRAGMA table_info(valuations)")]
        if tuple(columns) != _VALUATION_COLUMNS:
            raise sqlite3.OperationalError(f"table valuations has columns {columns}; no column layout this version knows")
    except _DB_ERRORS as exc:
        con.close()
        raise _store_error(path, exc) from exc
    return con


def _blank(text) -> bool:
    return text is None or not str(text).strip(BLANKS)


def _canonical(valuation: dict, overrides: list[dict]) -> bytes:
    body = {"valuation": valuation, "overrides": sorted(overrides, key=lambda o: json.dumps(o, sort_keys=True, ensure_ascii=False))}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def record_hash(prev_hash: str, valuation: dict, overrides: list[dict]) -> str:
    """SHA-256 of the previous hash and the canonical JSON of a valuation row and its overrides."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + _canonical(valuation, overrides)).hexdigest()


def _rows(result) -> tuple[dict, list[dict]]:
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
        "result_json": result.to_json(),
    }
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
def recording(result, path: str | Path | None = None):
    """Record a valuation, let the caller write its outputs, and commit both as one unit.

    The insert runs first (a read-only, corrupt or locked store fails before any output exists);
    the caller writes the report inside the block; the record is committed when the block ends
    without error and rolled back if it raises.

    Parameters
    ----------
    result : ValuationResult
        Needs ``valuation_id``, ``application.application_id``, ``provenance`` (``valued_at``,
        ``user``, ``input_hash``), ``summary`` (``decision``, ``internal_value_rmb``,
        ``loan_cap_rmb`` in RMB), ``overrides`` (a DataFrame) and ``to_json()``.
    path : str or Path, optional
        The store; see :func:`audit_path`.

    Yields
    ------
    Path
        The store's path.

    Examples
    --------
    >>> with recording(result, db):                       # doctest: +SKIP
    ...     write_text_atomic(html, out / "report.html")
    """
    path = audit_path(path)
    valuation, overrides = _rows(result)
    con = connect(path)
    try:
        try:
            con.execute("BEGIN IMMEDIATE")
            last = con.execute("SELECT seq, record_hash FROM audit_chain ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            con.execute(f"INSERT INTO valuations ({_QUOTED_VALUATION_COLUMNS}) VALUES ({', '.join('?' * len(_VALUATION_COLUMNS))})",
                        [valuation[c] for c in _VALUATION_COLUMNS])
            con.executemany(f"INSERT INTO overrides ({', '.join(_OVERRIDE_COLUMNS)}) VALUES ({', '.join('?' * len(_OVERRIDE_COLUMNS))})",
                            [[o[c] for c in _OVERRIDE_COLUMNS] for o in overrides])
            con.execute("INSERT INTO audit_chain VALUES (?, ?, ?, ?)", (seq, valuation["valuation_id"], prev, record_hash(prev, valuation, overrides)))
        except _DB_ERRORS as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
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


def record_valuation(result, path: str | Path | None = None) -> Path:
    """Insert one valuation and its overrides (and its chain link) in a single transaction."""
    with recording(result, path) as stored:
        return stored


def read_audit_table(table: str, path: str | Path | None = None) -> pd.DataFrame:
    """The ``valuations``, ``overrides`` or ``audit_chain`` table as a DataFrame (governance review)."""
    if table not in TABLES:
        raise ValueError(f"The audit store has tables {TABLES}. Got {table!r}. Fix: use one of them.")
    path = audit_path(path)
    with closing(connect(path)) as con:
        try:
            return _frame(con, f"SELECT * FROM {table}")  # noqa: S608 - table name checked above
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc




def pledge_applications(path: str | Path | None = None) -> pd.DataFrame:
    """The latest recorded valuation of each application, as the exposure rule reads them.

    One row per ``application_id`` (its last valuation in chain order): ``valuation_id``,
    ``valued_at``, ``decision``, ``borrower``, ``requested_amount_rmb``, ``term_years``,
    ``valuation_date`` (from the stored result's summary). A store that does not exist yet gives an
    empty table (nothing has been recorded); a store that cannot be read raises
    :class:`~ipvalue.exceptions.AuditStoreError`. Read-only: nothing is written.
    """
    columns = ["application_id", "valuation_id", "valued_at", "decision", "borrower", "requested_amount_rmb", "term_years", "valuation_date"]
    path = audit_path(path)
    if not path.exists():
        return pd.DataFrame(columns=columns)
    with closing(connect(path)) as con:
        try:
            rows = pd.read_sql_query(
                "SELECT v.application_id, v.valuation_id, v.valued_at, v.decision, v.result_json FROM valuations v "
                "JOIN audit_chain c ON c.valuation_id = v.valuation_id ORDER BY c.seq", con)
        except (sqlite3.Error, pd.errors.DatabaseError) as exc:
            raise _store_error(path, exc) from exc
    rows = rows.drop_duplicates("application_id", keep="last").reset_index(drop=True)

    def summary(text: str) -> dict:
        try:
            return json.loads(text).get("summary") or {}
        except (json.JSONDecodeError, AttributeError):
            return {}

    s = pd.DataFrame([summary(t) for t in rows["result_json"]], index=rows.index)
    for name in ("borrower", "requested_amount_rmb", "term_years", "valuation_date"):
        rows[name] = s[name] if name in s else None
    return rows[columns]


@dataclass(frozen=True)
class AuditVerification:
    """What :func:`verify` found.

    Attributes
    ----------
    ok : bool
    n_records : int
        Valuations in the store.
    first_broken : str or None
        The ``valuation_id`` of the first record whose link does not hold.
    problem : str
        What is wrong with it ('' when ok).
    """

    ok: bool
    n_records: int
    first_broken: str | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.n_records} valuation(s)"
        return f"audit chain BROKEN at valuation {self.first_broken!r}: {self.problem}"


def verify(path: str | Path | None = None) -> AuditVerification:
    """Recompute the hash chain and report the first broken link.

    Returns
    -------
    AuditVerification
        ``ok`` when every valuation is chained in order and every hash matches its row and overrides.
    """
    path = audit_path(path)
    if not is_postgres(path) and not path.is_file():
        raise AuditStoreError(f"Audit store {str(path)!r} does not exist. Fix: check --audit-db / $IPVALUE_AUDIT_DB.")
    with closing(connect(path)) as con:
        try:
            valuations = {r["valuation_id"]: r for r in _dict_rows(con.execute("SELECT * FROM valuations"))}
            overrides: dict[str, list[dict]] = {}
            for r in _dict_rows(con.execute("SELECT * FROM overrides")):
                overrides.setdefault(r["valuation_id"], []).append(r)
            chain = _dict_rows(con.execute("SELECT * FROM audit_chain ORDER BY seq"))
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    prev = GENESIS
    for expected_seq, link in enumerate(chain, start=1):
        vid = link["valuation_id"]
        if link["seq"] != expected_seq:
            return AuditVerification(False, len(valuations), vid, f"sequence {link['seq']} where {expected_seq} was expected (a link was removed)")
        if link["prev_hash"] != prev:
            return AuditVerification(False, len(valuations), vid, "prev_hash does not match the previous record's hash")
        if vid not in valuations:
            return AuditVerification(False, len(valuations), vid, "the chained valuation row is missing")
        if record_hash(prev, valuations[vid], overrides.get(vid, [])) != link["record_hash"]:
            return AuditVerification(False, len(valuations), vid, "the row or its overrides differ from what was recorded")
        prev = link["record_hash"]
    unchained = sorted(set(valuations) - {link["valuation_id"] for link in chain})
    if unchained:
        return AuditVerification(False, len(valuations), unchained[0], "valuation row not in the chain (inserted around ipvalue.audit)")
    orphans = sorted(set(overrides) - set(valuations))
    if orphans:
        return AuditVerification(False, len(valuations), orphans[0], "overrides for a valuation that is not recorded")
    return AuditVerification(True, len(valuations))


# --- service identities -------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """An authenticated user: the ``name`` every audit record carries, and the ``role``."""

    name: str
    role: str


def token_digest(token: str) -> str:
    """SHA-256 hex of an API token: what the store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_user(name: str, role: str, path: str | Path | None = None, *, created_by: str = "cli") -> str:
    """Issue an API token for ``name`` with ``role``; returns the token (shown once, never stored).

    Raises
    ------
    DomainError
        ``name`` is not a user name (:data:`USER_NAME`) or ``role`` not one of :data:`ROLES`.
    """
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise DomainError(f"A user name must be letters, digits, '.', '_', '@' or '-' (up to 64, recorded in the audit trail). Got {name!r}.")
    if role not in ROLES:
        raise DomainError(f"The role of user {name!r} must be one of {list(ROLES)}. Got {role!r}.")
    token = "ipv_" + secrets.token_urlsafe(32)
    path = audit_path(path)
    with closing(connect(path)) as con:
        try:
            con.execute("INSERT INTO users (name, role, token_sha256, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                        (name, role, token_digest(token), _now(), created_by))
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    return token


def revoke_user(name: str, path: str | Path | None = None, *, revoked_by: str = "cli") -> int:
    """Revoke every active token of ``name``; returns how many were revoked."""
    path = audit_path(path)
    with closing(connect(path)) as con:
        try:
            con.execute("BEGIN IMMEDIATE")
            cur = con.execute("INSERT INTO token_revocations (token_id, revoked_at, revoked_by) SELECT token_id, ?, ? FROM users "
                              "WHERE name = ? AND token_id NOT IN (SELECT token_id FROM token_revocations)", (_now(), revoked_by, name))
            con.execute("COMMIT")
        except _DB_ERRORS as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise _store_error(path, exc) from exc
    return cur.rowcount


def authenticate(token, path: str | Path | None = None) -> Identity | None:
    """The identity behind an API token, or None for an unknown or revoked token."""
    if not isinstance(token, str) or not token or len(token) > 256:
        return None
    path = audit_path(path)
    with closing(connect(path)) as con:
        try:
            row = con.execute("SELECT name, role FROM users WHERE token_sha256 = ? AND token_id NOT IN (SELECT token_id FROM token_revocations)",
                              (token_digest(token),)).fetchone()
        except _DB_ERRORS as exc:
            raise _store_error(path, exc) from exc
    return Identity(*row) if row else None


def list_users(path: str | Path | None = None) -> pd.DataFrame:
    """One row per token: name, role, created_at, created_by, revoked_at (never the digest)."""
    path = audit_path(path)
    with closing(connect(path)) as con:
        try:
            return _frame(con, "SELECT u.token_id, u.name, u.role, u.created_at, u.created_by, r.revoked_at FROM users u "
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
