"""The officers' and reviewers' web page: server-rendered (Jinja2, no build step, no script: the
page's content policy allows none), Chinese first with English beside.

* **Sign in** with the API token (a server-side session starts: the cookie holds a session id,
  never the token; HttpOnly, SameSite=Strict, expiring, ended by sign-out).
* **Work queues** (``/ui``): an officer lands on "my valuations", the branch's valuations and the
  two ways to start one; a reviewer on the valuations awaiting sign-off.
* **The application form**: upload the CNIPA / incoPat export, tick the patents, fill every field
  ``ipvalue value`` reads (loan, revenue forecast or yearly schedule, financial statements, tax
  rate, WACC, R&D cost, comparables and register uploads, documents, overrides, registered
  pledges, the configuration's choices); or upload an application file (YAML / JSON, the CLI's
  schema) with the files it names. Every problem of a submission is listed at once, in Chinese
  with English beside, naming the field as the form labels it; what was entered stays.
* **The decision page**: decision, value chain against the request and cap, the conclusion's
  reasons, the methods' disagreement, small charts from the record, the report (HTML, PDF), an
  override form (officers) and a sign-off form (the reviewer whose queue it is in).

Every action goes through the same :class:`~ipvalue.service.core.ValuationService` calls as the
JSON API (the same validation, pinned configuration, scoping, four-eyes rule and audit records);
every form post passes the request guard's same-site check and its size limits
(:mod:`ipvalue.service.guard`).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from ipvalue import terms
from ipvalue.audit import authenticate, token_digest
from ipvalue.domains import check_date, check_number, domains
from ipvalue.exceptions import DomainError, InputError
from ipvalue.lending import OVERRIDABLE
from ipvalue.lending.application import DOCUMENT_KINDS, ApplicationFieldsError, duplicate_key_hook, field_type_problems
from ipvalue.service.auth import COOKIE, identity_of
from ipvalue.service.core import MAX_PAGE, Conflict, NotFound, NotPermitted
from ipvalue.service.messages import PublicMessages

router = APIRouter(include_in_schema=False)
_env = Environment(loader=PackageLoader("ipvalue", "service/templates"), autoescape=select_autoescape(["html", "j2"]))

#: How the form labels each application field (Chinese, English): every message names these.
LABELS = {
    "application_id": ("申请编号", "application number"), "borrower": ("借款人", "borrower"),
    "requested_amount_rmb": ("申请金额（元）", "requested amount (RMB)"), "term_years": ("贷款期限（年）", "loan term (years)"),
    "purpose": ("贷款用途", "purpose of the loan"), "valuation_date": ("评估基准日", "valuation date"),
    "patents": ("质押专利", "pledged patents"), "ids": ("质押专利", "pledged patents"), "upload_id": ("专利导出文件", "patent export"),
    "revenue_forecast": ("收入预测", "revenue forecast"), "revenue_base_rmb": ("产品基年收入（元/年）", "product revenue, base year (RMB a year)"),
    "revenue_growth": ("收入年增长率（%）", "revenue growth (% a year)"), "schedule": ("逐年收入预测", "yearly revenue schedule"),
    "financials": ("借款人财务报表", "borrower's financial statements"), "tax_rate": ("所得税率", "income-tax rate"),
    "wacc": ("加权平均资本成本 WACC（%）", "weighted average cost of capital, WACC (%)"),
    "rd_cost": ("研发成本", "R&D cost"), "rd_cost_rmb": ("研发成本（元）", "R&D cost (RMB)"), "rd_cost_year": ("研发成本发生年度", "year of the R&D cost"),
    "comparables": ("可比交易文件", "comparable transactions file"), "register": ("登记簿法律状态导出", "register legal-status export"),
    "reference_book": ("参照专利文件", "reference patent file"), "documents": ("证明材料", "supporting documents"),
    "overrides": ("人工调整", "overrides"), "registered_pledges": ("已办理质押登记的专利", "patents with a registered pledge"),
    "risk_sharing": ("风险分担方案", "risk-sharing scheme"), "assumption_set": ("收益法假设集", "income-approach assumption set"),
    "pledge_policy": ("质押政策", "pledge policy"), "models": ("评估模型", "valuation models"), "application_file": ("申请文件", "application file"),
    "review": ("复核", "review"),
}
#: The form's row fields by the section they belong to (``doc_kind_3`` is a document's).
ROW_SECTIONS = {"doc_": "documents", "ovr_": "overrides", "fin_": "financials", "schedule": "schedule", "comparables_": "comparables",
                "register_": "register", "reference_book_": "reference_book", "tax_rate_": "tax_rate"}
#: The domain (:mod:`ipvalue.domains`) each typed number of the form is checked against, and whether it is typed in percent.
NUMBERS = {"requested_amount_rmb": ("requested_amount_rmb", False), "term_years": ("term_years", False),
           "revenue_base_rmb": ("revenue_base_rmb", False), "revenue_growth": ("revenue_growth", True), "wacc": ("wacc", True),
           "tax_rate_other": ("tax_rate", True), "rd_cost_rmb": ("rd_cost_rmb", False), "rd_cost_year": ("rd_cost_year", False)}
TAX_CHOICES = (("", "按假设集默认", "the assumption set's default"), ("0.25", "25 %（一般企业）", "25 % (standard)"),
               ("0.15", "15 %（高新技术企业）", "15 % (high-tech enterprise)"), ("other", "其他（填写下方税率）", "other (type the rate below)"))
ENCODINGS = (("", "自动识别", "detect"), ("utf-8", "UTF-8", "UTF-8"), ("gb18030", "GBK / GB18030", "GBK / GB18030"))
SCHEDULE_YEARS = 10
FINANCIAL_YEARS = 3
OVERRIDE_ROWS = 3
MIN_DOCUMENT_ROWS = 6
MAX_DOCUMENT_ROWS = 60
#: Most files attached to one application file (the export, comparables, register export, reference file and room to spare).
MAX_ATTACHMENTS = 10
#: Most valid patents an export may hold for the form (one pledge application): each is a box to tick and a choice in every
#: document and override row, so 56,000 patents made a 119 MB page. A larger export is filtered to the borrower's patents first.
MAX_FORM_PATENTS = 500
SIGN_IN_AS_OFFICER = "需以信贷员身份登录 Sign in as an officer."
SIGN_IN_AS_REVIEWER = "需以复核人身份登录 Sign in as a reviewer."
#: The charts the decision page shows, from the record's report sections (drawn by the report's own code).
PAGE_CHARTS = ("chart-value-chain", "chart-survival", "chart-reasons")
#: A number as an officer types it: digits, thousands separators only in their places (1,000,000), a decimal part; no
#: exponent (1e9999999 is no officer's figure, and dividing it by 100 overflows).
TYPED_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")
#: Longest number the form reads (characters): ¥ 999 trillion with separators and decimals fits.
MAX_TYPED_LENGTH = 40


def typed_number(text, *, percent: bool = False) -> float | None:
    """The number an officer typed (``1,000,000``; ``12.5``; in percent, ``5`` for 0.05), or None
    when the text is not one (an exponent, a separator out of place, longer than
    :data:`MAX_TYPED_LENGTH`): always finite."""
    cleaned = str(text or "").strip()
    if len(cleaned) > MAX_TYPED_LENGTH or not TYPED_NUMBER.fullmatch(cleaned):
        return None
    value = Decimal(cleaned.replace(",", ""))
    return float(value / 100 if percent else value)


@dataclass(frozen=True)
class Problem:
    """One problem of a submission: the form's field (its id, for the anchor) and what to fix, in both languages."""

    field: str
    zh: str
    en: str

    @property
    def label(self) -> tuple[str, str]:
        """The field as the form labels it (a row's field by its section: documents, overrides, ...)."""
        key = re.sub(r"_\d+$", "", self.field)
        for prefix, section in ROW_SECTIONS.items():
            if key.startswith(prefix):
                key = section
        return LABELS.get(key, LABELS.get(re.split(r"[.\[]", self.field)[0], ("申请", "application")))


