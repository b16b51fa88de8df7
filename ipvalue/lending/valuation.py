"""The internal valuation of one pledge-loan application: methods reconciled into an internal
value, pledge value and loan cap, eligibility checks, risk sharing, overrides, provenance.

Input: a :class:`~ipvalue.lending.application.LoanApplication` and the registered models it
names (loaded once by :func:`load_application_models`, or kept loaded by a service). Output: a
:class:`ValuationResult` that :mod:`ipvalue.report` renders (HTML, JSON) and :mod:`ipvalue.audit`
records.

Each thing is computed once: the patents are validated when the application is read; each model
builds its features once (the income approach's feature matrix also feeds the scorecard table and
the checks; each ML model's output frame carries its features and SHAP values, which give the
reason codes); the Monte Carlo runs once, and its draws give the per-patent quantiles and the
package distribution.

Reconciliation rule ('conservative', the default of the pledge policy): a patent's internal value
is the lowest central estimate among the methods available (the income approach's point value and,
where a value model is registered, its P50); the methods are flagged as disagreeing when the
highest exceeds the lowest by more than the policy's factor. A lapsed, expired or not-yet-granted
patent is worth 0 for pledge purposes.
"""

from __future__ import annotations

import json
import logging
import uuid
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ipvalue import __version__
from ipvalue.exceptions import ApplicationError
from ipvalue.explain import reason_codes
from ipvalue.income import IncomeApproachValuer
from ipvalue.lending.application import LoanApplication
from ipvalue.lending.checks import eligibility_checks
from ipvalue.lending.policy import load_pledge_policy, risk_sharing_table
from ipvalue.registry import RegisteredModel, load_model

logger = logging.getLogger(__name__)

MODEL_KINDS = ("renewal", "value")


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


def load_application_models(app: LoanApplication, *, tracking_uri: str | None = None) -> dict[str, RegisteredModel]:
    """The registered models an application names (``models: {renewal: URI, value: URI}``).

    Raises
    ------
    ApplicationError
        An unknown kind of model.
    ModelNotFoundError
        A URI that is not a registry URI or names no registered version: a misspelt URI is an
        error, never a valuation that silently goes on without that method.
    """
    unknown = sorted(set(app.models) - set(MODEL_KINDS))
    if unknown:
        raise ApplicationError(f"The 'models' of application {app.application_id} name unknown kinds {unknown}. Fix: use {list(MODEL_KINDS)}.")
    return {kind: load_model(uri, tracking_uri=tracking_uri) for kind, uri in app.models.items() if uri}


def _split_output(output: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SHAP contributions, feature values) from a model's output frame (explain='all')."""
    contributions = output.filter(like="shap_").rename(columns=lambda c: c.removeprefix("shap_"))
    features = output.filter(like="feature_").rename(columns=lambda c: c.removeprefix("feature_"))
    return contributions, features


def _apply_overrides(inputs: pd.DataFrame, app: LoanApplication) -> pd.DataFrame:
    """The DCF inputs with the officers' sharing-rate and economic-life overrides applied."""
    out = inputs.copy()
    for o in app.overrides:
        hit = out["patent_id"] == o.patent_id
        if o.field == "sharing_rate":
            out.loc[hit, ["sharing_low", "sharing_high", "sharing_rate"]] = o.value
            out.loc[hit, "sharing_position"] = 0.0
        elif o.field == "economic_life_years":
            out.loc[hit, "economic_life_years"] = o.value
            out.loc[hit, "economic_life_source"] = "override"
            out.loc[hit, "income_period_years"] = np.minimum(out.loc[hit, "remaining_life_years"], o.value)
    return out


