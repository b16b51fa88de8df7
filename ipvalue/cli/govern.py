"""``ipvalue govern report | drift | promote``: model card and validation report, stability,
promotion through gates."""

from __future__ import annotations

import sys
from pathlib import Path

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE


def add_parser(sub) -> None:
    govern = sub.add_parser("govern", help="model governance: model card and validation report, drift, promotion")
    gsub = govern.add_subparsers(dest="govern_command", metavar="GOVERN_COMMAND")
    p = gsub.add_parser("report", help="model card (Markdown + HTML) and validation report of a registered version")
    p.add_argument("--model", required=True, help="models:/NAME/VERSION (or @ALIAS)")
    p.add_argument("--out", default="governance", help="output folder (default: governance)")
    p.add_argument("--audit-db", default=None, help="audit store whose override log to summarise")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=run_report)
    p = gsub.add_parser("drift", help="PSI of the outputs and CSI of each feature: training population vs a scored batch")
    p.add_argument("--reference", required=True, help="the training run id (its reference.parquet)")
    p.add_argument("--current", required=True, help="a scored batch (output of ipvalue score)")
    p.add_argument("--out", default=None, help="write the table here (.csv or .parquet)")
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=run_drift)
    p = gsub.add_parser("promote", help="move the champion alias: only through passed gates, with a validator and a reason")
    p.add_argument("--model", required=True, help="models:/NAME/VERSION")
    p.add_argument("--validator", default="", help="the validator's name (required)")
    p.add_argument("--reason", default="", help="why the model is approved (required)")
    p.add_argument("--alias", default="champion")
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=run_promote)
    govern.set_defaults(func=lambda a: (govern.print_help(), EXIT_USAGE)[1])


def run_report(args) -> int:
    from ipvalue.exceptions import SpecError
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
        if args.audit_db:
            report.add("Manual overrides (audit trail)", f"From {args.audit_db}.", override_summary(args.audit_db))
        written += [write_text_atomic(report.to_markdown(), out / "validation_report.md"), write_text_atomic(report.to_html(), out / "validation_report.html")]
        headline = report.sections["Out-of-time performance"][1].set_index("metric")
        print(f"out-of-time AUC {headline.loc['AUC', 'value']:.4f} [{headline.loc['AUC', 'ci_low']:.4f}, {headline.loc['AUC', 'ci_high']:.4f}], "
              f"ECE {headline.loc['ECE', 'value']:.4f}")
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def run_drift(args) -> int:
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


def run_promote(args) -> int:
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
