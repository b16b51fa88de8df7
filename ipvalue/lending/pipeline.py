"""The valuation pipeline: named steps from an application to a decision, looping over the
registered valuation methods.

    prepare       the shared inputs, built once: features and scorecard as of the valuation date,
                  the economic-life curves (fee-lapse survival from the renewal model or the CN
                  life table, officers' economic-life overrides), the Monte Carlo scenarios
    run_methods   every registered method whose inputs are present (:mod:`ipvalue.methods`)
    reconcile     each patent's market value from the methods' offers, with reasons, the
                  disagreement and floor checks (:mod:`ipvalue.lending.reconcile`)
    value_chain   value in use → market value → collateral value (the disposal view at the
                  policy's quantile, drawn from the market value's distribution) → pledge-rate
                  limit → loan cap (:mod:`ipvalue.lending.disposal`)
    checks        eligibility, register evidence, the ¥10M on total exposure (:mod:`ipvalue.lending.checks`)
    decide        eligible / review required / documents required / not eligible / external appraisal

:func:`value_application` runs them for one application and returns a :class:`ValuationResult`
(what the report, the loan system's JSON and the audit store take); :func:`value_book` runs the
value steps for a book of patents (the demo's pledge book). The workflow that records and reports
a valuation is :mod:`ipvalue.workflow`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ipvalue import __version__, terms
from ipvalue.exceptions import ApplicationError
from ipvalue.explain import reason_codes
from ipvalue.features import PatentFeatureBuilder, shared_feature_groups
from ipvalue.lending.application import LoanApplication
from ipvalue.lending.checks import eligibility_checks
from ipvalue.lending.disposal import DisposalAssumptions, package_disposal_view
from ipvalue.lending.policy import load_pledge_policy, material_overrides, risk_sharing_table, within_internal_limit
from ipvalue.lending.reconcile import collateral_status, reconcile
from ipvalue.methods import MethodResult, Scenarios, ValuationInputs, registered_methods
from ipvalue.methods.base import FLAG_COLUMNS
from ipvalue.methods.income import IncomeAssumptions, IndicatorScorecard
from ipvalue.registry import RegisteredModel, load_model

logger = logging.getLogger(__name__)

MODEL_KINDS = ("renewal", "value")
#: Years of yearly weights the income approach receives (covers any statutory term plus extensions).
SURVIVAL_YEARS = 30
FEATURE_SPEC = "core-v1"
SCORECARD = "scorecard-pledge"

#: Value type of each money column of the valuation's summary, patent and package tables.
VALUE_TYPES_OF_COLUMNS = {
    "value_in_use_rmb": "value_in_use", "market_value_rmb": "market_value", "model_market_value_rmb": "market_value",
    "internal_value_rmb": "market_value", "pending_expected_value_rmb": "market_value", "floor_rmb": "market_value",
    "collateral_basis_rmb": "market_value", "collateral_value_p50_rmb": "collateral_value", "collateral_value_rmb": "collateral_value",
    "collateral_value_q_rmb": "collateral_value", "disposal_cap_rmb": "collateral_value", "pledge_value_rmb": "collateral_value",
    "loan_cap_rmb": "collateral_value", "market_value_p50_rmb": "market_value", "value_in_use_p5_rmb": "value_in_use",
    "value_in_use_p50_rmb": "value_in_use", "value_in_use_p95_rmb": "value_in_use",
    "requested_amount_rmb": "loan amount (not a value)", "bank_loss_if_default_rmb": "loss allocation (not a value)",
}


@dataclass
class ValuationResult:
    """Everything the report, the loan system (JSON) and the audit store need.

    ``patents``: one row per patent (each method's figure ``method_<name>_rmb``, the
    reconciliation, the value chain, the pledge value); ``packages``: one row per package (the
    pledge unit: market value, disposal view, cap); ``methods``: each method's
    :class:`~ipvalue.methods.base.MethodResult`; ``report``: the 内部评估报告 as addressable
    sections (:class:`~ipvalue.report.sections.Report`), which the JSON carries and every rendering
    lays out.
    """

    valuation_id: str
    application: LoanApplication
    patents: pd.DataFrame
    packages: pd.DataFrame
    checks: pd.DataFrame
    summary: dict
    risk_sharing: pd.DataFrame
    reasons: pd.DataFrame
    scorecard_points: pd.DataFrame
    overrides: pd.DataFrame
    provenance: dict
    methods: dict = field(default_factory=dict)
    skipped_methods: list = field(default_factory=list)
    flags: pd.DataFrame | None = None
    market_draws: np.ndarray | None = None
    life: pd.DataFrame | None = None
    report: object = None

    def to_dict(self) -> dict:
        def records(frame):
            return json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False))

        columns = set(self.patents.columns) | set(self.packages.columns) | set(self.summary)
        types = {c: t for c, t in VALUE_TYPES_OF_COLUMNS.items() if c in columns}
        for name in self.methods:
            types[f"method_{name}_rmb"] = self.methods[name].value_type
        return {
            "valuation_id": self.valuation_id, "application_id": self.application.application_id, "summary": self.summary,
            "patents": records(self.patents), "packages": records(self.packages.reset_index()), "checks": records(self.checks),
            "risk_sharing": records(self.risk_sharing), "reasons": records(self.reasons), "overrides": records(self.overrides),
            "flags": records(self.flags) if self.flags is not None else [],
            "methods": [{"method": name, "label_zh": r.label_zh, "label_en": r.label_en, "value_type": r.value_type, "provenance": r.provenance}
                        for name, r in self.methods.items()],
            "methods_not_run": [{"method": s, "reason_zh": zh, "reason_en": en} for s, zh, en in self.skipped_methods],
            "provenance": self.provenance, "value_types": types,
            "report": self.report.to_dict() if self.report is not None else None,
        }

    def to_json(self, indent: int | None = None) -> str:
        """The result for the bank's loan system and the audit record (UTF-8 JSON), the report's
        sections included: HTML and PDF are rendered from it. Compact by default (the audit record,
        the service's answer); ``indent=2`` for the file a reader opens (several times slower to
        write: Python's JSON encoder indents in Python)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent, default=str)


def load_application_models(app: LoanApplication, *, tracking_uri: str | None = None) -> dict[str, RegisteredModel]:
    """The registered models an application names (``models: {renewal: URI, value: URI}``).

    Raises
    ------
    ApplicationError
        An unknown kind of model.
    ModelNotFoundError
        A URI that is not a registry URI or names no registered version.
    """
    unknown = sorted(set(app.models) - set(MODEL_KINDS))
    if unknown:
        raise ApplicationError(f"The 'models' of application {app.application_id} name unknown kinds {unknown}. Fix: use {list(MODEL_KINDS)}.")
    return {kind: load_model(uri, tracking_uri=tracking_uri) for kind, uri in app.models.items() if uri}


# --- step 1: the shared inputs ----------------------------------------------------------------


@dataclass
class LifeStep:
    """The economic-life step's output: the life curves (fee survival, obsolescence, weights) with
    the officers' economic-life overrides in them, per-patent columns and the renewal model's reasons."""

    curves: object
    columns: pd.DataFrame
    reasons: pd.DataFrame
    provenance: dict


def documents_paid_until(patents: pd.DataFrame, documents) -> pd.Series:
    """Each patent's latest fee-prepayment receipt date among the application's documents (NaT: none)."""
    dates = pd.Series(pd.NaT, index=patents.index, dtype="datetime64[ns]")
    receipts = {}
    for d in documents or ():
        if d.kind == "fee_prepayment" and d.paid_until is not None:
            receipts[d.patent_id] = max(receipts.get(d.patent_id, d.paid_until), d.paid_until)
    return dates.where(~patents["patent_id"].isin(list(receipts)), patents["patent_id"].map(receipts)).astype("datetime64[ns]")


def life_step(patents: pd.DataFrame, valuation_date, *, renewal: RegisteredModel | None, features: pd.DataFrame, paid_until: pd.Series | None,
              overrides: dict, data_dir=None) -> LifeStep:
    """Each patent's economic life (:func:`ipvalue.models.life.economic_life`): fee-lapse survival
    S_t (the renewal model with features as of the valuation date, or the CN life table's level),
    with fees documented as paid through a date carrying no risk before it; technology and market
    obsolescence O_t apart from it (a per-field curve); the weights W_t = S_t × O_t × A_t. An
    officer's economic life L replaces a patent's curves by a certain life (no fee lapse, no
    obsolescence, within min(L, legal life)). The renewal model's reasons speak of each patent's
    own headline (CN: its next annual fee at risk)."""
    import dataclasses

    from ipvalue.models.life import FeeLapseEvents, economic_life

    reasons = pd.DataFrame(columns=["patent_id", "rank", "feature", "reason_zh", "reason_en", "model"])
    provenance: dict = {"renewal_model": "not used"}
    ro = None
    if renewal is not None:
        est = renewal.estimator
        ro = est.valuation_outputs(patents, valuation_date, years=SURVIVAL_YEARS, paid_until=paid_until)
        groups = []
        for (zh, en), rows in ro.headline.groupby(["label_zh", "label_en"]).groups.items():
            groups.append(reason_codes(ro.headline_contributions.loc[rows], ro.features.loc[rows], est.features_.spec_, medians=est.feature_medians_,
                                       favourable_sign=1, units="probability", outcome_zh=zh, outcome_en=en))
        reasons = pd.concat(groups).assign(model="renewal") if groups else reasons
        if len(reasons) and "patent_id" not in reasons:
            reasons.insert(0, "patent_id", patents.loc[reasons.index, "patent_id"].to_numpy())
        provenance = {"renewal_model": renewal.uri, "renewal_model_version": renewal.version, "renewal_run_id": renewal.run_id}
    curves = economic_life(patents, valuation_date, years=SURVIVAL_YEARS, renewal=ro, paid_until=paid_until, features=features, data_dir=data_dir)
    summary = curves.summary()  # indexed like the patents
    fee_source = pd.Series(summary["fee_survival_source"]).astype(str)
    life = summary["economic_life_years"].to_numpy()
    data = {
        "model_economic_life_years": life, "expected_in_force_years": summary["expected_in_force_years"].to_numpy(),
        "fees_paid_until_documented": summary["fees_paid_until"].to_numpy(), "obsolescence_rate": summary["obsolescence_rate"].to_numpy(),
        "economic_life_years": life.copy(),
        "economic_life_source": np.where(summary["obsolescence_rate"].isna(), "legal_life", "obsolescence_curve"),
        "fee_survival_source": np.where(fee_source.str.contains("renewal", case=False).to_numpy(), "renewal_model",
                                        np.where(fee_source.str.contains("life table", case=False).to_numpy(), "cn_life_table", "none")),
    }
    if ro is not None:
        data.update({c: ro.p_fee[c].to_numpy() for c in ro.p_fee.columns})
        data.update(p_fee_headline=ro.headline["probability"].to_numpy(), headline_zh=ro.headline["label_zh"].to_numpy(),
                    headline_en=ro.headline["label_en"].to_numpy())
    columns = pd.DataFrame(data, index=patents.index)
    if overrides:
        hit = patents["patent_id"].isin(list(overrides)).to_numpy()
        life = patents["patent_id"].map(overrides).to_numpy(float)
        rows = np.flatnonzero(hit)
        legal = curves.legal_life.copy()
        legal[rows] = np.minimum(legal[rows], life[rows])
        rate = curves.obsolescence_rate.copy()
        rate[rows] = np.nan
        kept = np.flatnonzero(~hit)
        events = FeeLapseEvents.combine([(kept, curves.events.take(kept)), (rows, FeeLapseEvents.none(legal[rows], "信贷员调整 officer override"))], len(hit))
        curves = dataclasses.replace(curves, legal_life=legal, obsolescence_rate=rate, events=events)
        columns.loc[hit, "economic_life_years"] = curves.economic_life_years[hit]
        columns.loc[hit, "economic_life_source"] = "override"
        columns.loc[hit, "expected_in_force_years"] = curves.expected_in_force_years()[hit]
    provenance.update(curves.provenance)
    return LifeStep(curves, columns, reasons, provenance)


def prepare_inputs(patents: pd.DataFrame, valuation_date, *, models: dict[str, RegisteredModel], assumption_set: str = "cn-pledge-2025",
                   schedule=None, financials=None, tax_rate=None, comparables=None, rd_cost=None, wacc=None, overrides=(),
                   reference_book: pd.DataFrame | None = None, paid_until: pd.Series | None = None, data_dir=None) -> ValuationInputs:
    """Step 1: the inputs every method shares, built once: the core features and the scorecard as
    of the valuation date (the patents are their own cohort reference, or the ``reference_book``
    with them), the economic-life curves, the Monte Carlo scenarios of the assumption set."""
    vd = pd.Timestamp(valuation_date).normalize()
    patents = patents.copy()
    assumptions = IncomeAssumptions.load(assumption_set)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feature-policy fills are reported in the provenance notes
        builder = PatentFeatureBuilder(FEATURE_SPEC, valuation_date=vd, data_dir=data_dir)
        if reference_book is None:  # the patents are their own cohort reference: one build
            features = builder.fit_transform(patents)
        else:
            builder.fit(pd.concat([reference_book, patents], ignore_index=True).drop_duplicates("patent_id"))
            features = builder.transform(patents)
        card = IndicatorScorecard(SCORECARD).fit()
        by_indicator = card.points(features)
        score = card.score(features, points=by_indicator)
        indicators, n = card.indicators_, len(patents)  # one row per patent and indicator, the indicators in order
        points = pd.DataFrame({"patent_id": np.repeat(patents["patent_id"].to_numpy(dtype=object), len(indicators)),
                               "indicator": np.tile(indicators["name"].to_numpy(dtype=object), n), "points": by_indicator.to_numpy().ravel(),
                               **{c: np.tile(indicators[c].to_numpy(), n) for c in ("max_points", "label_zh", "label_en")}})
        life = life_step(patents, vd, renewal=models.get("renewal"), features=features, paid_until=paid_until,
                         overrides={o.patent_id: o.value for o in overrides if o.field == "economic_life_years"}, data_dir=data_dir)
    return ValuationInputs(
        valuation_date=vd, patents=patents, features=features, scorecard=score, scorecard_points=points,
        scenarios=Scenarios(assumptions.mc_draws, assumptions.mc_seed), life=life.curves, life_columns=life.columns,
        revenue_forecast=True, schedule=schedule, financials=financials, tax_rate=tax_rate, comparables=comparables,
        rd_cost=rd_cost, wacc=wacc, overrides=tuple(overrides), value_model=models.get("value"),
        assumption_set=assumption_set, data_dir=data_dir,
        provenance={**builder.provenance, **card.provenance, **life.provenance, "life_reasons": life.reasons},
    )


def prepare(app: LoanApplication, models: dict[str, RegisteredModel], *, data_dir=None) -> ValuationInputs:
    """Step 1 for an application: :func:`prepare_inputs` with the application's fields."""
    return prepare_inputs(app.patents, app.valuation_date, models=models, assumption_set=app.assumption_set, schedule=app.schedule,
                          financials=app.financials, tax_rate=app.tax_rate, comparables=app.comparables, rd_cost=app.rd_cost,
                          wacc=app.wacc, overrides=app.overrides, reference_book=app.reference_book,
                          paid_until=documents_paid_until(app.patents, app.documents), data_dir=data_dir)


# --- step 2: the methods ------------------------------------------------------------------------


def run_methods(inputs: ValuationInputs) -> tuple[dict[str, MethodResult], list[tuple[str, str, str]]]:
    """Step 2: every registered method whose inputs are present, in registry order. Returns the
    results by name and the methods not run with the reason (Chinese, English)."""
    results, skipped = {}, []
    for spec in registered_methods():
        missing = [n for n in spec.needs if not inputs.has(n)]
        if missing:
            skipped.append((spec.name, f"{spec.label_zh}未采用：缺少{ '、'.join(NEED_LABELS.get(n, (n, n))[0] for n in missing)}",
                            f"{spec.label_en} not used: no {', '.join(NEED_LABELS.get(n, (n, n))[1] for n in missing)}"))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[spec.name] = spec.factory(inputs).assess(inputs.patents, inputs)
    return results, skipped


#: Readers' names of the inputs a method may need.
NEED_LABELS = {
    "revenue_forecast": ("收入预测", "revenue forecast"), "comparables": ("可比交易", "comparable transactions"),
    "rd_cost": ("研发成本", "R&D cost"), "value_model": ("已注册的价值模型", "registered value model"),
}


# --- step 4: the value chain ---------------------------------------------------------------------


def value_chain(inputs: ValuationInputs, results: dict[str, MethodResult], rec: pd.DataFrame, status: pd.Series, policy: dict, *,
                value_overrides: dict | None = None, disposal="disposal-cn"):
    """Step 4: market value → collateral value → pledge-rate limit, per patent and package.

    The market value's distribution is each patent's chosen method's scenario draws (a point
    where the method has none), scaled to an officer's market-value override; rights not in
    force (and pending applications) are 0, overrides too. The package (the patents that protect
    one product) is the pledge unit: its scenarios are summed and the disposal view
    (:func:`~ipvalue.lending.disposal.package_disposal_view`) read at the policy quantile; the
    collateral value never exceeds the realisation factor × the package's market value.

    Returns
    -------
    chain : pandas.DataFrame, per patent: ``model_market_value_rmb``, ``market_value_rmb`` (after
        overrides; 0 unless in force), ``internal_value_source``, ``pledge_rate``,
        ``pledge_value_rmb``, ``collateral_value_rmb`` (the patent's share of its package's)
    packages : pandas.DataFrame, per package
    draws : numpy.ndarray, (n_patents, n_draws), the market value's scenarios
    """
    patents = inputs.patents
    n, d = len(patents), inputs.scenarios.n_draws
    in_force = status.eq("in_force").to_numpy()
    model_mv = np.where(in_force, rec["market_value_rmb"].fillna(0.0).to_numpy(float), 0.0)
    overrides = value_overrides or {}
    overridden = patents["patent_id"].isin(list(overrides)).to_numpy()
    mv = model_mv.copy()
    mv[overridden] = patents.loc[overridden, "patent_id"].map(overrides).to_numpy(float)
    mv = np.where(in_force, mv, 0.0)
    draws = np.repeat(model_mv[:, None], d, axis=1)
    for name, result in results.items():
        rows = (rec["basis_method"] == name).to_numpy() & in_force
        if rows.any() and result.draws is not None:
            draws[rows] = np.nan_to_num(result.draws[rows])
    scale = np.divide(mv, model_mv, out=np.zeros(n), where=model_mv > 0)
    draws = np.where((model_mv > 0)[:, None], draws * scale[:, None], mv[:, None])
    a = DisposalAssumptions.load(disposal)
    packages, allocation = package_disposal_view(draws, patents["package_id"], patent_id=patents["patent_id"], assumptions=a)
    point = pd.Series(mv, index=patents.index).groupby(patents["package_id"]).sum()
    packages["market_value_rmb"] = point.reindex(packages.index).to_numpy()
    bound = a.realisation_factor * packages["market_value_rmb"]
    packages["collateral_value_bounded"] = packages["collateral_value_q_rmb"] > bound + 1e-9
    packages["collateral_value_q_rmb"] = np.minimum(packages["collateral_value_q_rmb"], bound)
    packages["loan_cap_rmb"] = packages["collateral_value_q_rmb"]
    rates = {k: float(v["value"]) for k, v in policy["pledge_rate"].items()}
    chain = pd.DataFrame(index=patents.index)
    chain["model_market_value_rmb"] = model_mv
    chain["market_value_rmb"] = mv
    chain["internal_value_source"] = np.where(overridden, "override", "model")
    chain["pledge_rate"] = patents["patent_type"].map(rates).astype(float)
    chain["pledge_value_rmb"] = chain["market_value_rmb"] * chain["pledge_rate"]
    share = allocation["allocation_share"].to_numpy()
    chain["collateral_value_rmb"] = packages["collateral_value_q_rmb"].reindex(allocation["package_id"]).to_numpy() * share
    packages["pledge_value_rmb"] = chain["pledge_value_rmb"].groupby(patents["package_id"]).sum().reindex(packages.index).to_numpy()
    packages["value_in_use_rmb"] = (results["income"].values["value_rmb"].where(in_force, 0.0).groupby(patents["package_id"]).sum()
                                    .reindex(packages.index).to_numpy()) if "income" in results else np.nan
    return chain, packages, draws


# --- step 6: the decision ------------------------------------------------------------------------

DECISIONS = ("eligible", "review required", "documents required", "not eligible", "external appraisal required")


def decide(checks: pd.DataFrame, *, review_needed: bool, signed_off: bool, internal_route: bool) -> str:
    """Step 6: the decision. Outside the internal route an external appraisal; failed checks that
    only want documents: documents required; other failures: not eligible; methods that disagree
    (or a flag that wants review) without a sign-off: review required; else eligible."""
    checks_passed = bool(checks["passed"].all())
    only_documents = not checks_passed and set(checks.loc[~checks["passed"], "status"]) == {"needs_document"}
    if not internal_route:
        return "external appraisal required"
    if only_documents:
        return "documents required"
    if not checks_passed:
        return "not eligible"
    if review_needed and not signed_off:
        return "review required"
    return "eligible"


def material_override_flags(overrides: pd.DataFrame, policy: dict) -> pd.DataFrame:
    """A review flag for each material override (:func:`~ipvalue.lending.policy.material_overrides`):
    an officer's figure raised beyond the policy's threshold needs a reviewer's sign-off."""
    material = overrides[material_overrides(overrides, policy)] if len(overrides) else overrides
    rows = []
    for o in material.itertuples():
        label_zh, label_en = terms.OVERRIDE_FIELDS.get(o.field, (o.field, o.field))
        model = "—" if pd.isna(o.model_value) else f"{o.model_value:,.4g}"
        rows.append({"scope": o.patent_id, "code": "material_override", "review": True,
                     "reason_zh": f"{o.officer} 将{label_zh}由模型值 {model} 调整为 {o.override_value:,.4g}，超过政策阈值，须复核人签批",
                     "reason_en": f"{o.officer} raised the {label_en} from the model's {model} to {o.override_value:,.4g}, beyond the policy's threshold: "
                                  "a reviewer's sign-off is required"})
    return pd.DataFrame(rows, columns=list(FLAG_COLUMNS))


def figures_hash(out: pd.DataFrame, packages: pd.DataFrame, checks: pd.DataFrame, overrides: pd.DataFrame, flags: pd.DataFrame, extra: dict) -> str:
    """SHA-256 of the figures a reviewer approves (per patent, per package, checks, overrides,
    flags, the inputs' hash, the policy and model versions): a sign-off names it, and holds only
    while a re-valuation gives the same."""
    def records(frame):
        return json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False, double_precision=15))

    body = {"patents": records(out), "packages": records(packages.reset_index()), "checks": records(checks), "overrides": records(overrides),
            "flags": records(flags), **extra}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()