# --- rendering -------------------------------------------------------------------------------------------


def _rmb(value) -> str:
    try:
        return f"¥{float(value):,.0f}"
    except (TypeError, ValueError):
        return "—"


def _percent(value, digits: int = 1) -> str:
    try:
        return f"{100 * float(value):.{digits}f} %"
    except (TypeError, ValueError):
        return "—"


def _to_decision(service, result: dict) -> RedirectResponse:
    """The officer sent on to the decision page; the report is rendered after the response (off the
    request path; a report asked for before it is there is rendered on demand)."""
    vid = result["valuation_id"]
    later = None if (service.folder(vid) / "report.html").is_file() else BackgroundTask(service.write_report, vid, result)
    return RedirectResponse(f"/ui/valuations/{vid}", status_code=303, background=later)


def _when(value) -> str:
    """A recorded time (UTC) in Beijing time, to the minute."""
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        return stamp.tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(value or "")[:16]


_env.filters.update(rmb=_rmb, percent=_percent, when=_when)
_env.globals.update(decision_zh=lambda d: terms.zh(terms.DECISIONS, d), decision_en=lambda d: terms.en(terms.DECISIONS, d),
                    check_zh=lambda c: terms.zh(terms.CHECKS, c), check_en=lambda c: terms.en(terms.CHECKS, c),
                    type_zh=lambda t: terms.zh(terms.PATENT_TYPES, t), status_zh=lambda s: terms.zh(terms.LEGAL_STATUSES, s),
                    cap_zh=lambda b: terms.zh(terms.CAP_BASIS, b), cap_en=lambda b: terms.en(terms.CAP_BASIS, b), labels=LABELS)


def _public(service) -> PublicMessages:
    """What the page shows of a message: as the JSON API shows it (no server path, no stored upload name, no store URI)."""
    return PublicMessages(service.settings)


def _page(name: str, status: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status)


def _in_role(request: Request, roles: tuple[str, ...], sign_in_as: str):
    """``(who, None)`` when the signed-in user holds one of ``roles``; else ``(None, the sign-in
    page)`` with 401 (not signed in) or 403 (another role)."""
    who = identity_of(request)
    if who is None or who.role not in roles:
        return None, _page("login.html.j2", 401 if who is None else 403, error=sign_in_as, who=who)
    return who, None


# --- sign-in and the queues --------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    return RedirectResponse("/ui", status_code=303)


@router.get("/ui", response_class=HTMLResponse)
def start(request: Request):
    """The user's landing page: an officer's valuations and the forms to start one; a reviewer's queue."""
    who = identity_of(request)
    if who is None:
        return _page("login.html.j2")
    return _queues(request.app.state.service, who)


def _on_chain(service, who, application_id: str | None = None) -> set[str]:
    """The applications (of the user's branch) the user valued or overrode, in any version: the
    service's "mine" rule, the same as the four-eyes rule of a sign-off (审贷分离)."""
    mine = service.valuations(who, mine=True, application_id=application_id, live_only=False, limit=MAX_PAGE)
    return {str(item["application_id"]) for item in mine["items"]}


def _awaiting_sign_off(service, who) -> dict:
    """The reviewer's queue: the latest "review required" valuations the reviewer may sign (not
    those of applications the reviewer valued or overrode)."""
    queue = service.valuations(who, status="review_required", limit=100)
    own = service.valuations(who, status="review_required", mine=True, limit=MAX_PAGE)
    chain = {str(item["application_id"]) for item in own["items"]}
    return {**queue, "items": [item for item in queue["items"] if str(item["application_id"]) not in chain], "total": queue["total"] - own["total"]}


