"""Run an experiment file end to end: data → split → fit → evaluate against baselines → gates →
MLflow run → registry and aliases (``ipvalue train``).

Two kinds of model: ``renewal`` (out-of-time split on a date column; headline: the fee of one
stage paid) and ``value`` (grouped K-fold, no package across folds; the final model is refit on
all labelled rows). Baselines are always trained and scored on the same data as the champion.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue.explain import global_importance
from ipvalue.frame import as_patent_frame
from ipvalue.registry import register_and_alias
from ipvalue.tracking import ensure_experiment, frame_hash, git_commit, log_patent_model, use_tracking
from ipvalue.training.experiment import ExperimentResult, load_data, load_experiment, train_renewal, train_value

logger = logging.getLogger(__name__)


def _plots(directory: Path, xy: tuple, shap_values: pd.DataFrame, kind: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = xy
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    lo, hi = float(min(np.min(x), np.min(y))), float(max(np.max(x), np.max(y)))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
    ax.plot(x, y, marker="o")
    ax.set_xlabel("predicted" if kind == "renewal" else "predicted, log10 RMB (decile median)")
    ax.set_ylabel("observed")
    ax.set_title("Reliability, out of time" if kind == "renewal" else "Accuracy by decile, out of fold")
    fig.tight_layout()
    fig.savefig(directory / "calibration.png", dpi=100)
    plt.close(fig)
    importance = global_importance(shap_values).iloc[::-1]
    fig, ax = plt.subplots(figsize=(5, max(3.0, 0.22 * len(importance))))
    ax.barh(importance.index, importance.to_numpy())
    ax.set_xlabel("mean |SHAP|")
    ax.set_title("Global importance (SHAP)")
    fig.tight_layout()
    fig.savefig(directory / "shap_importance.png", dpi=100)
    plt.close(fig)
    return [directory / "calibration.png", directory / "shap_importance.png"]


def run_experiment(path: str | Path, *, tracking_uri: str | None = None, data_dir=None) -> ExperimentResult:
    """Train, evaluate, log and (when every gate passes) register the experiment's model."""
    import mlflow


    spec = load_experiment(path)
    kind = spec["model"]["kind"]
    data = load_data(spec, data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feature policies are reported in the run, not as warnings
        trained = (train_renewal if kind == "renewal" else train_value)(spec, data, data_dir)
    passed = all(trained.gates.values())
    model = trained.model

    use_tracking(tracking_uri)
    experiment_id = ensure_experiment(spec["mlflow_experiment"])
    with mlflow.start_run(experiment_id=experiment_id, run_name=spec["name"]) as run:
        lgbm = {f"lgbm_{k}": v for k, v in model.booster_.get_params().items() if k in ("n_estimators", "learning_rate", "num_leaves", "min_child_samples", "reg_lambda")}
        mlflow.log_params({"experiment": spec["name"], "kind": kind, "feature_spec": model.features_.spec_.id, "split": yaml.safe_dump(spec["split"]).strip(), **lgbm})
        mlflow.log_metrics(trained.metrics)
        mlflow.set_tags({
            "git_commit": git_commit(), "training_data_hash": frame_hash(trained.train), "feature_spec_hash": model.features_.spec_.hash,
            "gates_passed": str(passed), "ipvalue.kind": kind, "ipvalue.experiment_file": Path(spec["_path"]).name, **trained.tags,
        })
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            files = []
            # The training population in the scoring output's form: the reference for PSI / CSI.
            reference = model.output_frame(as_patent_frame(trained.train, passthrough=model.features_.spec_.passthrough), explain="none")
            reference.to_parquet(tmp / "reference.parquet", index=False)
            files.append(tmp / "reference.parquet")
            for name, table in trained.tables.items():
                table.to_csv(tmp / f"{name}.csv", index=False)
                files.append(tmp / f"{name}.csv")
            for name, document in trained.documents.items():
                (tmp / name).write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
                files.append(tmp / name)
            global_importance(trained.shap).rename("mean_abs_shap").to_csv(tmp / "shap_importance.csv")
            (tmp / "gates.yaml").write_text(yaml.safe_dump({k: bool(v) for k, v in trained.gates.items()}, allow_unicode=True), encoding="utf-8")
            (tmp / "feature_spec.yaml").write_text(yaml.safe_dump(model.features_.spec_.raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
            files += [tmp / "shap_importance.csv", tmp / "gates.yaml", tmp / "feature_spec.yaml", *_plots(tmp, trained.plot_xy, trained.shap, kind)]
            if kind == "renewal":  # the assumption set of a renewal model: its fee schedule
                (tmp / "fee_schedule.yaml").write_text(yaml.safe_dump(vars(model.schedule_) | {"due_years": list(model.schedule_.due_years)}), encoding="utf-8")
                files.append(tmp / "fee_schedule.yaml")
            for f in files:
                mlflow.log_artifact(str(f))
            mlflow.log_artifact(spec["_path"])
        info = log_patent_model(model, trained.example)
        headline = ", ".join(f"{k} {v:.3f}" for k, v in trained.metrics.items() if k in ("oot_auc", "oot_ece", "cv_spearman", "cv_coverage_p10_p90"))
        description = f"{spec['name']}: {headline}; gates {'passed' if passed else 'failed'}"
        registration = register_and_alias(info.model_uri, spec["registered_model"], gates_passed=passed, description=description)
        if registration["registered"]:
            mlflow.set_tag("registered_version", str(registration["version"]))
    result = ExperimentResult(spec["name"], trained.metrics, trained.gates, passed, run.info.run_id, info.model_uri, registration, model)
    logger.info(result.summary())
    return result
