"""A pledge-loan application (YAML or JSON; schema in the README) and the officers' overrides in it.

An application is untrusted input. What it may do is bounded here:

* numbers are checked against their documented domains (:mod:`ipvalue.domains`): finite, in
  range, booleans are not numbers; the YAML is parsed by :func:`ipvalue.config.parse_yaml`
  (duplicate keys, alias bombs, Python tags and oversized files refused);
* every file it names (``patents.file``, ``reference_book``, ``comparables``, ``register.file``)
  resolves inside the application's folder;
* assumption sets and the pledge policy are named, never given as paths: they come from the
  package or the bank's configuration folder (``$IPVALUE_CONFIG_DIR``), so an application cannot
  bring its own limits;
* models are named by registry URI only (:mod:`ipvalue.registry`);
* ids and names are compared after :mod:`ipvalue.names` normalisation (全角/半角, spaces, case).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ipvalue.config import parse_yaml
from ipvalue.domains import check_date, check_number
from ipvalue.exceptions import ApplicationError, DomainError, OverrideError
from ipvalue.frame import check_unicode_tree, frame_from_records, validate_patent_frame
from ipvalue.io import read_patents
from ipvalue.io.register import RegisterEvents, read_register
from ipvalue.lending.policy import risk_sharing_schemes
from ipvalue.names import normalise_id, normalise_text

OVERRIDABLE = ("sharing_rate", "economic_life_years", "internal_value_rmb")
#: A configuration name (an assumption set, a policy, a scheme): letters, digits and hyphens, no path.
CONFIG_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
#: An application id as it may appear in a file name.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Kinds of supporting document an application may reference (``documents``), and the extra field
#: each needs: a co-owner's consent to the pledge (专利法 第14条) names the co-owner; a fee
#: prepayment receipt gives the date the fees are paid until.
DOCUMENT_KINDS = {"co_owner_consent": "co_owner", "evaluation_report": None, "licence_contract": None, "fee_prepayment": "paid_until",
                  "invalidation_outcome": None, "register_extract": None}
#: Largest application file read (bytes): applications are a few kB; patents come as a file.
MAX_APPLICATION_BYTES = 1_000_000

#: The application's fields: JSON type and meaning. :meth:`LoanApplication.from_dict` refuses any
#: other key, and the service's OpenAPI request schema is built from this table (one source).
APPLICATION_FIELDS = {
    "application_id": ("string", True, "Application id: letters, digits, '.', '_', '-' (names the report files)."),
    "borrower": ("string", True, "Borrower's name, as in the patents' owner field (申请人/专利权人)."),
    "requested_amount_rmb": ("number", True, "Loan amount requested, RMB."),
    "term_years": ("number", True, "Loan term, years."),
    "purpose": ("string", False, "Purpose of the loan."),
    "valuation_date": ("string", True, "Valuation date, YYYY-MM-DD."),
    "patents": ("object", True, "The pledged patents: 'records' (a list of PatentFrame records) or 'file' (an export beside the application; "
                                "for the service, an upload id) with optional 'ids'."),
    "revenue_forecast": ("object", False, "Revenue of the product using the patents: 'base_rmb' (RMB/year) and 'growth' (fraction/year), or a "
                                          "'schedule' of {year, revenue_rmb}."),
    "assumption_set": ("string", False, "Name of the income-approach assumption set (default cn-pledge-2025)."),
    "pledge_policy": ("string", False, "Name of the bank's pledge policy (default pledge-policy-cn)."),
    "risk_sharing": ("string", False, "Name of the risk-sharing scheme (default none)."),
    "models": ("object", False, "Registered models by kind: {renewal: models:/NAME@ALIAS, value: models:/NAME@ALIAS}."),
    "registered_pledges": ("array", False, "Ids of patents with an active pledge registration."),
    "reference_book": ("string", False, "Optional patent file for cohort references (beside the application)."),
    "financials": ("array", False, "Borrower's statements, up to 3 years of {year, revenue_rmb, operating_margin}."),
    "tax_rate": ("number", False, "Borrower's income-tax rate (0.25, or 0.15 for a 高新技术企业)."),
    "wacc": ("number", False, "Borrower's weighted average cost of capital (fraction); default: the bank's set (wacc-cn)."),
    "comparables": ("string", False, "The bank's comparable-transactions file (beside the application)."),
    "rd_cost": ("object", False, "The product's R&D cost for the cost approach: {rmb, year}."),
    "documents": ("array", False, "Supporting documents: {patent_id, kind (" + ", ".join(sorted(DOCUMENT_KINDS)) + "), reference, co_owner or paid_until}."),
    "register": ("object", False, "The CNIPA legal-status event export: {file (beside the application), encoding}."),
    "overrides": ("array", False, "Officers' overrides: {patent_id, field (" + ", ".join(OVERRIDABLE) + "), value, reason, officer}."),
}


#: Python types a JSON type of :data:`APPLICATION_FIELDS` accepts (a bool is not a number).
JSON_TYPES = {"string": (str,), "number": (int, float), "object": (dict,), "array": (list,)}
_TYPE_NAMES = {"string": "a text", "number": "a number", "object": "a mapping of fields", "array": "a list"}
#: Why an application has no 'review' field any more (a sign-off is its own act).
REVIEW_IS_AN_ACT = ("a sign-off is a separate act by an authenticated reviewer, never a field the preparer writes: "
                    "'ipvalue review sign-off VALUATION_ID --application FILE --reason TEXT', or POST /v1/valuations/{id}/sign-off")


class ApplicationFieldsError(ApplicationError):
    """Several fields of an application are invalid; ``problems`` lists each one as
    ``{field, message, fix}`` (a service answers them all at once)."""

    def __init__(self, message: str, problems: list[dict]):
        super().__init__(message)
        self.problems = problems


def field_type_problems(raw: dict, where: str = "application") -> list[dict]:
    """Every top-level field whose JSON type is not the one :data:`APPLICATION_FIELDS` gives
    (``{"borrower": {...}}``, ``{"requested_amount_rmb": "1,0,0"}``, a boolean amount), and every
    unknown field, as ``{field, message, fix}``: all of them, not the first only."""
    problems = []
    for name, value in raw.items():
        if name == "review":
            problems.append({"field": "review", "message": f"The 'review' of {where} is not part of an application.",
                             "fix": f"remove it: {REVIEW_IS_AN_ACT}"})
            continue
        if name not in APPLICATION_FIELDS:
            problems.append({"field": str(name), "message": f"The {where} has an unknown field {str(name)!r}.",
                             "fix": f"use the fields of the application schema ({', '.join(APPLICATION_FIELDS)}); check the spelling"})
            continue
        kind = APPLICATION_FIELDS[name][0]
        if value is not None and (isinstance(value, bool) or not isinstance(value, JSON_TYPES[kind])):
            shown = type(value).__name__ if isinstance(value, (dict, list)) else repr(value)[:40]
            fix = ("write the number without quotes or separators, e.g. 1000000" if kind == "number" else f"give {_TYPE_NAMES[kind]}")
            problems.append({"field": name, "message": f"The '{name}' of {where} must be {_TYPE_NAMES[kind]} ({kind}). Got {shown}.", "fix": fix})
    return problems


def _dates_as_text(value):
    """YAML reads an unquoted ``2026-06-30`` as a date: give it back as the text the officer wrote
    (the schema's dates are ``YYYY-MM-DD`` texts; JSON has no date type)."""
    if isinstance(value, dict):
        return {k: _dates_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(v) for v in value]
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Override:
    """An officer's manual change: stored beside the model value, never replacing it."""

    patent_id: str
    field: str
    value: float
    reason: str
    officer: str

    @classmethod
    def from_dict(cls, d: dict, where: str = "override") -> "Override":
        if not str(d.get("reason") or "").strip():
            raise OverrideError(f"The {where} of {d.get('field')!r} on patent {d.get('patent_id')!r} has no 'reason'. Fix: every manual override needs a written reason.")
        if not str(d.get("officer") or "").strip():
            raise OverrideError(f"The {where} of {d.get('field')!r} on patent {d.get('patent_id')!r} has no 'officer'. Fix: name the officer making it.")
        if not isinstance(d.get("field"), str) or d.get("field") not in OVERRIDABLE:
            raise OverrideError(f"The 'field' of {where} must be one of {list(OVERRIDABLE)}. Got {d.get('field')!r}.")
        if not str(d.get("patent_id") or "").strip():
            raise OverrideError(f"The {where} has no 'patent_id'. Fix: name the patent the override applies to.")
        try:
            value = check_number(d["field"], d.get("value"), where=where)
        except DomainError as exc:
            raise OverrideError(str(exc)) from None
        return cls(normalise_id(str(d["patent_id"])), d["field"], value, str(d["reason"]).strip(), str(d["officer"]).strip())


@dataclass(frozen=True)
class Document:
    """A supporting document the application references (the bank keeps the paper): a co-owner's
    consent, a 专利权评价报告, a licence contract, a fee prepayment receipt."""

    patent_id: str
    kind: str
    reference: str
    co_owner: str = ""
    paid_until: pd.Timestamp | None = None

    @classmethod
    def from_dict(cls, d: dict, where: str = "document") -> "Document":
        if not isinstance(d, dict):
            raise ApplicationError(f"The {where} must be a mapping (patent_id, kind, reference). Got {type(d).__name__}.")
        kind = d.get("kind")
        if not isinstance(kind, str) or kind not in DOCUMENT_KINDS:
            raise ApplicationError(f"The 'kind' of {where} must be one of {list(DOCUMENT_KINDS)}. Got {kind!r}.")
        pid = normalise_id(str(d.get("patent_id") or ""))
        if not pid:
            raise ApplicationError(f"The {where} has no 'patent_id'. Fix: name the patent the document is about.")
        reference = _text(d.get("reference") or "")
        if not reference:
            raise ApplicationError(f"The {where} ({kind} of {pid}) has no 'reference'. Fix: give the document's number or file reference.")
        extra = DOCUMENT_KINDS[kind]
        co_owner, paid_until = "", None
        if extra == "co_owner":
            co_owner = _text(d.get("co_owner") or "")
            if not co_owner:
                raise ApplicationError(f"The {where} (co_owner_consent of {pid}) has no 'co_owner'. Fix: name the co-owner who consented.")
        if extra == "paid_until":
            paid_until = iso_date(d.get("paid_until"))
            if paid_until is None:
                raise ApplicationError(f"The 'paid_until' of {where} (fee_prepayment of {pid}) must be a date written YYYY-MM-DD. Got {d.get('paid_until')!r}.")
        return cls(pid, kind, reference, co_owner, paid_until)


@dataclass
class LoanApplication:
    """A pledge-loan application (schema in the README; ``examples`` in the tests).

    Fields: ``application_id``, ``borrower`` (name, as in the patents' owner field),
    ``requested_amount_rmb``, ``term_years``, ``purpose``, ``valuation_date``, ``patents`` (a
    PatentFrame: from ``records`` or from a ``file`` filtered by ``ids``), ``revenue_forecast``
    (``base_rmb`` + ``growth``, or a yearly ``schedule``), ``assumption_set``, ``pledge_policy``,
    ``risk_sharing`` (scheme name), ``models`` (model URIs), ``registered_pledges`` (ids with an
    active pledge registration), ``reference_book`` (optional file for cohort references),
    ``financials`` (the borrower's statements: up to 3 years of ``revenue_rmb`` and
    ``operating_margin``), ``tax_rate`` (the borrower's income-tax rate: 0.25, or 0.15 for a
    高新技术企业), ``comparables`` (the bank's comparable-transactions file), ``rd_cost`` (the
    product's R&D cost: ``rmb`` and ``year``, for the cost approach), ``overrides``.

    ``review`` is not read from the application: it is set by :func:`ipvalue.workflow.sign_off`
    (an authenticated reviewer's act, bound to the figures it approved: ``reviewer``, ``reason``,
    ``signed_valuation_id``, ``figures_hash``).
    """

    application_id: str
    borrower: str
    requested_amount_rmb: float
    term_years: float
    purpose: str
    valuation_date: pd.Timestamp
    patents: pd.DataFrame
    schedule: pd.DataFrame | None = None
    assumption_set: str = "cn-pledge-2025"
    pledge_policy: str = "pledge-policy-cn"
    risk_sharing: str = "none"
    models: dict = field(default_factory=dict)
    registered_pledges: tuple[str, ...] = ()
    reference_book: pd.DataFrame | None = None
    overrides: tuple[Override, ...] = ()
    financials: pd.DataFrame | None = None
    tax_rate: float | None = None
    wacc: float | None = None
    comparables: pd.DataFrame | Path | None = None
    rd_cost: dict | None = None
    review: dict | None = None
    documents: tuple[Document, ...] = ()
    register: RegisterEvents | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path, *, configuration=None, officer: str | None = None) -> "LoanApplication":
        """Read an application file (YAML or JSON); the files it names resolve inside its folder;
        ``configuration`` as :meth:`from_dict` takes it."""
        path = Path(path)
        if not path.is_file():
            raise ApplicationError(f"Application file {str(path)!r} does not exist. Fix: check the path.")
        if path.stat().st_size > MAX_APPLICATION_BYTES:
            raise ApplicationError(f"Application file {path} is {path.stat().st_size:,} bytes, above the {MAX_APPLICATION_BYTES:,} accepted. "
                                   "Fix: give the patents as a file (patents.file), not inline.")
        text = path.read_bytes()
        if path.suffix.lower() == ".json":
            try:
                raw = json.loads(text, object_pairs_hook=duplicate_key_hook())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ApplicationError(f"Application file {path} is not valid JSON: {exc}") from exc
        else:
            try:
                raw = _dates_as_text(parse_yaml(text, where=f"application file {path}"))
            except ValueError as exc:
                raise ApplicationError(str(exc)) from exc
        return cls.from_dict(raw, base_dir=path.parent, configuration=configuration, officer=officer)

    @classmethod
    def from_dict(cls, raw: dict, *, base_dir: str | Path = ".", reader=None, configuration=None, officer: str | None = None) -> "LoanApplication":
        """An application from its parsed fields (a service passes the request body here).

        Parameters
        ----------
        raw : dict
            The parsed fields; every top-level field's JSON type is checked first, all at once
            (:class:`ApplicationFieldsError`), then each field's domain.
        base_dir : str or Path, default="."
            The folder the files it names must resolve inside.
        reader : callable, optional
            Reads a patent file named by the application (default
            :func:`ipvalue.io.read_patents`; a service passes
            :func:`ipvalue.io.bounded.read_patents_bounded`, memory-capped).
        configuration : BankConfiguration, optional
            The bank's pinned configuration (:mod:`ipvalue.lending.configuration`): the models,
            policy, assumption set and risk-sharing scheme the application may name; what it
            leaves out takes the configured default.
        officer : str, optional
            The authenticated user acting: an override that names no officer is theirs.
        """
        if not isinstance(raw, dict):
            raise ApplicationError(f"An application must be a mapping of fields. Got {type(raw).__name__}.")
        reader = reader or read_patents
        try:
            check_unicode_tree(raw, "application")
        except DomainError as exc:
            raise ApplicationError(str(exc)) from None
        app_id = raw.get("application_id") if isinstance(raw.get("application_id"), str) else ""
        app_id = _text(app_id or "")
        where = f"application {app_id or '?'}"
        problems = field_type_problems(raw, where) + (configuration.problems(raw, where) if configuration is not None else [])
        if problems:
            raise ApplicationFieldsError("; ".join(f"{p['message']} Fix: {p['fix']}." for p in problems).rstrip("."), problems)
        if configuration is not None:
            raw = configuration.apply(raw)

        def need(name: str):
            if raw.get(name) in (None, ""):
                raise ApplicationError(f"The '{name}' of {where} is missing. Fix: add it (see the README's application schema).")
            return raw[name]

        def number(name: str, value=None, field_name: str | None = None) -> float:
            try:
                return check_number(field_name or name, need(name) if value is None else value, where=where)
            except DomainError as exc:
                raise ApplicationError(str(exc)) from None

        def config_name(name: str, default: str) -> str:
            value = str(raw.get(name) or default)
            if not CONFIG_NAME.fullmatch(value):
                raise ApplicationError(f"The '{name}' of {where} must be the name of a shipped or bank-installed set (letters, digits, hyphens). "
                                       f"Got {value!r}. Fix: an application names its assumptions; it cannot bring its own file.")
            return value

        def inside(name: str, relative) -> Path:
            base = Path(base_dir).resolve()
            target = (base / str(relative)).resolve()
            if not target.is_relative_to(base):
                raise ApplicationError(f"The '{name}' of {where} points outside the application's folder: {relative!r}. "
                                       "Fix: put the file beside the application (or in a folder below it).")
            return target

        need("application_id")
        if not SAFE_ID.fullmatch(app_id):
            raise ApplicationError(f"The 'application_id' of {where} must be letters, digits, '.', '_' or '-' (it names the report files). Got {app_id!r}.")
        borrower = _text(need("borrower"))
        if not borrower:
            raise ApplicationError(f"The 'borrower' of {where} is blank. Fix: name the borrower as in the patents' owner field.")
        amount = number("requested_amount_rmb")
        term = number("term_years")
        # ISO dates only: 06/07/2026 means June in one bank and July in another; inside the documented range.
        try:
            valuation_date = check_date("valuation_date", need("valuation_date"), where=where)
        except DomainError as exc:
            raise ApplicationError(str(exc)) from None

        spec = need("patents")
        # One validation: the records here, or the file's rows in read_patents.
        if isinstance(spec, dict) and spec.get("records"):
            if not isinstance(spec["records"], list) or not all(isinstance(r, dict) for r in spec["records"]):
                raise ApplicationError(f"The 'patents.records' of {where} must be a list of patent records (mappings).")
            try:
                records = frame_from_records(spec["records"], source=f"{where} patents.records")
                patents = validate_patent_frame(records, strict=True, source=f"{where} patents").valid
            except ValueError as exc:
                raise ApplicationError(f"The 'patents' of {where} are invalid: {exc}") from exc
        elif isinstance(spec, dict) and spec.get("file"):
            if not isinstance(spec["file"], str):
                raise ApplicationError(f"The 'patents.file' of {where} must be a file name. Got {type(spec['file']).__name__}.")
            loaded = reader(inside("patents.file", spec["file"]))
            patents = loaded.valid
            ids = spec.get("ids")
            if ids:
                if not isinstance(ids, list):
                    raise ApplicationError(f"The 'patents.ids' of {where} must be a list of patent ids. Got {type(ids).__name__}.")
                wanted = [normalise_id(str(i)) for i in ids]
                unknown = [i for i in wanted if i not in set(patents["patent_id"])]
                if unknown:
                    rejected = loaded.quarantine[loaded.quarantine["patent_id"].astype(str).map(normalise_id).isin(unknown)] if "patent_id" in loaded.quarantine else loaded.quarantine.iloc[:0]
                    if len(rejected):
                        raise ApplicationError(f"The 'patents.ids' of {where} name patents whose rows in {spec['file']} are invalid: "
                                               + "; ".join(f"{r.patent_id}: {r.reasons}" for r in rejected.itertuples()) + ". Fix: correct those rows.")
                    raise ApplicationError(f"The 'patents.ids' of {where} name patents not in {spec['file']}: {unknown}. Fix: check the ids.")
                patents = patents[patents["patent_id"].isin(wanted)]
        else:
            raise ApplicationError(f"The 'patents' of {where} must have 'records' (a list of patent records) or 'file' (+ optional 'ids').")
        patents = patents.reset_index(drop=True)
        patents["package_id"] = patents["package_id"].fillna(app_id)
        packages = patents["package_id"].unique()

        def package_of(section: str, rows: pd.DataFrame) -> pd.DataFrame:
            """A section without package ids belongs to the application's one package."""
            if "package_id" in rows:
                return rows
            if len(packages) != 1:
                raise ApplicationError(f"The '{section}' of {where} needs a 'package_id' on every row: the patents belong to {len(packages)} packages {list(packages)}.")
            return rows.assign(package_id=packages[0])

        forecast = raw.get("revenue_forecast") or {}
        if not isinstance(forecast, dict):
            raise ApplicationError(f"The 'revenue_forecast' of {where} must be a mapping ('base_rmb' and 'growth', or 'schedule').")
        schedule = None
        if forecast.get("schedule"):
            rows = forecast["schedule"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) and {"year", "revenue_rmb"} <= set(r) for r in rows):
                raise ApplicationError(f"The 'revenue_forecast.schedule' of {where} needs 'year' and 'revenue_rmb' on every row.")
            schedule = package_of("revenue_forecast.schedule", pd.DataFrame({
                "year": [int(number("year", r["year"])) for r in rows],
                "revenue_rmb": [number("revenue_rmb", r["revenue_rmb"]) for r in rows],
            }))
            repeated = schedule[schedule.duplicated(["package_id", "year"], keep=False)]
            if len(repeated):
                raise ApplicationError(f"The 'revenue_forecast.schedule' of {where} gives year(s) {sorted(set(repeated['year']))} more than once"
                                       f"{' for one package' if schedule['package_id'].nunique() > 1 else ''}. Fix: one revenue figure per year.")
        elif forecast:
            if "base_rmb" not in forecast:
                raise ApplicationError(f"The 'revenue_forecast' of {where} needs a numeric 'base_rmb' (and optional 'growth'). Got {forecast!r}.")
            patents["revenue_base_rmb"] = patents["revenue_base_rmb"].fillna(number("base_rmb", forecast["base_rmb"], "revenue_base_rmb"))
            if forecast.get("growth") is not None:
                patents["revenue_growth"] = patents["revenue_growth"].fillna(number("growth", forecast["growth"], "revenue_growth"))
        if schedule is None and patents["revenue_base_rmb"].isna().any():
            raise ApplicationError(f"The 'revenue_forecast' of {where} is missing: give 'base_rmb' and 'growth', or a 'schedule'.")

        financials = None
        if raw.get("financials"):
            rows = raw["financials"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ApplicationError(f"The 'financials' of {where} must be a list of yearly statements (year, revenue_rmb, operating_margin).")
            financials = package_of("financials", pd.DataFrame(rows))
        tax_rate = None
        if raw.get("tax_rate") is not None:
            tax_rate = number("tax_rate", raw["tax_rate"], "tax_rate")
        wacc = number("wacc", raw["wacc"], "wacc") if raw.get("wacc") is not None else None
        rd_cost = None
        if raw.get("rd_cost"):
            cost = raw["rd_cost"]
            if not isinstance(cost, dict) or not {"rmb", "year"} <= set(cost):
                raise ApplicationError(f"The 'rd_cost' of {where} needs 'rmb' (the product's R&D cost) and 'year'.")
            rd_cost = {"rmb": number("rmb", cost["rmb"], "rd_cost_rmb"), "year": int(number("year", cost["year"], "rd_cost_year"))}
        reference = reader(inside("reference_book", raw["reference_book"])).valid if raw.get("reference_book") else None
        comparables = inside("comparables", raw["comparables"]) if raw.get("comparables") else None
        entries = raw.get("overrides") or []
        if not isinstance(entries, list) or not all(isinstance(o, dict) for o in entries):
            raise ApplicationError(f"The 'overrides' of {where} must be a list of overrides (patent_id, field, value, reason, officer).")
        if officer:
            entries = [{**o, "officer": o.get("officer") or officer} for o in entries]
        overrides = tuple(Override.from_dict(o, f"overrides[{i}] of {where}") for i, o in enumerate(entries))
        unknown = sorted({o.patent_id for o in overrides} - set(patents["patent_id"]))
        if unknown:
            raise ApplicationError(f"The 'overrides' of {where} name patents not in the application: {unknown}.")
        seen: dict = {}
        for i, o in enumerate(overrides):
            if (o.patent_id, o.field) in seen:
                raise OverrideError(f"overrides[{seen[o.patent_id, o.field]}] and overrides[{i}] of {where} both set {o.field!r} of {o.patent_id}. "
                                    "Fix: keep one override per patent and field.")
            seen[o.patent_id, o.field] = i
        models = raw.get("models") or {}
        if not isinstance(models, dict):
            raise ApplicationError(f"The 'models' of {where} must map a kind (renewal, value) to a registry URI.")
        entries = raw.get("documents") or []
        if not isinstance(entries, list):
            raise ApplicationError(f"The 'documents' of {where} must be a list of documents (patent_id, kind, reference).")
        documents = tuple(Document.from_dict(d, f"documents[{i}] of {where}") for i, d in enumerate(entries))
        unknown = sorted({d.patent_id for d in documents} - set(patents["patent_id"]))
        if unknown:
            raise ApplicationError(f"The 'documents' of {where} name patents not in the application: {unknown}.")
        register = None
        if raw.get("register"):
            spec = raw["register"]
            if not isinstance(spec, dict) or not spec.get("file"):
                raise ApplicationError(f"The 'register' of {where} must be a mapping with 'file' (the CNIPA legal-status export) and optional 'encoding'.")
            register = read_register(inside("register.file", spec["file"]), encoding=spec.get("encoding"))
        pledges = raw.get("registered_pledges") or []
        if not isinstance(pledges, list) or not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in pledges):
            raise ApplicationError(f"The 'registered_pledges' of {where} must be a list of patent ids (texts). Got {str(pledges)[:60]}.")
        scheme = config_name("risk_sharing", "none")
        known = risk_sharing_schemes()
        if scheme not in known:
            raise ApplicationError(f"The 'risk_sharing' of {where} must be one of {known}. Got {scheme!r}. Fix: name the risk-sharing scheme "
                                   "the loan is under ('none' when there is none).")
        return cls(
            application_id=app_id, borrower=borrower, requested_amount_rmb=amount, term_years=term,
            purpose=_text(raw.get("purpose", "")), valuation_date=valuation_date.normalize(), patents=patents, schedule=schedule,
            assumption_set=config_name("assumption_set", "cn-pledge-2025"), pledge_policy=config_name("pledge_policy", "pledge-policy-cn"),
            risk_sharing=scheme, models={str(k): str(v) for k, v in models.items()},
            registered_pledges=tuple(normalise_id(str(p)) for p in pledges), reference_book=reference, overrides=overrides,
            financials=financials, tax_rate=tax_rate, wacc=wacc, comparables=comparables, rd_cost=rd_cost, review=None,
            documents=documents, register=register, raw=raw,
        )

    @property
    def input_hash(self) -> str:
        digest = hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str, ensure_ascii=False).encode())
        digest.update(pd.util.hash_pandas_object(self.patents, index=False).to_numpy().tobytes())
        if self.register is not None:  # the register export's content, not only its file name
            digest.update(pd.util.hash_pandas_object(self.register.events.astype(str), index=False).to_numpy().tobytes())
        return digest.hexdigest()[:16]


def iso_date(value) -> pd.Timestamp | None:
    """A date written YYYY-MM-DD (only: 06/07/2026 means June in one bank and July in another), or None."""
    text = str(value or "")
    try:
        return pd.Timestamp(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    except ValueError:
        return None


def _text(value) -> str:
    """Normalised text of a field ('' when blank: :func:`normalise_text` makes blanks missing)."""
    text = normalise_text(str(value))
    return text if isinstance(text, str) else ""


def duplicate_key_hook(error: type[Exception] = ApplicationError, what: str = "application"):
    """A ``json.loads(object_pairs_hook=...)`` that refuses an object repeating a key (JSON would
    silently keep the last), raising ``error`` with the keys and the fix."""

    def hook(pairs):
        keys = [k for k, _ in pairs]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise error(f"The {what} repeats the key(s) {dupes}. Fix: give each field once.")
        return dict(pairs)

    return hook
