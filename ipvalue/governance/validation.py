"""The validation report of a registered renewal model, recomputed from its experiment with the
same public steps as training (same data, split and seeds: running it twice gives the same numbers),
and of the valuation methods: their out-of-time back-test against the bank's pilot ledger
(:func:`methods_backtest`, :func:`add_methods_backtest`)."""

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


# --- the valuation methods: outcome analysis against the bank's pilot ledger ---------------------

METHODS_SCOPE = ("估值方法的结果分析（SR 11-7；银监发〔2009〕104号），不仅是续费模型：收益法、市场法、成本法在发放时给出的市场价值与实际结果比较；"
                 "样本外检验（以银行试点台账前期贷款校准系数，在后期贷款上检验），校准前（现行参数集）与校准后并列：估值与成交价、外部评估值，"
                 "处置视角P10与实际回收，损失与可贷上限，以及客户经理按分行、个人和时间的人工调整。\n\n"
                 "Outcome analysis of the valuation methods (SR 11-7; 银监发〔2009〕104号), not only of the renewal model: the market value the "
                 "income, market and cost approaches gave at origination against what happened, out of time (the coefficients calibrated on the "
                 "earlier loans of the bank's pilot ledger, tested on the later ones), before (the sets in use) and after (the calibrated "
                 "coefficients) side by side: values against deal prices and external appraisals, the disposal view's P10 against realised "
                 "recoveries, losses against the cap, and the officers' overrides by branch and officer over time.")


def methods_backtest(*, ledger=None, calibration_run: str | None = None, as_of=None):
    """The valuation methods' back-test report (:func:`ipvalue.calibration.report.backtest_report`):
    run now on a pilot ledger with the sets in use, or the one a calibration run logged.

    Parameters
    ----------
    ledger : str or Path, optional
        A pilot ledger (folder of CSV files or a workbook).
    calibration_run : str, optional
        An ``ipvalue calibrate`` MLflow run id (its ``calibration/backtest/report.json``).
    as_of : date-like, optional
        The ledger's date (default: its latest date).

    Returns
    -------
    ipvalue.report.Report

    Raises
    ------
    SpecError
        Neither or both given, or a run that is not a calibration with a back-test report.
    """
    import json

    from ipvalue.report import Report

    if (ledger is None) == (calibration_run is None):
        raise SpecError("The methods' back-test needs a pilot ledger or a calibration run (one of them). Fix: pass --ledger DIR or --calibration-run RUN_ID.")
    if calibration_run is not None:
        import mlflow

        run = mlflow.MlflowClient().get_run(calibration_run)
        if run.data.tags.get("ipvalue.kind") != "calibration":
            raise SpecError(f"Run {calibration_run} is not an ipvalue calibrate run (kind {run.data.tags.get('ipvalue.kind')!r}). Fix: give a calibration's run id.")
        try:
            path = mlflow.artifacts.download_artifacts(run_id=calibration_run, artifact_path="calibration/backtest/report.json")
        except Exception as exc:  # noqa: BLE001 - MLflow raises its own errors for a missing artifact
            raise SpecError(f"Calibration run {calibration_run} logged no back-test report. Fix: calibrate again with this ipvalue version, or pass --ledger.") from exc
        with open(path, encoding="utf-8") as fh:
            return Report.from_dict(json.load(fh))
    from ipvalue.calibration import load_ledger
    from ipvalue.calibration.backtest import run_backtest
    from ipvalue.calibration.estimate import SetsInUse, Settings
    from ipvalue.calibration.report import backtest_report

    loaded = load_ledger(ledger, as_of=as_of)
    settings = Settings.load()
    return backtest_report(loaded, run_backtest(loaded, SetsInUse.load(), settings), settings_name=f"{settings.name}-v{settings.version}")


def add_methods_backtest(card: ModelCard, report) -> ModelCard:
    """Add the methods' back-test (a :class:`~ipvalue.report.Report`) to a governance document: each
    section with its paragraphs (Chinese, then English), its tables (cells as the report reads them)
    and its charts; a section's second and later tables become sections of their own."""
    from ipvalue.governance.charts import Figure
    from ipvalue.report import format_cell
    from ipvalue.report.render import draw_chart

    lead = None
    if report.meta.get("verdict_zh"):
        lead = (f"回测闸门 Back-test gates: {report.meta['verdict_zh']} / {report.meta['verdict_en']}", "stable" if report.meta.get("passed") else "act")
    card.add("Valuation methods: scope", METHODS_SCOPE, lead=lead)
    card.titles_zh["Valuation methods: scope"] = "估值方法验证范围"
    for section in report.sections:
        text = "\n\n".join(f"{zh}\n{en}" for zh, en in section.paragraphs)
        figures = [Figure(c.id, draw_chart(c.__dict__), c.title_zh, c.title_en) for c in section.charts]
        tables = section.tables or [None]
        for i, table in enumerate(tables):
            title = f"Methods back-test: {section.title_en}" + (f" ({table.caption_en or table.id})" if i else "")
            frame = None
            if table is not None:
                frame = pd.DataFrame([{f"{c.label_zh} {c.label_en}" if c.label_en != c.label_zh else c.label_zh: format_cell(row.get(c.key), c.kind)
                                       for c in table.columns} for row in table.rows])
            card.add(title, text if i == 0 else "", frame if frame is not None and len(frame) else None, figures=figures if i == 0 else None)
            card.titles_zh[title] = f"估值方法回测：{section.title_zh}" + (f"（{table.caption_zh or table.id}）" if i else "")
    return card


def methods_validation_report(report) -> ModelCard:
    """A validation report of the valuation methods alone (no registered model named)."""
    title = report.meta.get("calibration_run") or report.meta.get("ledger_sha256", "")[:16]
    card = ModelCard(f"Validation report: valuation methods ({title})", title_zh="验证报告：估值方法")
    return add_methods_backtest(card, report)
