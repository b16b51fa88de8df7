"""Run an experiment file end to end: data → split → fit → evaluate against baselines → gates →
MLflow run → registry and aliases.

Two kinds of model: ``renewal`` (out-of-time split on a date column; headline: the fee of one
stage paid) and ``value`` (grouped K-fold, no package across folds; the final model is refit on
all labelled rows). Baselines are always trained and scored on the same data as the champion.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue.exceptions import SpecError

logger = logging.getLogger(__name__)

KINDS = {"renewal": "out_of_time", "value": "grouped_kfold"}


@dataclass
class ExperimentResult:
    name: str
    metrics: dict
    gates: dict
    gates_passed: bool
    run_id: str
    model_uri: str
    registration: dict
    model: object = field(default=None, repr=False)

    def summary(self) -> str:
        lines = [f"experiment {self.name}: run {self.run_id}"]
        lines += [f"  {k} = {v:.4f}" for k, v in sorted(self.metrics.items())]
        lines += [f"  gate {k}: {'pass' if v else 'FAIL'}" for k, v in self.gates.items()]
        reg = self.registration
        lines.append(f"  registered as version {reg['version']} with alias @{reg['alias']}" if reg["registered"] else "  not registered: a gate failed")
        return "\n".join(lines)


@dataclass
class _Trained:
    model: object
    metrics: dict
    gates: dict
    tables: dict  # artifact name -> DataFrame
    train: pd.DataFrame
    example: pd.DataFrame
    shap: pd.DataFrame
    plot_xy: tuple  # (predicted, observed) columns of the calibration / accuracy plot
    tags: dict


def load_experiment(path: str | Path) -> dict:
    """Read and check an experiment YAML."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"Experiment file {str(path)!r} does not exist. Fix: pass a file from experiments/.")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("name", "mlflow_experiment", "registered_model", "data", "model", "split", "gates"):
        if key not in spec:
            raise SpecError(f"Experiment {path} has no '{key}'. Fix: add it (see experiments/renewal-us-university.yaml).")
    kind = spec["model"].get("kind")
    if kind not in KINDS:
        raise SpecError(f"The 'model.kind' of experiment {path} must be one of {sorted(KINDS)}. Got {kind!r}.")
    if spec["split"].get("kind") != KINDS[kind]:
        raise SpecError(f"The 'split.kind' of a {kind} experiment ({path}) must be {KINDS[kind]!r}. Got {spec['split'].get('kind')!r}.")
    spec["_path"] = str(path)
    return spec


def _load_data(spec: dict, data_dir) -> pd.DataFrame:
    from ipvalue import io as ipio
    from ipvalue.demo import make_demo_portfolio

    loader = spec["data"].get("loader")
    if loader == "university_maintenance":
        return ipio.load_university_maintenance(data_dir)
    if loader == "demo_portfolio":
        return make_demo_portfolio(int(spec["data"].get("n", 3000)), int(spec["data"].get("seed", 0))).patents
    if loader == "file":
        result = ipio.read_patents(spec["data"]["path"])
        raw, _ = ipio.read_table(spec["data"]["path"])
        label = spec["data"]["label"]
        return result.valid.assign(**{label: pd.to_numeric(raw.loc[result.valid.index, label], errors="coerce")})
    raise SpecError(f"The 'data.loader' of experiment {spec['_path']} must be university_maintenance, demo_portfolio or file. Got {loader!r}.")


