"""The officers' web page: server-rendered (Jinja2, no build step), Chinese and English labels.

Sign in with the API token (which starts a server-side session: the cookie holds a session id,
never the token; HttpOnly, SameSite=Strict, expiring, ended by sign-out), upload a CNIPA /
incoPat export, pick the patents, fill the loan fields and revenue, submit; the page shows the
decision, links the report, and takes an override with a reason (officers) or a sign-off
(reviewers). Every action goes through the same :class:`~ipvalue.service.core.ValuationService`
calls as the JSON API, so the same validation, configuration, scoping and audit records; every
form post passes the request guard's same-site check (:mod:`ipvalue.service.guard`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

import re

from ipvalue.audit import authenticate, token_digest
from ipvalue.exceptions import InputError
from ipvalue.lending import OVERRIDABLE
from ipvalue.terms import DECISIONS
from ipvalue.service.auth import COOKIE, identity_of
from ipvalue.service.core import Conflict, NotFound, NotPermitted

router = APIRouter(include_in_schema=False)
_env = Environment(loader=PackageLoader("ipvalue", "service/templates"), autoescape=select_autoescape(["html", "j2"]))

FIELD_LABELS = {"sharing_rate": "分成率 sharing rate", "economic_life_years": "经济寿命（年） economic life (years)",
                "internal_value_rmb": "内部评估价值（元） internal value (RMB)"}


def _page(name: str, status: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status)


def _signed_in(request: Request):
    return identity_of(request)


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    return RedirectResponse("/ui", status_code=303)


@router.get("/ui", response_class=HTMLResponse)
def start(request: Request):
    who = _signed_in(request)
    if who is None:
        return _page("login.html.j2")
    return _page("upload.html.j2", who=who)


@router.post("/ui/login")
async def login(request: Request):
    form = await request.form()
    token = str(form.get("token") or "").strip()
    who = authenticate(token, request.app.state.service.settings.audit_db) if token else None
    if who is None:
        return _page("login.html.j2", 401, error="令牌无效 The token is not valid (ask an admin: ipvalue users add).")
    service = request.app.state.service
    session = service.sessions.start(token_digest(token))
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(COOKIE, session, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=int(service.settings.session_hours * 3600), path="/")
    return response


SIGN_IN_AS_OFFICER = "需以信贷员身份登录 Sign in as an officer."


def _in_role(request: Request, role: str, sign_in_as: str):
    """``(who, None)`` when the signed-in user holds ``role``; else ``(None, the login page)`` with
    401 (not signed in) or 403 (another role) and the ``sign_in_as`` hint."""
    who = _signed_in(request)
    if who is None or who.role != role:
        return None, _page("login.html.j2", 401 if who is None else 403, error=sign_in_as)
    return who, None


@router.post("/ui/logout")
def logout(request: Request):
    """Sign out: the session ends on the server (a copy of the cookie no longer works)."""
    request.app.state.service.sessions.end(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/ui", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/ui/upload", response_class=HTMLResponse)
async def upload(request: Request):
    who, refusal = _in_role(request, "officer", SIGN_IN_AS_OFFICER)
    if refusal is not None:
        return refusal
    form = await request.form()
    file = form.get("file")
    service = request.app.state.service
    try:
        if file is None or not hasattr(file, "read"):
            raise InputError("请选择文件 Choose the export file to upload.")
        uploaded = await run_in_threadpool(service.upload, file.filename or "", await file.read(), who)
        if uploaded.get("not_a_patent_export"):
            raise InputError(uploaded["not_a_patent_export"])
    except InputError as exc:
        return _page("upload.html.j2", 422, who=who, error=str(exc))
    applicants = [p.get("applicants") or "" for p in uploaded["patents"]]
    borrower = max(set(applicants), key=applicants.count).split(";")[0] if applicants else ""
    return _page("application.html.j2", who=who, upload=uploaded, borrower=borrower, served=service.model_table(), form={})


@router.post("/ui/valuations", response_class=HTMLResponse)
async def value(request: Request):
    who, refusal = _in_role(request, "officer", SIGN_IN_AS_OFFICER)
    if refusal is not None:
        return refusal
    form = await request.form()
    service = request.app.state.service
    raw = {
        "application_id": form.get("application_id"), "borrower": form.get("borrower"),
        "requested_amount_rmb": _number(form.get("requested_amount_rmb")), "term_years": _number(form.get("term_years")),
        "purpose": form.get("purpose") or "", "valuation_date": form.get("valuation_date"),
        "patents": {"file": form.get("upload_id"), "ids": form.getlist("ids")},
        "revenue_forecast": {"base_rmb": _number(form.get("revenue_base_rmb")), "growth": _number(form.get("revenue_growth"))},
        "risk_sharing": form.get("risk_sharing") or None,  # the models, policy and assumption set are the bank's configuration
    }
    try:
        if not form.getlist("ids"):
            raise InputError("请至少选择一项专利 Pick at least one patent.")
        result = await run_in_threadpool(service.value, raw, who)
    except (InputError, NotFound, Conflict) as exc:
        try:
            uploaded = await run_in_threadpool(service.upload_patents, str(form.get("upload_id")), who) if form.get("upload_id") else {"patents": []}
        except NotFound:
            uploaded = {"patents": []}
        return _page("application.html.j2", 422, who=who, upload={"upload_id": form.get("upload_id"), **uploaded}, borrower=raw["borrower"],
                     served=service.model_table(), form=dict(form), error=str(exc))
    await run_in_threadpool(service.write_report, result["valuation_id"], result)
    return RedirectResponse(f"/ui/valuations/{result['valuation_id']}", status_code=303)


@router.get("/ui/valuations/{valuation_id}", response_class=HTMLResponse)
def show(valuation_id: str, request: Request, error: str = ""):
    who = _signed_in(request)
    if who is None:
        return _page("login.html.j2", 401)
    try:
        result = request.app.state.service.get(valuation_id, who)
    except (NotFound, NotPermitted) as exc:
        return _page("upload.html.j2", 404, who=who, error=str(exc))
    return _page("valuation.html.j2", who=who, r=result, s=result["summary"], fields=FIELD_LABELS, overridable=OVERRIDABLE, decisions_zh={k: v[0] for k, v in DECISIONS.items()}, error=error)


async def _act(request: Request, valuation_id: str, role: str, sign_in_as: str, act):
    """A signed-in ``role`` acts on a valuation from the page's form (``act(service, form, who)``
    returns the superseding valuation), then sees it; an input error is shown on the page."""
    who, refusal = _in_role(request, role, sign_in_as)
    if refusal is not None:
        return refusal
    form = await request.form()
    service = request.app.state.service
    try:
        result = await run_in_threadpool(act, service, form, who)
    except (InputError, Conflict, NotFound) as exc:
        return _error_on(service, valuation_id, who, str(exc))
    await run_in_threadpool(service.write_report, result["valuation_id"], result)
    return RedirectResponse(f"/ui/valuations/{result['valuation_id']}", status_code=303)


@router.post("/ui/valuations/{valuation_id}/overrides", response_class=HTMLResponse)
async def override(valuation_id: str, request: Request):
    def act(service, form, who):
        change = {"patent_id": form.get("patent_id"), "field": form.get("field"), "value": _number(form.get("value")), "reason": form.get("reason") or ""}
        return service.override(valuation_id, change, who)

    return await _act(request, valuation_id, "officer", SIGN_IN_AS_OFFICER, act)


@router.post("/ui/valuations/{valuation_id}/sign-off", response_class=HTMLResponse)
async def sign_off(valuation_id: str, request: Request):
    return await _act(request, valuation_id, "reviewer", "需以复核人身份登录 Sign in as a reviewer.",
                      lambda service, form, who: service.sign_off(valuation_id, form.get("reason") or "", who))


def _error_on(service, valuation_id, who, message):
    try:
        result = service.get(valuation_id, who)
    except (NotFound, NotPermitted):
        return _page("upload.html.j2", 404, who=who, error=message)
    return _page("valuation.html.j2", 422, who=who, r=result, s=result["summary"], fields=FIELD_LABELS, overridable=OVERRIDABLE, decisions_zh={k: v[0] for k, v in DECISIONS.items()}, error=message)


#: A number as an officer types it: digits, thousands separators only in their places (1,000,000), a decimal part.
TYPED_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?([eE][+-]?\d+)?")


def _number(text):
    """A form field as a number when it reads as one: ``1,000,000`` is a million, ``1,0,0`` is not a
    number (it stays text, which the application check refuses by name)."""
    if text is None or str(text).strip() == "":
        return None
    cleaned = str(text).strip()
    if not TYPED_NUMBER.fullmatch(cleaned):
        return cleaned
    return float(cleaned.replace(",", ""))
