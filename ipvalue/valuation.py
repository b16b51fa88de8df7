"""The internal valuation of one pledge-loan application: methods reconciled into an internal
value, pledge value and loan cap, eligibility checks, risk sharing, overrides, provenance.

Input: a loan application file (YAML or JSON, :class:`LoanApplication`). Output: a
:class:`ValuationResult` that :mod:`ipvalue.report` renders (HTML, JSON) and :mod:`ipvalue.audit`
records.

Reconciliation rule ('conservative', the default of the pledge policy): a patent's internal value
is the lowest central estimate among the methods available (the income approach's point value and,
where a value model is registered, its P50); the methods are flagged as disagreeing when the
highest exceeds the lowest by more than the policy's factor. A lapsed, expired or not-yet-granted
patent is worth 0 for pledge purposes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue.config import content_hash, load_yaml
from ipvalue.exceptions import ApplicationError, AssumptionError, OverrideError

logger = logging.getLogger(__name__)

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
        from ipvalue.io import read_patents

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
        if isinstance(spec, dict) and spec.get("records"):
            patents = pd.DataFrame(spec["records"])
        elif isinstance(spec, dict) and spec.get("file"):
            result = read_patents(base_dir / spec["file"])
            patents = result.valid
            ids = spec.get("ids")
            if ids:
                unknown = sorted(set(ids) - set(patents["patent_id"]))
                if unknown:
                    raise ApplicationError(f"The 'patents.ids' of {where} name patents not in {spec['file']}: {unknown}. Fix: check the ids.")
                patents = patents[patents["patent_id"].isin(ids)]
        else:
            raise ApplicationError(f"The 'patents' of {where} must have 'records' (a list of patent records) or 'file' (+ optional 'ids').")
        from ipvalue.frame import validate_patent_frame

        try:
            patents = validate_patent_frame(patents, strict=True, source=f"{where} patents").valid
        except ValueError as exc:
            raise ApplicationError(f"The 'patents' of {where} are invalid: {exc}") from exc
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


@dataclass
class ValuationResult:
    """Everything the report, the loan system (JSON) and the audit store need."""

    valuation_id: str
    application: LoanApplication
    patents: pd.DataFrame  # one row per patent: methods, reconciliation, pledge value, checks
    checks: pd.DataFrame  # one row per check: scope, check, passed, reason
    summary: dict
    risk_sharing: pd.DataFrame
    reasons: pd.DataFrame
    scorecard_points: pd.DataFrame  # long: patent_id, indicator, points, max_points, label
    sensitivity: pd.DataFrame
    cash_flows: pd.DataFrame
    package_draws: np.ndarray
    overrides: pd.DataFrame
    provenance: dict

    def to_json(self) -> str:
        """The result for the bank's loan system (UTF-8 JSON)."""

        def records(frame):
            return json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False))

        payload = {
            "valuation_id": self.valuation_id, "application_id": self.application.application_id, "summary": self.summary,
            "patents": records(self.patents), "checks": records(self.checks), "risk_sharing": records(self.risk_sharing),
            "reasons": records(self.reasons.reset_index()), "overrides": records(self.overrides), "provenance": self.provenance,
        }
        return json.dumps(payload, ensure_ascii=False, indent=2, default=str)


def load_pledge_policy(which="pledge-policy-cn") -> tuple[dict, str]:
    raw, origin = load_yaml(which)
    name = raw.get("name", origin)
    for ptype in ("invention", "utility_model", "design"):
        rate = raw.get("pledge_rate", {}).get(ptype, {}).get("value")
        if rate is None or not 0 < float(rate) <= 1:
            raise AssumptionError(f"The 'pledge_rate.{ptype}' of pledge policy {name!r} must be in (0, 1]. Got {rate!r}.")
    if raw.get("reconciliation", {}).get("rule") != "conservative":
        raise AssumptionError(f"The 'reconciliation.rule' of pledge policy {name!r} must be 'conservative'. Got {raw.get('reconciliation', {}).get('rule')!r}.")
    return raw, content_hash(raw)


def risk_sharing_table(scheme: str, loss_rmb: float) -> tuple[pd.DataFrame, dict]:
    """Each party's share of a principal loss under ``scheme`` (``assumptions/risk-sharing.yaml``)."""
    raw, _ = load_yaml("risk-sharing")
    schemes = raw["schemes"]
    if scheme not in schemes:
        raise AssumptionError(f"Unknown risk-sharing scheme {scheme!r}. Fix: use one of {sorted(schemes)}.")
    s = schemes[scheme]
    shares = pd.Series(s["shares"], dtype=float)
    if abs(shares.sum() - 1) > 1e-9:
        raise AssumptionError(f"The shares of risk-sharing scheme {scheme!r} must sum to 1. Got {shares.sum():g}.")
    bank_party = s.get("bank_party", "bank")
    table = pd.DataFrame({"party": shares.index, "share": shares.to_numpy(), "loss_rmb": shares.to_numpy() * loss_rmb})
    table["is_bank"] = table["party"] == bank_party
    return table, {"scheme": scheme, "label": s["label"], "bank_share": float(shares[bank_party]), "hash": content_hash(s)}


