"""Messages for the service's users (API clients and the page alike): the server's absolute paths,
the stored names of uploads and the tracking URI taken out of what the library says."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ipvalue.audit import is_postgres

#: An upload as the service stores it (the SHA-256 of its content, 32 hex digits, and its suffix), with any folder before it.
STORED_UPLOAD = re.compile(r"[^\s'\"]*\b[0-9a-f]{32}\.[A-Za-z0-9]{2,5}\b")


class PublicMessages:
    """Messages for clients: the server's absolute paths and the tracking URI taken out.

    Parameters
    ----------
    settings : ServiceSettings
        The service's settings (its state folder, audit store, data folder and tracking URI).

    Examples
    --------
    >>> public = PublicMessages(settings)  # doctest: +SKIP
    >>> public("/srv/ipvalue/state/uploads/x.csv is empty")  # doctest: +SKIP
    'uploads/x.csv is empty'
    """

    def __init__(self, settings):
        prefixes = {str(Path(settings.state_dir).resolve()), str(Path.cwd()), tempfile.gettempdir(), str(Path.home())}
        if not is_postgres(settings.audit_db):
            prefixes.add(str(Path(settings.audit_db).resolve().parent))
        if settings.data_dir:
            prefixes.add(str(Path(settings.data_dir).resolve()))
        self.prefixes = sorted((p for p in prefixes if len(p) > 1), key=len, reverse=True)
        self.uris = [u for u in (settings.tracking_uri, os.environ.get("MLFLOW_TRACKING_URI"), str(settings.audit_db)) if u]

    def __call__(self, text: str) -> str:
        for uri in self.uris:
            text = text.replace(uri, "the server's store")
        for prefix in self.prefixes:
            text = re.sub(re.escape(prefix) + r"/?", "", text)
        return text

    def of_upload(self, text: str, filename: str) -> str:
        """A message about an upload with the file named as the user named it (never the stored path)."""
        return STORED_UPLOAD.sub(lambda _: Path(str(filename or "")).name or "the uploaded file", str(text))
