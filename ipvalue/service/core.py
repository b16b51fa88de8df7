"""The valuation service's work, without HTTP: models loaded once, valuations recorded with the
authenticated identity, overrides and sign-offs as new (superseding) records, small-book scoring.

State
-----
* the audit store (:mod:`ipvalue.audit`): every valuation, its overrides, the identities;
* ``state_dir``: ``uploads/`` (exports uploaded by officers, named by their SHA-256) and
  ``valuations/<id>/`` (the application as received, the HTML and JSON reports).

A valuation recorded by the service is never changed: an override or a reviewer's sign-off
re-values the stored application with the change and records a new valuation whose provenance
names the one it ``supersedes``. The officer of an override and the reviewer of a sign-off are
the authenticated user, never a name from the request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ipvalue.audit import Identity, audit_path, read_valuation
from ipvalue.exceptions import ApplicationError, InputError, ModelNotFoundError
from ipvalue.frame import to_records
from ipvalue.io import ColumnMapping, read_patents, write_text_atomic
from ipvalue.lending import OVERRIDABLE, LoanApplication
from ipvalue.lending.application import MAX_APPLICATION_BYTES, SAFE_ID
from ipvalue.names import normalise_id
from ipvalue.registry import RegisteredModel, load_model, split_model_uri
from ipvalue.report import render_html
from ipvalue.scoring.local import score_chunk
from ipvalue import workflow

logger = logging.getLogger(__name__)

#: Largest book ``POST /v1/score`` scores synchronously (rows); larger books: ``ipvalue score``.
MAX_SCORE_ROWS = 1_000
#: Largest uploaded export (bytes).
MAX_UPLOAD_BYTES = 20_000_000
UPLOAD_SUFFIXES = (".csv", ".xlsx", ".xls", ".parquet")
#: The models a service loads when none are named: each champion that exists.
DEFAULT_MODELS = ("models:/ipvalue-renewal@champion", "models:/ipvalue-value@champion")
_MODELS_STAMP = "models-generation.txt"


class NotFound(LookupError):
    """No valuation (or upload) with that id."""


class Conflict(ValueError):
    """The request does not fit the valuation's state (e.g. a sign-off of a valuation that needs none)."""


@dataclass
class ServiceSettings:
    """Where the service keeps its state and which models it serves.

    Attributes
    ----------
    audit_db : Path or str
        The audit store (also the users' tokens): a SQLite file or a ``postgresql://`` URL.
    state_dir : Path
        Uploads and reports.
    models : tuple of str
        Registry URIs loaded at start (``models:/NAME@ALIAS``); empty = the champions that exist.
    tracking_uri, data_dir : str, optional
        MLflow tracking URI; public reference data folder.
    """

    audit_db: Path | str = field(default_factory=audit_path)
    state_dir: Path = Path("service-data")
    models: tuple[str, ...] = ()
    tracking_uri: str | None = None
    data_dir: str | None = None

    def to_env(self) -> dict:
        """The settings as environment variables (uvicorn workers read them back)."""
        return {"IPVALUE_SERVICE_AUDIT_DB": str(self.audit_db), "IPVALUE_SERVICE_STATE_DIR": str(self.state_dir),
                "IPVALUE_SERVICE_MODELS": " ".join(self.models), "IPVALUE_SERVICE_TRACKING_URI": self.tracking_uri or "",
                "IPVALUE_SERVICE_DATA_DIR": self.data_dir or ""}

    @classmethod
    def from_env(cls, env) -> "ServiceSettings":
        return cls(audit_db=audit_path(env.get("IPVALUE_SERVICE_AUDIT_DB") or None), state_dir=Path(env.get("IPVALUE_SERVICE_STATE_DIR") or "service-data"),
                   models=tuple(env.get("IPVALUE_SERVICE_MODELS", "").split()), tracking_uri=env.get("IPVALUE_SERVICE_TRACKING_URI") or None,
                   data_dir=env.get("IPVALUE_SERVICE_DATA_DIR") or None)