def _renewal(spec: dict, data: pd.DataFrame, data_dir) -> _Trained:
    from sklearn.metrics import roc_auc_score

    from ipvalue.models import ClaimsOnlyRule, CompositeIndex, LogisticBaseline, RenewalModel
    from ipvalue.models.metrics import binary_metrics, bootstrap_auc, reliability_table
    from ipvalue.tracking import raw_records

    label = data[spec["data"]["label"]]
    split_date = pd.Timestamp(spec["split"]["train_until"])
    train_mask = data[spec["split"]["date_column"]] <= split_date
    train, test = data[train_mask], data[~train_mask]
    observed_until = spec["data"]["observed_until"]
    stage = int(spec.get("evaluation", {}).get("headline_stage", 2))
    model = RenewalModel(
        spec["model"]["feature_spec"], fee_schedule=spec["model"]["fee_schedule"], observed_until=observed_until,
        params=spec["model"].get("params"), data_dir=data_dir,
    ).fit(train, label[train_mask])
    observed = model.schedule_.observed(model.features_._as_frame(test), observed_until)[:, stage - 1]
    evaluated = test[observed]
    y = (label[~train_mask][observed] >= stage).astype(int).to_numpy()
    p = model.predict_survival(evaluated)[f"p_fee_{stage}"].to_numpy()
    metrics = {f"oot_{k}": v for k, v in binary_metrics(y, p).items()}
    lo, hi = bootstrap_auc(y, p)
    metrics.update({"oot_auc_ci_low": lo, "oot_auc_ci_high": hi, "train_patents": float(len(train)), "test_patents": float(len(evaluated))})
    y_train = (label[train_mask] >= stage).astype(int)
    baselines = {
        "claims_only": ClaimsOnlyRule(),
        "logistic": LogisticBaseline(spec["model"]["feature_spec"], valuation_date=observed_until, data_dir=data_dir, owner_book=model.features_.owner_book),
        "composite": CompositeIndex(valuation_date=observed_until, data_dir=data_dir),
    }
    for name in spec.get("evaluation", {}).get("baselines", list(baselines)):
        score = baselines[name].fit(train, y_train).predict(evaluated)
        metrics[f"baseline_{name}_auc"] = float(roc_auc_score(y, score))
        metrics[f"lift_over_{name}_auc"] = metrics["oot_auc"] - metrics[f"baseline_{name}_auc"]
    g = spec["gates"]
    gates = {
        f"auc >= {g['auc_min']}": metrics["oot_auc"] >= g["auc_min"],
        f"ece <= {g['ece_max']}": metrics["oot_ece"] <= g["ece_max"],
        **{f"beats {b}": metrics["oot_auc"] > metrics[f"baseline_{b}_auc"] for b in g.get("must_beat", [])},
    }
    reliability = reliability_table(y, p)
    # The registered version is refitted on every labelled patent (same settings); the validation
    # figures above stay the out-of-time ones, and the refit's in-sample figures are logged apart.
    validated = model
    model = RenewalModel(
        spec["model"]["feature_spec"], fee_schedule=spec["model"]["fee_schedule"], observed_until=observed_until,
        params=spec["model"].get("params"), data_dir=data_dir,
    ).fit(data, label)
    seen = model.schedule_.observed(model.features_._as_frame(data), observed_until)[:, stage - 1]
    metrics.update({
        "refit_patents": float(len(data)),
        "refit_in_sample_auc": float(roc_auc_score((label[seen] >= stage).astype(int), model.predict_survival(data[seen])[f"p_fee_{stage}"])),
        "validated_model_train_patents": float(len(validated.train_survival_)),
    })
    return _Trained(
        model, metrics, gates, {"reliability": reliability, "stage_counts": model.stage_counts_.reset_index()}, data,
        raw_records(test.head(5), extra_columns=model.features_.spec_.passthrough),
        model.contributions(evaluated.head(2000), stage=stage), (reliability["predicted"], reliability["observed"]),
        {"data_origin": "real: USPTO university maintenance fees", "observed_until": observed_until,
         "validation": "out of time (train until split.train_until); registered model refitted on all labelled patents"},
    )