# --- the whole pipeline ------------------------------------------------------------------------


def value_application(app: LoanApplication, *, models: dict[str, RegisteredModel] | None = None, tracking_uri: str | None = None,
                      data_dir=None, user: str = "unknown", applications: pd.DataFrame | None = None) -> ValuationResult:
    """Value one application through the pipeline's steps (module docstring).

    ``models``: the application's registered models when the caller has them loaded (a service);
    else loaded here with :func:`load_application_models`. ``applications``: the audit store's
    recorded applications (:func:`ipvalue.audit.pledge_applications`) for the borrower's total
    IP-pledge exposure; None means the store was not consulted, and the exposure check then fails
    (an unknown total exposure never passes).
    """
    from ipvalue.lending.sections import build_report

    policy, policy_hash = load_pledge_policy(app.pledge_policy)
    if models is None:
        models = load_application_models(app, tracking_uri=tracking_uri)
    with shared_feature_groups():  # the scorecard's and the models' features share their builder groups
        inputs = prepare(app, models, data_dir=data_dir)
        results, skipped = run_methods(inputs)
    status = collateral_status(inputs.patents, inputs.features)
    rec = reconcile(results, status, inputs.patents["patent_type"], policy=policy)
    value_overrides = {o.patent_id: o.value for o in app.overrides if o.field == "internal_value_rmb"}
    chain, packages, draws = value_chain(inputs, results, rec, status, policy, value_overrides=value_overrides)

    patents = inputs.patents
    # the per-patent table from its parts, all indexed like the patents, in one concat (chained joins re-copy every column at each step)
    parts = [patents[["patent_id", "package_id", "patent_type", "legal_status"]], status.rename("register_status"),
             inputs.scorecard[["total", "grade"]].rename(columns={"total": "score"}), inputs.life_columns,
             *(r.values["value_rmb"].rename(f"method_{name}_rmb") for name, r in results.items())]
    if "income" in results:
        inc = results["income"].columns
        parts += [inc[[c for c in ("sharing_rate", "sharing_position", "income_period_years", "remaining_life_years", "cash_flow_weighting",
                                   "value_in_use_p5_rmb", "value_in_use_p95_rmb") if c in inc]],
                  results["income"].values["value_rmb"].rename("value_in_use_rmb")]
    else:
        remaining = inputs.features["remaining_life_years"]
        parts += [remaining.rename("remaining_life_years"), np.minimum(remaining, inputs.life_columns["economic_life_years"]).rename("income_period_years")]
    parts += [rec.drop(columns=["market_value_rmb"]).rename(columns={"reason_zh": "method_reason_zh", "reason_en": "method_reason_en"}), chain]
    out = pd.concat(parts, axis=1)
    out["internal_value_rmb"] = out["market_value_rmb"]

    model_values = {
        "sharing_rate": results["income"].columns.set_index(patents["patent_id"])["model_sharing_rate"] if "income" in results else pd.Series(dtype=float),
        "economic_life_years": inputs.life_columns.set_index(patents["patent_id"])["model_economic_life_years"],
        "internal_value_rmb": chain.set_index(patents["patent_id"])["model_market_value_rmb"],
    }
    overrides = pd.DataFrame([
        {"patent_id": o.patent_id, "field": o.field, "model_value": float(model_values[o.field].get(o.patent_id, np.nan)), "override_value": o.value,
         "reason": o.reason, "officer": o.officer} for o in app.overrides
    ], columns=["patent_id", "field", "model_value", "override_value", "reason", "officer"])
    flags = pd.concat([pd.DataFrame(columns=list(FLAG_COLUMNS)), *(r.flags for r in results.values() if len(r.flags)),
                       material_override_flags(overrides, policy)], ignore_index=True)
    review_needed = bool(out["review_required"].any() or flags["review"].astype(bool).any())
    disposal_cap = float(packages["loan_cap_rmb"].sum())
    pledge_cap = float(out["pledge_value_rmb"].sum())
    cap = min(disposal_cap, pledge_cap)
    cap_basis = "disposal view" if disposal_cap <= pledge_cap else "pledge rate"
    checks = eligibility_checks(app, patents, inputs.features, policy, out, cap=cap, applications=applications)
    input_hash = app.input_hash  # hashes the application's inputs: once
    figures = figures_hash(out, packages, checks, overrides, flags, {
        "input_hash": input_hash, "pledge_policy_hash": policy_hash, "cap": cap, "requested_amount_rmb": app.requested_amount_rmb,
        "models": {kind: f"{m.uri}#{m.version}" for kind, m in sorted(models.items()) if m is not None}})
    # a sign-off holds only for the figures its reviewer approved: any later change lapses it
    signed_off = review_needed and isinstance(app.review, dict) and app.review.get("figures_hash") == figures
    internal_route = within_internal_limit(app.requested_amount_rmb, policy)
    decision = decide(checks, review_needed=review_needed, signed_off=signed_off, internal_route=internal_route)
    exposure = min(app.requested_amount_rmb, cap) if cap > 0 else app.requested_amount_rmb
    sharing, sharing_info = risk_sharing_table(app.risk_sharing, exposure)

    reasons = pd.concat([inputs.provenance.get("life_reasons"), *(r.evidence["reasons"] for r in results.values() if "reasons" in r.evidence)],
                        ignore_index=True)

    package_draws = draws.sum(axis=0)
    in_force = out["register_status"].eq("in_force")
    basis_counts = out.loc[out["basis_method"] != "", "basis_method"].value_counts()
    summary = {
        "borrower": app.borrower, "requested_amount_rmb": app.requested_amount_rmb, "term_years": app.term_years,
        "valuation_date": app.valuation_date.date().isoformat(), "patents": int(len(out)), "patents_in_force": int(in_force.sum()),
        "value_in_use_rmb": float(out.loc[in_force, "value_in_use_rmb"].sum()) if "value_in_use_rmb" in out else None,
        "market_value_rmb": float(out["market_value_rmb"].sum()), "internal_value_rmb": float(out["market_value_rmb"].sum()),
        "internal_value_type": "market_value", "market_value_basis": {str(k): int(v) for k, v in basis_counts.items()},
        "market_value_p50_rmb": float(np.median(package_draws)),
        "collateral_value_p50_rmb": float(packages["collateral_value_p50_rmb"].sum()),
        "disposal_quantile": float(packages["quantile"].iloc[0]) if len(packages) else None,
        "collateral_value_rmb": disposal_cap, "disposal_cap_rmb": disposal_cap, "pledge_value_rmb": pledge_cap,
        "loan_cap_rmb": cap, "loan_cap_basis": cap_basis, "requested_within_cap": app.requested_amount_rmb <= cap,
        "review_required": review_needed, "review": app.review if signed_off else None, "figures_hash": figures,
        "material_overrides": int(flags["code"].eq("material_override").sum()),
        "eligible": decision == "eligible", "internal_valuation_route": internal_route, "decision": decision,
        "methods_disagree": bool(out["review_required"].any()), "overrides": int(len(overrides)),
        "risk_sharing_scheme": sharing_info["label"], "bank_share_of_loss": sharing_info["bank_share"],
        "bank_loss_if_default_rmb": float(sharing.loc[sharing["is_bank"], "loss_rmb"].sum()),
    }
    life_prov = {k: v for k, v in inputs.provenance.items() if k != "life_reasons"}
    provenance = {
        **life_prov, **{k: v for r in results.values() for k, v in r.provenance.items() if isinstance(v, (str, int, float, bool))},
        **inputs.scenarios.provenance, "pledge_policy": f"{policy['name']}-v{policy['version']}", "pledge_policy_hash": policy_hash,
        "risk_sharing_hash": sharing_info["hash"], "input_hash": input_hash, "ipvalue_version": __version__,
        "reconciliation_rules": str(rec["reconciliation_rules"].iloc[0]) if len(rec) else "",
        "reconciliation_rules_hash": str(rec["reconciliation_rules_hash"].iloc[0]) if len(rec) else "",
        "disposal_assumption_set": str(packages["disposal_assumption_set"].iloc[0]) if len(packages) else "",
        "disposal_assumption_set_hash": str(packages["disposal_assumption_set_hash"].iloc[0]) if len(packages) else "",
        "value_model": models["value"].uri if models.get("value") is not None else "not used",
        "user": user, "valued_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    result = ValuationResult(
        valuation_id=uuid.uuid4().hex[:12], application=app, patents=out, packages=packages, checks=checks, summary=summary,
        risk_sharing=sharing, reasons=reasons, scorecard_points=inputs.scorecard_points, overrides=overrides, provenance=provenance,
        methods=results, skipped_methods=skipped, flags=flags, market_draws=draws, life=inputs.life,
    )
    result.report = build_report(result, inputs=inputs, policy=policy)
    return result


