"""A pledge-loan application (YAML or JSON; schema in the README) and the officers' overrides in it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue.exceptions import ApplicationError, OverrideError
from ipvalue.frame import validate_patent_frame
from ipvalue.io import read_patents

OVERRIDABLE = ("sharing_rate", "economic_life_years", "internal_value_rmb")


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
        if d.get("field") not in OVERRIDABLE:
            raise OverrideError(f"The 'field' of {where} must be one of {list(OVERRIDABLE)}. Got {d.get('field')!r}.")
        try:
            value = float(d["value"])
        except (KeyError, TypeError, ValueError):
            raise OverrideError(f"The 'value' of {where} must be a number. Got {d.get('value')!r}.") from None
        if value < 0:
            raise OverrideError(f"The 'value' of {where} must be >= 0. Got {value:g}.")
        return cls(str(d["patent_id"]), d["field"], value, str(d["reason"]).strip(), str(d["officer"]).strip())


@dataclass
class LoanApplication:
    """A pledge-loan application (schema in the README; ``examples`` in the tests).

    Fields: ``application_id``, ``borrower`` (name, as in the patents' owner field),
    ``requested_amount_rmb``, ``term_years``, ``purpose``, ``valuation_date``, ``patents`` (a
    PatentFrame: from ``records`` or from a ``file`` filtered by ``ids``), ``revenue_forecast``
    (``base_rmb`` + ``growth``, or a yearly ``schedule``), ``assumption_set``, ``pledge_policy``,
    ``risk_sharing`` (scheme name), ``models`` (model URIs), ``registered_pledges`` (ids with an
    active pledge registration), ``reference_book`` (optional file for cohort references),
    ``overrides``.
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
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> "LoanApplication":
        path = Path(path)
        if not path.is_file():
            raise ApplicationError(f"Application file {str(path)!r} does not exist. Fix: check the path.")
        text = path.read_text(encoding="utf-8")
        try:
            raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ApplicationError(f"Application file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
        return cls.from_dict(raw, base_dir=path.parent)

    @classmethod
    def from_dict(cls, raw: dict, *, base_dir: str | Path = ".") -> "LoanApplication":
        if not isinstance(raw, dict):
            raise ApplicationError(f"An application must be a mapping of fields. Got {type(raw).__name__}.")
        app_id = str(raw.get("application_id") or "").strip()
        where = f"application {app_id or '?'}"

        def need(name: str):
            if raw.get(name) in (None, ""):
                raise ApplicationError(f"The '{name}' of {where} is missing. Fix: add it (see the README's application schema).")
            return raw[name]

        def number(name: str, lo: float, hi: float) -> float:
            value = need(name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ApplicationError(f"The '{name}' of {where} must be a number. Got {value!r}.") from None
            if not lo < value <= hi:
                raise ApplicationError(f"The '{name}' of {where} must be in ({lo:g}, {hi:g}]. Got {value:g}.")
            return value

        need("application_id")
        borrower = str(need("borrower")).strip()
        amount = number("requested_amount_rmb", 0, 1e12)
        term = number("term_years", 0, 30)
        # ISO dates only: 06/07/2026 means June in one bank and July in another.
        date_text = str(need("valuation_date"))
        try:
            valuation_date = pd.Timestamp(date_text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date_text) else None
        except ValueError:
            valuation_date = None
        if valuation_date is None:
            raise ApplicationError(f"The 'valuation_date' of {where} must be a date written YYYY-MM-DD. Got {raw['valuation_date']!r}.")

        spec = need("patents")
        base_dir = Path(base_dir)
        # One validation: the records here, or the file's rows in read_patents.
        if isinstance(spec, dict) and spec.get("records"):
            try:
                patents = validate_patent_frame(pd.DataFrame(spec["records"]), strict=True, source=f"{where} patents").valid
            except ValueError as exc:
                raise ApplicationError(f"The 'patents' of {where} are invalid: {exc}") from exc
        elif isinstance(spec, dict) and spec.get("file"):
            patents = read_patents(base_dir / spec["file"]).valid
            ids = spec.get("ids")
            if ids:
                unknown = sorted(set(ids) - set(patents["patent_id"]))
                if unknown:
                    raise ApplicationError(f"The 'patents.ids' of {where} name patents not in {spec['file']}: {unknown}. Fix: check the ids.")
                patents = patents[patents["patent_id"].isin(ids)]
        else:
            raise ApplicationError(f"The 'patents' of {where} must have 'records' (a list of patent records) or 'file' (+ optional 'ids').")
        patents = patents.reset_index(drop=True)
        patents["package_id"] = patents["package_id"].fillna(app_id)

        forecast = raw.get("revenue_forecast") or {}
        schedule = None
        if forecast.get("schedule"):
            schedule = pd.DataFrame(forecast["schedule"]).assign(package_id=app_id)
            if not {"year", "revenue_rmb"} <= set(schedule.columns):
                raise ApplicationError(f"The 'revenue_forecast.schedule' of {where} needs 'year' and 'revenue_rmb' on every row.")
        elif forecast:
            try:
                patents["revenue_base_rmb"] = patents["revenue_base_rmb"].fillna(float(forecast["base_rmb"]))
                patents["revenue_growth"] = patents["revenue_growth"].fillna(float(forecast.get("growth", np.nan)))
            except (KeyError, TypeError, ValueError):
                raise ApplicationError(f"The 'revenue_forecast' of {where} needs a numeric 'base_rmb' (and optional 'growth'). Got {forecast!r}.") from None
        if schedule is None and patents["revenue_base_rmb"].isna().any():
            raise ApplicationError(f"The 'revenue_forecast' of {where} is missing: give 'base_rmb' and 'growth', or a 'schedule'.")

        reference = None
        if raw.get("reference_book"):
            reference = read_patents(base_dir / raw["reference_book"]).valid
        overrides = tuple(Override.from_dict(o, f"overrides[{i}] of {where}") for i, o in enumerate(raw.get("overrides") or []))
        unknown = sorted({o.patent_id for o in overrides} - set(patents["patent_id"]))
        if unknown:
            raise ApplicationError(f"The 'overrides' of {where} name patents not in the application: {unknown}.")
        return cls(
            application_id=app_id, borrower=borrower, requested_amount_rmb=amount, term_years=term,
            purpose=str(raw.get("purpose", "")), valuation_date=valuation_date.normalize(), patents=patents, schedule=schedule,
            assumption_set=str(raw.get("assumption_set", "cn-pledge-2025")), pledge_policy=str(raw.get("pledge_policy", "pledge-policy-cn")),
            risk_sharing=str(raw.get("risk_sharing", "none")), models=dict(raw.get("models") or {}),
            registered_pledges=tuple(raw.get("registered_pledges") or ()), reference_book=reference, overrides=overrides, raw=raw,
        )

    @property
    def input_hash(self) -> str:
        digest = hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str, ensure_ascii=False).encode())
        digest.update(pd.util.hash_pandas_object(self.patents, index=False).to_numpy().tobytes())
        return digest.hexdigest()[:16]
