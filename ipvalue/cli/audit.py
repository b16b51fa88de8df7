"""``ipvalue audit verify | checkpoint | export``: check the audit store against its hash chain, its
key and its checkpoints; append a signed checkpoint of its head; export its valuations as the pilot
ledger's tables (for ``ipvalue calibrate``)."""

from __future__ import annotations

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL

_KEY_HELP = "the audit key file (default: $IPVALUE_AUDIT_KEY_FILE); without one the store cannot be shown to be uncut and unrewritten"
_CHECKPOINTS_HELP = "the checkpoint file (default: $IPVALUE_AUDIT_CHECKPOINTS, else KEY.checkpoints.jsonl beside the key)"


def add_parser(sub) -> None:
    audit = sub.add_parser("audit", help="the audit store: verify its chain, signatures and checkpoints; write a checkpoint")
    asub = audit.add_subparsers(dest="audit_command", metavar="AUDIT_COMMAND", required=True)
    for name, func, text in (
        ("verify", run_verify, "check the hash chain, the signatures (key) and the checkpoints; exit 1 naming the first problem, or when not anchored"),
        ("checkpoint", run_checkpoint, "append a signed checkpoint of the store's head to the checkpoint file (and the log)"),
    ):
        p = asub.add_parser(name, help=text)
        p.add_argument("--audit-db", default=None, help="audit store (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
        p.add_argument("--audit-key", default=None, help=_KEY_HELP)
        p.add_argument("--checkpoints", default=None, help=_CHECKPOINTS_HELP)
        p.set_defaults(func=func)
    p = asub.add_parser("export", help="the store's valuations as the pilot ledger's loans, cash-flows and overrides tables (for ipvalue calibrate; "
                                       "the bank fills in outcomes and disposals)")
    p.add_argument("--out", required=True, help="a folder (loans.csv, cash_flows.csv, overrides.csv) or an .xlsx workbook")
    p.add_argument("--audit-db", default=None, help="audit store (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--branch", default=None, help="the branch of the valuations whose user's branch the store does not record")
    p.set_defaults(func=run_export)


def run_verify(args) -> int:
    from ipvalue.audit import verify

    report = verify(args.audit_db, key_file=args.audit_key, checkpoint_file=args.checkpoints)
    print(report)
    return EXIT_OK if report.passed else EXIT_PARTIAL


def run_checkpoint(args) -> int:
    from ipvalue.audit import write_checkpoint

    entry = write_checkpoint(args.audit_db, key_file=args.audit_key, checkpoint_file=args.checkpoints)
    print(f"checkpoint: record {entry['seq']} head {entry['head']} at {entry['at']} (key {entry['key']})")
    return EXIT_OK


def run_export(args) -> int:
    from ipvalue.calibration.export import export_ledger

    export = export_ledger(args.out, args.audit_db, branch=args.branch)
    print(export)
    print(f"written to {args.out}")
    return EXIT_OK