def may_sign(service, who, result: dict) -> bool:
    """Whether ``who`` may sign off the valuation ``result`` (as recorded, with ``live``): a reviewer,
    the latest version, "review required", and not on the application's chain."""
    return (who.role == "reviewer" and result["summary"].get("decision") == "review required" and bool(result.get("live"))
            and str(result.get("application_id")) not in _on_chain(service, who, str(result.get("application_id"))))


def _queues(service, who, status: int = 200, error: str = "", errors=()):
    if who.role not in ("officer", "reviewer"):
        return _page("login.html.j2", 403, who=who, error="此页面供信贷员和复核人使用 This page is for officers and reviewers "
                                                          "(validators use the model reports; admins the users command).")
    if who.role == "reviewer":
        queues = [("awaiting", "待我签批", "Awaiting sign-off", _awaiting_sign_off(service, who)),
                  ("branch", "本网点近期评估", "The branch's recent valuations", service.valuations(who, limit=20))]
    else:
        queues = [("mine", "我的评估", "My valuations", service.valuations(who, mine=True, limit=50)),
                  ("branch", "本网点评估", "The branch's valuations", service.valuations(who, limit=20))]
    return _page("queues.html.j2", status, who=who, queues=queues, error=error, errors=errors)


@router.post("/ui/login")
async def login(request: Request):
    form = await request.form()
    token = str(form.get("token") or "").strip()
    who = authenticate(token, request.app.state.service.settings.audit_db) if token else None
    if who is None:
        return _page("login.html.j2", 401, error="令牌无效 The token is not valid (ask an admin for one).")
    service = request.app.state.service
    session = service.sessions.start(token_digest(token))
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(COOKIE, session, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=int(service.settings.session_hours * 3600), path="/")
    return response


@router.post("/ui/logout")
def logout(request: Request):
    """Sign out: the session ends on the server (a copy of the cookie no longer works)."""
    request.app.state.service.sessions.end(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/ui", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")  # as it was set
    return response


# --- the application form ----------------------------------------------------------------------------------


@router.post("/ui/upload", response_class=HTMLResponse)
async def upload(request: Request):
    """Step 1: the patent export uploaded; the form with its patents to tick."""
    who, refusal = _in_role(request, ("officer",), SIGN_IN_AS_OFFICER)
    if refusal is not None:
        return refusal
    form = await request.form()
    file = form.get("file")
    service = request.app.state.service
    try:
        if file is None or not hasattr(file, "read") or not file.filename:
            raise InputError("请选择专利导出文件 Choose the patent export file to upload.")
        uploaded = await run_in_threadpool(service.upload, file.filename or "", await file.read(), who)
        if uploaded.get("not_a_patent_export"):
            raise InputError("该文件不是专利导出文件（缺少专利号等列） The file is not a patent export (it lacks the patent columns). "
                             "Fix: export the borrower's patents from CNIPA or incoPat as CSV or Excel.")
        _check_form_size(uploaded)
    except InputError as exc:
        public = _public(service)
        return _queues(service, who, 422, error=public.of_upload(public(str(exc)), getattr(file, "filename", "")))
    applicants = [p.get("applicants") or "" for p in uploaded["patents"]]
    borrower = max(set(applicants), key=applicants.count).split(";")[0].strip() if applicants else ""
    entered = {"fields": {"borrower": borrower, "term_years": "1", "revenue_mode": "growth", "upload_id": uploaded["upload_id"],
                          "upload_name": Path(file.filename).name}}
    return _form_page(service, who, uploaded, entered)


def _check_form_size(uploaded: dict) -> None:
    """Refuse an export with more valid patents than one pledge application's form shows (:data:`MAX_FORM_PATENTS`)."""
    count = len(uploaded.get("patents") or [])
    if count > MAX_FORM_PATENTS:
        raise InputError(f"该导出文件含 {count:,} 项有效专利，超过一笔质押申请表单的上限 {MAX_FORM_PATENTS:,} 项。请先在导出中筛选出借款人的专利，"
                         f"或改用申请文件提交。 The export holds {count:,} valid patents, above the {MAX_FORM_PATENTS:,} one pledge application's "
                         "form shows. Fix: filter the export to the borrower's patents, or use an application file.")


def _form_page(service, who, uploaded: dict, entered: dict, *, status: int = 200, problems=(), extra_rows: int = 0):
    fields = entered.get("fields", {})
    documents = entered.get("documents", [])
    per_patent = 3 * len(uploaded.get("patents") or [])  # a fee receipt, a register extract and one more per patent
    rows = min(MAX_DOCUMENT_ROWS, max(MIN_DOCUMENT_ROWS, min(per_patent, 30), len(documents) + 3) + extra_rows)
    documents = documents + [{}] * (rows - len(documents))
    overrides = entered.get("overrides", []) + [{}] * max(0, OVERRIDE_ROWS - len(entered.get("overrides", [])))
    configuration = service.configuration_table()
    failed = {re.sub(r"\.\d+$", "", p.field) for p in problems}
    return _page("application.html.j2", status, who=who, upload=uploaded, f=fields, picked=set(entered.get("ids", [])),
                 pledged=set(entered.get("registered_pledges", [])), documents=documents, overrides=overrides,
                 schedule=entered.get("schedule") or [""] * SCHEDULE_YEARS, financials=entered.get("financials") or [{}] * FINANCIAL_YEARS,
                 errors=problems, failed=failed, configuration=configuration, served=service.model_table(),
                 document_kinds=[(k, *terms.DOCUMENT_KINDS[k]) for k in DOCUMENT_KINDS], tax_choices=TAX_CHOICES, encodings=ENCODINGS,
                 override_fields=[(k, *terms.OVERRIDE_FIELDS[k]) for k in OVERRIDABLE], scheme_labels=_scheme_labels())


