"""``ipvalue govern report | drift | promote``: model card and validation report, stability,
promotion through gates."""

from __future__ import annotations

import sys
from pathlib import Path

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE


def add_parser(sub) -> None:
    govern = sub.add_parser("govern", help="model governance: model card and validation report, drift, promotion")
    gsub = govern.add_subparsers(dest="govern_command", metavar="GOVERN_COMMAND")
    p = gsub.add_parser("report", help="model card and validation report of a registered version, and of the valuation methods against the pilot "
                                       "ledger (HTML, PDF, Markdown, with charts)")
    p.add_argument("--model", default=None, help="models:/NAME/VERSION (or @ALIAS); optional with --ledger or --calibration-run")
    p.add_argument("--ledger", default=None, help="a pilot ledger: the valuation methods' out-of-time back-test on the sets in use joins the validation report")
    p.add_argument("--calibration-run", default=None, help="an ipvalue calibrate run: its back-test joins the validation report")
    p.add_argument("--out", default="governance", help="output folder (default: governance)")
    p.add_argument("--audit-db", default=None, help="audit store whose override log to summarise")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=run_report)
    p = gsub.add_parser("drift", help="PSI of the outputs and CSI of each feature: training population vs a scored batch")
    p.add_argument("--reference", required=True, help="the training run id (its reference.parquet)")
    p.add_argument("--current", required=True, help="a scored batch (output of ipvalue score: .parquet, .csv or .xlsx)")
    p.add_argument("--out", default=None, help="write the table here (.csv, .xlsx or .parquet)")
    p.add_argument("--report-dir", default="governance", help="folder of the stability report drift_report.html / .pdf / .md (default: governance)")
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=run_drift)
    p = gsub.add_parser("promote", help="move the champion alias: only through passed gates, signed by a validator's API token, with a reason")
    p.add_argument("--model", required=True, help="models:/NAME/VERSION")
    p.add_argument("--audit-db", default=None, help="the audit store holding the validator's token (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--audit-key", default=None, help="the audit key file (default: $IPVALUE_AUDIT_KEY_FILE)")
    p.add_argument("--reason", default="", help="why the model is approved (required)")
    p.add_argument("--alias", default="champion")
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=run_promote)
    govern.set_defaults(func=lambda a: (govern.print_help(), EXIT_USAGE)[1])


def run_report(args) -> int:
    from ipvalue.exceptions import SpecError
    from ipvalue.governance import add_methods_backtest, methods_backtest, methods_validation_report, model_card, override_summary, validation_report
    from ipvalue.tracking import use_tracking

    if not (args.model or args.ledger or args.calibration_run):
        print("error: govern report needs --model, --ledger or --calibration-run. Fix: name what to validate.", file=sys.stderr)
        return EXIT_USAGE
    use_tracking(args.tracking_uri)
    out = Path(args.out)
    methods = methods_backtest(ledger=args.ledger, calibration_run=args.calibration_run) if (args.ledger or args.calibration_run) else None
    written, report = [], None
    if args.model:
        written = model_card(args.model).write(out, "model_card")
        try:
            report = validation_report(args.model, data_dir=args.data_dir)
        except SpecError as exc:
            print(f"validation report of {args.model} not produced: {exc}")
        else:
            headline = report.sections["Out-of-time performance"][1].set_index("metric")
            print(f"out-of-time AUC {headline.loc['AUC', 'value']:.4f} [{headline.loc['AUC', 'ci_low']:.4f}, {headline.loc['AUC', 'ci_high']:.4f}], "
                  f"ECE {headline.loc['ECE', 'value']:.4f}")
    if methods is not None:
        report = add_methods_backtest(report, methods) if report is not None else methods_validation_report(methods)
        print(f"valuation methods' back-test: {methods.meta.get('verdict_en', '')} (split {methods.meta.get('split_date')})")
    if report is not None:
        if args.audit_db:
            report.add("Manual overrides (audit trail)", f"From {args.audit_db}.", override_summary(args.audit_db))
        written += report.write(out, "validation_report")
    for path in written:
        if path.suffix != ".png":
            print(f"wrote {path}")
    return EXIT_OK


def run_drift(args) -> int:
    from ipvalue.governance import drift_document, drift_report, load_reference, load_reference_spec, verdict
    from ipvalue.io.spreadsheets import OutputTypeError, table_format, write_table_atomic
    from ipvalue.scoring.parts import read_output
    from ipvalue.tracking import use_tracking

    if args.out:
        try:
            table_format(args.out)
        except OutputTypeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    use_tracking(args.tracking_uri)
    reference, current = load_reference(args.reference), read_output(args.current)
    table = drift_report(reference, current)
    worst = table["value"].max()
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"verdict: {verdict(worst).upper()} (largest index {worst:.4f}; < 0.10 stable, 0.10-0.25 watch, > 0.25 act)")
    if args.out:
        write_table_atomic(table, args.out, sheet="稳定性 stability")
    document = drift_document(table, reference, current, reference_name=f"run {args.reference}", current_name=Path(args.current).name,
                              spec=load_reference_spec(args.reference))
    for path in document.write(Path(args.report_dir), "drift_report"):
        if path.suffix in (".html", ".pdf"):
            print(f"wrote {path}")
    return EXIT_PARTIAL if verdict(worst) == "act" else EXIT_OK


def run_promote(args) -> int:
    from ipvalue.governance import PromotionError, promote
    from ipvalue.identity import command_identity
    from ipvalue.tracking import use_tracking

    who = command_identity(args.audit_db, roles=("validator",), key_file=args.audit_key)  # the validator's API token, not a name typed here
    use_tracking(args.tracking_uri)
    try:
        moved = promote(args.model, validator=who.name, reason=args.reason, alias=args.alias)
    except PromotionError as exc:
        print(f"promotion refused: {exc}", file=sys.stderr)
        return EXIT_PARTIAL
    print(f"{moved['model']} version {moved['version']} is now @{moved['alias']} (previously version {moved['previous_version']})")
    return EXIT_OK
