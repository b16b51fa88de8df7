"""``calibrate``: a pilot ledger in; the estimates, the candidate sets with their diffs and gates,
the out-of-time back-test's tables and an MLflow run out (what ``ipvalue calibrate`` runs)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue.calibration.backtest import Backtest, run_backtest
from ipvalue.calibration.estimate import SetsInUse, Settings, estimate_coefficients
from ipvalue.calibration.ledger import Ledger, load_ledger
from ipvalue.calibration.report import backtest_report, write_backtest_report
from ipvalue.calibration.sets import Candidate, candidate_sets, check_loads
from ipvalue.exceptions import EmptyInputError
from ipvalue.io import write_atomic, write_text_atomic

logger = logging.getLogger(__name__)

__all__ = ["CalibrationResult", "calibrate"]

MLFLOW_EXPERIMENT = "ipvalue-calibration"


@dataclass
class CalibrationResult:
    """What :func:`calibrate` returns (and writes under ``out``)."""

    ledger: Ledger
    estimates: pd.DataFrame
    backtest: Backtest
    candidates: list
    gates: dict
    run_id: str
    out: Path
    files: dict = field(default_factory=dict)
    report: object = None  # the back-test report (ipvalue.report.Report)

    @property
    def gates_passed(self) -> bool:
        return bool(self.gates) and all(self.gates.values())

    def summary(self) -> str:
        """The estimates, the back-test before / after and the gates, as plain text (Chinese first)."""
        lines = [f"校准 calibration run {self.run_id}: ledger {self.ledger.source} (sha256 {self.ledger.hash[:16]}, as of {self.ledger.as_of.date()}, "
                 f"{len(self.ledger.loans):,} loans; data: {self.ledger.data_origin})", "", "系数 coefficients (90 % interval, n / minimum):"]
        for r in self.estimates.itertuples(index=False):
            if r.key.startswith("life_table."):
                continue
            est = "—" if not np.isfinite(r.estimate) else f"{r.estimate:.4g} [{r.low:.4g}, {r.high:.4g}]"
            now = "" if not np.isfinite(r.current) else f"current {r.current:.4g} → "
            verdict = "CHANGED" if r.changed else ("unchanged" if r.set else "reported")
            n = f"  n {r.n:,}/{r.min_n:,}" if r.min_n else ""
            lines.append(f"  {r.label_zh} {r.label_en}: {now}{est}{n}  {verdict}: {r.reason}")
        life = self.estimates[self.estimates["key"].str.startswith("life_table.")]
        if len(life):
            lines.append(f"  年费失效风险 CN life table: {int(life['changed'].sum())} of {len(life)} hazards estimated, the others unchanged (too few at risk)")
        bt = self.backtest
        lines += ["", f"样本外回测 out-of-time back-test (calibrated on loans valued up to {bt.split_date.date()}, tested on the later ones):"]
        for r in bt.summary.itertuples(index=False):
            style = "{:.1%}" if r.metric.startswith(("P10", "net recovery", "bank loss", "total cap")) else "{:+.3f}" if r.metric.startswith("bias") else "{:.3f}"
            fmt = lambda v, style=style: "—" if not np.isfinite(v) else style.format(v)  # noqa: E731
            lines.append(f"  {r.metric}: before {fmt(r.before)}  after {fmt(r.after)}  (n {r.n:,})")
        lines += ["", "闸门 gates:"] + [f"  {k}: {'pass' if v else 'FAIL'} ({bt.gate_notes[k]})" for k, v in self.gates.items()]
        lines += ["", f"候选参数集 candidate sets (not used by valuations until a validator promotes them) in {self.out / 'candidates'}:"]
        lines += [f"  {c.file_name}: {len(c.changes)} number(s) changed" for c in self.candidates] or ["  none: no coefficient changed"]
        if "backtest_report_html" in self.files:
            lines += ["", f"回测报告 back-test report: {self.files['backtest_report_html']}"
                      + (f" (PDF {self.files['backtest_report_pdf']})" if "backtest_report_pdf" in self.files else "")]
        return "\n".join(lines)


def calibrate(ledger, *, out="calibration-output", seed: int = 0, as_of=None, split_date=None, register=None, register_patents=None,
              exported_on=None, tracking_uri: str | None = None, assumption_set="cn-pledge-2025", disposal_set="disposal-cn",
              pledge_policy="pledge-policy-cn", settings="calibration-cn", data_dir=None, calibrated_by: str | None = None,
              report_pdf: bool | None = None) -> CalibrationResult:
    """Calibrate the valuation's coefficients from a pilot ledger and back-test them out of time.

    Parameters
    ----------
    ledger : str, Path or Ledger
        The pilot ledger (a folder of CSV files or an Excel workbook; see
        :mod:`ipvalue.calibration.ledger`), or one already loaded.
    out : str or Path, default="calibration-output"
        Where the estimates, ``candidates/`` (YAML, diffs, gates), ``backtest/`` tables and the
        quarantine are written.
    seed : int, default=0
        Seed of the intervals' Monte Carlo.
    as_of, split_date : date-like, optional
        The ledger's date, and the back-test's split (default: the settings' train share).
    register, register_patents : str or Path, optional
        A CNIPA register export and the patent list it joins (default: the ledger folder's
        ``patents.csv``): re-estimates the CN life table.
    exported_on : date-like, optional
        The register export's date (default: its latest announcement).
    tracking_uri : str, optional
        MLflow tracking URI (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow/mlflow.db``).
    assumption_set, disposal_set, pledge_policy, settings : str
        Names of the sets in use and of the calibration settings.
    calibrated_by : str, optional
        The authenticated user running the calibration (``ipvalue calibrate`` passes the name its
        API token authenticates, when one is given): recorded in the run (tag
        ``ipvalue.calibrated_by``) and the candidates, so that the promotion refuses that person.
        Without it the run records the operating-system user only (MLflow's ``mlflow.user``).
    report_pdf : bool, optional
        The back-test report's PDF: True requires it, False skips it, None (default) prints it
        where this machine can.
    """
    import mlflow

    from ipvalue.tracking import ensure_experiment, git_commit, use_tracking

    ledger = ledger if isinstance(ledger, Ledger) else load_ledger(ledger, as_of=as_of)
    if ledger.loans.empty:
        raise EmptyInputError(f"Every loan of the pilot ledger {ledger.source} is quarantined: nothing to calibrate.\n{ledger.report(max_problems=10)}\n"
                              "Fix: correct the rows named (see the quarantine) and run calibrate again.")
    sets = SetsInUse.load(assumption_set, disposal_set, pledge_policy)
    settings = Settings.load(settings)
    estimates, _ = estimate_coefficients(ledger, sets, settings, seed=seed)
    extra = {}
    if register is not None:
        from ipvalue.calibration.register import life_table_from_register

        patents = register_patents or (Path(ledger.source) / "patents.csv")
        rows, current, candidate = life_table_from_register(register, patents, settings, exported_on=exported_on, data_dir=data_dir)
        estimates = pd.concat([estimates, rows], ignore_index=True)
        if rows["changed"].any():
            extra["cn-life-table"] = (current, candidate)
    backtest = run_backtest(ledger, sets, settings, seed=seed, split_date=split_date)
    gates = backtest.gates
    out = Path(out)

    use_tracking(tracking_uri)
    with mlflow.start_run(experiment_id=ensure_experiment(MLFLOW_EXPERIMENT), run_name=f"calibrate {Path(ledger.source).name}") as run:
        run_id = run.info.run_id
        for _, (current, candidate) in extra.items():
            for entry in candidate["types"].values():
                for band in entry["bands"]:
                    if not band["source"].startswith("unchanged"):
                        band["source"] = f"calibrated by ipvalue calibrate, MLflow run {run_id}, pilot ledger sha256 {ledger.hash[:16]}: {band['source']}"
        candidates = candidate_sets(estimates, sets, run_id=run_id, ledger_hash=ledger.hash, gates=gates, extra=extra, calibrated_by=calibrated_by)
        for c in candidates:  # each loads through its set's loader, so a promoted set is usable
            check_loads(c.content)
        files = _write(out, ledger, estimates, backtest, candidates, gates, run_id)
        report = backtest_report(ledger, backtest, estimates=estimates, candidates=candidates, run_id=run_id,
                                 settings_name=f"{settings.name}-v{settings.version}")
        files.update({f"backtest_report_{k}": v for k, v in write_backtest_report(report, out / "backtest", pdf=report_pdf).items()})
        mlflow.log_params({"ledger": Path(ledger.source).name, "ledger_sha256": ledger.hash, "as_of": str(ledger.as_of.date()), "seed": seed,
                           "split_date": str(backtest.split_date.date()), "settings": f"{settings.name}-v{settings.version}",
                           "assumption_set": f"{sets.income.name}-v{sets.income.version}", "disposal_set": f"{sets.disposal.name}-v{sets.disposal.version}",
                           "pledge_policy": f"{sets.policy.get('name')}-v{sets.policy.get('version')}",
                           **{f"rows_{t}": n for t, n in ledger.n_rows.items()}})
        metrics = {**backtest.figures, "coefficients_changed": float(estimates["changed"].sum()), "rows_quarantined": float(sum(len(q) for q in ledger.quarantine.values()))}
        for r in estimates.itertuples(index=False):
            if np.isfinite(r.estimate):
                metrics[f"estimate_{r.key}"] = float(r.estimate)
        mlflow.log_metrics({_metric_name(k): v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.set_tags({"ledger_sha256": ledger.hash, "data_origin": ledger.data_origin, "git_commit": git_commit(),
                         "gates_passed": str(bool(gates) and all(gates.values())), "ipvalue.kind": "calibration",
                         **({"ipvalue.calibrated_by": calibrated_by} if calibrated_by else {})})
        mlflow.log_artifacts(str(out), artifact_path="calibration")
    result = CalibrationResult(ledger, estimates, backtest, candidates, gates, run_id, out, files, report)
    logger.info("calibration run %s: %d coefficients changed, gates %s", run_id, int(estimates["changed"].sum()), gates)
    return result


def _metric_name(key: str) -> str:
    """MLflow metric names allow letters, digits and _ - . / and spaces only."""
    import re

    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", key)


def _write(out: Path, ledger: Ledger, estimates: pd.DataFrame, backtest: Backtest, candidates: list[Candidate], gates: dict, run_id: str) -> dict:
    files = {}
    files["estimates"] = write_atomic(estimates, out / "estimates.csv")
    folder = out / "candidates"
    for c in candidates:
        files[c.file_name] = write_text_atomic(c.text(), folder / c.file_name)
        write_text_atomic(c.diff, folder / f"{c.name}-v{c.version}.diff")
        write_atomic(c.changes, folder / f"{c.name}-v{c.version}.changes.csv")
    gate_doc = {"calibration_run": run_id, "ledger_sha256": ledger.hash, "split_date": str(backtest.split_date.date()),
                "gates": {k: {"passed": bool(v), "evidence": backtest.gate_notes[k]} for k, v in gates.items()},
                "gates_passed": bool(gates) and all(gates.values()), "candidates": [c.file_name for c in candidates]}
    files["gates"] = write_text_atomic(yaml.safe_dump(gate_doc, allow_unicode=True, sort_keys=False), folder / "gates.yaml")
    files["backtest_summary"] = write_atomic(backtest.summary, out / "backtest" / "summary.csv")
    for name, table in backtest.tables.items():
        files[f"backtest_{name}"] = write_atomic(table, out / "backtest" / f"{name}.csv")
    write_atomic(backtest.train_estimates, out / "backtest" / "train_estimates.csv")
    figures = {"split_date": str(backtest.split_date.date()), **{k: v for k, v in backtest.figures.items()}}
    files["backtest_figures"] = write_text_atomic(json.dumps(figures, indent=2, ensure_ascii=False), out / "backtest" / "figures.json")
    if len(ledger.problems):
        files["quarantine"] = write_atomic(ledger.problems, out / "quarantine.csv")
    files["ledger_report"] = write_text_atomic(ledger.report(max_problems=1000), out / "ledger_report.txt")
    return files