def _scheme_labels() -> dict:
    from ipvalue.config import load_yaml

    raw, _ = load_yaml("risk-sharing")
    return {name: str(spec.get("label") or name) for name, spec in raw["schemes"].items()}


@router.post("/ui/valuations", response_class=HTMLResponse)
async def value(request: Request):
    """Step 2: the form submitted. Every problem the page can see is listed at once (with what was
    entered kept); then the service validates and values it (its problems are listed the same way)."""
    who, refusal = _in_role(request, ("officer",), SIGN_IN_AS_OFFICER)
    if refusal is not None:
        return refusal
    form = await request.form()
    service = request.app.state.service
    entered = _entered(form)
    try:
        uploaded = await run_in_threadpool(service.upload_patents, entered["fields"].get("upload_id", ""), who)
    except (NotFound, InputError):
        return _queues(service, who, 422, error="专利导出文件已不可用，请重新上传 The patent export is no longer available: upload it again.")
    uploaded = {"upload_id": entered["fields"]["upload_id"], **uploaded}
    try:
        _check_form_size(uploaded)
    except InputError as exc:
        return _queues(service, who, 422, error=str(exc))
    problems = await _attach_files(form, entered, service, who)
    if form.get("action") == "more_rows":
        return _form_page(service, who, uploaded, entered, problems=problems, extra_rows=5)
    raw, found = application_from_form(entered, [p["patent_id"] for p in uploaded["patents"]])
    problems += found
    if not problems:
        try:
            result = await run_in_threadpool(service.value, raw, who)
        except (InputError, NotFound, Conflict, NotPermitted) as exc:
            problems = service_problems(exc, service)
        else:
            return _to_decision(service, result)
    return _form_page(service, who, uploaded, entered, status=422, problems=problems)


async def _attach_files(form, entered: dict, service, who) -> list[Problem]:
    """The comparables, register and reference files chosen on the form, uploaded to the branch
    (named by content); a file chosen earlier stays (its upload id is a hidden field)."""
    problems = []
    for name in ("comparables", "register", "reference_book"):
        file = form.get(f"{name}_file")
        if file is None or not hasattr(file, "read") or not file.filename:
            continue
        try:
            stored = await run_in_threadpool(service.upload, file.filename, await file.read(), who)
        except InputError as exc:
            public = _public(service)
            problems.append(Problem(f"{name}_file", "文件无法读取，请检查格式（CSV 或 Excel）", _english(public.of_upload(public(str(exc)), file.filename))))
            continue
        entered["fields"][f"{name}_upload"], entered["fields"][f"{name}_name"] = stored["upload_id"], Path(file.filename).name
    return problems


def _entered(form) -> dict:
    """What the officer entered, as text, row by row (kept on the page after an error)."""
    fields = {k: str(form.get(k) or "").strip() for k in (
        "application_id", "borrower", "requested_amount_rmb", "term_years", "purpose", "valuation_date", "revenue_mode", "revenue_base_rmb",
        "revenue_growth", "tax_rate", "tax_rate_other", "wacc", "rd_cost_rmb", "rd_cost_year", "risk_sharing", "assumption_set",
        "pledge_policy", "register_encoding", "upload_id", "upload_name", "comparables_upload", "comparables_name", "register_upload",
        "register_name", "reference_book_upload", "reference_book_name")}
    documents = []
    for i in range(MAX_DOCUMENT_ROWS):
        row = {k: str(form.get(f"doc_{k}_{i}") or "").strip() for k in ("patent_id", "kind", "reference", "co_owner", "paid_until")}
        if any(row[k] for k in ("kind", "reference", "co_owner", "paid_until")):
            documents.append({**row, "row": i})
    overrides = []
    for i in range(OVERRIDE_ROWS):
        row = {k: str(form.get(f"ovr_{k}_{i}") or "").strip() for k in ("patent_id", "field", "value", "reason")}
        if row["value"] or row["reason"]:
            overrides.append({**row, "row": i})
    return {"fields": fields, "ids": [str(i) for i in form.getlist("ids")], "registered_pledges": [str(i) for i in form.getlist("registered_pledges")],
            "documents": documents, "overrides": overrides,
            "schedule": [str(form.get(f"schedule_{t}") or "").strip() for t in range(1, SCHEDULE_YEARS + 1)],
            "financials": [{k: str(form.get(f"fin_{k}_{i}") or "").strip() for k in ("year", "revenue_rmb", "operating_margin")} for i in range(FINANCIAL_YEARS)]}


