"""The steps of an experiment, as public functions that the runner (:mod:`ipvalue.training.runner`)
and the validation report (:mod:`ipvalue.governance.validation`) both call: load the experiment
file, load its data, split, fit and evaluate against baselines, gates.

Two kinds of model: ``renewal`` (out-of-time split on a date column; headline: the fee of one
stage paid) and ``value`` (grouped K-fold, no package across folds; the final model is refit on
all labelled rows). Baselines are always trained and scored on the same data as the champion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue import io as ipio
from ipvalue.config import load_yaml
from ipvalue.exceptions import SpecError
from ipvalue.features.builders import statutory_term
from ipvalue.frame import to_records
from ipvalue.models import ClaimsOnlyRule, CompositeIndex, LogisticBaseline, RenewalModel, ValueRegressor
from ipvalue.models.metrics import binary_metrics, bootstrap_auc, reliability_table
from ipvalue.io.register import read_register, unmatched_events
from ipvalue.models.renewal import FeeSchedule, life_table_estimate
from ipvalue.training.register_labels import fees_paid_from_register
from ipvalue.synthetic import make_demo_portfolio

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
class TrainedModel:
    """A fitted model with its evaluation: what the runner logs."""

    model: object
    metrics: dict
    gates: dict
    tables: dict  # artifact name -> DataFrame
    train: pd.DataFrame
    example: pd.DataFrame
    shap: pd.DataFrame
    plot_xy: tuple  # (predicted, observed) columns of the calibration / accuracy plot
    tags: dict
    documents: dict = field(default_factory=dict)  # artifact file name -> YAML mapping


def load_experiment(path: str | Path) -> dict:
    """Read and check an experiment YAML."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"Experiment file {str(path)!r} does not exist. Fix: pass a file from experiments/.")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(spec, dict):
        raise SpecError(f"Experiment {path} must hold a mapping at the top level. Got {type(spec).__name__}.")
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


def load_data(spec: dict, data_dir) -> pd.DataFrame:
    """The experiment's data (``data.loader``: ``university_maintenance``, ``demo_portfolio``,
    ``cnipa_register``, ``pilot_ledger`` or ``file``)."""
    loader = spec["data"].get("loader")
    if loader == "university_maintenance":
        return ipio.load_university_maintenance(data_dir)
    if loader == "demo_portfolio":
        return make_demo_portfolio(int(spec["data"].get("n", 3000)), int(spec["data"].get("seed", 0))).patents
    if loader == "cnipa_register":
        return load_register_training_data(spec)
    if loader == "pilot_ledger":
        return load_ledger_training_data(spec)
    if loader == "file":
        result = ipio.read_patents(spec["data"]["path"])
        raw, _ = ipio.read_table(spec["data"]["path"])
        label = spec["data"]["label"]
        return result.valid.assign(**{label: pd.to_numeric(raw.loc[result.valid.index, label], errors="coerce")})
    raise SpecError(f"The 'data.loader' of experiment {spec['_path']} must be university_maintenance, demo_portfolio, cnipa_register, pilot_ledger or file. "
                    f"Got {loader!r}.")


def data_file(spec: dict, key: str) -> Path:
    """The file ``data.<key>`` of an experiment: a relative path is read from the experiment file's folder."""
    value = spec["data"].get(key)
    if not value:
        raise SpecError(f"Experiment {spec['_path']} needs 'data.{key}' (a file path). Fix: add it.")
    path = Path(value)
    path = path if path.is_absolute() else Path(spec["_path"]).parent / path
    if not path.is_file():
        raise SpecError(f"The 'data.{key}' of experiment {spec['_path']}, {str(path)!r}, is not a file. Fix: give the export's path "
                        "(relative to the experiment file's folder, or absolute).")
    return path


