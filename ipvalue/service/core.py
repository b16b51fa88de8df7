"""The valuation service's work, without HTTP: models loaded once, valuations recorded with the
authenticated identity through the one workflow (:mod:`ipvalue.workflow`), overrides and
sign-offs as new (superseding) versions, scoped to the user's branch, small-book scoring.

State
-----
* the audit store (:mod:`ipvalue.audit`): every valuation, its overrides, the users;
* ``state_dir`` (folders 0700, files 0600): ``uploads/<branch>/`` (exports uploaded by a
  branch's officers, named by their SHA-256), ``valuations/<id>/`` (the application as received,
  the HTML and PDF reports, rendered from the record), ``sessions.db`` (the page's sessions).

A valuation recorded by the service is never changed: an override or a reviewer's sign-off
re-values the stored application with the change and records a new version that supersedes it.
The officer of an override and the reviewer of a sign-off are the authenticated user, never a
name from the request; the models, policy, assumption set and risk-sharing scheme are the bank's
configuration (:class:`~ipvalue.lending.configuration.BankConfiguration`), not the caller's.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ipvalue import workflow
from ipvalue.audit import ROLES, Identity, add_user, audit_path, list_users, list_valuations, read_valuation, revoke_user, store_exists
from ipvalue.exceptions import ApplicationError, ColumnError, InputError, ModelNotFoundError
from ipvalue.frame import frame_from_records
from ipvalue.io import ColumnMapping, private_folder, write_bytes_atomic, write_text_atomic
from ipvalue.io.bounded import read_patents_bounded
from ipvalue.lending import OVERRIDABLE, LoanApplication
from ipvalue.lending.application import MAX_APPLICATION_BYTES, SAFE_ID
from ipvalue.lending.configuration import BankConfiguration
from ipvalue.names import normalise_id
from ipvalue.registry import RegisteredModel, load_model, split_model_uri
from ipvalue.report import render_html
from ipvalue.scoring.local import score_chunk
from ipvalue.workflow import Conflict, DuplicateRequest, NotFound, NotPermitted, VersionConflict

logger = logging.getLogger(__name__)

__all__ = ["MAX_SCORE_ROWS", "MAX_UPLOAD_BYTES", "Answer", "Conflict", "NotFound", "NotPermitted", "ServiceSettings", "ValuationService", "VersionConflict"]

#: Largest book ``POST /v1/score`` scores synchronously (rows); larger books: ``ipvalue score``.
MAX_SCORE_ROWS = 1_000
#: Largest uploaded export (bytes).
MAX_UPLOAD_BYTES = 20_000_000
UPLOAD_SUFFIXES = (".csv", ".xlsx", ".xls", ".parquet")
#: The models a service loads when none are named: each champion that exists.
DEFAULT_MODELS = ("models:/ipvalue-renewal@champion", "models:/ipvalue-value@champion")
#: Roles that see applications (validators see models, admins manage users).
APPLICATION_ROLES = ("officer", "reviewer")
#: Largest page of a list endpoint, and the largest offset.
MAX_PAGE = 200
MAX_OFFSET = 1_000_000_000
_MODELS_STAMP = "models-generation.txt"


@dataclass(frozen=True)
class Answer:
    """A recorded valuation's answer as the audit store holds it: its id and its JSON text (an
    object), sent on by the API without decoding and encoding it again."""

    valuation_id: str
    text: str

    def decoded(self) -> dict:
        return json.loads(self.text)


@dataclass
class ServiceSettings:
    """Where the service keeps its state, which models it serves and what it allows.

    Attributes
    ----------
    audit_db : Path or str
        The audit store (also the users' tokens): a SQLite file or a ``postgresql://`` URL.
    state_dir : Path
        Uploads, reports and sessions.
    models : tuple of str
        Registry URIs loaded at start (``models:/NAME@ALIAS``); empty = the configuration file's,
        else the champions that exist.
    tracking_uri, data_dir : str, optional
        MLflow tracking URI; public reference data folder.
    config_file : str, optional
        The bank's valuation configuration (:mod:`ipvalue.lending.configuration`); default
        ``$IPVALUE_CONFIG_DIR/valuation.yaml``, else the shipped defaults.
    docs : bool, default=True
        Serve ``/docs``, ``/redoc`` and ``/openapi.json`` (to authenticated users only).
    session_hours, session_idle_minutes : float
        A page session ends this long after sign-in, or after this long unused.
    """

    audit_db: Path | str = field(default_factory=audit_path)
    state_dir: Path = Path("service-data")
    models: tuple[str, ...] = ()
    tracking_uri: str | None = None
    data_dir: str | None = None
    config_file: str | None = None
    docs: bool = True
    session_hours: float = 8.0
    session_idle_minutes: float = 30.0

    def to_env(self) -> dict:
        """The settings as environment variables (uvicorn workers read them back)."""
        return {"IPVALUE_SERVICE_AUDIT_DB": str(self.audit_db), "IPVALUE_SERVICE_STATE_DIR": str(self.state_dir),
                "IPVALUE_SERVICE_MODELS": " ".join(self.models), "IPVALUE_SERVICE_TRACKING_URI": self.tracking_uri or "",
                "IPVALUE_SERVICE_DATA_DIR": self.data_dir or "", "IPVALUE_SERVICE_CONFIG": self.config_file or "",
                "IPVALUE_SERVICE_DOCS": "1" if self.docs else "0", "IPVALUE_SERVICE_SESSION_HOURS": str(self.session_hours),
                "IPVALUE_SERVICE_SESSION_IDLE_MINUTES": str(self.session_idle_minutes)}

    @classmethod
    def from_env(cls, env) -> "ServiceSettings":
        return cls(audit_db=audit_path(env.get("IPVALUE_SERVICE_AUDIT_DB") or None), state_dir=Path(env.get("IPVALUE_SERVICE_STATE_DIR") or "service-data"),
                   models=tuple(env.get("IPVALUE_SERVICE_MODELS", "").split()), tracking_uri=env.get("IPVALUE_SERVICE_TRACKING_URI") or None,
                   data_dir=env.get("IPVALUE_SERVICE_DATA_DIR") or None, config_file=env.get("IPVALUE_SERVICE_CONFIG") or None,
                   docs=env.get("IPVALUE_SERVICE_DOCS", "1") == "1", session_hours=float(env.get("IPVALUE_SERVICE_SESSION_HOURS") or 8.0),
                   session_idle_minutes=float(env.get("IPVALUE_SERVICE_SESSION_IDLE_MINUTES") or 30.0))


def model_kind(uri: str) -> str:
    """The kind of a served model (``renewal``, ``value``) from its registered name."""
    name = split_model_uri(uri)[0]
    return next((kind for kind in ("renewal", "value") if name.endswith(kind)), name)


def body_sha256(body) -> str:
    """SHA-256 of a request body's canonical JSON (what an idempotency key is bound to)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()


class ValuationService:
    """Models loaded once; valuations, overrides, sign-offs, work queues and scoring for the HTTP layer."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.models: dict[str, RegisteredModel] = {}
        self.base_configuration = BankConfiguration.load(settings.config_file, pinned=True)
        self.configuration = self.base_configuration.with_models({})
        self._generation = ""
        self._frozen = False
        self._lock = threading.Lock()  # one valuation at a time per worker: CPU-bound, and matplotlib is not thread-safe
        #: Held while matplotlib draws (valuations, reports, the page's charts): the same lock.
        self.drawing = self._lock
        private_folder(settings.state_dir)

    # --- models ------------------------------------------------------------------------------------

    def load_models(self) -> dict[str, RegisteredModel]:
        """Load the configured models (or the existing champions); called at start and on a reload."""
        if self._frozen:
            gc.unfreeze()  # the models replaced here can be collected
        uris = self.settings.models or tuple((self.base_configuration.models or {}).values())
        loaded = {}
        for uri in uris or DEFAULT_MODELS:
            try:
                loaded[uri] = load_model(uri, tracking_uri=self.settings.tracking_uri)
            except ModelNotFoundError:
                if uris:
                    raise
                logger.warning("no %s registered: the service values without it", uri)
        self.models = loaded
        self.configuration = self.base_configuration.with_models({model_kind(u): u for u in loaded})
        self._generation = self._stamp().read_text() if self._stamp().is_file() else ""
        logger.info("models loaded: %s", {u: m.version for u, m in loaded.items()})
        if self._frozen:
            self.freeze_long_lived()
        return loaded

    def freeze_long_lived(self) -> None:
        """Keep what the service holds for its life (models, reference tables, the app) out of
        Python's garbage collections from now on (:func:`gc.freeze`, after one collection), until
        the models are loaded again (then it is done again): a full collection otherwise walks all
        of it, a 0.1 s pause in about one warm valuation in eight. For a serving process only."""
        self._frozen = True
        gc.collect()
        gc.freeze()

    def reload_models(self) -> list[dict]:
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
            rows.append({"uri": uri, "name": name, "alias": alias, "version": str(m.version), "run_id": str(m.run_id),
                         "data_origin": str(m.run_tags.get("data_origin", "unknown"))})
        return rows

    def configuration_table(self) -> dict:
        """What an application may name here (the page's choice lists)."""
        c = self.configuration
        return {"assumption_sets": list(c.assumption_sets or ()), "pledge_policies": list(c.pledge_policies or ()),
                "risk_sharing": list(c.risk_sharing or ()), "models": dict(c.models or {}), "source": c.source}

    def _stamp(self) -> Path:
        return self.settings.state_dir / _MODELS_STAMP

    def _follow_reloads(self) -> None:
        stamp = self._stamp()
        if stamp.is_file() and stamp.read_text() != self._generation:
            self.load_models()

    # --- valuations --------------------------------------------------------------------------------

    def uploads(self, identity: Identity) -> Path:
        """The folder of the uploads of the user's branch."""
        return private_folder(self.settings.state_dir / "uploads" / identity.branch)

    def folder(self, valuation_id: str) -> Path:
        if not isinstance(valuation_id, str) or not SAFE_ID.fullmatch(valuation_id):
            raise NotFound(f"No valuation {valuation_id!r}.")
        return self.settings.state_dir / "valuations" / valuation_id

    def value(self, raw: dict, identity: Identity, *, idempotency_key: str | None = None, answer: bool = False) -> dict | Answer:
        """Validate ``raw`` (the application schema, :meth:`LoanApplication.from_dict`, with the
        bank's configuration), value it with the served models, and record it with ``identity``.

        Returns
        -------
        dict or Answer
            The recorded valuation's JSON (as ``ipvalue value`` writes it); a repeated
            ``idempotency_key`` with the same body returns the first request's. With ``answer``,
            its :class:`Answer` (the id and the recorded JSON text, not decoded).

        Raises
        ------
        ApplicationError, OverrideError, InputError
            The application is invalid (the message names the field and the fix): HTTP 422.
        Conflict
            An idempotency key reused with another body, or an application id in use (409).
        """
        if not isinstance(raw, dict):
            raise ApplicationError(f"An application must be a JSON object of fields. Got {type(raw).__name__}.")
        request = self._request(identity, idempotency_key, {"act": "valuation", "application": raw})
        raw = {**raw, "overrides": self._own_overrides(raw.get("overrides"), identity)} if raw.get("overrides") is not None else dict(raw)
        return self._answered(self._record(raw, identity, act="valuation", request=request), answer)

    def override(self, valuation_id: str, change: dict, identity: Identity, *, idempotency_key: str | None = None,
                 answer: bool = False) -> dict | Answer:
        """Re-value the latest version ``valuation_id`` with an officer's override (``patent_id``,
        ``field``, ``value``, ``reason``); the officer is ``identity``; earlier overrides (by any
        officer) carry forward. Returns the new version's JSON (with ``answer``, its :class:`Answer`).

        Raises
        ------
        VersionConflict
            ``valuation_id`` is not the application's latest version (409, with the latest id).
        """
        if not isinstance(change, dict):
            raise ApplicationError("An override must be a JSON object: patent_id, field, value, reason.")
        extra = sorted(set(change) - {"patent_id", "field", "value", "reason"})
        if extra:
            raise ApplicationError(f"An override has unknown field(s) {extra}. Fix: give patent_id, field ({', '.join(OVERRIDABLE)}), value and reason; "
                                   "the officer is the signed-in user.")
        for name in ("patent_id", "field", "reason"):
            if change.get(name) is not None and not isinstance(change[name], str):
                raise ApplicationError(f"The '{name}' of an override must be a text. Got {type(change[name]).__name__}.")
        request = self._request(identity, idempotency_key, {"act": "override", "on": valuation_id, "change": change})
        raw = self._stored_application(valuation_id, identity)
        key = (normalise_id(str(change.get("patent_id") or "")), change.get("field"))
        kept = [o for o in raw.get("overrides") or [] if (normalise_id(str(o.get("patent_id") or "")), o.get("field")) != key]
        raw["overrides"] = kept + [{**change, "officer": identity.name}]
        return self._answered(self._record(raw, identity, act="override", acts_on=valuation_id, request=request), answer)

    def sign_off(self, valuation_id: str, reason, identity: Identity, *, idempotency_key: str | None = None,
                 answer: bool = False) -> dict | Answer:
        """A reviewer's sign-off of the latest, "review required" version ``valuation_id``
        (:func:`ipvalue.workflow.sign_off`): a new version, decided with it (its JSON; with
        ``answer``, its :class:`Answer`)."""
        if not isinstance(reason, str) or not reason.strip():
            raise ApplicationError("A sign-off needs a written 'reason'. Fix: say why the valuation may stand despite the methods' disagreement.")
        request = self._request(identity, idempotency_key, {"act": "sign-off", "on": valuation_id, "reason": reason})
        raw = self._stored_application(valuation_id, identity)
        return self._answered(self._record(raw, identity, act="sign-off", acts_on=valuation_id, request=request, reason=reason), answer)

    @staticmethod
    def _answered(recorded: Answer, answer: bool) -> dict | Answer:
        return recorded if answer else recorded.decoded()

    def _record(self, raw: dict, identity: Identity, *, act: str, acts_on: str | None = None, request=None, reason: str | None = None) -> Answer:
        received = json.loads(json.dumps(raw, default=str))
        app = LoanApplication.from_dict(raw, base_dir=self.uploads(identity), reader=self.read_upload,
                                        configuration=self.configuration, officer=identity.name if act != "sign-off" else None)
        self._follow_reloads()
        unknown = sorted(set(app.models.values()) - set(self.models))
        if unknown:  # the configuration names models that are not loaded: the bank's set-up, refused plainly
            raise ApplicationError(f"The 'models' of application {app.application_id} name {unknown}, which this service does not serve. "
                                   "Fix: leave 'models' out; the service values with its configured models.")
        models = {kind: self.models[uri] for kind, uri in app.models.items() if uri}

        def store_application(result):  # the stored application only with its audit record
            write_text_atomic(json.dumps(received, ensure_ascii=False, sort_keys=True), private_folder(self.folder(result.valuation_id)) / "application.json")

        options = dict(store=self.settings.audit_db, identity=identity, authenticated_by="api token", models=models, data_dir=self.settings.data_dir,
                       provenance={"configuration": self.configuration.source}, while_recording=store_application, request=request)
        try:
            with self._lock:
                if act == "sign-off":
                    recorded = workflow.sign_off(acts_on, app, reason=reason, **options)
                else:
                    recorded = workflow.value_and_record(app, act=act, acts_on=acts_on, **options)
        except DuplicateRequest as dup:
            if not dup.same_body:
                raise Conflict("The Idempotency-Key was used before with another request body. Fix: use a new key for a new request.") from None
            return Answer(dup.valuation_id, json.dumps(self.get(dup.valuation_id, identity), ensure_ascii=False))
        return Answer(recorded.result.valuation_id, recorded.result_json)

    @staticmethod
    def _request(identity: Identity, key, body) -> tuple[str, str] | None:
        if key is None:
            return None
        if not isinstance(key, str) or not 8 <= len(key) <= 128 or not key.isascii() or not key.isprintable():
            raise InputError(f"The Idempotency-Key header must be 8 to 128 printable ASCII characters. Got {str(key)[:40]!r}. "
                             "Fix: send a random UUID per request, the same on its retries.")
        return workflow.request_key(identity, key), body_sha256(body)

    def _row(self, valuation_id: str, identity: Identity) -> dict:
        self.folder(valuation_id)
        if identity.role not in APPLICATION_ROLES:
            raise NotPermitted(f"User {identity.name!r} has role {identity.role!r}; valuations are seen by officers and reviewers.")
        row = read_valuation(valuation_id, self.settings.audit_db) if store_exists(self.settings.audit_db) else None
        if row is None or row["branch"] != identity.branch:
            raise NotFound(f"No valuation {valuation_id!r} is recorded for branch {identity.branch!r}.")
        return row

    def get(self, valuation_id: str, identity: Identity) -> dict:
        """The recorded result (the JSON ``ipvalue value`` writes), if the user's branch may see it,
        with ``live``: whether it is the application's latest version, and ``latest_valuation_id``."""
        row = self._row(valuation_id, identity)
        result = json.loads(row["result_json"])
        page, _ = list_valuations(self.settings.audit_db, branch=identity.branch, application_id=row["application_id"], limit=1)
        latest = str(page["valuation_id"].iloc[0]) if len(page) else valuation_id
        return {**result, "live": latest == valuation_id, "latest_valuation_id": latest, "act": row["act"], "supersedes": row["supersedes"]}

    def valuations(self, identity: Identity, *, status: str | None = None, mine: bool = False, application_id: str | None = None,
             live_only: bool = True, limit: int = 50, offset: int = 0) -> dict:
        """A work queue: the user's branch's valuations (latest versions by default), newest first.

        ``status`` is a decision (``review_required`` or ``review required``, ``eligible``, ...);
        ``mine`` keeps the applications the user valued or overrode."""
        if identity.role not in APPLICATION_ROLES:
            raise NotPermitted(f"User {identity.name!r} has role {identity.role!r}; valuations are seen by officers and reviewers.")
        from ipvalue.lending.pipeline import DECISIONS

        decision = status.replace("_", " ") if isinstance(status, str) else None
        if decision is not None and decision not in DECISIONS:
            raise InputError(f"The 'status' filter must be one of {[d.replace(' ', '_') for d in DECISIONS]}. Got {status!r}.")
        if not 1 <= int(limit) <= MAX_PAGE or not 0 <= int(offset) <= MAX_OFFSET:
            raise InputError(f"'limit' must be 1 to {MAX_PAGE} and 'offset' 0 or more. Got limit {limit}, offset {offset}.")
        page, total = list_valuations(self.settings.audit_db, branch=identity.branch, user=identity.name if mine else None, decision=decision,
                                      application_id=application_id, live_only=live_only, limit=int(limit), offset=int(offset))
        items = json.loads(page.to_json(orient="records", force_ascii=False))
        return {"items": items, "total": total, "limit": int(limit), "offset": int(offset), "branch": identity.branch}

    def _stored_application(self, valuation_id: str, identity: Identity) -> dict:
        self._row(valuation_id, identity)
        path = self.folder(valuation_id) / "application.json"
        if not path.is_file():
            raise Conflict(f"Valuation {valuation_id!r} was not made by this service (no stored application). Fix: value the application again.")
        return json.loads(path.read_text(encoding="utf-8"))

    # --- reports -----------------------------------------------------------------------------------

    def write_report(self, valuation_id: str, recorded: dict | Answer | None = None) -> Path:
        """Render the HTML report of a recorded valuation from its record (after the response, or
        on demand: a report is derived from the record, so one that is missing is rendered again)."""
        if isinstance(recorded, Answer):
            recorded = recorded.decoded()
        if recorded is None:
            row = read_valuation(valuation_id, self.settings.audit_db)
            if row is None:
                raise NotFound(f"No valuation {valuation_id!r} is recorded.")
            recorded = json.loads(row["result_json"])
        with self._lock:
            html = render_html(recorded)
        return write_text_atomic(html, private_folder(self.folder(valuation_id)) / "report.html")

    def report(self, valuation_id: str, identity: Identity, fmt: str = "html") -> Path:
        """The report file (HTML or PDF) of a valuation the user's branch may see, rendered now
        from the record when it is missing (a worker stopped before rendering it, or a valuation
        recorded by ``ipvalue value``)."""
        if fmt not in ("html", "pdf"):
            raise InputError(f"The report 'format' must be 'html' or 'pdf'. Got {fmt!r}.")
        row = self._row(valuation_id, identity)
        html = self.folder(valuation_id) / "report.html"
        if not html.is_file():
            recorded = json.loads(row["result_json"])
            if not isinstance(recorded.get("report"), dict):
                raise NotFound(f"Valuation {valuation_id!r} has no report sections in its record (recorded by another tool or an older ipvalue). "
                               "Fix: the recorded JSON (GET /v1/valuations/{id}) is the record; value the application again for a report.")
            self.write_report(valuation_id, recorded)
        if fmt == "html":
            return html
        pdf = html.with_suffix(".pdf")
        if not pdf.is_file():
            from ipvalue.report import pdf_unavailable, render_pdf

            reason = pdf_unavailable()
            if reason:
                logger.error("PDF report of %s not printed: %s", valuation_id, reason)
                raise Conflict("This service cannot print PDF reports (its machine lacks Chromium or WeasyPrint's libraries, or a CJK font). "
                               "Fix: use the HTML report.")
            with self._lock:
                content = render_pdf(html.read_text(encoding="utf-8"))
            write_bytes_atomic(content, pdf)
        return pdf

    def render_missing_reports(self) -> int:
        """Render the report of every valuation this service recorded whose report is missing
        (after a worker was killed between its 201 and the rendering). Returns how many."""
        root = self.settings.state_dir / "valuations"
        done = 0
        for folder in sorted(root.glob("*/application.json")) if root.is_dir() else ():
            vid = folder.parent.name
            if (folder.parent / "report.html").is_file() or not SAFE_ID.fullmatch(vid):
                continue
            try:
                row = read_valuation(vid, self.settings.audit_db)
                if row is None or '"report"' not in row["result_json"]:
                    continue  # the application was stored but its record rolled back: nothing to report
                self.write_report(vid, json.loads(row["result_json"]))
                done += 1
            except NotFound:
                continue
            except Exception:  # one bad record must not stop the others, nor the start
                logger.exception("report of %s not rendered on start", vid)
        if done:
            logger.info("rendered %d missing report(s) on start", done)
        return done

    # --- uploads -------------------------------------------------------------------------------------

    def read_upload(self, path) -> object:
        """An upload named in an application (``patents.file``, ``reference_book``) as
        :func:`~ipvalue.io.bounded.read_patents_bounded` reads it, parsed once per process: an upload
        is named by the SHA-256 of its content, so its rows never change. ``from_dict`` then checks
        the application against them (unknown ids, invalid rows) as for any file."""
        path = Path(path)
        return self._parsed_upload(path, path.stat().st_mtime_ns) if SAFE_ID.fullmatch(path.name) else read_patents_bounded(path)

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one service per process; uploads are content-addressed, never changed
    def _parsed_upload(self, path: Path, _modified_ns: int):
        return read_patents_bounded(path)

    def upload(self, filename: str, content: bytes, identity: Identity) -> dict:
        """Keep an uploaded export (0600) under its SHA-256 in the branch's folder; returns its id
        (the ``patents.file`` to name) and the valid patents in it (parsed in a memory-capped worker)."""
        suffix = Path(str(filename or "")).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise InputError(f"Uploaded file {Path(str(filename or '')).name!r} is not one of {list(UPLOAD_SUFFIXES)}. Fix: upload the CNIPA / incoPat export as CSV or Excel.")
        if not content:
            raise InputError(f"Uploaded file {Path(filename).name!r} is empty.")
        if len(content) > MAX_UPLOAD_BYTES:
            raise InputError(f"Uploaded file {Path(filename).name!r} is {len(content):,} bytes, above the {MAX_UPLOAD_BYTES:,} accepted. Fix: export only the borrower's patents.")
        upload_id = hashlib.sha256(content).hexdigest()[:32] + suffix
        path = self.uploads(identity) / upload_id
        if not path.is_file():
            write_bytes_atomic(content, path)
        try:
            return {"upload_id": upload_id, **self.upload_patents(upload_id, identity)}
        except InputError:
            path.unlink(missing_ok=True)  # an unreadable file is not kept
            raise

    def upload_patents(self, upload_id: str, identity: Identity) -> dict:
        """The valid patents of one of the branch's uploads (and its quarantined rows); a table
        without the patent columns (e.g. the bank's comparables) lists none and says why.

        Raises
        ------
        InputError
            The file cannot be read (corrupt, not the format its name says, beyond the upload
            limits, or beyond the parse worker's memory): HTTP 422.
        """
        path = self.settings.state_dir / "uploads" / identity.branch / str(upload_id)
        if not isinstance(upload_id, str) or not SAFE_ID.fullmatch(upload_id) or not path.is_file():
            raise NotFound(f"No upload {upload_id!r}.")
        try:
            loaded = read_patents_bounded(path)
        except ColumnError as exc:  # a readable table, but not a patent export: kept (comparables, say)
            return {"patents": [], "quarantine": [], "rows_quarantined": 0, "not_a_patent_export": str(exc)}
        cols = [c for c in ("patent_id", "patent_type", "legal_status", "filing_date", "applicants", "ipc_main") if c in loaded.valid]
        patents = json.loads(loaded.valid[cols].to_json(orient="records", date_format="iso", force_ascii=False))
        quarantine = json.loads(loaded.quarantine.head(1000).astype(str).to_json(orient="records", force_ascii=False)) if len(loaded.quarantine) else []
        return {"patents": patents, "quarantine": quarantine, "rows_quarantined": int(len(loaded.quarantine))}

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

    # --- scoring ----------------------------------------------------------------------------------

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
        value_models = [m for u, m in self.models.items() if model_kind(u) == "value"]
        if not value_models:
            raise Conflict("This service serves no value model. Fix: register one (ipvalue train) and reload the models.")
        model = value_models[0]
        raw = frame_from_records(records, source="patents").map(lambda v: "" if v is None else v if isinstance(v, str) else json.dumps(v) if isinstance(v, dict | list) else str(v))
        with self._lock:
            scored, quarantine = score_chunk(raw, 0, ColumnMapping.load("auto"), model, explain)
        logger.info("scored %d rows for %s (%d quarantined)", len(scored), identity.name, len(quarantine))
        return {"model": {"uri": model.uri, "version": str(model.version), "run_id": str(model.run_id)},
                "rows_in": len(records), "rows_scored": int(len(scored)), "rows_quarantined": int(len(quarantine)),
                "scored": json.loads(scored.to_json(orient="records", force_ascii=False)),
                "quarantine": json.loads(quarantine.to_json(orient="records", force_ascii=False))}

    # --- users (admins) ------------------------------------------------------------------------------

    def users(self) -> list[dict]:
        """Every token: name, role, branch, issued and revoked (never the token)."""
        return json.loads(list_users(self.settings.audit_db).to_json(orient="records", force_ascii=False))

    def add_user(self, body: dict, identity: Identity) -> dict:
        """Issue a token for ``{name, role, branch}``, recorded as issued by the admin ``identity``."""
        if not isinstance(body, dict) or set(body) - {"name", "role", "branch"} or not all(isinstance(body.get(k), str) for k in ("name", "role")):
            raise InputError("A user is a JSON object {name, role, branch}. Fix: give the name, one role of " + ", ".join(ROLES) + " and the branch.")
        branch = body.get("branch") or "head-office"
        if not isinstance(branch, str):
            raise InputError(f"The 'branch' of a user must be a text. Got {type(branch).__name__}.")
        token = add_user(body["name"], body["role"], self.settings.audit_db, branch=branch, created_by=f"{identity.name} (admin, api)")
        return {"name": body["name"], "role": body["role"], "branch": branch, "token": token}

    def revoke_user(self, name: str, identity: Identity) -> dict:
        """Revoke every token of ``name`` (the admin ``identity`` recorded)."""
        return {"name": name, "revoked": revoke_user(name, self.settings.audit_db, revoked_by=f"{identity.name} (admin, api)")}


def application_limit_bytes() -> int:
    """Largest application body accepted (bytes): the same limit as an application file."""
    return MAX_APPLICATION_BYTES