def application_from_form(entered: dict, patent_ids: list[str]) -> tuple[dict, list[Problem]]:
    """The application (the schema ``ipvalue value`` reads) from what the form holds, and every
    problem the page can name (all of them, each with the field as the form labels it).

    Rates are typed in percent on the form (5 for 5 %) and become fractions here; amounts may
    carry thousands separators (``1,000,000``); dates come from date inputs (YYYY-MM-DD).
    """
    f, problems = entered["fields"], []

    def number(name, text, domain=None, *, percent=False, required=False):
        domain = domain or NUMBERS[name][0]
        if not text:
            if required:
                problems.append(Problem(name, "必填", "required"))
            return None
        value = typed_number(text, percent=percent)
        if value is None:
            problems.append(Problem(name, f"“{text[:30]}”不是数字；请填写如 1,000,000 或 12.5", f"{text[:30]!r} is not a number; type e.g. 1,000,000 or 12.5"))
            return None
        try:
            return check_number(domain, value)
        except DomainError:
            zh, en = _range(domain, percent)
            problems.append(Problem(name, f"须{zh}；收到 {text}", f"must be {en}; got {text}"))
            return None

    def date(name, text, required=False):
        if not text:
            if required:
                problems.append(Problem(name, "必填", "required"))
            return None
        try:
            check_date(name, text)
        except DomainError:
            problems.append(Problem(name, f"须为 1985-04-01 至 2100-12-31 之间的日期（年-月-日）；收到 {text[:20]}",
                                    f"must be a date between 1985-04-01 and 2100-12-31 (YYYY-MM-DD); got {text[:20]}"))
            return None
        return text

    raw: dict = {}
    for name in ("application_id", "borrower"):
        if not f.get(name):
            problems.append(Problem(name, "必填", "required"))
        raw[name] = f.get(name, "")
    if f.get("application_id") and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", f["application_id"]):
        problems.append(Problem("application_id", "只能使用字母、数字和 . _ -（最多 64 位）", "letters, digits, '.', '_' and '-' only (up to 64)"))
    raw["requested_amount_rmb"] = number("requested_amount_rmb", f.get("requested_amount_rmb"), required=True)
    raw["term_years"] = number("term_years", f.get("term_years"), required=True)
    raw["purpose"] = f.get("purpose", "")
    raw["valuation_date"] = date("valuation_date", f.get("valuation_date"), required=True)
    ids = [i for i in entered.get("ids", []) if i in set(patent_ids)]
    if not ids:
        problems.append(Problem("ids", "请至少勾选一项专利", "tick at least one patent"))
    raw["patents"] = {"file": f.get("upload_id", ""), "ids": ids}

    if f.get("revenue_mode") == "schedule":
        rows = []
        for t, text in enumerate(entered.get("schedule", []), start=1):
            if text:
                value = number(f"schedule_{t}", text, "revenue_rmb")
                if value is not None:
                    rows.append({"year": t, "revenue_rmb": value})
        if not any(entered.get("schedule", [])):
            problems.append(Problem("schedule_1", "选择逐年预测时，请至少填写第 1 年收入", "with a yearly schedule, give at least year 1's revenue"))
        raw["revenue_forecast"] = {"schedule": rows}
    else:
        base = number("revenue_base_rmb", f.get("revenue_base_rmb"), required=True)
        growth = number("revenue_growth", f.get("revenue_growth"), percent=True)
        raw["revenue_forecast"] = {"base_rmb": base, **({"growth": growth} if growth is not None else {})}

    statements = []
    for i, row in enumerate(entered.get("financials", [])):
        if not any(row.values()):
            continue
        year = number(f"fin_year_{i}", row.get("year"), "rd_cost_year", required=True)
        revenue = number(f"fin_revenue_rmb_{i}", row.get("revenue_rmb"), "revenue_rmb", required=True)
        margin = _margin(f"fin_operating_margin_{i}", row.get("operating_margin"), problems)
        if None not in (year, revenue, margin):
            statements.append({"year": int(year), "revenue_rmb": revenue, "operating_margin": margin})
    if statements:
        raw["financials"] = statements

    if f.get("tax_rate") == "other":
        raw["tax_rate"] = number("tax_rate_other", f.get("tax_rate_other"), percent=True, required=True)
    elif f.get("tax_rate") in ("0.25", "0.15"):
        raw["tax_rate"] = float(f["tax_rate"])
    elif f.get("tax_rate"):  # only the choice list's values reach here from the page
        problems.append(Problem("tax_rate", "请从列表中选择税率", f"choose a rate from the list; got {str(f['tax_rate'])[:20]!r}"))
    wacc = number("wacc", f.get("wacc"), percent=True)
    if wacc is not None:
        raw["wacc"] = wacc
    cost, year = number("rd_cost_rmb", f.get("rd_cost_rmb")), number("rd_cost_year", f.get("rd_cost_year"))
    if (cost is None) != (year is None) and not any(p.field in ("rd_cost_rmb", "rd_cost_year") for p in problems):
        missing = "rd_cost_year" if year is None else "rd_cost_rmb"
        problems.append(Problem(missing, "填写研发成本时，金额和年度都要填写", "give both the R&D cost and its year"))
    if cost is not None and year is not None:
        raw["rd_cost"] = {"rmb": cost, "year": int(year)}

    if f.get("comparables_upload"):
        raw["comparables"] = f["comparables_upload"]
    if f.get("register_upload"):
        raw["register"] = {"file": f["register_upload"], **({"encoding": f["register_encoding"]} if f.get("register_encoding") else {})}
    if f.get("reference_book_upload"):
        raw["reference_book"] = f["reference_book_upload"]

    documents = []
    for d in entered.get("documents", []):
        i, kind = d["row"], d.get("kind")
        if kind not in DOCUMENT_KINDS:
            problems.append(Problem(f"doc_kind_{i}", f"第 {i + 1} 行：请选择材料类型", f"row {i + 1}: choose the kind of document"))
            continue
        if d.get("patent_id") not in ids:
            problems.append(Problem(f"doc_patent_id_{i}", f"第 {i + 1} 行：所选专利未勾选为质押专利", f"row {i + 1}: the patent is not ticked for the pledge"))
        if not d.get("reference"):
            problems.append(Problem(f"doc_reference_{i}", f"第 {i + 1} 行：请填写材料编号", f"row {i + 1}: give the document's reference"))
        entry = {"patent_id": d.get("patent_id"), "kind": kind, "reference": d.get("reference")}
        if DOCUMENT_KINDS[kind] == "co_owner":
            if not d.get("co_owner"):
                problems.append(Problem(f"doc_co_owner_{i}", f"第 {i + 1} 行：共有人同意书须填写共有人", f"row {i + 1}: a co-owner's consent names the co-owner"))
            entry["co_owner"] = d.get("co_owner")
        if DOCUMENT_KINDS[kind] == "paid_until":
            if not d.get("paid_until"):
                problems.append(Problem(f"doc_paid_until_{i}", f"第 {i + 1} 行：年费预缴凭证须填写年费缴至日期",
                                        f"row {i + 1}: a fee prepayment receipt gives the date the fees are paid until"))
            entry["paid_until"] = date(f"doc_paid_until_{i}", d.get("paid_until"))
        documents.append(entry)
    if documents:
        raw["documents"] = documents

    overrides = []
    for o in entered.get("overrides", []):
        i = o["row"]
        if o.get("field") not in OVERRIDABLE:
            problems.append(Problem(f"ovr_field_{i}", f"第 {i + 1} 行：请选择调整项目", f"row {i + 1}: choose the field to override"))
            continue
        if o.get("patent_id") not in ids:
            problems.append(Problem(f"ovr_patent_id_{i}", f"第 {i + 1} 行：所选专利未勾选为质押专利", f"row {i + 1}: the patent is not ticked for the pledge"))
        percent = o["field"] == "sharing_rate"
        value = number(f"ovr_value_{i}", o.get("value"), o["field"], percent=percent, required=True)
        if not o.get("reason"):
            problems.append(Problem(f"ovr_reason_{i}", f"第 {i + 1} 行：人工调整须填写理由", f"row {i + 1}: every override needs a written reason"))
        overrides.append({"patent_id": o.get("patent_id"), "field": o["field"], "value": value, "reason": o.get("reason")})
    if overrides:
        raw["overrides"] = overrides
    pledged = [i for i in entered.get("registered_pledges", []) if i in set(patent_ids)]
    if pledged:
        raw["registered_pledges"] = pledged
    for name in ("risk_sharing", "assumption_set", "pledge_policy"):
        if f.get(name):
            raw[name] = f[name]
    return raw, problems