class ValuationService:
    """Models loaded once; valuations, overrides, sign-offs and scoring for the HTTP layer."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.models: dict[str, RegisteredModel] = {}
        self._generation = ""
        self._lock = threading.Lock()  # one valuation at a time per worker: CPU-bound, and matplotlib is not thread-safe

    # --- models ------------------------------------------------------------------------------------

    def load_models(self) -> dict[str, RegisteredModel]:
        """Load the configured models (or the existing champions); called at start and on a reload."""
        uris = self.settings.models
        loaded = {}
        for uri in uris or DEFAULT_MODELS:
            try:
                loaded[uri] = load_model(uri, tracking_uri=self.settings.tracking_uri)
            except ModelNotFoundError:
                if uris:
                    raise
                logger.warning("no %s registered: the service values without it", uri)
        self.models = loaded
        self._generation = self._stamp().read_text() if self._stamp().is_file() else ""
        logger.info("models loaded: %s", {u: m.version for u, m in loaded.items()})
        return loaded

    def reload_models(self) -> dict:
        """Reload every model whose alias moved; the other workers reload on their next request."""
        self.load_models()
        stamp = hashlib.sha256(json.dumps({u: m.version for u, m in self.models.items()}, sort_keys=True).encode() + pd.Timestamp.now().isoformat().encode()).hexdigest()
        write_text_atomic(stamp, self._stamp())
        self._generation = stamp
        return self.model_table()

    def model_table(self) -> list[dict]:
        """What ``GET /v1/models`` shows: each served URI and the registered version behind it."""
        rows = []
        for uri, m in self.models.items():
            name, alias, _ = split_model_uri(uri)
            rows.append({"uri": uri, "name": name, "alias": alias, "version": m.version, "run_id": m.run_id,
                         "data_origin": str(m.run_tags.get("data_origin", "unknown"))})
        return rows

    def _stamp(self) -> Path:
        return self.settings.state_dir / _MODELS_STAMP

    def _follow_reloads(self) -> None:
        stamp = self._stamp()
        if stamp.is_file() and stamp.read_text() != self._generation:
            self.load_models()

    # --- valuations --------------------------------------------------------------------------------

    @property
    def uploads(self) -> Path:
        return self.settings.state_dir / "uploads"

    def folder(self, valuation_id: str) -> Path:
        if not isinstance(valuation_id, str) or not SAFE_ID.fullmatch(valuation_id):
            raise NotFound(f"No valuation {valuation_id!r}.")
        return self.settings.state_dir / "valuations" / valuation_id

    def value(self, raw: dict, identity: Identity, *, supersedes: str | None = None, allow_review: bool = False):
        """Validate ``raw`` (the application schema, :meth:`LoanApplication.from_dict`), value it
        with the loaded models, and record it with ``identity``.

        Raises
        ------
        ApplicationError, OverrideError, InputError
            The application is invalid (the message names the field and the fix): HTTP 422.
        """
        if not isinstance(raw, dict):
            raise ApplicationError(f"An application must be a JSON object of fields. Got {type(raw).__name__}.")
        if raw.get("review") and not allow_review:
            raise ApplicationError("The 'review' of an application is given through the sign-off of a reviewer "
                                   "(POST /v1/valuations/{id}/sign-off), not in the application. Fix: remove 'review'.")
        raw = dict(raw)
        raw["overrides"] = self._own_overrides(raw.get("overrides"), identity)
        self.uploads.mkdir(parents=True, exist_ok=True)
        app = LoanApplication.from_dict(self._inline_upload(raw), base_dir=self.uploads)
        self._follow_reloads()
        unknown = sorted(set(app.models.values()) - set(self.models))
        if unknown:
            raise ApplicationError(f"The 'models' of application {app.application_id} name {unknown}, which this service does not serve "
                                   f"(it serves {sorted(self.models)}). Fix: name a served model, or ask an admin to serve it.")
        models = {kind: self.models[uri] for kind, uri in app.models.items() if uri}

        def store_application(result):  # the stored application only with its audit record
            write_text_atomic(json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str), self.folder(result.valuation_id) / "application.json")

        with self._lock:
            recorded = workflow.value_and_record(app, store=self.settings.audit_db, user=identity.name, models=models, data_dir=self.settings.data_dir,
                                        provenance={"user_role": identity.role, "authenticated_by": "api token", "supersedes": supersedes or ""},
                                        while_recording=store_application)
        return recorded.result

    def write_report(self, result) -> Path:
        """Render the HTML report of a recorded valuation (after the response: it is derived from the record)."""
        with self._lock:
            html = render_html(result.report)
        return write_text_atomic(html, self.folder(result.valuation_id) / "report.html")

    def get(self, valuation_id: str) -> dict:
        """The recorded result (the JSON ``ipvalue value`` writes)."""
        self.folder(valuation_id)
        row = read_valuation(valuation_id, self.settings.audit_db)
        if row is None:
            raise NotFound(f"No valuation {valuation_id!r} is recorded.")
        return json.loads(row["result_json"])

    def report_path(self, valuation_id: str) -> Path:
        self.get(valuation_id)
        return self.folder(valuation_id) / "report.html"

    def _stored_application(self, valuation_id: str) -> tuple[dict, dict]:
        result = self.get(valuation_id)
        path = self.folder(valuation_id) / "application.json"
        if not path.is_file():
            raise Conflict(f"Valuation {valuation_id!r} was not made by this service (no stored application). Fix: value the application again.")
        return json.loads(path.read_text(encoding="utf-8")), result

    def override(self, valuation_id: str, change: dict, identity: Identity):
        """Re-value a recorded valuation with an officer's override (``patent_id``, ``field``,
        ``value``, ``reason``); the officer is ``identity``. Returns the new, superseding result."""
        if not isinstance(change, dict):
            raise ApplicationError("An override must be a JSON object: patent_id, field, value, reason.")
        extra = sorted(set(change) - {"patent_id", "field", "value", "reason"})
        if extra:
            raise ApplicationError(f"An override has unknown field(s) {extra}. Fix: give patent_id, field ({', '.join(OVERRIDABLE)}), value and reason; "
                                   "the officer is the signed-in user.")
        raw, _ = self._stored_application(valuation_id)
        kept = [o for o in raw.get("overrides") or [] if (o.get("patent_id"), o.get("field")) != (change.get("patent_id"), change.get("field"))]
        raw["overrides"] = kept + [{**change, "officer": identity.name}]
        return self.value(raw, identity, supersedes=valuation_id, allow_review=True)

    def sign_off(self, valuation_id: str, reason, identity: Identity):
        """A reviewer's sign-off of a "review required" valuation: recorded as a new valuation,
        with ``review = {reviewer: identity, reason}``, whose decision follows from it."""
        if not isinstance(reason, str) or not reason.strip():
            raise ApplicationError("A sign-off needs a written 'reason'. Fix: say why the valuation may stand despite the methods' disagreement.")
        raw, recorded = self._stored_application(valuation_id)
        if recorded["summary"]["decision"] != "review required":
            raise Conflict(f"Valuation {valuation_id!r} is {recorded['summary']['decision']!r}: only a 'review required' valuation is signed off.")
        raw["review"] = {"reviewer": identity.name, "reason": reason}
        return self.value(raw, identity, supersedes=valuation_id, allow_review=True)

    def _inline_upload(self, raw: dict) -> dict:
        """``patents: {file: <upload id>, ids: [...]}`` as the records of those patents, from the
        upload read and validated once (an upload is named by its content, so it never changes):
        this halves :meth:`LoanApplication.from_dict`'s time on the demo application (0.25 s →
        0.13 s). Anything else (unknown ids, not an upload) goes to ``from_dict`` as it is, which
        names the problem. The application is stored as received (file and ids)."""
        spec = raw.get("patents")
        if not (isinstance(spec, dict) and set(spec) == {"file", "ids"} and isinstance(spec["file"], str)
                and isinstance(spec["ids"], list) and spec["ids"]):
            return raw
        frame = self._upload_frame(spec["file"])
        wanted = [normalise_id(str(i)) for i in spec["ids"]]
        if frame is None or not set(wanted) <= set(frame["patent_id"]):
            return raw
        rows = to_records(frame[frame["patent_id"].isin(wanted)])
        return {**raw, "patents": {"records": json.loads(rows.to_json(orient="records", force_ascii=False))}}

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one service per process; uploads are content-addressed, never changed
    def _upload_frame(self, upload_id: str) -> pd.DataFrame | None:
        if not SAFE_ID.fullmatch(upload_id) or not (self.uploads / upload_id).is_file():
            return None
        try:
            return read_patents(self.uploads / upload_id).valid
        except InputError:
            return None

    @staticmethod
    def _own_overrides(entries, identity: Identity):
        if not entries:
            return entries
        if not isinstance(entries, list) or not all(isinstance(o, dict) for o in entries):
            raise ApplicationError("The 'overrides' of an application must be a list of overrides (patent_id, field, value, reason).")
        for i, o in enumerate(entries):
            if o.get("officer") not in (None, "", identity.name):
                raise ApplicationError(f"overrides[{i}] names officer {o.get('officer')!r}, but the signed-in user is {identity.name!r}. "
                                       "Fix: omit 'officer'; the service records the authenticated user.")
        return [{**o, "officer": o.get("officer") or identity.name} for o in entries]

    # --- uploads and scoring -----------------------------------------------------------------------

    def upload(self, filename: str, content: bytes) -> dict:
        """Keep an uploaded export under its SHA-256; returns its id (the ``patents.file`` to name)
        and the valid patents in it."""
        suffix = Path(str(filename or "")).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise InputError(f"Uploaded file {filename!r} is not one of {list(UPLOAD_SUFFIXES)}. Fix: upload the CNIPA / incoPat export as CSV or Excel.")
        if not content:
            raise InputError(f"Uploaded file {filename!r} is empty.")
        if len(content) > MAX_UPLOAD_BYTES:
            raise InputError(f"Uploaded file {filename!r} is {len(content):,} bytes, above the {MAX_UPLOAD_BYTES:,} accepted. Fix: export only the borrower's patents.")
        upload_id = hashlib.sha256(content).hexdigest()[:32] + suffix
        path = self.uploads / upload_id
        if not path.is_file():
            self.uploads.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(content)
            tmp.replace(path)
        return {"upload_id": upload_id, **self.upload_patents(upload_id)}

    def upload_patents(self, upload_id: str) -> dict:
        """The valid patents of an upload (and its quarantined rows); a file that is not a patent
        export (e.g. the bank's comparables) lists none and says why."""
        if not isinstance(upload_id, str) or not SAFE_ID.fullmatch(upload_id) or not (self.uploads / upload_id).is_file():
            raise NotFound(f"No upload {upload_id!r}.")
        try:
            loaded = read_patents(self.uploads / upload_id)
        except InputError as exc:
            return {"patents": [], "quarantine": [], "not_a_patent_export": str(exc)}
        cols = [c for c in ("patent_id", "patent_type", "legal_status", "filing_date", "applicants", "ipc_main") if c in loaded.valid]
        patents = json.loads(loaded.valid[cols].to_json(orient="records", date_format="iso", force_ascii=False))
        quarantine = json.loads(loaded.quarantine.astype(str).to_json(orient="records", force_ascii=False)) if len(loaded.quarantine) else []
        return {"patents": patents, "quarantine": quarantine}

    def score(self, records, identity: Identity, *, explain: str = "none") -> dict:
        """Score a small book (records in PatentFrame or export headers) with the served value
        model: every row scored or quarantined with its reasons."""
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise InputError("'patents' must be a list of patent records (JSON objects).")
        if not 1 <= len(records) <= MAX_SCORE_ROWS:
            raise InputError(f"A book scored by the service has 1 to {MAX_SCORE_ROWS:,} rows. Got {len(records):,}. "
                             "Fix: score larger books with 'ipvalue score' (or its Spark engine).")
        if explain not in ("none", "all"):
            raise InputError(f"'explain' must be 'none' or 'all'. Got {explain!r}.")
        self._follow_reloads()
        value_models = [m for u, m in self.models.items() if split_model_uri(u)[0].endswith("value")]
        if not value_models:
            raise Conflict("This service serves no value model. Fix: register one (ipvalue train) and reload the models.")
        model = value_models[0]
        raw = pd.DataFrame(records, dtype=object).fillna("").astype(str)  # as a CSV export gives them: text
        with self._lock:
            scored, quarantine = score_chunk(raw, 0, ColumnMapping.load("auto"), model, explain)
        logger.info("scored %d rows for %s (%d quarantined)", len(scored), identity.name, len(quarantine))
        return {"model": {"uri": model.uri, "version": model.version, "run_id": model.run_id},
                "rows_in": len(records), "rows_scored": int(len(scored)), "rows_quarantined": int(len(quarantine)),
                "scored": json.loads(scored.to_json(orient="records", force_ascii=False)),
                "quarantine": json.loads(quarantine.to_json(orient="records", force_ascii=False))}


def application_limit_bytes() -> int:
    """Largest application body accepted (bytes): the same limit as an application file."""
    return MAX_APPLICATION_BYTES
