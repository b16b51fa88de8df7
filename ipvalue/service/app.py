"""The HTTP layer: a FastAPI app over :class:`~ipvalue.service.core.ValuationService`.

Every request body that is an application goes through :meth:`LoanApplication.from_dict` (the
CLI's validation); its OpenAPI schema is built from the same table of fields
(:data:`~ipvalue.lending.application.APPLICATION_FIELDS`). Input errors are 422 with the message
naming the field and the fix; malformed JSON 400; no token 401; a wrong role 403; an unknown
valuation 404; a request that does not fit the valuation's state 409; an unusable audit store 503.
"""

from __future__ import annotations

import json
import logging
import os
import time

from fastapi import BackgroundTasks, Depends, FastAPI, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from ipvalue import __version__
from ipvalue.audit import ROLES, Identity, connect
from ipvalue.exceptions import AuditStoreError, InputError
from ipvalue.governance.promotion import PromotionError, promote
from ipvalue.lending import OVERRIDABLE
from ipvalue.lending.application import APPLICATION_FIELDS, duplicate_key_hook
from ipvalue.service.auth import require
from ipvalue.service.core import MAX_SCORE_ROWS, MAX_UPLOAD_BYTES, Conflict, NotFound, ServiceSettings, ValuationService, application_limit_bytes
from ipvalue.service.pages import router as pages_router

logger = logging.getLogger(__name__)

OFFICER, REVIEWER, VALIDATOR, ADMIN = ROLES
#: Seconds a report may take to render after its valuation's response before it counts as missing.
REPORT_GRACE_S = 120


def _object_schema(fields: dict, required=()) -> dict:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {name: {"type": t, "description": d} for name, (t, d) in fields.items()}}


#: The request schema of POST /v1/valuations: the application's fields, from the one table.
APPLICATION_SCHEMA = {**_object_schema({k: (t, d) for k, (t, _, d) in APPLICATION_FIELDS.items()},
                                       [k for k, (_, req, _) in APPLICATION_FIELDS.items() if req]), "title": "LoanApplication"}
OVERRIDE_SCHEMA = {**_object_schema({
    "patent_id": ("string", "The patent the override applies to."),
    "field": ("string", "What is overridden: " + ", ".join(OVERRIDABLE) + "."),
    "value": ("number", "The officer's value (a fraction, years or RMB, by field)."),
    "reason": ("string", "Why: required, written."),
}, ["patent_id", "field", "value", "reason"]), "title": "Override"}
SIGN_OFF_SCHEMA = {**_object_schema({"reason": ("string", "Why the valuation may stand: required, written.")}, ["reason"]), "title": "SignOff"}
SCORE_SCHEMA = {**_object_schema({
    "patents": ("array", f"Patent records (PatentFrame or CNIPA / incoPat headers), 1 to {MAX_SCORE_ROWS:,}."),
    "explain": ("string", "'none' (default) or 'all' (SHAP in log value per row)."),
}, ["patents"]), "title": "ScoreRequest"}
PROMOTE_SCHEMA = {**_object_schema({
    "model_uri": ("string", "models:/NAME/VERSION to move the alias to."),
    "reason": ("string", "Why the model is approved (the validation report's conclusion)."),
    "alias": ("string", "Alias to move (default champion)."),
}, ["model_uri", "reason"]), "title": "Promotion"}

_ERRORS = {400: {"description": "malformed JSON"}, 401: {"description": "no valid token"}, 403: {"description": "wrong role"},
           422: {"description": "invalid input: the message names the field and the fix"}}