def value_application(app: LoanApplication, *, models: dict[str, RegisteredModel] | None = None, tracking_uri: str | None = None,
                      data_dir=None, user: str = "unknown") -> ValuationResult:
    """Value one application: the methods, reconciliation, pledge value, checks and explanations.

    ``models``: the application's registered models when the caller has them loaded (a service);
    else loaded here with :func:`load_application_models`.
    """
    policy, policy_hash = load_pledge_policy(app.pledge_policy)
    vd = app.valuation_date
    patents = app.patents.copy()
    if models is None:
        models = load_application_models(app, tracking_uri=tracking_uri)
    renewal, value_model = models.get("renewal"), models.get("value")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feature-policy fills are reported in the provenance notes
        ml = pd.DataFrame(index=patents.index)
        reasons = []
        if renewal is not None:
            est = renewal.estimator
            out_r = est.output_frame(patents, explain="all", valuation_date=vd)
            ml = ml.join(out_r.filter(regex=r"^p_fee_\d+$")).assign(expected_economic_life_years=out_r["economic_life_years"])
            patents["economic_life_years"] = patents["economic_life_years"].fillna(out_r["economic_life_years"])
            contributions, features_r = _split_output(out_r)
            reasons.append(reason_codes(contributions, features_r, est.features_.spec_, medians=est.feature_medians_, favourable_sign=-1,
                                        outcome_zh="续费（维持）概率", outcome_en="the renewal probability").assign(model="renewal"))
        if value_model is not None:
            est = value_model.estimator
            out_v = est.output_frame(patents, explain="all")
            ml[["ml_value_p10_rmb", "ml_value_p50_rmb", "ml_value_p90_rmb"]] = out_v[est.scored_interval_columns].to_numpy()
            contributions, features_v = _split_output(out_v)
            reasons.append(reason_codes(contributions, features_v, est.features_.spec_, medians=est.feature_medians_).assign(model="value"))

        reference = pd.concat([app.reference_book, patents], ignore_index=True).drop_duplicates("patent_id") if app.reference_book is not None else patents
        valuer = IncomeApproachValuer(app.assumption_set, valuation_date=vd, data_dir=data_dir).fit(reference)
        features = valuer.features_.transform(patents)
        model_inputs = valuer.inputs(patents, schedule=app.schedule, features=features)
        inputs = _apply_overrides(model_inputs, app)
        draws = valuer.simulate(inputs=inputs, schedule=app.schedule)
        income = valuer.value(inputs=inputs, schedule=app.schedule, draws=draws)
        model_income = valuer.point_values(model_inputs, schedule=app.schedule) if app.overrides else income["income_value_rmb"]
        sensitivity = valuer.sensitivity(schedule=app.schedule, inputs=inputs)
        cash_flows = valuer.cash_flows(schedule=app.schedule, inputs=inputs)
        card = valuer.scorecard_.indicators_.set_index("name")
        points = valuer.scorecard_.points(features).set_axis(patents["patent_id"]).stack().rename("points").reset_index()
        points.columns = ["patent_id", "indicator", "points"]
        points["max_points"] = points["indicator"].map(card["max_points"])
        points["label"] = points["indicator"].map(card["label_zh"] + " " + card["label_en"])

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

    checks = eligibility_checks(app, patents, features, policy, out)
    cap = float(out["pledge_value_rmb"].sum())
    exposure = min(app.requested_amount_rmb, cap) if cap > 0 else app.requested_amount_rmb
    sharing, sharing_info = risk_sharing_table(app.risk_sharing, exposure)

    reasons = pd.concat(reasons) if reasons else pd.DataFrame(columns=["rank", "feature", "reason_zh", "reason_en", "model"])
    if len(reasons):
        reasons.insert(0, "patent_id", patents.loc[reasons.index, "patent_id"].to_numpy())

    model_values = {
        "sharing_rate": model_inputs.set_index("patent_id")["sharing_rate"],
        "economic_life_years": model_inputs.set_index("patent_id")["economic_life_years"],
        "internal_value_rmb": out.set_index("patent_id")["reconciled_value_rmb"],
    }
    overrides = pd.DataFrame([
        {"patent_id": o.patent_id, "field": o.field, "model_value": float(model_values[o.field][o.patent_id]), "override_value": o.value, "reason": o.reason, "officer": o.officer}
        for o in app.overrides
    ], columns=["patent_id", "field", "model_value", "override_value", "reason", "officer"])

    package_draws = draws.sum(axis=0)
    eligible = bool(checks["passed"].all())
    internal_route = app.requested_amount_rmb < float(policy["internal_valuation_limit_rmb"]["value"])
    summary = {
        "borrower": app.borrower, "requested_amount_rmb": app.requested_amount_rmb, "term_years": app.term_years,
        "valuation_date": vd.date().isoformat(), "patents": int(len(out)),
        "internal_value_rmb": float(out["internal_value_rmb"].sum()),
        "income_value_rmb": float(out["income_value_rmb"].sum()),
        "income_p5_rmb": float(np.quantile(package_draws, 0.05)), "income_p50_rmb": float(np.quantile(package_draws, 0.5)),
        "income_p95_rmb": float(np.quantile(package_draws, 0.95)),
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
        "renewal_model": app.models.get("renewal") if renewal is not None else "not used", "renewal_run_id": renewal.run_id if renewal else "",
        "renewal_model_version": renewal.version if renewal else "",
        "value_model": app.models.get("value") if value_model is not None else "not used", "value_run_id": value_model.run_id if value_model else "",
        "value_model_version": value_model.version if value_model else "",
        "user": user, "valued_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    return ValuationResult(
        valuation_id=uuid.uuid4().hex[:12], application=app, patents=out, checks=checks, summary=summary, risk_sharing=sharing,
        reasons=reasons, scorecard_points=points, sensitivity=sensitivity, cash_flows=cash_flows,
        package_draws=package_draws, overrides=overrides, provenance=provenance,
    )
