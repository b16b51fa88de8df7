"""Model governance: stability (PSI / CSI), promotion through gates, model cards, validation
reports and the override log, all generated from MLflow and reproducible from a registered version.

Thresholds for PSI and CSI (the usual credit-risk convention): below 0.10 stable, 0.10 to 0.25
watch, above 0.25 act.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.exceptions import SpecError

logger = logging.getLogger(__name__)

PSI_WATCH, PSI_ACT = 0.10, 0.25
EPSILON = 1e-4
INTENDED_USE = (
    "Internal valuation (内部评估) of patents pledged for bank loans under ¥10 million in the IP-finance pilots "
    "(金发〔2025〕10号): a reference for the credit line beside the income approach, with the officer's review."
)
OUT_OF_SCOPE = [
    "Loans of ¥10 million or more, where an external appraisal remains the norm.",
    "Fair-value accounting, tax, litigation damages or transfer pricing.",
    "Patents outside the training population's offices and types without re-validation (the renewal model is trained on US university patents).",
    "Automated decisions without an officer's review and the eligibility checks.",
]


class PromotionError(ValueError):
    """A promotion was refused (gates not passed, or no validator / reason)."""


# --- stability --------------------------------------------------------------------------------


def verdict(value: float) -> str:
    return "stable" if value < PSI_WATCH else "watch" if value < PSI_ACT else "act"


def psi(reference: pd.Series, current: pd.Series, *, bins: int = 10) -> tuple[float, pd.DataFrame]:
    """Population stability index of ``current`` against ``reference``.

    Numeric: bins at the reference deciles (distinct edges only); text or categories: one bin per
    value; missing values are a bin of their own. Empty bins count as 0.0001.

    Returns
    -------
    psi : float
    table : pandas.DataFrame
        ``bin, reference_share, current_share, contribution``.
    """
    numeric = pd.api.types.is_numeric_dtype(reference) and pd.api.types.is_numeric_dtype(current)
    if numeric:
        ref = reference.astype(float)
        edges = np.unique(np.nanquantile(ref.dropna(), np.linspace(0, 1, bins + 1)[1:-1])) if ref.notna().any() else np.array([])
        edges = np.concatenate([[-np.inf], edges, [np.inf]])

        def label(s):
            codes = pd.cut(s.astype(float), edges, right=True, labels=False, include_lowest=True)
            return codes.astype("Float64").astype(str).where(s.notna(), "missing")
    else:

        def label(s):
            return s.astype(object).where(s.notna(), "missing").astype(str)

    r = label(reference).value_counts(normalize=True)
    c = label(current).value_counts(normalize=True)
    table = pd.DataFrame({"reference_share": r, "current_share": c}).fillna(0.0)
    rs, cs = table["reference_share"].clip(lower=EPSILON), table["current_share"].clip(lower=EPSILON)
    table["contribution"] = (cs - rs) * np.log(cs / rs)
    return float(table["contribution"].sum()), table.rename_axis("bin").reset_index()


def drift_report(reference: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """PSI of every model output and CSI of every feature (``feature_*``) present in both frames.

    Returns one row per column: ``column, kind (PSI | CSI), value, verdict``, worst first.
    """
    outputs = [c for c in reference.columns if c in current.columns and not c.startswith(("feature_", "shap_", "driver_")) and c not in ("row", "patent_id")]
    features = [c for c in reference.columns if c.startswith("feature_") and c in current.columns]
    if not outputs and not features:
        raise ValueError("The reference and the current batch share no model output or feature_* column. Fix: score the batch with ipvalue score.")
    rows = [{"column": c, "kind": "PSI" if c in outputs else "CSI", "value": psi(reference[c], current[c])[0]} for c in outputs + features]
    table = pd.DataFrame(rows)
    table["verdict"] = table["value"].map(verdict)
    return table.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)


def load_reference(run_id: str) -> pd.DataFrame:
    """The training population a run logged (``reference.parquet``)."""
    import mlflow

    return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="reference.parquet"))


# --- registry: versions, aliases, promotion -------------------------------------------------------


def parse_model_uri(uri: str) -> tuple[str, str]:
    """(name, version) of ``models:/name/version`` or ``models:/name@alias`` (alias resolved)."""
    from mlflow import MlflowClient

    if not uri.startswith("models:/"):
        raise SpecError(f"A registered model URI looks like models:/NAME/VERSION or models:/NAME@ALIAS. Got {uri!r}.")
    rest = uri[len("models:/"):]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)
    name, _, version = rest.rpartition("/")
    return name, version


def alias_history(name: str) -> list[dict]:
    """Every alias move recorded on the registered model (tag ``ipvalue.alias_history``)."""
    from mlflow import MlflowClient

    tags = MlflowClient().get_registered_model(name).tags
    return json.loads(tags.get("ipvalue.alias_history", "[]"))


def record_alias_move(name: str, alias: str, version: str, *, by: str, reason: str, previous: str | None) -> None:
    """Append an alias move to the model's history tag (MLflow keeps no history of aliases)."""
    from mlflow import MlflowClient

    history = alias_history(name)
    history.append({"alias": alias, "version": str(version), "previous_version": previous, "by": by, "reason": reason,
                    "at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")})
    MlflowClient().set_registered_model_tag(name, "ipvalue.alias_history", json.dumps(history, ensure_ascii=False))


