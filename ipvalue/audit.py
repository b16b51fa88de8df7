"""The audit trail: every valuation and every manual override, in a local SQLite store.

Tables
------
valuations(valuation_id, application_id, valued_at, user, input_hash, decision, internal_value_rmb,
           loan_cap_rmb, provenance_json, result_json)
overrides(valuation_id, patent_id, field, model_value, override_value, reason, officer, recorded_at)

An override is stored beside the model value, never instead of it; one without a reason cannot
be written (a CHECK constraint backs the check in :class:`ipvalue.valuation.Override`). Rows are
only ever inserted.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd

ENV_AUDIT_PATH = "IPVALUE_AUDIT_DB"
DEFAULT_PATH = Path("audit") / "ipvalue-audit.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS valuations (
    valuation_id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    valued_at TEXT NOT NULL,
    user TEXT NOT NULL,
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
    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    officer TEXT NOT NULL CHECK (length(trim(officer)) > 0),
    recorded_at TEXT NOT NULL
);
"""


def audit_path(path: str | Path | None = None) -> Path:
    """``path``, else ``$IPVALUE_AUDIT_DB``, else ``audit/ipvalue-audit.db`` under the working directory."""
    return Path(path or os.environ.get(ENV_AUDIT_PATH) or DEFAULT_PATH)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(_SCHEMA)
    return con


def record_valuation(result, path: str | Path | None = None) -> Path:
    """Insert one valuation and its overrides in a single transaction."""
    path = audit_path(path)
    prov = result.provenance
    with closing(_connect(path)) as con, con:
        con.execute(
            "INSERT INTO valuations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                result.valuation_id, result.application.application_id, prov["valued_at"], prov["user"], prov["input_hash"],
                result.summary["decision"], result.summary["internal_value_rmb"], result.summary["loan_cap_rmb"],
                json.dumps(prov, ensure_ascii=False, default=str), result.to_json(),
            ),
        )
        con.executemany(
            "INSERT INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(result.valuation_id, o.patent_id, o.field, o.model_value, o.override_value, o.reason, o.officer, prov["valued_at"]) for o in result.overrides.itertuples()],
        )
    return path


def read_table(table: str, path: str | Path | None = None) -> pd.DataFrame:
    """The ``valuations`` or ``overrides`` table as a DataFrame (for governance review)."""
    if table not in ("valuations", "overrides"):
        raise ValueError(f"The audit store has tables 'valuations' and 'overrides'. Got {table!r}.")
    with closing(_connect(audit_path(path))) as con:
        return pd.read_sql_query(f"SELECT * FROM {table}", con)  # noqa: S608 - table name checked above