def _load_champion(uri: str | None):
    if not uri:
        return None, None
    import mlflow

    try:
        model = mlflow.pyfunc.load_model(uri)
    except mlflow.exceptions.MlflowException as exc:
        logger.warning("model %s not available: %s", uri, exc)
        return None, None
    return model, model.metadata.run_id


def value_application(app: LoanApplication, *, tracking_uri: str | None = None, data_dir=None, user: str = "unknown") -> ValuationResult:
    """Value one application: the methods, reconciliation, pledge value, checks and explanations."""
    from ipvalue import __version__
    from ipvalue.explain import reason_codes
    from ipvalue.income import IncomeApproachValuer
    from ipvalue.tracking import raw_records, use_tracking

    policy, policy_hash = load_pledge_policy(app.pledge_policy)
    vd = app.valuation_date
    patents = app.patents.copy()
    use_tracking(tracking_uri)

    renewal, renewal_run = _load_champion(app.models.get("renewal"))
    value_model, value_run = _load_champion(app.models.get("value"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feature-policy fills are reported in the provenance notes
        ml = pd.DataFrame(index=patents.index)
        if renewal is not None:
            inner = renewal.unwrap_python_model().model
            ml = ml.join(inner.predict_survival(patents))
            ml["expected_economic_life_years"] = inner.expected_remaining_life(patents, vd)
            renewal_contrib = inner.contributions(patents, stage=2)
            patents["economic_life_years"] = patents["economic_life_years"].fillna(ml["expected_economic_life_years"])
        if value_model is not None:
            scored = value_model.predict(raw_records(patents)).set_axis(patents.index)
            ml[["ml_value_p10_rmb", "ml_value_p50_rmb", "ml_value_p90_rmb"]] = scored[["value_p10_rmb", "value_p50_rmb", "value_p90_rmb"]].to_numpy()

        life_overrides = {o.patent_id: o.value for o in app.overrides if o.field == "economic_life_years"}
        model_life = patents["economic_life_years"].copy()
        patents["economic_life_years"] = patents["patent_id"].map(life_overrides).fillna(patents["economic_life_years"])

        reference = pd.concat([app.reference_book, patents], ignore_index=True) if app.reference_book is not None else patents
        valuer = IncomeApproachValuer(app.assumption_set, valuation_date=vd, data_dir=data_dir).fit(reference.drop_duplicates("patent_id"))
        inputs = valuer.inputs(patents, schedule=app.schedule)  # features and scorecard, built once
        income = valuer.value(schedule=app.schedule, inputs=inputs)
        model_income = valuer.predict(patents.assign(economic_life_years=model_life), schedule=app.schedule) if life_overrides else income["income_value_rmb"]
        features = valuer.features_.transform(patents)
        sensitivity = valuer.sensitivity(schedule=app.schedule, inputs=inputs)
        cash_flows = valuer.cash_flows(schedule=app.schedule, inputs=inputs)
        draws = valuer.simulate(schedule=app.schedule, inputs=inputs).sum(axis=0)
        card = valuer.scorecard_.indicators_.set_index("name")
        points = valuer.scorecard_.points(features).set_axis(patents["patent_id"]).stack().rename("points").reset_index()
        points.columns = ["patent_id", "indicator", "points"]
        points["max_points"] = points["indicator"].map(card["max_points"])
        points["label"] = points["indicator"].map(card["label_zh"] + " " + card["label_en"])

        rate_overrides = {o.patent_id: o.value for o in app.overrides if o.field == "sharing_rate"}
        if rate_overrides:
            inputs = valuer.with_sharing_rates(inputs, rate_overrides)
            hit = inputs["patent_id"].isin(list(rate_overrides))
            income.loc[hit, "income_value_rmb"] = valuer.value(inputs=inputs, schedule=app.schedule)["income_value_rmb"][hit]

    out = income[["patent_id", "package_id", "grade", "score", "sharing_rate", "income_period_years", "remaining_life_years",
                  "economic_life_years", "economic_life_source", "income_value_rmb", "p5_rmb", "p50_rmb", "p95_rmb"]].copy()
    out.insert(1, "patent_type", patents["patent_type"])
    out["model_income_value_rmb"] = model_income
    out = out.join(ml)
    alive = (features["is_lapsed"] == 0) & (features["is_expired"] == 0) & (features["is_granted"] == 1)
    central = out[["income_value_rmb"] + (["ml_value_p50_rmb"] if "ml_value_p50_rmb" in out else [])]
    factor = float(policy["reconciliation"]["disagreement_factor"]["value"])
    out["reconciled_value_rmb"] = central.min(axis=1).where(alive, 0.0)
    out["reconciliation_rule"] = "lowest central estimate of " + " and ".join(central.columns) if central.shape[1] > 1 else "income approach (no value model)"
    spread = central.max(axis=1) / central.min(axis=1).where(central.min(axis=1) > 0)
    out["methods_disagree"] = (spread > factor) & alive
    value_overrides = {o.patent_id: o.value for o in app.overrides if o.field == "internal_value_rmb"}
    out["internal_value_rmb"] = out["patent_id"].map(value_overrides).fillna(out["reconciled_value_rmb"])
    out["internal_value_source"] = np.where(out["patent_id"].isin(list(value_overrides)), "override", "model")
    rates = {k: float(v["value"]) for k, v in policy["pledge_rate"].items()}
    out["pledge_rate"] = out["patent_type"].map(rates)
    out["pledge_value_rmb"] = out["internal_value_rmb"] * out["pledge_rate"]

    checks = _checks(app, patents, features, policy, out)
    cap = float(out["pledge_value_rmb"].sum())
    exposure = min(app.requested_amount_rmb, cap) if cap > 0 else app.requested_amount_rmb
    sharing, sharing_info = risk_sharing_table(app.risk_sharing, exposure)

    reasons = []
    if renewal is not None:
        r = reason_codes(renewal_contrib, inner.transform_features(patents), inner.features_.spec_, medians=inner.feature_medians_,
                         favourable_sign=-1, outcome_zh="续费（维持）概率", outcome_en="the renewal probability")
        reasons.append(r.assign(model="renewal"))
    if value_model is not None:
        vm = value_model.unwrap_python_model().model
        r = reason_codes(vm.contributions(patents), vm.features_.transform(patents), vm.features_.spec_, medians=vm.feature_medians_)
        reasons.append(r.assign(model="value"))
    reasons = pd.concat(reasons) if reasons else pd.DataFrame(columns=["rank", "feature", "reason_zh", "reason_en", "model"])
    if len(reasons):
        reasons.insert(0, "patent_id", patents.loc[reasons.index, "patent_id"].to_numpy())

    by_id = out.set_index("patent_id")
    model_values = {
        "sharing_rate": by_id["sharing_rate"],
        "economic_life_years": model_life.set_axis(patents["patent_id"]),
        "internal_value_rmb": by_id["reconciled_value_rmb"],
    }
    overrides = pd.DataFrame([
        {"patent_id": o.patent_id, "field": o.field, "model_value": float(model_values[o.field][o.patent_id]), "override_value": o.value, "reason": o.reason, "officer": o.officer}
        for o in app.overrides
    ], columns=["patent_id", "field", "model_value", "override_value", "reason", "officer"])

    eligible = bool(checks["passed"].all())
    internal_route = app.requested_amount_rmb < float(policy["internal_valuation_limit_rmb"]["value"])
    summary = {
        "borrower": app.borrower, "requested_amount_rmb": app.requested_amount_rmb, "term_years": app.term_years,
        "valuation_date": vd.date().isoformat(), "patents": int(len(out)),
        "internal_value_rmb": float(out["internal_value_rmb"].sum()),
        "income_value_rmb": float(out["income_value_rmb"].sum()),
        "income_p5_rmb": float(np.quantile(draws, 0.05)), "income_p50_rmb": float(np.quantile(draws, 0.5)), "income_p95_rmb": float(np.quantile(draws, 0.95)),
        "ml_value_p50_rmb": float(out["ml_value_p50_rmb"].sum()) if "ml_value_p50_rmb" in out else None,
        "loan_cap_rmb": cap, "requested_within_cap": app.requested_amount_rmb <= cap,
        "eligible": eligible, "internal_valuation_route": internal_route,
        "decision": "eligible" if eligible else ("external appraisal required" if not internal_route else "not eligible"),
        "methods_disagree": bool(out["methods_disagree"].any()), "overrides": int(len(overrides)),
        "risk_sharing_scheme": sharing_info["label"], "bank_share_of_loss": sharing_info["bank_share"],
        "bank_loss_if_default_rmb": float(sharing.loc[sharing["is_bank"], "loss_rmb"].sum()),
    }
    provenance = {
        **valuer.provenance, "pledge_policy": f"{policy['name']}-v{policy['version']}", "pledge_policy_hash": policy_hash,
        "risk_sharing_hash": sharing_info["hash"], "input_hash": app.input_hash, "ipvalue_version": __version__,
        "renewal_model": app.models.get("renewal") if renewal is not None else "not used", "renewal_run_id": renewal_run or "",
        "value_model": app.models.get("value") if value_model is not None else "not used", "value_run_id": value_run or "",
        "user": user, "valued_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    return ValuationResult(
        valuation_id=uuid.uuid4().hex[:12], application=app, patents=out, checks=checks, summary=summary, risk_sharing=sharing,
        reasons=reasons, scorecard_points=points, sensitivity=sensitivity, cash_flows=cash_flows,
        package_draws=draws, overrides=overrides, provenance=provenance,
    )


def _checks(app: LoanApplication, patents: pd.DataFrame, features: pd.DataFrame, policy: dict, out: pd.DataFrame) -> pd.DataFrame:
    """Every eligibility check, pass or fail, with its reason (Chinese and English)."""
    vd = app.valuation_date
    rows = []

    def add(scope, check, passed, reason_zh, reason_en):
        rows.append({"scope": scope, "check": check, "passed": bool(passed), "reason_zh": reason_zh, "reason_en": reason_en})

    limit = float(policy["internal_valuation_limit_rmb"]["value"])
    add("application", "amount_under_internal_limit", app.requested_amount_rmb < limit,
        f"申请金额 {app.requested_amount_rmb / 1e4:,.0f} 万元{'低于' if app.requested_amount_rmb < limit else '不低于'} {limit / 1e4:,.0f} 万元" + ("" if app.requested_amount_rmb < limit else "：需外部评估，内部评估路径不适用"),
        f"requested {app.requested_amount_rmb:,.0f} RMB is {'under' if app.requested_amount_rmb < limit else 'not under'} {limit:,.0f}" + ("" if app.requested_amount_rmb < limit else ": external appraisal required, the internal route does not apply"))
    max_term = float(policy["max_term_years"]["value"])
    add("application", "term_within_policy", app.term_years <= max_term, f"贷款期限 {app.term_years:g} 年（上限 {max_term:g} 年）", f"term {app.term_years:g} years (policy maximum {max_term:g})")
    cap = float(out["pledge_value_rmb"].sum())
    add("application", "requested_within_loan_cap", app.requested_amount_rmb <= cap, f"申请金额 {app.requested_amount_rmb / 1e4:,.1f} 万元，质押可贷上限 {cap / 1e4:,.1f} 万元",
        f"requested {app.requested_amount_rmb:,.0f} RMB against a loan cap of {cap:,.0f} RMB")
    buffer = float(policy["remaining_life_buffer_years"]["value"])
    warn_days = int(policy["fee_due_warning_days"]["value"])
    borrower = app.borrower.strip().lower()
    for i, p in patents.iterrows():  # a handful of patents per application: clarity over vectorising
        pid, f = p["patent_id"], features.loc[i]
        alive = f["is_lapsed"] == 0 and f["is_expired"] == 0 and f["is_granted"] == 1
        add(pid, "right_in_force", alive and p["legal_status"] == "in_force",
            f"法律状态 {p['legal_status']}{'，已授权有效' if alive else '，权利未授权或已终止'}", f"status {p['legal_status']}: {'granted and in force' if alive else 'not granted, lapsed or expired'}")
        owners = [a.strip().lower() for a in str(p["applicants"] or "").split(";") if a.strip()]
        add(pid, "owner_is_borrower", borrower in owners, f"权利人：{p['applicants']}", f"owners: {p['applicants']}")
        pledged = pid in app.registered_pledges
        add(pid, "not_already_pledged", not pledged, "已有质押登记" if pledged else "无有效质押登记", "an active pledge registration exists" if pledged else "no active pledge registration")
        need = app.term_years + buffer
        life = float(f["remaining_life_years"])
        add(pid, "life_covers_term", life >= need, f"剩余有效期 {life:.1f} 年，需覆盖贷款期限加缓冲 {need:g} 年", f"remaining life {life:.1f} years against term plus buffer {need:g}")
        paid = p["fees_paid_until"]
        current = pd.notna(paid) and paid >= vd
        due_soon = current and (paid - vd).days <= warn_days
        add(pid, "annual_fees_current", current,
            "年费缴纳信息缺失" if pd.isna(paid) else f"年费已缴至 {paid.date()}" + ("（即将到期，建议质押期内预缴）" if due_soon else ""),
            "no fee information" if pd.isna(paid) else f"fees paid until {paid.date()}" + (" (falls due soon: prepay during the pledge)" if due_soon else ""))
    return pd.DataFrame(rows)
