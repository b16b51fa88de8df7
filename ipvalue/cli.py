"""``ipvalue`` command line. Each subcommand parses its arguments and calls one library function.

Exit codes (for batch schedulers)
---------------------------------
0  success
1  finished, but some rows were quarantined or a check failed (outputs written)
2  usage error (bad arguments)
3  input error: file missing, unreadable, empty, or missing required columns
4  configuration error: a YAML spec, assumption set or experiment is invalid
70 internal error (a bug: please report it with the traceback)
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from ipvalue.exceptions import ApplicationError, AssumptionError, OverrideError, PatentFrameError, SpecError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INPUT, EXIT_CONFIG, EXIT_INTERNAL = 0, 1, 2, 3, 4, 70

logger = logging.getLogger("ipvalue.cli")


def _cmd_contract(args) -> int:
    from ipvalue.frame import contract_table

    print(contract_table().to_string(index=False))
    return EXIT_OK


def _cmd_validate(args) -> int:
    from ipvalue.io import read_patents, write_atomic

    result = read_patents(args.file, mapping=args.mapping, encoding=args.encoding, strict=args.strict)
    print(result.report(max_problems=args.max_problems))
    if args.quarantine_out and len(result.quarantine):
        write_atomic(result.quarantine, args.quarantine_out)
        print(f"quarantine written to {args.quarantine_out}")
    if args.valid_out:
        write_atomic(result.valid, args.valid_out)
        print(f"valid PatentFrame written to {args.valid_out}")
    return EXIT_PARTIAL if len(result.quarantine) else EXIT_OK


def _cmd_train(args) -> int:
    from ipvalue.models.experiment import run_experiment

    result = run_experiment(args.experiment, tracking_uri=args.tracking_uri, data_dir=args.data_dir)
    print(result.summary())
    return EXIT_OK if result.gates_passed else EXIT_PARTIAL


def _cmd_value(args) -> int:
    from ipvalue.audit import record_valuation
    from ipvalue.report import write_reports
    from ipvalue.valuation import LoanApplication, value_application

    app = LoanApplication.load(args.application)
    result = value_application(app, tracking_uri=args.tracking_uri, data_dir=args.data_dir, user=args.user)
    paths = write_reports(result, args.out)
    audit = record_valuation(result, args.audit_db)
    s = result.summary
    print(f"application {app.application_id}: {s['decision']} | internal value {s['internal_value_rmb']:,.0f} RMB | "
          f"loan cap {s['loan_cap_rmb']:,.0f} RMB | requested {s['requested_amount_rmb']:,.0f} RMB")
    for c in result.checks[~result.checks["passed"]].itertuples():
        print(f"  FAIL {c.scope} {c.check}: {c.reason_en}")
    print(f"report: {paths['html']}\njson:   {paths['json']}\naudit:  {audit} (valuation {result.valuation_id})")
    return EXIT_OK if s["eligible"] else EXIT_PARTIAL


def _checked(check, convert=str):
    """An argparse type: ``convert`` the text, then ``check`` it; a ValueError becomes a usage error."""

    def parse(text: str):
        try:
            value = convert(text)
            check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    return parse


def _cmd_score(args) -> int:
    from ipvalue.scoring import score_file, score_spark

    common = dict(model_uri=args.model, out=args.out, quarantine_out=args.quarantine_out, explain=args.explain, tracking_uri=args.tracking_uri)
    if args.engine == "spark":
        if args.explain_sample is not None:
            print("error: --explain-sample works with the local engine only. Fix: drop it, or use --engine local.", file=sys.stderr)
            return EXIT_USAGE
        summary = score_spark(args.input, partitions=args.partitions, **common)
    else:
        summary = score_file(args.input, chunk_size=args.chunk_size, workers=args.workers, explain_sample=args.explain_sample, **common)
    print(summary.line())
    print(f"model {summary.model_uri} (version {summary.model_version}, run {summary.run_id}, feature spec {summary.feature_spec_hash})")
    print(f"quarantine: {summary.quarantine}")
    return EXIT_PARTIAL if summary.rows_quarantined else EXIT_OK


def _cmd_pool(args) -> int:
    import json

    import pandas as pd

    from ipvalue.io import read_patents, read_table, write_atomic, write_text_atomic
    from ipvalue.pool import monitoring_alerts, pool_summary

    loaded = read_patents(args.book)
    raw, _ = read_table(args.book)
    extras = {c: raw.loc[loaded.valid.index, c] for c in ("borrower", "loan_end_date") if c in raw.columns}
    book = loaded.valid.assign(**extras)
    scored = pd.read_parquet(args.scored)
    as_of = args.as_of or pd.Timestamp.today().date().isoformat()
    tables = pool_summary(book, scored, value_column=args.value_column, valuation_date=as_of)
    previous = pd.read_parquet(args.previous) if args.previous else None
    alerts = monitoring_alerts(book, as_of=as_of, scored=scored, previous=previous, value_column=args.value_column,
                               fee_due_days=args.fee_due_days, value_drop=args.value_drop)
    out = Path(args.out)
    payload = {k: json.loads(v.to_json(orient="records", force_ascii=False)) for k, v in tables.items()}
    write_text_atomic(json.dumps({"as_of": as_of, "book": str(args.book), "quarantined_rows": len(loaded.quarantine), **payload}, ensure_ascii=False, indent=2), out / "pool_summary.json")
    write_atomic(alerts, out / "alerts.csv")
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        for name, table in tables.items():
            print(f"\n{name}\n{table.to_string(index=False)}")
    print(f"\n{len(alerts)} alerts ({alerts['alert'].value_counts().to_dict() if len(alerts) else {}}) -> {out / 'alerts.csv'}")
    if len(loaded.quarantine):
        print(f"{len(loaded.quarantine)} book rows failed validation and are not in the pool (see ipvalue validate)")
    return EXIT_PARTIAL if len(alerts) or len(loaded.quarantine) else EXIT_OK


def _cmd_govern_report(args) -> int:
    from ipvalue.governance import model_card, override_summary, validation_report
    from ipvalue.io import write_text_atomic
    from ipvalue.tracking import use_tracking

    use_tracking(args.tracking_uri)
    out = Path(args.out)
    card = model_card(args.model)
    written = [write_text_atomic(card.to_markdown(), out / "model_card.md"), write_text_atomic(card.to_html(), out / "model_card.html")]
    try:
        report = validation_report(args.model, data_dir=args.data_dir)
    except SpecError as exc:
        print(f"validation report not produced: {exc}")
    else:
        summary = override_summary(args.audit_db) if args.audit_db else None
        if summary is not None:
            report.add("Manual overrides (audit trail)", f"From {args.audit_db}.", summary)
        written += [write_text_atomic(report.to_markdown(), out / "validation_report.md"), write_text_atomic(report.to_html(), out / "validation_report.html")]
        headline = report.sections["Out-of-time performance"][1].set_index("metric")
        print(f"out-of-time AUC {headline.loc['AUC', 'value']:.4f} [{headline.loc['AUC', 'ci_low']:.4f}, {headline.loc['AUC', 'ci_high']:.4f}], "
              f"ECE {headline.loc['ECE', 'value']:.4f}")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def _cmd_govern_drift(args) -> int:
    import pandas as pd

    from ipvalue.governance import drift_report, load_reference, verdict
    from ipvalue.io import write_atomic
    from ipvalue.tracking import use_tracking

    use_tracking(args.tracking_uri)
    table = drift_report(load_reference(args.reference), pd.read_parquet(args.current))
    worst = table["value"].max()
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"verdict: {verdict(worst).upper()} (largest index {worst:.4f}; < 0.10 stable, 0.10-0.25 watch, > 0.25 act)")
    if args.out:
        write_atomic(table, args.out)
    return EXIT_PARTIAL if verdict(worst) == "act" else EXIT_OK


def _cmd_govern_promote(args) -> int:
    from ipvalue.governance import PromotionError, promote
    from ipvalue.tracking import use_tracking

    use_tracking(args.tracking_uri)
    try:
        moved = promote(args.model, validator=args.validator, reason=args.reason, alias=args.alias)
    except PromotionError as exc:
        print(f"promotion refused: {exc}", file=sys.stderr)
        return EXIT_PARTIAL
    print(f"{moved['model']} version {moved['version']} is now @{moved['alias']} (previously version {moved['previous_version']})")
    return EXIT_OK


def _cmd_demo(args) -> int:
    from ipvalue.demo import run_demo

    return run_demo(out_dir=Path(args.out), n=args.n, seed=args.seed, tracking_uri=args.tracking_uri)


def build_parser() -> argparse.ArgumentParser:
    from ipvalue.explain import check_sample_fraction, explain_top

    parser = argparse.ArgumentParser(prog="ipvalue", description="Patent valuation for IP-pledge lending (知识产权质押 internal valuation).")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    parser.add_argument("--version", action="store_true", help="print the ipvalue version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("contract", help="print the PatentFrame input contract (columns, types, units)")
    p.set_defaults(func=_cmd_contract)

    p = sub.add_parser("validate", help="load a patent table, validate it and print the quarantine report")
    p.add_argument("file", help="CSV, Parquet or Excel file (Chinese or English headers)")
    p.add_argument("--mapping", default="auto", help="column mapping: auto, cn, en or a YAML path (default: auto)")
    p.add_argument("--encoding", default=None, help="CSV encoding (default: UTF-8, then GB18030)")
    p.add_argument("--strict", action="store_true", help="fail on the first invalid row instead of quarantining")
    p.add_argument("--quarantine-out", default=None, help="write rejected rows with reasons here (.csv or .parquet)")
    p.add_argument("--valid-out", default=None, help="write the valid PatentFrame here (.parquet or .csv)")
    p.add_argument("--max-problems", type=int, default=50, help="problems to print (default: 50)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("train", help="run an experiment file: train, evaluate, log to MLflow, register if the gates pass")
    p.add_argument("experiment", help="experiments/<name>.yaml")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow/mlflow.db)")
    p.add_argument("--data-dir", default=None, help="public data folder (default: $IPVALUE_DATA_DIR or ../shared/data)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("value", help="value one pledge-loan application: internal value, pledge value, checks, report, audit")
    p.add_argument("application", help="application file (.yaml or .json)")
    p.add_argument("--out", default="reports", help="folder for the HTML and JSON reports (default: reports)")
    p.add_argument("--audit-db", default=None, help="SQLite audit store (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--user", default=getpass.getuser(), help="who runs the valuation (recorded in the audit trail)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for the models named in the application")
    p.add_argument("--data-dir", default=None, help="public reference data folder")
    p.set_defaults(func=_cmd_value)

    p = sub.add_parser("score", help="batch-score a book (CSV/Parquet) with a registered model; nothing lost, resumable")
    p.add_argument("input", help="CSV or Parquet book")
    p.add_argument("--model", required=True, help="model URI, e.g. models:/ipvalue-value@champion")
    p.add_argument("--out", required=True, help="output Parquet file (a folder with --engine spark)")
    p.add_argument("--quarantine-out", default=None, help="rejected rows with reasons (default: beside --out)")
    p.add_argument("--engine", choices=["local", "spark"], default="local")
    p.add_argument("--chunk-size", type=int, default=50_000, help="rows per chunk, local engine (default: 50000)")
    p.add_argument("--workers", type=int, default=2, help="chunks scored at a time, local engine (default: 2; memory grows with it)")
    p.add_argument("--partitions", type=int, default=None, help="Spark partitions before the UDF (default: 2 × cores)")
    p.add_argument("--explain", type=_checked(explain_top), default="all", help="SHAP columns: all (every feature), topN (the N largest drivers, e.g. top3), none")
    p.add_argument("--explain-sample", type=_checked(check_sample_fraction, float), default=None, metavar="FRACTION",
                   help="explain only this fraction of patents (the same ones on every run), local engine; e.g. 0.05")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow/mlflow.db)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("pool", help="pool analytics and monitoring alerts of a scored book")
    p.add_argument("book", help="the book (CSV/Parquet/Excel PatentFrame; optional columns borrower, loan_end_date)")
    p.add_argument("--scored", required=True, help="output of ipvalue score (Parquet)")
    p.add_argument("--previous", default=None, help="an earlier scoring, for value-drop alerts")
    p.add_argument("--value-column", default="value_p50_rmb")
    p.add_argument("--as-of", default=None, help="date of the alerts (default: today)")
    p.add_argument("--fee-due-days", type=int, default=60)
    p.add_argument("--value-drop", type=float, default=0.2, help="alert when the value fell by more than this share")
    p.add_argument("--out", default="pool", help="folder for pool_summary.json and alerts.csv")
    p.set_defaults(func=_cmd_pool)

    govern = sub.add_parser("govern", help="model governance: model card and validation report, drift, promotion")
    gsub = govern.add_subparsers(dest="govern_command", metavar="GOVERN_COMMAND")
    p = gsub.add_parser("report", help="model card (Markdown + HTML) and validation report of a registered version")
    p.add_argument("--model", required=True, help="models:/NAME/VERSION (or @ALIAS)")
    p.add_argument("--out", default="governance", help="output folder (default: governance)")
    p.add_argument("--audit-db", default=None, help="audit store whose override log to summarise")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=_cmd_govern_report)
    p = gsub.add_parser("drift", help="PSI of the outputs and CSI of each feature: training population vs a scored batch")
    p.add_argument("--reference", required=True, help="the training run id (its reference.parquet)")
    p.add_argument("--current", required=True, help="a scored batch (output of ipvalue score)")
    p.add_argument("--out", default=None, help="write the table here (.csv or .parquet)")
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=_cmd_govern_drift)
    p = gsub.add_parser("promote", help="move the champion alias: only through passed gates, with a validator and a reason")
    p.add_argument("--model", required=True, help="models:/NAME/VERSION")
    p.add_argument("--validator", default="", help="the validator's name (required)")
    p.add_argument("--reason", default="", help="why the model is approved (required)")
    p.add_argument("--alias", default="champion")
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=_cmd_govern_promote)
    govern.set_defaults(func=lambda a: (govern.print_help(), EXIT_USAGE)[1])

    p = sub.add_parser("demo", help="the main job on the embedded defaults: synthetic pledge book end to end")
    p.add_argument("--n", type=int, default=400, help="synthetic patents (default: 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow/mlflow.db)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.version:
        from ipvalue import __version__

        print(__version__)
        return EXIT_OK
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (FileNotFoundError, PatentFrameError, ApplicationError, OverrideError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (SpecError, AssumptionError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception:
        logger.exception("internal error")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
