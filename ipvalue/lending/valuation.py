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

The methods meet here (README, "Valuation method"):

1. the renewal model gives each patent's yearly survival S_1..S_T and expected economic life
   (CN patents: the CN life table's level, the model's ranking);
2. the income approach (value in use to the borrower) weights its cash flows by S_t, with the
   borrower's statements, tax rate and the Monte Carlo's revenue / margin shocks;
3. the market approach (the bank's comparables), the cost approach (R&D cost, a floor) and the ML
   value model (a challenger unless trained on real prices or appraisals) where available;
4. :func:`~ipvalue.lending.reconcile.reconcile` chooses the primary method per patent by the
   evidence, with its reason; a disagreement beyond the policy's factor makes the valuation
   "review required" until a named reviewer signs off (``review`` in the application);
5. the package is the pledge unit: its disposal view (market value less the forced-sale
   discount, disposal cost and time to dispose, ``disposal-cn``) at P10 justifies the loan cap,
   bounded by the policy's pledge rates. Lapsed, expired, invalidated and pending rights are
   worth 0 as collateral.
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
from ipvalue.cost import CostApproachValuer
from ipvalue.lending.application import LoanApplication
from ipvalue.lending.checks import eligibility_checks
from ipvalue.lending.disposal import package_disposal_view
from ipvalue.lending.policy import load_pledge_policy, risk_sharing_table, within_internal_limit
from ipvalue.lending.reconcile import reconcile
from ipvalue.market import MarketApproachValuer
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
    packages: pd.DataFrame  # one row per package (the pledge unit): disposal view and cap

    def to_json(self) -> str:
        """The result for the bank's loan system (UTF-8 JSON)."""

        def records(frame):
            return json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False))

        payload = {
            "valuation_id": self.valuation_id, "application_id": self.application.application_id, "summary": self.summary,
            "patents": records(self.patents), "checks": records(self.checks), "risk_sharing": records(self.risk_sharing),
            "reasons": records(self.reasons.reset_index()), "overrides": records(self.overrides),
            "packages": records(self.packages.reset_index()), "provenance": self.provenance,
            "value_types": {column: value_type for column, value_type in VALUE_TYPES_OF_COLUMNS.items()
                            if column in self.summary or column in self.patents.columns or column in self.packages.columns},
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


#: Years of yearly survival the income approach receives (covers any statutory term plus extensions).
SURVIVAL_YEARS = 30

#: Value type of each money column of a valuation result (ipvalue.valuer.VALUE_TYPES).
VALUE_TYPES_OF_COLUMNS = {
    "income_value_rmb": "value_in_use", "model_income_value_rmb": "value_in_use", "p5_rmb": "value_in_use", "p50_rmb": "value_in_use",
    "p95_rmb": "value_in_use", "market_value_rmb": "market_value", "cost_value_rmb": "market_value",
    "ml_value_p10_rmb": "market_value", "ml_value_p50_rmb": "market_value", "ml_value_p90_rmb": "market_value",
    "pending_expected_value_rmb": "market_value", "collateral_value_p50_rmb": "collateral_value",
    "collateral_value_q_rmb": "collateral_value", "disposal_cap_rmb": "collateral_value", "pledge_value_rmb": "collateral_value",
    "loan_cap_rmb": "collateral_value", "income_p5_rmb": "value_in_use", "income_p50_rmb": "value_in_use", "income_p95_rmb": "value_in_use",
    "requested_amount_rmb": "loan amount (not a value)", "bank_loss_if_default_rmb": "loss allocation (not a value)",
}


def _apply_overrides(inputs: pd.DataFrame, app: LoanApplication) -> pd.DataFrame:
    """The DCF inputs with the officers' sharing-rate overrides applied (economic-life overrides
    enter through the survival curve, :func:`_survival_with_overrides`)."""
    rates = {o.patent_id: o.value for o in app.overrides if o.field == "sharing_rate"}
    return IncomeApproachValuer.with_sharing_rates(inputs, rates) if rates else inputs


def _survival_with_overrides(survival: pd.DataFrame | None, patents: pd.DataFrame, app: LoanApplication) -> pd.DataFrame | None:
    """The renewal model's survival curves, with an officer's economic life replacing a patent's
    curve by a certain life L: s_t = clip(L - (t - 1), 0, 1), the share of year t inside the
    income period (the fixed horizon's weight)."""
    lives = {o.patent_id: o.value for o in app.overrides if o.field == "economic_life_years"}
    if survival is None or not lives:
        return survival
    out = survival.copy()
    t = np.arange(out.shape[1])
    for pid, life in lives.items():
        rows = patents.index[patents["patent_id"] == pid]
        out.loc[rows] = np.clip(life - t, 0.0, 1.0)
    return out


def ml_label_source(model: RegisteredModel) -> str:
    """What the value model was trained on, from its run's ``data_origin`` tag: 'synthetic' or a
    real source (prices, appraisals)."""
    origin = str(model.run_tags.get("data_origin", "unknown")).lower()
    return "synthetic" if "synthetic" in origin else origin


def value_application(app: LoanApplication, *, models: dict[str, RegisteredModel] | None = None, tracking_uri: str | None = None,
                      data_dir=None, user: str = "unknown", applications: pd.DataFrame | None = None) -> ValuationResult:
    """Value one application: the methods, reconciliation, disposal view and cap, checks and explanations.

    ``models``: the application's registered models when the caller has them loaded (a service);
    else loaded here with :func:`load_application_models`. ``applications``: the audit store's
    recorded applications (:func:`ipvalue.audit.pledge_applications`) for the borrower's total
    IP-pledge exposure; None when the store is not consulted (the check says so).
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
        reasons, survival, label = [], None, None
        if renewal is not None:
            est = renewal.estimator
            ro = est.valuation_outputs(patents, vd, years=SURVIVAL_YEARS)
            label = est.stage_label(ro.reason_stage)
            ml = ml.join(ro.p_fee).assign(p_fee_headline=ro.p_fee[f"p_fee_{ro.reason_stage}"], expected_economic_life_years=ro.economic_life_years)
            patents["economic_life_years"] = patents["economic_life_years"].fillna(ro.economic_life_years)
            survival = ro.survival
            reasons.append(reason_codes(ro.contributions, ro.features, est.features_.spec_, medians=est.feature_medians_, favourable_sign=1,
                                        units="probability", outcome_zh=label["zh"], outcome_en=label["en"]).assign(model="renewal"))
        if value_model is not None:
            est = value_model.estimator
            out_v = est.output_frame(patents, explain="all")
            ml[["ml_value_p10_rmb", "ml_value_p50_rmb", "ml_value_p90_rmb"]] = out_v[est.scored_interval_columns].to_numpy()
            contributions = out_v.filter(like="shap_").rename(columns=lambda c: c.removeprefix("shap_"))
            features_v = out_v.filter(like="feature_").rename(columns=lambda c: c.removeprefix("feature_"))
            reasons.append(reason_codes(contributions, features_v, est.features_.spec_, medians=est.feature_medians_).assign(model="value"))

        valuer = IncomeApproachValuer(app.assumption_set, valuation_date=vd, data_dir=data_dir)
        if app.reference_book is None:  # the patents are their own cohort reference: one build
            features = valuer.fit_features(patents)
        else:
            valuer.fit(pd.concat([app.reference_book, patents], ignore_index=True).drop_duplicates("patent_id"))
            features = valuer.features_.transform(patents)
        options = dict(schedule=app.schedule, financials=app.financials, tax_rate=app.tax_rate, features=features)
        model_inputs = valuer.inputs(patents, survival=survival, **options)
        overridden_survival = _survival_with_overrides(survival, patents, app)
        inputs = _apply_overrides(model_inputs if overridden_survival is survival else valuer.inputs(patents, survival=overridden_survival, **options), app)
        income, draws = valuer.value(inputs=inputs, schedule=app.schedule, return_draws=True)
        model_income = valuer.point_values(model_inputs, schedule=app.schedule) if app.overrides else income["income_value_rmb"]
        sensitivity = valuer.sensitivity(schedule=app.schedule, inputs=inputs)
        cash_flows = valuer.cash_flows(schedule=app.schedule, inputs=inputs)
        card = valuer.scorecard_.indicators_.set_index("name")
        points = valuer.scorecard_.points(features).set_axis(patents["patent_id"]).stack().rename("points").reset_index()
        points.columns = ["patent_id", "indicator", "points"]
        points["max_points"] = points["indicator"].map(card["max_points"])
        points["label"] = points["indicator"].map(card["label_zh"] + " " + card["label_en"])

    subject = patents[["patent_type", "ipc_main", "legal_status", "package_id"]].join(inputs[["remaining_life_years", "score"]])
    subject["statutory_term_years"] = features["statutory_term_years"] if "statutory_term_years" in features else np.nan
    methods = pd.DataFrame({"legal_status": collateral_status(patents, features), "patent_type": patents["patent_type"],
                            "income_rmb": income["income_value_rmb"], "has_financials": app.financials is not None})
    market = None
    if app.comparables is not None:
        market = MarketApproachValuer(app.comparables, valuation_date=vd).fit().evidence(subject)
        methods = methods.assign(market_rmb=market["market_value_rmb"], market_n_comparables=market["n_comparables"], market_spread=market["spread"])
    if app.rd_cost is not None:
        cost_input = subject.assign(package_rd_cost_rmb=app.rd_cost["rmb"], rd_cost_year=app.rd_cost["year"])
        methods["cost_rmb"] = CostApproachValuer(valuation_date=vd).fit().predict(cost_input)
    if value_model is not None:
        methods = methods.assign(ml_rmb=ml["ml_value_p50_rmb"], ml_label_source=ml_label_source(value_model))
    rec = reconcile(methods, policy=policy)

    out = income[["patent_id", "package_id", "grade", "score", "sharing_rate", "income_period_years", "remaining_life_years",
                  "economic_life_years", "economic_life_source", "cash_flow_weighting", "income_value_rmb", "p5_rmb", "p50_rmb", "p95_rmb"]].copy()
    out.insert(1, "patent_type", patents["patent_type"])
    out.insert(2, "legal_status", patents["legal_status"])
    out["model_income_value_rmb"] = model_income
    out = out.join(ml)
    if market is not None:
        out = out.join(market[["market_value_rmb", "n_comparables", "spread", "match_level"]].rename(columns={"spread": "market_spread", "match_level": "market_match_level"}))
    if "cost_rmb" in methods:
        out["cost_value_rmb"] = methods["cost_rmb"]
    out = out.join(rec[["primary_method", "weight_income", "weight_market", "weight_cost", "weight_ml", "reconciled_value_rmb", "value_type",
                        "ml_role", "disagreement", "review_required", "below_cost_floor", "grant_probability", "pending_expected_value_rmb",
                        "collateral_basis_rmb", "reason_zh", "reason_en"]].rename(columns={"reason_zh": "method_reason_zh", "reason_en": "method_reason_en"}))
    value_overrides = {o.patent_id: o.value for o in app.overrides if o.field == "internal_value_rmb"}
    out["internal_value_rmb"] = out["patent_id"].map(value_overrides).fillna(out["reconciled_value_rmb"])
    out["internal_value_source"] = np.where(out["patent_id"].isin(list(value_overrides)), "override", "model")
    out.loc[~(rec["collateral_basis_rmb"] > 0), "internal_value_rmb"] = 0.0  # lapsed, expired, invalidated and pending rights: 0, overrides too
    rates = {k: float(v["value"]) for k, v in policy["pledge_rate"].items()}
    out["pledge_rate"] = out["patent_type"].map(rates)
    out["pledge_value_rmb"] = out["internal_value_rmb"] * out["pledge_rate"]

    # The package is the pledge unit: the income approach's scenario draws, centred on each
    # patent's internal value, summed per package; the disposal view's P10 is the package's cap.
    centre = np.median(draws, axis=1)
    scale = np.divide(out["internal_value_rmb"].to_numpy(), centre, out=np.zeros(len(out)), where=centre > 0)
    packages, allocation = package_disposal_view(draws * scale[:, None], out["package_id"], patent_id=out["patent_id"])
    out = out.join(allocation.set_index(out.index)[["collateral_value_q_rmb"]].rename(columns={"collateral_value_q_rmb": "disposal_cap_rmb"}))
    disposal_cap = float(packages["loan_cap_rmb"].sum())
    pledge_cap = float(out["pledge_value_rmb"].sum())
    cap = min(disposal_cap, pledge_cap)
    cap_basis = "disposal view" if disposal_cap <= pledge_cap else "pledge rate"

    review_needed = bool(rec["review_required"].any())
    signed_off = review_needed and app.review is not None
    checks = eligibility_checks(app, patents, features, policy, out, cap=cap, applications=applications)
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
    checks_passed = bool(checks["passed"].all())
    internal_route = within_internal_limit(app.requested_amount_rmb, policy)
    eligible = checks_passed and (not review_needed or signed_off)
    only_documents = not checks_passed and set(checks.loc[~checks["passed"], "status"]) == {"needs_document"} if "status" in checks else False
    decision = ("external appraisal required" if not internal_route else "documents required" if only_documents else "not eligible" if not checks_passed
                else "review required" if review_needed and not signed_off else "eligible")
    summary = {
        "borrower": app.borrower, "requested_amount_rmb": app.requested_amount_rmb, "term_years": app.term_years,
        "valuation_date": vd.date().isoformat(), "patents": int(len(out)),
        "internal_value_rmb": float(out["internal_value_rmb"].sum()),
        "internal_value_type": " and ".join(sorted(set(out.loc[out["internal_value_rmb"] > 0, "value_type"].dropna()))) or "none (no right in force)",
        "income_value_rmb": float(out["income_value_rmb"].sum()),
        "income_p5_rmb": float(np.quantile(package_draws, 0.05)), "income_p50_rmb": float(np.quantile(package_draws, 0.5)),
        "income_p95_rmb": float(np.quantile(package_draws, 0.95)),
        "ml_value_p50_rmb": float(out["ml_value_p50_rmb"].sum()) if "ml_value_p50_rmb" in out else None,
        "collateral_value_p50_rmb": float(packages["collateral_value_p50_rmb"].sum()),
        "disposal_quantile": float(packages["quantile"].iloc[0]) if len(packages) else None,
        "disposal_cap_rmb": disposal_cap, "pledge_value_rmb": pledge_cap,
        "loan_cap_rmb": cap, "loan_cap_basis": cap_basis, "requested_within_cap": app.requested_amount_rmb <= cap,
        "primary_methods": out["primary_method"].value_counts().to_dict(),
        "review_required": review_needed, "review": app.review if signed_off else None,
        "eligible": eligible, "internal_valuation_route": internal_route, "decision": decision,
        "methods_disagree": review_needed, "overrides": int(len(overrides)),
        "risk_sharing_scheme": sharing_info["label"], "bank_share_of_loss": sharing_info["bank_share"],
        "bank_loss_if_default_rmb": float(sharing.loc[sharing["is_bank"], "loss_rmb"].sum()),
    }
    provenance = {
        **valuer.provenance, "pledge_policy": f"{policy['name']}-v{policy['version']}", "pledge_policy_hash": policy_hash,
        "risk_sharing_hash": sharing_info["hash"], "input_hash": app.input_hash, "ipvalue_version": __version__,
        **{k: str(rec[k].iloc[0]) for k in rec.columns if k.startswith("reconciliation_rules")},
        "disposal_assumption_set": str(packages["disposal_assumption_set"].iloc[0]) if "disposal_assumption_set" in packages and len(packages) else "",
        "renewal_model": app.models.get("renewal") if renewal is not None else "not used", "renewal_run_id": renewal.run_id if renewal else "",
        "renewal_model_version": renewal.version if renewal else "",
        "renewal_headline_zh": label["zh"] if renewal else "", "renewal_headline_en": label["en"] if renewal else "",
        "value_model": app.models.get("value") if value_model is not None else "not used", "value_run_id": value_model.run_id if value_model else "",
        "value_model_version": value_model.version if value_model else "",
        "value_model_labels": ml_label_source(value_model) if value_model else "",
        "user": user, "valued_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    return ValuationResult(
        valuation_id=uuid.uuid4().hex[:12], application=app, patents=out, checks=checks, summary=summary, risk_sharing=sharing,
        reasons=reasons, scorecard_points=points, sensitivity=sensitivity, cash_flows=cash_flows,
        package_draws=package_draws, overrides=overrides, provenance=provenance, packages=packages,
    )


def collateral_status(patents: pd.DataFrame, features: pd.DataFrame | None = None) -> pd.Series:
    """The register status the reconciliation sees: the given status, but 'lapsed' where the fees
    are unpaid beyond the grace period, 'expired' past the term and 'pending' without a grant (the
    features know all three; without them only the missing grant date is seen). Only 'in_force'
    rights have a collateral value: every other status is worth 0 as collateral."""
    status = patents["legal_status"].astype(str).copy()
    if features is None:  # without features: a right in force needs a grant date
        status[patents["grant_date"].isna() & status.eq("in_force")] = "pending"
        return status
    status[(features["is_lapsed"] == 1) & status.eq("in_force")] = "lapsed"
    status[(features["is_expired"] == 1) & status.eq("in_force")] = "expired"
    status[(features["is_granted"] == 0) & status.eq("in_force")] = "pending"
    return status