def _body(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class BadJSON(ValueError):
    """The body is not a JSON document this service reads."""


async def read_json(request: Request) -> dict:
    """The request's JSON object: bounded in size, no duplicate keys, no NaN / Infinity."""
    body = await request.body()
    if len(body) > application_limit_bytes():
        raise InputError(f"The request body is {len(body):,} bytes, above the {application_limit_bytes():,} accepted. "
                         "Fix: upload the patents (POST /v1/uploads) and name the upload in 'patents.file'.")

    def no_constant(name):
        raise BadJSON(f"The request contains {name}, which is not a number in JSON. Fix: send a finite number.")

    try:
        data = json.loads(body, object_pairs_hook=duplicate_key_hook(BadJSON, "request"), parse_constant=no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadJSON(f"The request body is not valid UTF-8 JSON: {exc}. Fix: send a JSON object.") from None
    if not isinstance(data, dict):
        raise InputError(f"The request body must be a JSON object of fields. Got {type(data).__name__}.")
    return data


def _links(valuation_id: str) -> dict:
    base = f"/v1/valuations/{valuation_id}"
    return {"self": base, "report": f"{base}/report", "overrides": f"{base}/overrides", "sign_off": f"{base}/sign-off",
            "page": f"/ui/valuations/{valuation_id}"}


def _created(service: ValuationService, result, background: BackgroundTasks) -> JSONResponse:
    background.add_task(service.write_report, result)
    payload = json.loads(result.to_json())
    payload["links"] = _links(result.valuation_id)
    return JSONResponse(payload, status_code=201, headers={"Location": f"/v1/valuations/{result.valuation_id}"})


def create_app(settings: ServiceSettings | None = None, *, service: ValuationService | None = None) -> FastAPI:
    """The FastAPI app; the models are loaded here, once, before the first request."""
    service = service or ValuationService(settings or ServiceSettings())
    if not service.models:
        service.load_models()
    app = FastAPI(title="ipvalue valuation service", version=__version__,
                  description="Internal valuation of patents pledged for loans (知识产权质押融资内部评估). "
                              "Authenticate with 'Authorization: Bearer <token>' (ipvalue users add).")
    app.state.service = service

    @app.exception_handler(InputError)
    @app.exception_handler(FileNotFoundError)
    @app.exception_handler(IsADirectoryError)
    async def input_error(request, exc):  # the CLI's input errors (exit 3)
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=422)

    @app.exception_handler(PromotionError)
    async def promotion_error(request, exc):
        return JSONResponse({"detail": str(exc), "error": "PromotionError"}, status_code=422)

    @app.exception_handler(BadJSON)
    async def bad_json(request, exc):
        return JSONResponse({"detail": str(exc), "error": "BadJSON"}, status_code=400)

    @app.exception_handler(NotFound)
    async def not_found(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(AuditStoreError)
    async def store_error(request, exc):
        logger.error("audit store: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.get("/healthz", tags=["ops"])
    def healthz():
        """The process is up."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    def readyz():
        """Models loaded and the audit store writable."""
        try:
            connect(service.settings.audit_db).close()
        except AuditStoreError as exc:
            return JSONResponse({"status": "not ready", "detail": str(exc)}, status_code=503)
        return {"status": "ready", "models": [m["uri"] + " v" + m["version"] for m in service.model_table()]}

    @app.post("/v1/valuations", status_code=201, tags=["valuations"], openapi_extra=_body(APPLICATION_SCHEMA), responses=_ERRORS)
    async def create_valuation(request: Request, background: BackgroundTasks, who: Identity = Depends(require(OFFICER))):
        """Value a pledge-loan application: the valuation JSON (as ``ipvalue value`` writes it), its id and links."""
        raw = await read_json(request)
        result = await _in_thread(service.value, raw, who)
        return _created(service, result, background)

    @app.get("/v1/valuations/{valuation_id}", tags=["valuations"], responses={**_ERRORS, 404: {"description": "unknown id"}})
    def get_valuation(valuation_id: str, who: Identity = Depends(require())):
        """A recorded valuation (from the audit store)."""
        return {**service.get(valuation_id), "links": _links(valuation_id)}

    @app.get("/v1/valuations/{valuation_id}/report", tags=["valuations"], response_class=FileResponse,
             responses={**_ERRORS, 404: {"description": "unknown id"}, 202: {"description": "being rendered: retry"}})
    def get_report(valuation_id: str, who: Identity = Depends(require())):
        """The bilingual HTML report (PDF once the report issue lands)."""
        path = service.report_path(valuation_id)
        if not path.is_file():
            stored = path.with_name("application.json")
            if not stored.is_file() or time.time() - stored.stat().st_mtime > REPORT_GRACE_S:
                raise NotFound(f"Valuation {valuation_id!r} has no rendered report (made elsewhere, or its worker stopped before rendering). "
                               "Fix: the recorded JSON (GET /v1/valuations/{id}) is the record; value the application again for a report.")
            return JSONResponse({"detail": "The report is being rendered. Retry in a second."}, status_code=202, headers={"Retry-After": "1"})
        return FileResponse(path, media_type="text/html; charset=utf-8")

    @app.post("/v1/valuations/{valuation_id}/overrides", status_code=201, tags=["valuations"], openapi_extra=_body(OVERRIDE_SCHEMA),
              responses={**_ERRORS, 404: {"description": "unknown id"}, 409: {"description": "not made by this service"}})
    async def add_override(valuation_id: str, request: Request, background: BackgroundTasks, who: Identity = Depends(require(OFFICER))):
        """An officer's override (with a reason): a new valuation that supersedes this one."""
        change = await read_json(request)
        result = await _in_thread(service.override, valuation_id, change, who)
        return _created(service, result, background)

    @app.post("/v1/valuations/{valuation_id}/sign-off", status_code=201, tags=["valuations"], openapi_extra=_body(SIGN_OFF_SCHEMA),
              responses={**_ERRORS, 404: {"description": "unknown id"}, 409: {"description": "no review required"}})
    async def sign_off(valuation_id: str, request: Request, background: BackgroundTasks, who: Identity = Depends(require(REVIEWER))):
        """A reviewer's sign-off of a "review required" valuation: a new valuation, decided with it."""
        body = await read_json(request)
        result = await _in_thread(service.sign_off, valuation_id, body.get("reason"), who)
        return _created(service, result, background)

    @app.post("/v1/uploads", status_code=201, tags=["valuations"], responses=_ERRORS)
    async def upload(file: UploadFile, who: Identity = Depends(require(OFFICER))):
        """Upload a CNIPA / incoPat export; name its ``upload_id`` as ``patents.file`` (with ``ids``)."""
        content = await file.read(MAX_UPLOAD_BYTES + 1)  # never more than the limit in memory
        return JSONResponse(await _in_thread(service.upload, file.filename or "", content), status_code=201)

    @app.post("/v1/score", tags=["scoring"], openapi_extra=_body(SCORE_SCHEMA), responses=_ERRORS)
    async def score(request: Request, who: Identity = Depends(require(OFFICER, VALIDATOR))):
        """Score a small book (up to MAX_SCORE_ROWS = 1,000 rows) with the served value model; larger books: ``ipvalue score``."""
        body = await read_json(request)
        return await _in_thread(service.score, body.get("patents"), who, explain=body.get("explain", "none"))

    @app.get("/v1/models", tags=["models"], responses=_ERRORS)
    def models(who: Identity = Depends(require())):
        """The registered version behind each served alias."""
        return {"models": service.model_table()}

    @app.post("/v1/models/reload", tags=["models"], responses=_ERRORS)
    async def reload(who: Identity = Depends(require(VALIDATOR, ADMIN))):
        """Reload the served models (after an alias moved); other workers follow on their next request."""
        return {"models": await _in_thread(service.reload_models)}

    @app.post("/v1/models/promote", tags=["models"], openapi_extra=_body(PROMOTE_SCHEMA), responses=_ERRORS)
    async def promote_model(request: Request, who: Identity = Depends(require(VALIDATOR))):
        """Move an alias to a version whose gates passed, signed by the authenticated validator; then reload."""
        body = await read_json(request)
        uri, reason = body.get("model_uri"), body.get("reason")
        if not isinstance(uri, str) or not isinstance(reason, str):
            raise InputError("A promotion needs 'model_uri' (models:/NAME/VERSION) and a written 'reason'.")
        moved = await _in_thread(promote, uri, validator=who.name, reason=reason, alias=str(body.get("alias") or "champion"))
        return {"promoted": json.loads(json.dumps(moved, default=str)), "models": await _in_thread(service.reload_models)}

    app.include_router(pages_router)
    return app


async def _in_thread(fn, *args, **kwargs):
    return await run_in_threadpool(fn, *args, **kwargs)


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker (``--workers N``): settings from the environment ``ipvalue serve`` sets."""
    return create_app(ServiceSettings.from_env(os.environ))