def load_register_training_data(spec: dict) -> pd.DataFrame:
    """A bank's patent list joined to its CNIPA legal-status export, labelled with the annual fees
    each patent paid (:func:`ipvalue.training.register_labels.fees_paid_from_register`).

    ``data``: ``patents`` (a PatentFrame file with 申请号), ``register`` (the export),
    ``exported_on`` (the export's date) and ``observed_until`` (on or before it; the stages due
    later are censored). Pledge / licence / transfer counts missing from the patent list are taken
    from the export; the label rule of every patent is kept in ``label_basis``.
    """
    d = spec["data"]
    missing = [f"data.{k}" for k in ("label", "exported_on", "observed_until") if not d.get(k)] + ([] if spec["model"].get("fee_schedule") else ["model.fee_schedule"])
    if missing:
        raise SpecError(f"Experiment {spec['_path']}: a register export needs {missing}. Fix: add them (see experiments/renewal-cnipa-synthetic.yaml).")
    dates = {k: pd.to_datetime(str(d[k]), format="%Y-%m-%d", errors="coerce") for k in ("exported_on", "observed_until")}
    if any(pd.isna(v) for v in dates.values()) or dates["observed_until"] > dates["exported_on"]:
        raise SpecError(f"Experiment {spec['_path']}: 'data.exported_on' and 'data.observed_until' must be dates (YYYY-MM-DD), observed_until on or "
                        f"before exported_on. Got exported_on {d['exported_on']!r}, observed_until {d['observed_until']!r}.")
    patents = ipio.read_patents(data_file(spec, "patents"), strict=True).valid
    register = read_register(data_file(spec, "register"))
    expiry, _ = statutory_term(patents, load_yaml("statutory-terms")[0], dates["exported_on"])
    labels = fees_paid_from_register(patents, register, FeeSchedule.load(spec["model"]["fee_schedule"]), exported_on=dates["exported_on"], expiry=expiry)
    left_out = labels["fees_paid"].isna()
    if left_out.any():
        logger.warning("register export %s: %d patent(s) left out of training: their right may have ended other than for fees (%s)",
                       d["register"], int(left_out.sum()), patents.loc[left_out, "patent_id"].head(5).tolist())
    if (labels["label_basis"] == "no events in the export").mean() > 0.5:
        logger.warning("register export %s: %d of %d patents have no event in it; check that the export covers the patent list",
                       d["register"], int((labels["label_basis"] == "no events in the export").sum()), len(labels))
    unmatched, later = len(unmatched_events(register, patents)), int((register.events["event_date"] > pd.Timestamp(d["exported_on"])).sum())
    if unmatched or later:
        logger.warning("register export %s: %d event(s) match no patent of the list, %d are dated after exported_on %s (both left out of the labels)",
                       d["register"], unmatched, later, d["exported_on"])
    counts = ["pledge_count", "licence_count", "transfer_count"]
    patents[counts] = patents[counts].fillna(labels[counts])
    labelled = patents.assign(**{d["label"]: labels["fees_paid"], "label_basis": labels["label_basis"]})
    return labelled[~left_out]


#: The labels a pilot ledger gives the value model (``data.labels``), which its run's ``data_origin`` names.
LEDGER_LABELS = ("real_prices", "appraisals")


