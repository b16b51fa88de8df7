"""The officers' page's sessions, kept on the server: a session cookie is a random id of its own
(never the API token), expires (:attr:`ServiceSettings.session_hours` after sign-in, or after
:attr:`ServiceSettings.session_idle_minutes` unused) and is ended by sign-out, server-side: a
cookie copied before sign-out no longer works.

The table lives in ``state_dir/sessions.db`` (SQLite, 0600), shared by the service's workers like
the rest of ``state_dir``. It keeps the SHA-256 of each session id and of the user's token (a
session ends with the token: a revoked token ends its sessions).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from ipvalue.io import open_private, private_folder

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_sha256 TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL,
    ended_at REAL
);
"""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SessionStore:
    """Server-side sessions of the page.

    Parameters
    ----------
    path : Path
        The SQLite file (created 0600 in a folder created 0700).
    hours : float
        Lifetime from sign-in.
    idle_minutes : float
        Longest pause between two requests.
    """

    def __init__(self, path: Path, *, hours: float = 8.0, idle_minutes: float = 30.0):
        self.path, self.lifetime_s, self.idle_s = Path(path), float(hours) * 3600, float(idle_minutes) * 60
        private_folder(self.path.parent)
        if not self.path.exists():
            try:
                open_private(self.path, "xb").close()
            except FileExistsError:
                pass
        with closing(self._connect()) as con:
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        con.execute("PRAGMA busy_timeout = 10000")
        return con

    def start(self, token_sha256: str) -> str:
        """A new session for the user of ``token_sha256``; returns the session id (the cookie's value)."""
        session = secrets.token_urlsafe(32)
        now = time.time()
        with closing(self._connect()) as con:
            con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, NULL)", (_digest(session), token_sha256, now, now, now + self.lifetime_s))
            con.execute("DELETE FROM sessions WHERE expires_at < ? OR ended_at < ?", (now - 86400, now - 86400))  # keep the table small
        return session

    def token_of(self, session: str) -> str | None:
        """The token digest of a live session (and its last use moved to now), or None."""
        if not isinstance(session, str) or not 16 <= len(session) <= 128:
            return None
        now = time.time()
        with closing(self._connect()) as con:
            row = con.execute("SELECT token_sha256, last_seen, expires_at, ended_at FROM sessions WHERE session_sha256 = ?", (_digest(session),)).fetchone()
            if row is None or row[3] is not None or now > row[2] or now - row[1] > self.idle_s:
                return None
            con.execute("UPDATE sessions SET last_seen = ? WHERE session_sha256 = ?", (now, _digest(session)))
        return row[0]

    def end(self, session: str) -> None:
        """End a session (sign-out): its cookie no longer authenticates."""
        if isinstance(session, str) and session:
            with closing(self._connect()) as con:
                con.execute("UPDATE sessions SET ended_at = ? WHERE session_sha256 = ?", (time.time(), _digest(session)))