def value_book(patents: pd.DataFrame, valuation_date, *, models: dict[str, RegisteredModel], data_dir=None, assumption_set="cn-pledge-2025",
               pledge_policy="pledge-policy-cn") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The value steps (prepare → methods → reconcile → value chain) for a book of patents, each
    package valued on the revenue its rows give (no application, no checks, no decision): the
    demo's pledge book. Returns the per-patent table (with the provenance of every figure) and
    the per-package disposal view."""
    policy, _ = load_pledge_policy(pledge_policy)
    book = patents.reset_index(drop=True).assign(package_id=lambda f: f["package_id"].fillna(f["patent_id"]))
    with shared_feature_groups():
        inputs = prepare_inputs(book, valuation_date, models=models, assumption_set=assumption_set, data_dir=data_dir)
        results, _ = run_methods(inputs)
    status = collateral_status(inputs.patents, inputs.features)
    rec = reconcile(results, status, inputs.patents["patent_type"], policy=policy)
    chain, packages, _ = value_chain(inputs, results, rec, status, policy)
    out = inputs.patents[["patent_id", "package_id", "patent_type", "legal_status"]].assign(register_status=status)
    out = out.join(inputs.scorecard[["total", "grade"]].rename(columns={"total": "score"})).join(inputs.life_columns)
    out["remaining_life_years"] = inputs.features["remaining_life_years"]
    for name, r in results.items():
        out[f"method_{name}_rmb"] = r.values["value_rmb"]
    if "income" in results:
        out["value_in_use_rmb"] = results["income"].values["value_rmb"]
    out = out.join(rec.drop(columns=["market_value_rmb"])).join(chain)
    provenance = {**inputs.provenance, **{k: v for r in results.values() for k, v in r.provenance.items()}}
    for key, value in provenance.items():
        if isinstance(value, (str, int, float)):
            out[key] = value
    return out, packages