def load_ledger_training_data(spec: dict) -> pd.DataFrame:
    """The value model's training data from a bank's pilot ledger (:mod:`ipvalue.calibration.ledger`):
    the pledged patents (its ``patents`` table, PatentFrame rows) labelled with what the ledger
    knows of their value.

    ``data``: ``ledger`` (a folder or workbook, relative to the experiment file or absolute; or
    ``synthetic`` with ``n_loans`` and ``seed``: a generated, labelled-synthetic ledger), ``labels``
    and ``label`` (the column the label is written to):

    * ``labels: appraisals``: each patent's itemised external appraisal (``appraised_value_rmb``);
    * ``labels: real_prices``: the median price of the package's priced transfers within the
      calibration settings' deal window of its valuation (``deals``: kinds and window of
      ``calibration-cn``); a package of one patent takes it whole, a package of several is split
      by the patents' itemised appraisals where every one is appraised, and is otherwise left out
      (a price is not split by guesswork). Each row's rule is in ``label_basis``.

    Every row's ``data_origin`` is the label kind (what the run's provenance then says, and what
    :mod:`ipvalue.methods.ml` reads), prefixed ``synthetic:`` when the ledger is synthetic: a model
    trained on it stays for information only. The package (``package_id`` = the loan) groups the
    folds. Features are taken as of ``data.valuation_date`` (the regressor takes one date).
    """
    import tempfile

    from ipvalue.calibration import PilotTruth, load_ledger, make_pilot_ledger, write_ledger
    from ipvalue.calibration.estimate import DAYS, Settings

    d = spec["data"]
    labels, label = d.get("labels"), d.get("label")
    if labels not in LEDGER_LABELS or not label:
        raise SpecError(f"Experiment {spec['_path']}: a pilot ledger needs 'data.labels' (one of {list(LEDGER_LABELS)}) and 'data.label' (the label "
                        f"column). Got labels {labels!r}, label {label!r}. Fix: see experiments/value-ledger-synthetic.yaml.")
    if d.get("ledger") == "synthetic":
        with tempfile.TemporaryDirectory() as tmp:  # written and read back: the path a bank's ledger takes
            truth = PilotTruth(n_loans=int(d.get("n_loans", PilotTruth.n_loans)))
            ledger = load_ledger(write_ledger(make_pilot_ledger(truth, seed=int(d.get("seed", 0))), Path(tmp) / "ledger"), as_of=truth.as_of)
    else:
        path = Path(str(d.get("ledger") or ""))
        path = path if path.is_absolute() else Path(spec["_path"]).parent / path
        if not d.get("ledger") or not path.exists():
            raise SpecError(f"The 'data.ledger' of experiment {spec['_path']}, {str(path)!r}, does not exist. Fix: give the pilot ledger's folder or "
                            "workbook (relative to the experiment file, or absolute), or 'synthetic'.")
        ledger = load_ledger(path, as_of=d.get("as_of"))
    if len(ledger.problems):
        logger.warning("pilot ledger %s: %d row(s) quarantined and left out of training (see ipvalue calibrate's ledger report)",
                       ledger.source, sum(len(q) for q in ledger.quarantine.values()))
    patents = ledger.patents.dropna(subset=["patent_id"])
    if patents.empty:
        raise SpecError(f"The pilot ledger {ledger.source} has no patents table: the value model learns from the pledged patents. Fix: add patents.csv "
                        "(the PatentFrame rows of each package, with loan_id and, where an appraisal itemises them, appraised_value_rmb).")
    patents = patents.assign(package_id=patents["loan_id"])
    if labels == "appraisals":
        value, basis = patents["appraised_value_rmb"], pd.Series("itemised appraisal", index=patents.index)
    else:
        settings = Settings.load(d.get("settings", "calibration-cn"))
        deals = ledger.deals[ledger.deals["kind"].isin(settings.deal_kinds) & ledger.deals["loan_id"].notna() & (ledger.deals["price_rmb"] > 0)]
        deals = deals.merge(ledger.loans[["loan_id", "valuation_date"]], on="loan_id")
        deals = deals[(deals["date"] - deals["valuation_date"]).abs().dt.days / DAYS <= settings.deal_window_years]
        price = patents["loan_id"].map(deals.groupby("loan_id")["price_rmb"].median())
        size = patents.groupby("loan_id")["patent_id"].transform("size")
        appraised = patents.groupby("loan_id")["appraised_value_rmb"].transform(lambda v: v.notna().all())
        share = patents["appraised_value_rmb"] / patents.groupby("loan_id")["appraised_value_rmb"].transform("sum")
        single, split = price.notna() & (size == 1), price.notna() & (size > 1) & appraised
        value = price.where(single, (price * share).where(split))
        basis = pd.Series(np.where(single, "price of a one-patent package", np.where(split, "package price split by itemised appraisals", "")), index=patents.index)
        left = int((price.notna() & ~single & ~split).sum())
        if left:
            logger.warning("pilot ledger %s: %d patent(s) of priced packages left out: several patents and no itemised appraisal to split the price", ledger.source, left)
    origin = labels if ledger.data_origin != "synthetic" else f"synthetic: {labels} of a synthetic pilot ledger"
    out = patents.assign(**{label: value, "label_basis": basis, "data_origin": origin})
    return out[out[label].notna()].drop(columns=["loan_id", "appraised_value_rmb"]).reset_index(drop=True)


