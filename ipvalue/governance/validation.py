"""The validation report of a registered renewal model, recomputed from its experiment with the
same public steps as training (same data, split and seeds: running it twice gives the same numbers)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue.exceptions import SpecError
from ipvalue.features import infer_applicant_type
from ipvalue.frame import as_patent_frame
from ipvalue.governance.card import ModelCard
from ipvalue.governance.charts import distribution_figure, reliability_figure, roc_figure, stability_figure
from ipvalue.governance.drift import drift_report, psi, verdict
from ipvalue.models.metrics import bootstrap_interval, calibrated_ece_reference, expected_calibration_error, reliability_table
from ipvalue.registry import resolve_version
from ipvalue.scoring.headings import output_headings
from ipvalue.training import headline_stage, load_data, load_experiment, observed_outcomes, out_of_time_mask, out_of_time_renewal_model


def _experiment_of(run_id: str) -> dict:
    import mlflow

    name = mlflow.MlflowClient().get_run(run_id).data.tags.get("ipvalue.experiment_file")
    if not name:
        raise SpecError(f"Run {run_id} has no 'ipvalue.experiment_file' tag: it was not trained by ipvalue train.")
    return load_experiment(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name))


def validation_report(model_uri: str, *, data_dir=None) -> ModelCard:
    """The validator's report for a registered renewal model, recomputed from its experiment
    (same data, split and seeds: running it twice gives the same numbers)."""
    from mlflow import MlflowClient
    from sklearn.metrics import roc_auc_score

    client = MlflowClient()
    name, version = resolve_version(model_uri)
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    if run.data.tags.get("ipvalue.kind") != "renewal":
        raise SpecError(f"validation_report covers renewal models; {name} v{version} is {run.data.tags.get('ipvalue.kind')!r}. Its grouped CV figures are in the model card.")
    spec = _experiment_of(mv.run_id)
    # The registered version is refitted on all labelled patents after its validation; the
    # out-of-time figures belong to the model fitted on the training period only, which the
    # experiment's seeded steps rebuild exactly.
    data = load_data(spec, data_dir)
    model = out_of_time_renewal_model(spec, data, data_dir)
    label = data[spec["data"]["label"]]
    train_mask = out_of_time_mask(spec, data)
    stage = headline_stage(spec)
    all_test = as_patent_frame(data[~train_mask], passthrough=model.features_.spec_.passthrough)
    test, y = observed_outcomes(model, spec, all_test, stage)
    scores = model.output_frame(test, explain="none")
    p = scores[f"p_fee_{stage}"].to_numpy()
    auc = roc_auc_score(y, p)
    lo, hi = bootstrap_interval(roc_auc_score, y, p, n=300)
    elo, ehi = bootstrap_interval(expected_calibration_error, y, p, n=300)
    floor = calibrated_ece_reference(p)
    report = ModelCard(f"Validation report: {name} version {version}", title_zh=f"验证报告：{name} 第{version}版")
    features = model.features_.spec_.features
    report.value_labels["feature"] = {f.name: f"{f.description_zh} {f.name}" for f in features}
    report.add("Scope", "The registered version is refitted on all labelled patents after validation; these figures are those of the "
                        "same model fitted on the training period only (rebuilt from the experiment, seeded). "
                        f"Out-of-time test set: {spec['split']['date_column']} after {spec['split']['train_until']} ({len(test):,} patents whose fee {stage} "
                        f"is observed). Outcome: {model.stage_label(stage)['en']}. Bootstrap: 300 resamples, seed 0.")
    headline = pd.DataFrame([
        {"metric": "AUC", "value": auc, "ci_low": lo, "ci_high": hi},
        {"metric": "ECE", "value": expected_calibration_error(y, p), "ci_low": elo, "ci_high": ehi},
        {"metric": "observed rate", "value": y.mean(), "ci_low": np.nan, "ci_high": np.nan},
        {"metric": "mean predicted", "value": p.mean(), "ci_low": np.nan, "ci_high": np.nan},
        {"metric": "ECE of a perfectly calibrated model on these predictions (sampling noise; 95th percentile as ci_high)",
         "value": floor[0], "ci_low": np.nan, "ci_high": floor[1]},
    ])
    report.add("Out-of-time performance", "", headline, figures=[roc_figure(y, p, auc=auc)])
    matrix = model.transform_features(test)
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
    reliability = reliability_table(y, p)
    report.add("Calibration", "Equal-width bins of the predicted probability.", reliability, figures=[reliability_figure(reliability)])
    logged = run.data.metrics
    challengers = pd.DataFrame([{"model": k.removeprefix("baseline_").removesuffix("_auc"), "auc": v, "champion_lift": logged["oot_auc"] - v}
                                for k, v in logged.items() if k.startswith("baseline_") and "_fee" not in k])
    report.add("Challengers and baselines", "Scored on the same out-of-time data in the training run.", challengers)
    stages = sorted({int(k.split("_")[1].removeprefix("fee")) for k in logged if k.startswith(("oot_fee", "pit_fee"))})
    if stages:
        per_stage = pd.DataFrame([{
            "fee stage": k, "outcome": f"{model.stage_label(k)['zh']} {model.stage_label(k)['en']}",
            **{f"{col} {m}": logged.get(f"{prefix}_fee{k}_{m}", np.nan) for col, prefix in (("out of time", "oot"), ("point in time", "pit"))
               for m in ("auc", "ece", "mean_predicted", "observed_rate")},
            "logistic baseline auc": logged.get(f"baseline_logistic_fee{k}_auc", np.nan),
            "calibrated-model ece (p95)": logged.get(f"oot_fee{k}_ece_if_calibrated_p95", np.nan),
        } for k in stages])
        report.add("Per fee stage, out of time and point in time",
                   "Logged by the training run. Out of time: owner histories as of the data's observation date, so a test patent's features may "
                   "count lapses of other patents dated after its own fee decision. Point in time (evaluation.point_in_time): the model a bank "
                   "could have fitted on a date before every test patent's decision of that stage, with fees observed and owner histories up to "
                   "that date: the stricter figure of what a valuation on a date can know.", per_stage)
    base = model.stage_hazards(matrix)[:, stage - 1]
    mono, sens = [], []
    for f in model.features_.spec_.features:
        if f.dtype == "category" or matrix[f.name].isna().all():
            continue
        sd = float(np.nanstd(matrix[f.name])) or 1.0
        moved = model.stage_hazards(matrix.assign(**{f.name: matrix[f.name] + sd}))[:, stage - 1]
        sens.append({"feature": f.name, "mean_abs_change_in_lapse_probability": float(np.nanmean(np.abs(moved - base)))})
        if f.monotone:
            mono.append({"feature": f.name, "direction": f.monotone, "violations": int(((moved - base) * f.monotone > 1e-12).sum())})
    report.add("Monotonicity against the spec", "A feature that should raise value must not raise the lapse hazard (+1 sd for every patent).", pd.DataFrame(mono))
    report.add("Sensitivity", "Mean absolute change of the lapse probability when the feature rises by one standard deviation.",
               pd.DataFrame(sens).sort_values("mean_abs_change_in_lapse_probability", ascending=False))
    train_scores = model.output_frame(as_patent_frame(data[train_mask], passthrough=model.features_.spec_.passthrough), explain="none")
    split_on = spec["split"]["date_column"]
    by_year = pd.concat([train_scores.assign(year=data.loc[train_mask, split_on].dt.year.to_numpy()),
                         scores.assign(year=test[split_on].dt.year.to_numpy())])
    stability = by_year.groupby("year")[f"p_fee_{stage}"].agg(["size", "mean", "std"]).reset_index()
    value, _ = psi(train_scores[f"p_fee_{stage}"], scores[f"p_fee_{stage}"])
    stage_name = model.stage_label(stage)
    report.add("Stability over time", f"PSI of the score, training vs out-of-time patents (by {split_on} year): {value:.4f} ({verdict(value)}).", stability,
               figures=[distribution_figure(train_scores[f"p_fee_{stage}"], scores[f"p_fee_{stage}"], name_zh=stage_name["zh"], name_en=stage_name["en"],
                                            chart_id="score-distribution", reference_label=("训练期专利", "training-period patents"),
                                            current_label=("样本外专利", "out-of-time patents"))])
    indices = drift_report(train_scores, scores)
    names = output_headings(indices["column"], model)
    report.value_labels["column"] = {c: f"{names[c]} {c}" for c in names}
    report.add("Stability of the features (CSI)", "PSI of every output and CSI of every feature, training-period against out-of-time patents: "
                                                  "the population the model is validated on has moved by this much.", indices,
               figures=[stability_figure(indices, names, title_zh="稳定性指标：训练期与样本外", title_en="Stability indices, training vs out of time")])
    survival = scores.filter(like="p_fee_")
    back = []
    observed_all = model.at_risk(test, spec["data"]["observed_until"])
    for k in range(1, survival.shape[1] + 1):
        seen = observed_all[:, k - 1]
        if seen.any():
            back.append({"fee stage": k, "patents observed": int(seen.sum()), "predicted P(paid)": float(survival[f"p_fee_{k}"][seen].mean()),
                         "observed share paid": float((label[test.index][seen] >= k).mean())})
    report.add("Back-test of the income approach's input", "The economic life the income approach takes from this model rests on these fee probabilities: predicted vs observed.", pd.DataFrame(back))
    return report