def _margin(name: str, text: str, problems: list) -> float | None:
    """An operating margin typed in percent (-100 % to 100 %)."""
    if not text:
        problems.append(Problem(name, "必填", "required"))
        return None
    value = typed_number(text, percent=True)
    if value is None:
        problems.append(Problem(name, f"“{text[:30]}”不是数字", f"{text[:30]!r} is not a number"))
        return None
    if not -1 <= value <= 1:
        problems.append(Problem(name, f"须在 -100 % 至 100 % 之间；收到 {text}", f"must be between -100 % and 100 %; got {text}"))
        return None
    return value


def _range(domain: str, percent: bool) -> tuple[str, str]:
    """A domain's interval as the officer reads it (``在 0 % 至 25 % 之间``)."""
    d = domains()[domain]
    low, high = d.interval.low, d.interval.high
    scale = 100 if percent else 1

    def shown(x):
        return f"{x * scale:,.10g}" + (" %" if percent else "")

    zh_low = "大于" if d.interval.closed in ("right", "neither") else "不小于"
    zh_high = "小于" if d.interval.closed in ("left", "neither") else "不大于"
    en_low = "above" if d.interval.closed in ("right", "neither") else "at least"
    en_high = "below" if d.interval.closed in ("left", "neither") else "at most"
    parts_zh = [p for p in ((f"{zh_low} {shown(low)}" if low is not None else ""), (f"{zh_high} {shown(high)}" if high is not None else "")) if p]
    parts_en = [p for p in ((f"{en_low} {shown(low)}" if low is not None else ""), (f"{en_high} {shown(high)}" if high is not None else "")) if p]
    whole_zh, whole_en = ("的整数", " and whole") if d.whole else ("", "")
    return "、".join(parts_zh) + whole_zh, " and ".join(parts_en) + whole_en


#: The service's messages' recurring phrases, in Chinese (the English message is shown beside).
_SERVICE_ZH = (("not uploaded", "引用的文件未上传"), ("already", "申请编号已被使用，请换一个编号"), ("Idempotency", "重复提交"), ("is not one of", "文件格式不支持"),
               ("not in", "所列专利不在文件中"), ("invalid", "内容无效"), ("missing", "缺少此项"), ("must be one of", "不在银行配置允许的范围内"),
               ("exposure", "借款人敞口无法核对"), ("does not exist", "引用的文件未上传"))


def service_problems(exc: Exception, service) -> list[Problem]:
    """The service's refusal as the page's problems: each field named as the form labels it, the
    message as the JSON API gives it (:class:`~ipvalue.service.messages.PublicMessages`)."""
    entries = exc.problems if isinstance(exc, ApplicationFieldsError) else [{"field": _field_of(str(exc)), "message": str(exc), "fix": ""}]
    public, out = _public(service), []
    for p in entries:
        message = public(str(p["message"]) + (f" Fix: {p['fix']}." if p.get("fix") else ""))
        zh = next((z for key, z in _SERVICE_ZH if key in message), "此项有误，见右侧说明")
        out.append(Problem(p.get("field") or "application", zh, _english(message)))
    return out


def _field_of(message: str) -> str:
    found = re.search(r"The '([A-Za-z_][\w.\[\]]*)'", message) or re.search(r"\b(overrides|documents|patents)\[", message)
    return found.group(1) if found else "application"


