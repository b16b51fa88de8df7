"""``ipvalue audit verify``: recompute the audit store's hash chain and name the first broken link."""

from __future__ import annotations

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL


def add_parser(sub) -> None:
    audit = sub.add_parser("audit", help="the audit store: verify its hash chain")
    asub = audit.add_subparsers(dest="audit_command", metavar="AUDIT_COMMAND", required=True)
    p = asub.add_parser("verify", help="recompute the hash chain; exit 1 and name the first broken link if it does not hold")
    p.add_argument("--audit-db", default=None, help="audit store (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.set_defaults(func=run_verify)


def run_verify(args) -> int:
    from ipvalue.audit import verify

    report = verify(args.audit_db)
    print(report)
    return EXIT_OK if report.ok else EXIT_PARTIAL