def promote(model_uri: str, *, validator: str, reason: str, alias: str = "champion") -> dict:
    """Move ``alias`` (default champion) to a registered version, only when the experiment's
    gates passed for its run and a validator and a reason are given; both are stored as tags on
    the version and in the alias history (and so in the model card)."""
    from mlflow import MlflowClient

    if not str(validator or "").strip():
        raise PromotionError("Promotion needs the validator's name (--validator). Fix: the independent validator approving the model signs it.")
    if not str(reason or "").strip():
        raise PromotionError("Promotion needs a reason (--reason). Fix: state why the model is approved, e.g. the validation report's conclusion.")
    client = MlflowClient()
    name, version = parse_model_uri(model_uri)
    mv = client.get_model_version(name, version)
    gates = client.get_run(mv.run_id).data.tags.get("gates_passed")
    if gates != "True":
        raise PromotionError(f"Version {version} of {name} did not pass its validation gates (gates_passed={gates}). Fix: retrain until the experiment's gates pass.")
    try:
        previous = str(client.get_model_version_by_alias(name, alias).version)
    except Exception:  # noqa: BLE001 - no current holder of the alias
        previous = None
    client.set_registered_model_alias(name, alias, version)
    for key, value in {"validated_by": validator.strip(), "validation_reason": reason.strip(), f"promoted_to_{alias}_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}.items():
        client.set_model_version_tag(name, version, key, value)
    record_alias_move(name, alias, version, by=validator.strip(), reason=reason.strip(), previous=previous)
    return {"model": name, "version": version, "alias": alias, "previous_version": previous}


# --- the model card -------------------------------------------------------------------------------


@dataclass
class ModelCard:
    """A model card built section by section (skops style): ``card.add("Data", text, table)``.

    Sections are addressable by title; ``to_markdown`` and ``to_html`` render the same content.
    """

    title: str
    sections: dict = field(default_factory=dict)

    def add(self, title: str, text: str = "", table: pd.DataFrame | None = None) -> "ModelCard":
        self.sections[title] = (text, table)
        return self

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for title, (text, table) in self.sections.items():
            out += [f"## {title}", ""]
            if text:
                out += [text, ""]
            if table is not None and len(table):
                cols = list(table.columns)
                out += ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
                out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
                out.append("")
        return "\n".join(out)

    def to_html(self) -> str:
        import html

        parts = [f"<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 "<style>body{font-family:Arial,'Noto Sans CJK SC',sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}"
                 "td,th{border:1px solid #ccd;padding:3px 7px}th{background:#eef3f8}</style></head><body>", f"<h1>{html.escape(self.title)}</h1>"]
        for title, (text, table) in self.sections.items():
            parts.append(f"<section><h2>{html.escape(title)}</h2>")
            for para in (text or "").split("\n\n"):
                if para.strip():
                    parts.append(f"<p>{html.escape(para).replace(chr(10), '<br>')}</p>")
            if table is not None and len(table):
                parts.append(table.to_html(index=False, border=0, float_format=lambda x: f"{x:.4g}"))
            parts.append("</section>")
        return "\n".join(parts + ["</body></html>"])


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def model_card(model_uri: str) -> ModelCard:
    """The model card of a registered version, from MLflow (run, tags, spec, aliases, history)."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    name, version = parse_model_uri(model_uri)
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().model
    spec = model.features_.spec_
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    aliases = [a for a, v in client.get_registered_model(name).aliases.items() if str(v) == str(version)]
    card = ModelCard(f"Model card: {name} version {version}")
    card.add("Model details", "\n".join([
        f"Registered model: {name}, version {version}; aliases now: {', '.join(aliases) or 'none'}.",
        f"Kind: {tags.get('ipvalue.kind')}; experiment: {params.get('experiment')}; run {mv.run_id}.",
        f"Training code: git commit {tags.get('git_commit')}; feature spec {spec.id} (hash {spec.hash}).",
        f"Owners: {tags.get('owner', 'the ipvalue model owner of the bank (set the run tag owner)')}; validated by: {mv.tags.get('validated_by', 'not yet validated')}.",
    ]))
    card.add("Intended use", INTENDED_USE)
    card.add("Out-of-scope uses", "\n".join(f"- {x}" for x in OUT_OF_SCOPE))
    card.add("Data", "\n".join([
        f"Source: {tags.get('data_origin', 'unknown')}. Training data hash: {tags.get('training_data_hash')}.",
        f"Split: {params.get('split', '').replace(chr(10), '; ')}." + (f" Observation date (later fee stages censored): {tags.get('observed_until')}." if tags.get("observed_until") else ""),
        "Known limitations: " + ("right-censoring of the fee stages not yet due at the observation date; US-only, university-owned training patents, "
                                 "so Chinese patents are scored outside the training population" if tags.get("ipvalue.kind") == "renewal"
                                 else "labels are appraisal values; on the demo they are synthetic (labelled synthetic)") + ".",
    ]))
    features = pd.DataFrame([{"feature": f.name, "builder": f.builder, "monotone": {1: "+ (value rises)", -1: "- (value falls)", 0: "none"}[f.monotone],
                              "missing": f.missing, "description_zh": f.description_zh, "description_en": f.description_en} for f in spec.features])
    card.add("Features", f"{len(features)} features from {spec.id}; monotone directions are enforced as LightGBM constraints where set.", features)
    card.add("Method and assumptions", "\n".join([
        "LightGBM discrete-time hazard model on patent × fee-stage rows (a stage counts only when observed); survival = product of (1 − hazard)."
        if tags.get("ipvalue.kind") == "renewal" else
        "LightGBM regression on log value with monotone constraints; split-conformal P10/P90 interval on log residuals (guaranteed marginal coverage).",
        "Parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if k.startswith("lgbm_")) + ".",
    ]))
    perf = pd.DataFrame(sorted(metrics.items()), columns=["metric", "value"])
    card.add("Performance", "Out-of-time or grouped cross-validated figures of the training run; baselines scored on the same data.", perf)
    card.add("Limitations", "\n".join([
        "Calibration can drift when the population changes: monitor PSI / CSI (ipvalue govern drift).",
        "SHAP contributions explain the model, not causality.",
        "Values are a reference for the credit decision, reconciled with the income approach and reviewed by an officer.",
    ]))
    history = pd.DataFrame(alias_history(name))
    card.add("Version history", "Alias moves recorded by ipvalue (who, when, why).", history if len(history) else None)
    return card


# --- validation report ----------------------------------------------------------------------------


def _experiment_of(run_id: str) -> dict:
    import mlflow

    from ipvalue.models.experiment import load_experiment

    name = mlflow.MlflowClient().get_run(run_id).data.tags.get("ipvalue.experiment_file")
    if not name:
        raise SpecError(f"Run {run_id} has no 'ipvalue.experiment_file' tag: it was not trained by ipvalue train.")
    return load_experiment(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name))


def validation_report(model_uri: str, *, data_dir=None) -> ModelCard:
    """The validator's report for a registered renewal model, recomputed from its experiment
    (same data, split and seeds: running it twice gives the same numbers)."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.metrics import roc_auc_score

    from ipvalue.models.experiment import _load_data
    from ipvalue.models.metrics import bootstrap_interval, expected_calibration_error, reliability_table

    client = MlflowClient()
    name, version = parse_model_uri(model_uri)
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    if run.data.tags.get("ipvalue.kind") != "renewal":
        raise SpecError(f"validation_report covers renewal models; {name} v{version} is {run.data.tags.get('ipvalue.kind')!r}. Its grouped CV figures are in the model card.")
    spec = _experiment_of(mv.run_id)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().model
    data = _load_data(spec, data_dir)
    label = data[spec["data"]["label"]]
    train_mask = data[spec["split"]["date_column"]] <= pd.Timestamp(spec["split"]["train_until"])
    stage = int(spec.get("evaluation", {}).get("headline_stage", 2))
    test = data[~train_mask]
    observed = model.schedule_.observed(model.features_._as_frame(test), spec["data"]["observed_until"])[:, stage - 1]
    test = test[observed]
    y = (label[test.index] >= stage).astype(int).to_numpy()
    scores = model.score_frame(model.features_._as_frame(test), explain="none")
    p = scores[f"p_fee_{stage}"].to_numpy()
    auc = roc_auc_score(y, p)
    lo, hi = bootstrap_interval(roc_auc_score, y, p, n=300)
    elo, ehi = bootstrap_interval(expected_calibration_error, y, p, n=300)
    report = ModelCard(f"Validation report: {name} version {version}")
    report.add("Scope", f"Out-of-time test set: grants after {spec['split']['train_until']} ({len(test):,} patents whose fee {stage} is observed). "
                        f"Outcome: fee {stage} paid. Bootstrap: 300 resamples, seed 0.")
    headline = pd.DataFrame([
        {"metric": "AUC", "value": auc, "ci_low": lo, "ci_high": hi},
        {"metric": "ECE", "value": expected_calibration_error(y, p), "ci_low": elo, "ci_high": ehi},
        {"metric": "observed rate", "value": y.mean(), "ci_low": np.nan, "ci_high": np.nan},
        {"metric": "mean predicted", "value": p.mean(), "ci_low": np.nan, "ci_high": np.nan},
    ])
    report.add("Out-of-time performance", "", headline)
    matrix = model.transform_features(test)
    from ipvalue.features import infer_applicant_type

    segments = {
        "grant year": test["grant_date"].dt.year.astype(str),
        "technology (IPC section)": matrix["ipc_section"].astype(str),
        "patent type": test["patent_type"].astype(str),
        "applicant type": test["applicant_type"].fillna(infer_applicant_type(test["applicants"])).astype(str),
    }
    rows = []
    for seg_name, values in segments.items():
        for value, idx in values.groupby(values).groups.items():
            pos = test.index.get_indexer(idx)
            ys, ps = y[pos], p[pos]
            rows.append({"segment": seg_name, "value": value, "patents": len(pos), "observed": ys.mean(), "predicted": ps.mean(),
                         "auc": roc_auc_score(ys, ps) if len(np.unique(ys)) > 1 and len(pos) >= 30 else np.nan})
    report.add("Performance by segment", "AUC where the segment has both outcomes and at least 30 patents.", pd.DataFrame(rows))
    report.add("Calibration", "Equal-width bins of the predicted probability.", reliability_table(y, p))
    challengers = pd.DataFrame([{"model": k.removeprefix("baseline_").removesuffix("_auc"), "auc": v, "champion_lift": run.data.metrics["oot_auc"] - v}
                                for k, v in run.data.metrics.items() if k.startswith("baseline_")])
    report.add("Challengers and baselines", "Scored on the same out-of-time data in the training run.", challengers)
    base = model._hazards(matrix)[:, stage - 1]
    mono, sens = [], []
    for f in model.features_.spec_.features:
        if f.dtype == "category" or matrix[f.name].isna().all():
            continue
        sd = float(np.nanstd(matrix[f.name])) or 1.0
        moved = model._hazards(matrix.assign(**{f.name: matrix[f.name] + sd}))[:, stage - 1]
        sens.append({"feature": f.name, "mean_abs_change_in_lapse_probability": float(np.nanmean(np.abs(moved - base)))})
        if f.monotone:
            mono.append({"feature": f.name, "direction": f.monotone, "violations": int(((moved - base) * f.monotone > 1e-12).sum())})
    report.add("Monotonicity against the spec", "A feature that should raise value must not raise the lapse hazard (+1 sd for every patent).", pd.DataFrame(mono))
    report.add("Sensitivity", "Mean absolute change of the lapse probability when the feature rises by one standard deviation.",
               pd.DataFrame(sens).sort_values("mean_abs_change_in_lapse_probability", ascending=False))
    train_scores = model.score_frame(model.features_._as_frame(data[train_mask]), explain="none")
    by_year = pd.concat([train_scores.assign(year=data.loc[train_mask, "grant_date"].dt.year.to_numpy()),
                         scores.assign(year=test["grant_date"].dt.year.to_numpy())])
    stability = by_year.groupby("year")[f"p_fee_{stage}"].agg(["size", "mean", "std"]).reset_index()
    value, _ = psi(train_scores[f"p_fee_{stage}"], scores[f"p_fee_{stage}"])
    report.add("Stability over time", f"PSI of the score, training grants vs out-of-time grants: {value:.4f} ({verdict(value)}).", stability)
    survival = scores.filter(like="p_fee_")
    back = []
    observed_all = model.schedule_.observed(model.features_._as_frame(test), spec["data"]["observed_until"])
    for k in range(1, survival.shape[1] + 1):
        seen = observed_all[:, k - 1]
        if seen.any():
            back.append({"fee stage": k, "patents observed": int(seen.sum()), "predicted P(paid)": float(survival[f"p_fee_{k}"][seen].mean()),
                         "observed share paid": float((label[test.index][seen] >= k).mean())})
    report.add("Back-test of the income approach's input", "The economic life the income approach takes from this model rests on these fee probabilities: predicted vs observed.", pd.DataFrame(back))
    return report


# --- the override log -----------------------------------------------------------------------------


def override_summary(audit_db=None) -> pd.DataFrame:
    """How often officers overrode the model, in which direction, by how much (per field)."""
    from ipvalue.audit import read_table

    valuations, overrides = read_table("valuations", audit_db), read_table("overrides", audit_db)
    if overrides.empty:
        return pd.DataFrame([{"field": "all", "overrides": 0, "valuations": len(valuations), "share_of_valuations": 0.0}])
    change = overrides["override_value"] / overrides["model_value"].where(overrides["model_value"] != 0) - 1
    overrides = overrides.assign(change=change, up=change > 0, down=change < 0)
    table = overrides.groupby("field").agg(
        overrides=("field", "size"), valuations_with_override=("valuation_id", "nunique"), up=("up", "sum"), down=("down", "sum"),
        mean_relative_change=("change", "mean"), median_relative_change=("change", "median"), officers=("officer", "nunique"),
    ).reset_index()
    table["share_of_valuations"] = table["valuations_with_override"] / max(len(valuations), 1)
    return table