#: What a model's training data are, by loader (``data.origin`` in the experiment overrides it).
DATA_ORIGINS = {
    "university_maintenance": "real: USPTO university maintenance fees",
    "demo_portfolio": "synthetic",
    "cnipa_register": "CNIPA legal-status export",
    "pilot_ledger": "pilot ledger",
    "file": "file",
}


def data_origin(spec: dict) -> str:
    """The ``data_origin`` tag of the experiment's run: ``data.origin``, else the loader's kind."""
    return str(spec["data"].get("origin") or DATA_ORIGINS.get(spec["data"].get("loader"), "unknown"))


def out_of_time_mask(spec: dict, data: pd.DataFrame) -> pd.Series:
    """True for the training rows of an out-of-time split (``split.date_column`` up to ``split.train_until``)."""
    return data[spec["split"]["date_column"]] <= pd.Timestamp(spec["split"]["train_until"])


def headline_stage(spec: dict) -> int:
    """The fee stage whose payment is the renewal experiment's headline outcome (default 2)."""
    return int(spec.get("evaluation", {}).get("headline_stage", 2))


def observed_outcomes(model: RenewalModel, spec: dict, data: pd.DataFrame, stage: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of ``data`` whose fee ``stage`` is observed by the data's observation date (and
    falls due after the grant and before the expiry), and their outcome (1 = paid): a stage not
    yet due is censored, never counted as unpaid."""
    observed = model.at_risk(data, spec["data"]["observed_until"])[:, stage - 1]
    evaluated = data[observed]
    return evaluated, (data[spec["data"]["label"]][observed] >= stage).astype(int).to_numpy()


def renewal_model(spec: dict, data_dir, *, as_of=None) -> RenewalModel:
    """The experiment's renewal model, unfitted (feature spec, fee schedule, observation date,
    parameters, headline stage: the one its reasons and reports speak of). With ``as_of``, the
    model a bank could have fitted on that date: fees observed and owner histories taken up to it."""
    return RenewalModel(
        spec["model"]["feature_spec"], fee_schedule=spec["model"]["fee_schedule"], observed_until=as_of or spec["data"]["observed_until"],
        feature_date=as_of, params=spec["model"].get("params"), data_dir=data_dir, headline_stage=headline_stage(spec),
    )


def out_of_time_renewal_model(spec: dict, data: pd.DataFrame, data_dir) -> RenewalModel:
    """The renewal model fitted on the out-of-time training rows only: the model the validation
    figures describe (the registered version is refitted on all labelled rows). Seeded: the same
    data give the same model."""
    train_mask = out_of_time_mask(spec, data)
    return renewal_model(spec, data_dir).fit(data[train_mask], data.loc[train_mask, spec["data"]["label"]])


def stage_figures(prefix: str, y: np.ndarray, p: np.ndarray) -> dict:
    """``<prefix>_<metric>`` for the outcomes ``y`` (1 = fee paid) and probabilities ``p``:
    :func:`~ipvalue.models.metrics.binary_metrics` and the AUC's bootstrap interval."""
    lo, hi = bootstrap_auc(y, p)
    return {**{f"{prefix}_{m}": v for m, v in binary_metrics(y, p).items()}, f"{prefix}_auc_ci_low": lo, f"{prefix}_auc_ci_high": hi}


