"""The HTTP layer: a FastAPI app over :class:`~ipvalue.service.core.ValuationService`.

Every request with a body passes the request guard first (:mod:`ipvalue.service.guard`: same-site
check, authentication before the body is read, size limits); every request body that is an
application goes through :meth:`LoanApplication.from_dict` (the CLI's validation, with the bank's
pinned configuration); the OpenAPI document's models are built from the same table of fields
(:mod:`ipvalue.service.schemas`). Answers: input errors 422 with ``errors: [{field, message,
fix}]``; malformed JSON 400; no token 401; a wrong role, another branch or the four-eyes rule 403;
an unknown or out-of-scope valuation 404; a version that is no longer the latest, or a state that
does not fit, 409 (with ``latest_valuation_id``); ``If-Match`` naming another version 412; a body
above its limit 413; an unusable audit store 503. Messages never carry the server's paths or the
tracking URI (the details go to the server's log, under the ``reference`` a 5xx gives).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from pathlib import Path

from fastapi import BackgroundTasks, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ipvalue import __version__
from ipvalue.audit import ROLES, Identity, connect
from ipvalue.exceptions import AuditStoreError, InputError
from ipvalue.frame import check_unicode_tree
from ipvalue.governance.promotion import PromotionError, promote
from ipvalue.lending.application import APPLICATION_FIELDS, ApplicationFieldsError, duplicate_key_hook
from ipvalue.registry import ALIASES
from ipvalue.service import schemas
from ipvalue.service.auth import require
from ipvalue.service.core import MAX_OFFSET, MAX_PAGE, MAX_SCORE_ROWS, Answer, Conflict, NotFound, NotPermitted, ServiceSettings, ValuationService, VersionConflict
from ipvalue.service.docs import router as docs_router
from ipvalue.service.guard import RequestGuard
from ipvalue.service.messages import PublicMessages
from ipvalue.service.pages import router as pages_router
from ipvalue.service.sessions import SessionStore

logger = logging.getLogger(__name__)

OFFICER, REVIEWER, VALIDATOR, ADMIN = ROLES
#: The request schema of POST /v1/valuations: the application's fields, from the one table.
APPLICATION_SCHEMA = schemas.LoanApplicationIn.model_json_schema(ref_template="#/components/schemas/{model}")
_REQUESTS = {"LoanApplication": schemas.LoanApplicationIn, "Override": schemas.OverrideIn, "SignOff": schemas.SignOffIn,
             "ScoreRequest": schemas.ScoreIn, "Promotion": schemas.PromotionIn, "NewUser": schemas.UserIn}
_ERROR = {"model": schemas.ErrorOut}
_ERRORS = {400: {**_ERROR, "description": "malformed JSON"}, 401: {**_ERROR, "description": "no valid token"},
           403: {**_ERROR, "description": "wrong role, another branch, or the four-eyes rule"}, 413: {**_ERROR, "description": "body too large"},
           422: {**_ERROR, "description": "invalid input: one entry per field, naming the fix"}}
_ON_VERSION = {404: {**_ERROR, "description": "unknown valuation (or another branch's)"},
               409: {**_ERROR, "description": "not the latest version (latest_valuation_id), or a state that does not fit"},
               412: {**_ERROR, "description": "If-Match names another version"}}


def _body(name: str) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}}


class BadJSON(ValueError):
    """The body is not a JSON document this service reads."""


class PreconditionFailed(ValueError):
    """``If-Match`` names another version than the one acted on."""


async def read_json(request: Request) -> dict:
    """The request's JSON object: bounded in size (by the guard), no duplicate keys, no NaN /
    Infinity, no lone surrogate anywhere (keys included)."""
    body = await request.body()

    def no_constant(name):
        raise BadJSON(f"The request contains {name}, which is not a number in JSON. Fix: send a finite number.")

    try:
        data = json.loads(body, object_pairs_hook=duplicate_key_hook(BadJSON, "request"), parse_constant=no_constant)
    except BadJSON:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:  # ValueError: an integer of over 4,300 digits
        raise BadJSON(f"The request body is not valid UTF-8 JSON: {type(exc).__name__}. Fix: send a JSON object.") from None
    if not isinstance(data, dict):
        raise InputError(f"The request body must be a JSON object of fields. Got {type(data).__name__}.")
    return check_unicode_tree(data, "request")


def _links(valuation_id: str) -> dict:
    base = f"/v1/valuations/{valuation_id}"
    return {"self": base, "report": f"{base}/report", "overrides": f"{base}/overrides", "sign_off": f"{base}/sign-off",
            "page": f"/ui/valuations/{valuation_id}"}


def _created(service: ValuationService, answer: Answer, background: BackgroundTasks) -> Response:
    """201 with the recorded JSON text and its ``links`` added as the object's last key: the text is
    sent as the store holds it, not decoded and encoded again (a text with a bare NaN or Infinity,
    which is not JSON, goes through the JSON encoder, which refuses it)."""
    vid = answer.valuation_id
    if not (service.folder(vid) / "report.html").is_file():
        background.add_task(service.write_report, vid, answer)
    headers = {"Location": f"/v1/valuations/{vid}", "ETag": f'"{vid}"'}
    text, links = answer.text.rstrip(), _links(vid)
    if text.startswith("{") and text.endswith("}") and text[1:-1].strip() and "NaN" not in text and "Infinity" not in text:
        body = f'{text[:-1]}, "links": {json.dumps(links, ensure_ascii=False)}}}'
        return Response(body.encode("utf-8"), status_code=201, media_type="application/json", headers=headers)
    return JSONResponse({**answer.decoded(), "links": links}, status_code=201, headers=headers)


def _if_match(request: Request, valuation_id: str) -> None:
    wanted = request.headers.get("if-match")
    if wanted is not None and wanted.strip().strip('"').removeprefix("W/").strip('"') != valuation_id:
        raise PreconditionFailed(f"If-Match names {wanted!r}, but this request acts on valuation {valuation_id!r}. Fix: act on the version you looked at.")


def _problems(exc: Exception, public) -> list[dict]:
    if isinstance(exc, ApplicationFieldsError):
        return [{k: public(str(v)) for k, v in p.items()} for p in exc.problems]
    text = public(str(exc))
    message, _, fix = text.partition(" Fix: ")
    found = re.search(r"The '([A-Za-z_][\w.\[\]]*)'", message) or re.search(r"'([a-z_]+(?:\.[a-z_]+|\[\d+\])+)'", message)
    return [{"field": found.group(1) if found else "", "message": message, "fix": fix.rstrip(".")}]


def create_app(settings: ServiceSettings | None = None, *, service: ValuationService | None = None) -> FastAPI:
    """The FastAPI app; the models are loaded here, once, before the first request; reports that a
    stopped worker never rendered are rendered in the background."""
    service = service or ValuationService(settings or ServiceSettings())
    settings = service.settings
    if not service.models:
        service.load_models()
    service.sessions = SessionStore(Path(settings.state_dir) / "sessions.db", hours=settings.session_hours, idle_minutes=settings.session_idle_minutes)
    app = FastAPI(title="ipvalue valuation service", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Internal valuation of patents pledged for loans (知识产权质押融资内部评估). "
                              "Authenticate with 'Authorization: Bearer <token>' (ipvalue users add).")
    app.state.service = service
    public = PublicMessages(settings)
    threading.Thread(target=service.render_missing_reports, name="ipvalue-reports", daemon=True).start()

    def error(status: int, exc: Exception, **extra) -> JSONResponse:
        problems = _problems(exc, public)
        detail = public(str(exc))
        return JSONResponse({"detail": detail, "errors": problems, **extra}, status_code=status)

    @app.exception_handler(InputError)
    @app.exception_handler(PromotionError)
    async def input_error(request, exc):  # the CLI's input errors (exit 3)
        return error(422, exc)

    @app.exception_handler(FileNotFoundError)
    @app.exception_handler(IsADirectoryError)
    async def missing_file(request, exc):
        logger.info("missing file in a request: %s", exc)
        return JSONResponse({"detail": "A file the request names does not exist. Fix: upload it first and name its upload id.",
                             "errors": [{"field": "", "message": "A file the request names does not exist.", "fix": "upload it first and name its upload id"}]},
                            status_code=422)

    @app.exception_handler(NotPermitted)
    async def not_permitted(request, exc):
        return error(403, exc)

    @app.exception_handler(BadJSON)
    async def bad_json(request, exc):
        return error(400, exc)

    @app.exception_handler(NotFound)
    async def not_found(request, exc):
        return error(404, exc)

    @app.exception_handler(VersionConflict)
    async def version_conflict(request, exc):
        return error(409, exc, latest_valuation_id=exc.latest)

    @app.exception_handler(Conflict)
    async def conflict(request, exc):
        return error(409, exc)

    @app.exception_handler(PreconditionFailed)
    async def precondition(request, exc):
        return error(412, exc)

    @app.exception_handler(RequestValidationError)
    async def validation(request, exc):
        problems = [{"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"], "fix": "see the API document (/docs)"} for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(f"{p['field']}: {p['message']}" for p in problems), "errors": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return JSONResponse({"detail": exc.detail, "errors": [{"field": "", "message": str(exc.detail), "fix": ""}]}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(AuditStoreError)
    async def store_error(request, exc):
        reference = uuid.uuid4().hex[:12]
        logger.error("audit store (reference %s): %s", reference, exc)
        return JSONResponse({"detail": f"The audit store is unavailable: nothing was recorded. Reference {reference} (the server's log has the details).",
                             "errors": [], "reference": reference}, status_code=503)

    @app.exception_handler(Exception)
    async def internal(request, exc):
        reference = uuid.uuid4().hex[:12]
        logger.error("internal error (reference %s) on %s %s", reference, request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"Internal error: nothing was recorded. Reference {reference} (the server's log has the details).",
                             "errors": [], "reference": reference}, status_code=500)

    @app.get("/healthz", tags=["ops"])
    def healthz():
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    def readyz(request: Request):
        """Models loaded and the audit store writable; the details only to an authenticated user."""
        from ipvalue.service.auth import identity_of

        try:
            connect(settings.audit_db).close()
        except AuditStoreError as exc:
            logger.error("not ready: %s", exc)
            return JSONResponse({"status": "not ready"}, status_code=503)
        if identity_of(request) is None:
            return {"status": "ready"}
        return {"status": "ready", "version": __version__, "models": [m["uri"] + " v" + m["version"] for m in service.model_table()]}

    @app.post("/v1/valuations", status_code=201, tags=["valuations"], openapi_extra=_body("LoanApplication"),
              responses={201: {"model": schemas.ValuationOut}, 409: {**_ERROR, "description": "an Idempotency-Key reused with another body"}, **_ERRORS})
    async def create_valuation(request: Request, background: BackgroundTasks, who: Identity = Depends(require(OFFICER))):
        """Value a pledge-loan application: the valuation JSON (as ``ipvalue value`` writes it), its id and links.
        ``Idempotency-Key``: the same key and body return the first answer."""
        raw = await read_json(request)
        payload = await _in_thread(service.value, raw, who, idempotency_key=request.headers.get("idempotency-key"), answer=True)
        return _created(service, payload, background)

    @app.get("/v1/valuations", tags=["valuations"], responses={200: {"model": schemas.QueueOut}, **_ERRORS})
    def list_valuations(status: str | None = None, mine: bool = False, application_id: str | None = Query(None, max_length=64), all_versions: bool = False,
                        limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=MAX_OFFSET), branch: str | None = None,
                        who: Identity = Depends(require(OFFICER, REVIEWER))):
        """A work queue of the user's branch, newest first: ``status=review_required`` (awaiting
        sign-off), ``mine=true`` (applications the user valued or overrode); latest versions only
        unless ``all_versions``; ``limit`` (1-200) and ``offset``."""
        if branch not in (None, who.branch):
            raise NotPermitted(f"User {who.name!r} sees branch {who.branch!r} only. Got branch {branch!r}.")
        return service.valuations(who, status=status, mine=mine, application_id=application_id, live_only=not all_versions, limit=limit, offset=offset)

    @app.get("/v1/valuations/{valuation_id}", tags=["valuations"], responses={200: {"model": schemas.ValuationOut}, **_ERRORS, **_ON_VERSION})
    def get_valuation(valuation_id: str, who: Identity = Depends(require(OFFICER, REVIEWER))):
        """A recorded valuation (from the audit store), with ``live`` and ``latest_valuation_id``."""
        return JSONResponse({**service.get(valuation_id, who), "links": _links(valuation_id)}, headers={"ETag": f'"{valuation_id}"'})

    @app.get("/v1/valuations/{valuation_id}/report", tags=["valuations"], response_class=FileResponse,
             responses={200: {"content": {"text/html": {}, "application/pdf": {}}}, **_ERRORS, **_ON_VERSION})
    async def get_report(valuation_id: str, format: str = "html", who: Identity = Depends(require(OFFICER, REVIEWER))):
        """The bilingual report, rendered from the record (``format=html`` or ``pdf``)."""
        path = await _in_thread(service.report, valuation_id, who, format)
        kind = "application/pdf" if format == "pdf" else "text/html; charset=utf-8"
        return FileResponse(path, media_type=kind, filename=f"{valuation_id}.{format}" if format == "pdf" else None)

    @app.post("/v1/valuations/{valuation_id}/overrides", status_code=201, tags=["valuations"], openapi_extra=_body("Override"),
              responses={201: {"model": schemas.ValuationOut}, **_ERRORS, **_ON_VERSION})
    async def add_override(valuation_id: str, request: Request, background: BackgroundTasks, who: Identity = Depends(require(OFFICER))):
        """An officer's override (with a reason) of the latest version: a new version that supersedes
        it, earlier overrides carried forward."""
        _if_match(request, valuation_id)
        change = await read_json(request)
        payload = await _in_thread(service.override, valuation_id, change, who, idempotency_key=request.headers.get("idempotency-key"), answer=True)
        return _created(service, payload, background)

    @app.post("/v1/valuations/{valuation_id}/sign-off", status_code=201, tags=["valuations"], openapi_extra=_body("SignOff"),
              responses={201: {"model": schemas.ValuationOut}, **_ERRORS, **_ON_VERSION})
    async def sign_off(valuation_id: str, request: Request, background: BackgroundTasks, who: Identity = Depends(require(REVIEWER))):
        """A reviewer's sign-off of the latest, "review required" version, by a reviewer who did not
        value or override it: a new version, decided with it."""
        _if_match(request, valuation_id)
        body = await read_json(request)
        extra = sorted(set(body) - {"reason"})
        if extra:
            raise InputError(f"A sign-off has unknown field(s) {extra}. Fix: give 'reason' only; the reviewer is the signed-in user.")
        payload = await _in_thread(service.sign_off, valuation_id, body.get("reason"), who, idempotency_key=request.headers.get("idempotency-key"), answer=True)
        return _created(service, payload, background)

    @app.post("/v1/uploads", status_code=201, tags=["valuations"], responses={201: {"model": schemas.UploadOut}, **_ERRORS},
              openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                  "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}}}}})
    async def upload(request: Request, who: Identity = Depends(require(OFFICER))):
        """Upload a CNIPA / incoPat export (≤ 20 MB; parsed in a memory-capped worker); name its
        ``upload_id`` as ``patents.file`` (with ``ids``)."""
        form = await request.form(max_files=1, max_fields=4)
        file = form.get("file")
        if file is None or not hasattr(file, "read"):
            raise InputError("The upload must be a multipart form with one file in the field 'file'. Fix: curl -F file=@export.csv ...")
        return JSONResponse(await _in_thread(service.upload, file.filename or "", await file.read(), who), status_code=201)

    @app.post("/v1/score", tags=["scoring"], openapi_extra=_body("ScoreRequest"), responses={200: {"model": schemas.ScoreOut}, **_ERRORS})
    async def score(request: Request, who: Identity = Depends(require(OFFICER, VALIDATOR))):
        """Score a small book (up to MAX_SCORE_ROWS = 1,000 rows) with the served value model; larger books: ``ipvalue score``."""
        body = await read_json(request)
        extra = sorted(set(body) - {"patents", "explain"})
        if extra:
            raise InputError(f"A score request has unknown field(s) {extra}. Fix: give 'patents' and optional 'explain'.")
        return await _in_thread(service.score, body.get("patents"), who, explain=body.get("explain", "none"))

    @app.get("/v1/models", tags=["models"], responses={200: {"model": schemas.ModelsOut}, **_ERRORS})
    def models(who: Identity = Depends(require())):
        """The registered version behind each served alias, and what an application may name here."""
        return {"models": service.model_table(), "configuration": service.configuration_table()}

    @app.post("/v1/models/reload", tags=["models"], responses={200: {"model": schemas.ModelsOut}, **_ERRORS})
    async def reload(who: Identity = Depends(require(VALIDATOR, ADMIN))):
        """Reload the served models (after an alias moved); other workers follow on their next request."""
        return {"models": await _in_thread(service.reload_models)}

    @app.post("/v1/models/promote", tags=["models"], openapi_extra=_body("Promotion"), responses=_ERRORS)
    async def promote_model(request: Request, who: Identity = Depends(require(VALIDATOR))):
        """Move an alias (champion or challenger) to a version whose gates passed, signed by the authenticated validator; then reload."""
        body = await read_json(request)
        uri, reason, alias = body.get("model_uri"), body.get("reason"), body.get("alias", "champion")
        if not isinstance(uri, str) or not isinstance(reason, str) or set(body) - {"model_uri", "reason", "alias"}:
            raise InputError("A promotion needs 'model_uri' (models:/NAME/VERSION) and a written 'reason' (and optional 'alias'), as texts.")
        if alias not in ALIASES:
            raise InputError(f"The 'alias' of a promotion must be one of {list(ALIASES)}. Got {str(alias)[:40]!r}.")
        moved = await _in_thread(promote, uri, validator=who.name, reason=reason, alias=alias)
        return {"promoted": json.loads(json.dumps(moved, default=str)), "models": await _in_thread(service.reload_models)}

    @app.get("/v1/users", tags=["users"], responses=_ERRORS)
    def users(who: Identity = Depends(require(ADMIN))):
        """Every user token: name, role, branch, issued and revoked (admins)."""
        return {"users": service.users()}

    @app.post("/v1/users", status_code=201, tags=["users"], openapi_extra=_body("NewUser"), responses={201: {"model": schemas.UserOut}, **_ERRORS})
    async def add_user(request: Request, who: Identity = Depends(require(ADMIN))):
        """Issue a token for a user with one role and one branch (admins); the token is shown once."""
        body = await read_json(request)
        return JSONResponse(await _in_thread(service.add_user, body, who), status_code=201)

    @app.post("/v1/users/{name}/revoke", tags=["users"], responses=_ERRORS)
    async def revoke_user(name: str, who: Identity = Depends(require(ADMIN))):
        """Revoke every token of a user (admins): their API calls and page sessions end."""
        return await _in_thread(service.revoke_user, name, who)

    app.include_router(pages_router)
    if settings.docs:
        app.include_router(docs_router)

    def openapi():
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, model in _REQUESTS.items():
                components[name] = {**model.model_json_schema(ref_template="#/components/schemas/{model}"), "title": name}
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi
    app.add_middleware(RequestGuard, service=service)
    return app


async def _in_thread(fn, *args, **kwargs):
    return await run_in_threadpool(fn, *args, **kwargs)


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker (``--workers N``): settings from the environment ``ipvalue serve`` sets."""
    return serving_app(ServiceSettings.from_env(os.environ))


def serving_app(settings: ServiceSettings) -> FastAPI:
    """:func:`create_app` for a process that serves it: what it loaded kept out of the garbage
    collector's walks (:meth:`ValuationService.freeze_long_lived`)."""
    service = ValuationService(settings)
    app = create_app(service=service)
    service.freeze_long_lived()
    return app


__all__ = ["APPLICATION_FIELDS", "APPLICATION_SCHEMA", "MAX_SCORE_ROWS", "app_from_env", "create_app", "serving_app"]