def _english(exc) -> str:
    """A message for the page: the internal field names replaced by the form's English labels."""
    text = str(exc)
    for key, (_, en) in sorted(LABELS.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(f"'{key}'", f"'{en}'")  # a quoted field name (the project's messages quote them)
        if "_" in key:  # an identifier-like name unquoted (requested_amount_rmb): never a plain word
            text = re.sub(rf"\b{re.escape(key)}\b", en, text)
    return text


# --- an application file -----------------------------------------------------------------------------------


@router.post("/ui/application-file", response_class=HTMLResponse)
async def application_file(request: Request):
    """An application file (YAML / JSON, the schema ``ipvalue value`` reads) with the files it
    names (the patent export, comparables, register export, reference book), valued as one."""
    who, refusal = _in_role(request, ("officer",), SIGN_IN_AS_OFFICER)
    if refusal is not None:
        return refusal
    form = await request.form()
    service = request.app.state.service
    kept: list[Path] = []
    try:
        raw = _read_application(form.get("application"))
        problems = field_type_problems(raw, "application file")
        if problems:
            raise ApplicationFieldsError("The application file is invalid.", problems)
        attachments = _named_attachments(raw, [f for f in form.getlist("attachments") if hasattr(f, "read") and f.filename])
        names = await _upload_attachments(attachments, service, who, kept)
        raw = _named_files_as_uploads(raw, names)
        result = await run_in_threadpool(service.value, raw, who)
    except (InputError, NotFound, Conflict, NotPermitted) as exc:
        for path in kept:  # a refused request keeps none of the files it brought
            path.unlink(missing_ok=True)
        return _queues(service, who, 422, errors=service_problems(exc, service))
    return _to_decision(service, result)


def _file_names(raw: dict) -> list[str]:
    """The files an application names (the patent export, comparables, reference book, register export), by base name."""
    named = [raw["patents"].get("file") if isinstance(raw.get("patents"), dict) else None, raw.get("comparables"), raw.get("reference_book"),
             raw["register"].get("file") if isinstance(raw.get("register"), dict) else None]
    return [Path(n).name for n in named if isinstance(n, str) and n]


def _named_attachments(raw: dict, files: list) -> list:
    """The attached files the application names: at most :data:`MAX_ATTACHMENTS`, none it does not name."""
    if len(files) > MAX_ATTACHMENTS:
        raise InputError(f"附件过多 The 'application_file' comes with {len(files)} attached files, above the {MAX_ATTACHMENTS} accepted. "
                         "Fix: attach only the files the application names (the patent export, comparables, register export, reference file).")
    named = set(_file_names(raw))
    extra = sorted({Path(f.filename).name for f in files} - named)
    if extra:
        shown = ", ".join(repr(n[:80]) for n in extra[:MAX_ATTACHMENTS])
        raise InputError(f"附件未被申请文件引用 The 'application_file' does not name the attached file(s) {shown}. "
                         "Fix: attach only the files the application names, or name them in the application.")
    return files


def _read_application(file) -> dict:
    from ipvalue.config import parse_yaml
    from ipvalue.lending.application import MAX_APPLICATION_BYTES

    if file is None or not hasattr(file, "read") or not file.filename:
        raise InputError("The 'application_file' is missing. Fix: choose the application file (.yaml, .yml or .json).")
    name = Path(file.filename).name
    text = file.file.read(MAX_APPLICATION_BYTES + 1)
    if len(text) > MAX_APPLICATION_BYTES:
        raise InputError(f"The 'application_file' {name!r} is above {MAX_APPLICATION_BYTES:,} bytes. Fix: give the patents as a file beside it.")
    if name.lower().endswith(".json"):
        def no_constant(constant):
            raise InputError(f"The 'application_file' {name!r} contains {constant}, which is not a number in JSON. Fix: give a finite number.")

        try:
            raw = json.loads(text, object_pairs_hook=duplicate_key_hook(), parse_constant=no_constant)
        except (ValueError, RecursionError) as exc:  # malformed, not UTF-8, an integer beyond Python's digit limit, nested too deep
            if isinstance(exc, InputError):
                raise
            reason = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
            raise InputError(f"The 'application_file' {name!r} is not valid JSON ({reason}). Fix: check the file.") from None
    elif name.lower().endswith((".yaml", ".yml")):
        try:
            raw = parse_yaml(text, where=f"application file {name}")
            raw = json.loads(json.dumps(raw, default=str))  # an unquoted YAML date (2026-06-30) as the text written, as 'ipvalue value' reads it
        except InputError:
            raise
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise InputError(f"The 'application_file' {name!r} is not valid YAML ({reason}). Fix: check the file.") from None
    else:
        raise InputError(f"The 'application_file' {name!r} is not YAML or JSON. Fix: choose the .yaml, .yml or .json file 'ipvalue value' reads.")
    if not isinstance(raw, dict):
        raise InputError(f"The 'application_file' {name!r} must hold a mapping of fields.")
    return raw


async def _upload_attachments(files, service, who, kept: list[Path]) -> dict:
    """The attachments uploaded to the branch: their upload ids by file name; the uploads this
    request added (none of the branch's earlier uploads) are appended to ``kept``."""
    names, folder = {}, service.uploads(who)
    before = {p.name for p in folder.iterdir()}
    for file in files:
        if hasattr(file, "read") and file.filename:
            try:
                stored = await run_in_threadpool(service.upload, file.filename, await file.read(), who)
            except InputError as exc:
                public = _public(service)
                raise InputError(public.of_upload(public(str(exc)), file.filename)) from None
            if stored["upload_id"] not in before:
                before.add(stored["upload_id"])
                kept.append(folder / stored["upload_id"])
            names[Path(file.filename).name] = stored["upload_id"]
    return names


def _named_files_as_uploads(raw: dict, names: dict) -> dict:
    """The file names an application gives (beside it, for the CLI) as the uploads of those files."""
    raw = dict(raw)

    def upload_of(field_name, name):
        if not isinstance(name, str):
            return name  # the application check names the wrong type
        found = names.get(Path(name).name)
        if found is None:
            raise InputError(f"The '{field_name}' names the file {Path(name).name!r}, which was not uploaded with the application. "
                             "Fix: choose it among the attached files.")
        return found

    if isinstance(raw.get("patents"), dict) and raw["patents"].get("file"):
        raw["patents"] = {**raw["patents"], "file": upload_of("patents", raw["patents"]["file"])}
    for name in ("comparables", "reference_book"):
        if raw.get(name):
            raw[name] = upload_of(name, raw[name])
    if isinstance(raw.get("register"), dict) and raw["register"].get("file"):
        raw["register"] = {**raw["register"], "file": upload_of("register", raw["register"]["file"])}
    return raw


# --- the decision page ---------------------------------------------------------------------------------------


@router.get("/ui/valuations/{valuation_id}", response_class=HTMLResponse)
def show(valuation_id: str, request: Request):
    who, refusal = _in_role(request, ("officer", "reviewer"), "请登录 Sign in.")
    if refusal is not None:
        return refusal
    return _decision(request.app.state.service, valuation_id, who)


def _decision(service, valuation_id: str, who, status: int = 200, problems=()):
    try:
        result = service.get(valuation_id, who)
    except (NotFound, NotPermitted):
        return _queues(service, who, 404, error="未找到该评估（或不属于本网点） No such valuation in your branch.")
    charts = _charts(service, valuation_id, result)
    s = result["summary"]
    summary = next((sec for sec in (result.get("report") or {}).get("sections", []) if sec.get("id") == "summary"), {})
    disagree = [p for p in result.get("patents", []) if p.get("disagreement_methods") and p.get("review_required")]
    return _page("valuation.html.j2", status, who=who, r=result, s=s, charts=charts, may_sign=may_sign(service, who, result), errors=problems,
                 conclusion=summary.get("paragraphs", []), disagree=disagree, chain=_chain(s),
                 override_fields=[(k, *terms.OVERRIDE_FIELDS[k]) for k in OVERRIDABLE],
                 failed=[c for c in result.get("checks", []) if not c.get("passed")])


def _chain(s: dict) -> list[tuple]:
    q = round(100 * float(s.get("disposal_quantile") or 0.1))
    return [("value_in_use", "在用价值", "value in use", s.get("value_in_use_rmb"), "收益法，借款人自用", "income approach, the borrower's use"),
            ("market_value", "市场价值", "market value", s.get("market_value_rmb"), "市场参与者口径", "for a market participant"),
            ("collateral_value", "抵质押价值", "collateral value", s.get("collateral_value_rmb"), f"处置视角第 {q} 百分位", f"disposal view, P{q}"),
            ("pledge_value", "质押率上限", "pledge-rate limit", s.get("pledge_value_rmb"), "市场价值 × 质押率", "market value × pledge rate"),
            ("cap", "可贷上限", "loan cap", s.get("loan_cap_rmb"), "取较低者", "the lower of the two"),
            ("request", "申请金额", "requested", s.get("requested_amount_rmb"), "", "")]


_CHART_CACHE: OrderedDict = OrderedDict()


def _charts(service, valuation_id: str, result: dict) -> list[dict]:
    """The page's charts from the record's report sections, drawn by the report's own code (a
    recorded valuation never changes, so each is drawn once per process)."""
    if valuation_id in _CHART_CACHE:
        _CHART_CACHE.move_to_end(valuation_id)
        return _CHART_CACHE[valuation_id]
    from ipvalue.report.figures import draw_chart

    found = {c["id"]: c for sec in (result.get("report") or {}).get("sections", []) for c in sec.get("charts", [])}
    with service.drawing:
        charts = [{"id": cid, "title_zh": found[cid]["title_zh"], "title_en": found[cid]["title_en"], "uri": draw_chart(found[cid])}
                  for cid in PAGE_CHARTS if cid in found]
    _CHART_CACHE[valuation_id] = charts
    while len(_CHART_CACHE) > 64:
        _CHART_CACHE.popitem(last=False)
    return charts


async def _act(request: Request, valuation_id: str, role: str, sign_in_as: str, act):
    """A signed-in ``role`` acts on a valuation from the page's form (``act(service, form, who)``
    returns the superseding valuation), then sees it; a refusal is listed on the page."""
    who, refusal = _in_role(request, (role,), sign_in_as)
    if refusal is not None:
        return refusal
    form = await request.form()
    service = request.app.state.service
    try:
        result = await run_in_threadpool(act, service, form, who)
    except (InputError, Conflict, NotFound, NotPermitted) as exc:
        return await run_in_threadpool(_decision, service, valuation_id, who, 422, service_problems(exc, service))
    return _to_decision(service, result)


@router.post("/ui/valuations/{valuation_id}/overrides", response_class=HTMLResponse)
async def override(valuation_id: str, request: Request):
    def act(service, form, who):
        field = form.get("field")
        text = str(form.get("value") or "").strip()
        value = _number(text, percent=field == "sharing_rate")  # a sharing rate typed in percent, as on the application form
        if isinstance(value, str):
            raise InputError(f"人工调整值不是数字 The 'value' {text[:30]!r} is not a number. Fix: type e.g. 1,000,000 or 12.5 (no exponent).")
        change = {"patent_id": form.get("patent_id"), "field": field, "value": value, "reason": str(form.get("reason") or "").strip()}
        if not change["reason"]:
            raise InputError("人工调整须填写理由 The 'reason' is missing. Fix: every manual override needs a written reason.")
        return service.override(valuation_id, change, who)

    return await _act(request, valuation_id, "officer", SIGN_IN_AS_OFFICER, act)


@router.post("/ui/valuations/{valuation_id}/sign-off", response_class=HTMLResponse)
async def sign_off(valuation_id: str, request: Request):
    return await _act(request, valuation_id, "reviewer", SIGN_IN_AS_REVIEWER,
                      lambda service, form, who: service.sign_off(valuation_id, str(form.get("reason") or ""), who))


def _number(text, *, percent: bool = False):
    """A form field as a number when it reads as one (:func:`typed_number`): ``1,000,000`` is a
    million, ``1,0,0`` or ``1e9999999`` is not a number (it stays text, refused by name)."""
    if text is None or str(text).strip() == "":
        return None
    value = typed_number(text, percent=percent)
    return str(text).strip() if value is None else value