def train_renewal(spec: dict, data: pd.DataFrame, data_dir) -> TrainedModel:
    """Fit the renewal model on the out-of-time training rows and evaluate it, with the
    baselines, on the test rows whose headline fee is observed."""
    from sklearn.metrics import roc_auc_score

    label = data[spec["data"]["label"]]
    train_mask = out_of_time_mask(spec, data)
    train, test = data[train_mask], data[~train_mask]
    observed_until = spec["data"]["observed_until"]
    stage = headline_stage(spec)
    model = out_of_time_renewal_model(spec, data, data_dir)
    # every stage is scored from one feature build of the test patents: P(fee k paid) and whether
    # fee k is observed (due after grant, before expiry, by the observation date) for each
    survival, at_risk = model.predict_survival(test).to_numpy(), model.at_risk(test, observed_until)
    test_label = label[~train_mask].to_numpy()

    def stage_outcomes(k: int, scores: np.ndarray = survival):
        rows = at_risk[:, k - 1]
        return rows, (test_label[rows] >= k).astype(int), scores[rows, k - 1]

    rows, y, p = stage_outcomes(stage)
    evaluated = test[rows]
    metrics = {**stage_figures("oot", y, p), "train_patents": float(len(train)), "test_patents": float(len(evaluated))}
    if "label_basis" in data:  # how the labels of a register export were read
        metrics.update({f"labels_{b.replace(' ', '_')}": float(n) for b, n in data["label_basis"].value_counts().items()})
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
    for k in map(int, spec.get("evaluation", {}).get("report_stages", [])):  # every stage the validators asked for, the same way
        rows_k, y_k, p_k = stage_outcomes(k)
        if len(np.unique(y_k)) < 2:
            logger.warning("report stage %s: %d test patents observed, not both outcomes: no figures", k, len(y_k))
            continue
        logistic_k = baselines["logistic"].fit(train, (label[train_mask] >= k).astype(int)).predict(test[rows_k])
        metrics.update({**stage_figures(f"oot_fee{k}", y_k, p_k), f"baseline_logistic_fee{k}_auc": float(roc_auc_score(y_k, logistic_k)),
                        f"test_patents_fee{k}": float(rows_k.sum())})
    # Point in time: the owner histories above are taken as of the data's observation date, so a
    # test patent's features may count lapses of other patents dated after its own fee decision.
    # A validator's stricter figure: the model fitted with fees and owner histories known on a date
    # before every test patent's decision of stage k, scored on the outcomes observed later.
    for k, as_of in (spec.get("evaluation", {}).get("point_in_time") or {}).items():
        if pd.Timestamp(as_of) > pd.Timestamp(observed_until):
            raise SpecError(f"Experiment {spec['_path']}: evaluation.point_in_time date {as_of!r} (stage {k}) is after data.observed_until "
                            f"{observed_until!r}. Fix: a date on or before it, before the test patents' decisions of that stage.")
        pit = renewal_model(spec, data_dir, as_of=as_of).fit(train, label[train_mask])
        _, y_k, p_k = stage_outcomes(int(k), pit.predict_survival(test).to_numpy())
        metrics.update(stage_figures(f"pit_fee{k}", y_k, p_k))
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
    model = renewal_model(spec, data_dir).fit(data, label)
    refit_rows, refit_y = observed_outcomes(model, spec, data, stage)
    metrics.update({
        "refit_patents": float(len(data)),
        "refit_in_sample_auc": float(roc_auc_score(refit_y, model.predict_survival(refit_rows)[f"p_fee_{stage}"])),
        "validated_model_train_patents": float(len(validated.train_survival_)),
    })
    documents = {}
    if model.trained_on_cn_fees:  # the hazards the bank's own data give, for review against the CN life table
        documents["cn-life-table.estimated.yaml"] = life_table_estimate(model, f"{data_origin(spec)}, observed until {observed_until}")
    return TrainedModel(
        model, metrics, gates, {"reliability": reliability, "stage_counts": model.stage_counts_.reset_index()}, data,
        to_records(test.head(5), extra_columns=model.features_.spec_.passthrough),
        model.contributions(evaluated.head(2000), stage=stage), (reliability["predicted"], reliability["observed"]),
        {"data_origin": data_origin(spec), "observed_until": observed_until,
         "validation": "out of time (train until split.train_until); registered model refitted on all labelled patents"},
        documents,
    )


def train_value(spec: dict, data: pd.DataFrame, data_dir) -> TrainedModel:
    """Grouped K-fold evaluation of the value regressor and its baselines, then the final model
    refit on every labelled row."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold

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
    return TrainedModel(
        model, metrics, gates, {"accuracy_by_decile": accuracy, "monotonicity": violations.reset_index()}, labelled,
        to_records(labelled.head(5).drop(columns=[label_col])), model.contributions(labelled.head(2000)),
        (np.log10(accuracy["predicted"]), np.log10(accuracy["observed"])),
        {"data_origin": str(labelled.get("data_origin", pd.Series(["unknown"])).iloc[0])},
    )