def _value(spec: dict, data: pd.DataFrame, data_dir) -> _Trained:
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold

    from ipvalue.models import ClaimsOnlyRule, CompositeIndex
    from ipvalue.models.value import ValueRegressor
    from ipvalue.tracking import raw_records

    label_col = spec["data"]["label"]
    labelled = data[data[label_col].notna() & (data[label_col] > 0)]
    y = labelled[label_col].to_numpy(float)
    groups = labelled[spec["split"].get("group_column", "package_id")].fillna(labelled["patent_id"])
    vd = spec["data"].get("valuation_date")
    make = lambda: ValueRegressor(spec["model"]["feature_spec"], valuation_date=vd, alpha=float(spec["model"].get("alpha", 0.2)),  # noqa: E731
                                  params=spec["model"].get("params"), data_dir=data_dir)
    oof = pd.DataFrame(index=labelled.index, columns=["p10", "p50", "p90", "linear", "composite"], dtype=float)
    for fit_idx, test_idx in GroupKFold(n_splits=int(spec["split"].get("k", 5))).split(labelled, groups=groups):
        tr, te = labelled.iloc[fit_idx], labelled.iloc[test_idx]
        m = make().fit(tr, y[fit_idx])
        iv = m.predict_interval(te)
        oof.loc[te.index, ["p10", "p50", "p90"]] = iv.to_numpy()
        design = lambda frame: m.features_.transform(frame).select_dtypes("number").fillna(0.0)  # noqa: E731
        oof.loc[te.index, "linear"] = np.exp(Ridge(alpha=1.0).fit(design(tr), np.log(y[fit_idx])).predict(design(te)))
        oof.loc[te.index, "composite"] = CompositeIndex(valuation_date=vd, data_dir=data_dir).fit(tr).predict(te).to_numpy()
    log_y, log_p = np.log(y), np.log(oof["p50"].to_numpy(float))

    def pinball(q, pred):
        d = log_y - np.log(pred)
        return float(np.mean(np.maximum(q * d, (q - 1) * d)))

    metrics = {
        "cv_spearman": float(spearmanr(y, oof["p50"]).statistic),
        "cv_mae_log": float(np.mean(np.abs(log_y - log_p))),
        "cv_pinball_p10": pinball(0.1, oof["p10"]), "cv_pinball_p50": pinball(0.5, oof["p50"]), "cv_pinball_p90": pinball(0.9, oof["p90"]),
        "cv_coverage_p10_p90": float(np.mean((y >= oof["p10"]) & (y <= oof["p90"]))),
        "baseline_linear_spearman": float(spearmanr(y, oof["linear"]).statistic),
        "baseline_claims_only_spearman": float(spearmanr(y, ClaimsOnlyRule().predict(labelled)).statistic),
        "baseline_composite_spearman": float(spearmanr(y, oof["composite"]).statistic),
        "labelled_patents": float(len(labelled)), "unlabelled_patents_left_out": float(len(data) - len(labelled)),
    }
    for b in ("linear", "claims_only", "composite"):
        metrics[f"lift_over_{b}_spearman"] = metrics["cv_spearman"] - metrics[f"baseline_{b}_spearman"]
    model = make().fit(labelled, y)
    violations = model.monotonicity_violations(labelled)
    metrics["monotonicity_violations"] = float(violations.sum())
    g = spec["gates"]
    gates = {
        f"spearman >= {g['spearman_min']}": metrics["cv_spearman"] >= g["spearman_min"],
        f"coverage >= {g['coverage_min']}": metrics["cv_coverage_p10_p90"] >= g["coverage_min"],
        "no monotonicity violations": metrics["monotonicity_violations"] == 0,
        **{f"beats {b}": metrics["cv_spearman"] > metrics[f"baseline_{b}_spearman"] for b in g.get("must_beat", [])},
    }
    deciles = pd.qcut(log_p, 10, labels=False, duplicates="drop")
    accuracy = pd.DataFrame({"predicted": np.exp(log_p), "observed": y, "decile": deciles}).groupby("decile").median().reset_index()
    return _Trained(
        model, metrics, gates, {"accuracy_by_decile": accuracy, "monotonicity": violations.reset_index()}, labelled,
        raw_records(labelled.head(5).drop(columns=[label_col])), model.contributions(labelled.head(2000)),
        (np.log10(accuracy["predicted"]), np.log10(accuracy["observed"])),
        {"data_origin": str(labelled.get("data_origin", pd.Series(["unknown"])).iloc[0])},
    )


def _plots(directory: Path, xy: tuple, shap_values: pd.DataFrame, kind: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ipvalue.explain import global_importance

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

    from ipvalue.explain import global_importance
    from ipvalue.tracking import ensure_experiment, frame_hash, git_commit, log_patent_model, register_and_alias, use_tracking

    spec = load_experiment(path)
    kind = spec["model"]["kind"]
    data = _load_data(spec, data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feature policies are reported in the run, not as warnings
        trained = (_renewal if kind == "renewal" else _value)(spec, data, data_dir)
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
            reference = model.score_frame(model.features_._as_frame(trained.train), explain="none")
            reference.to_parquet(tmp / "reference.parquet", index=False)
            files.append(tmp / "reference.parquet")
            for name, table in trained.tables.items():
                table.to_csv(tmp / f"{name}.csv", index=False)
                files.append(tmp / f"{name}.csv")
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
