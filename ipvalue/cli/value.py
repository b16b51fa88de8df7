"""``ipvalue value``: value one pledge-loan application (report, JSON and audit record)."""

from __future__ import annotations

import getpass

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL


def add_parser(sub) -> None:
    p = sub.add_parser("value", help="value one pledge-loan application: market value, collateral value, cap, checks, report, audit")
    p.add_argument("application", help="application file (.yaml or .json)")
    p.add_argument("--out", default="reports", help="folder for the HTML, PDF and JSON reports (default: reports)")
    p.add_argument("--audit-db", default=None, help="audit store: a SQLite file or postgresql:// URL (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--user", default=getpass.getuser(), help="who runs the valuation (recorded in the audit trail)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for the models named in the application")
    p.add_argument("--data-dir", default=None, help="public reference data folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from ipvalue import terms, workflow
    from ipvalue.lending import LoanApplication

    app = LoanApplication.load(args.application)
    recorded = workflow.value_and_record(app, store=args.audit_db, user=args.user, tracking_uri=args.tracking_uri, data_dir=args.data_dir, out_dir=args.out)
    result, paths = recorded.result, recorded.paths
    s = result.summary
    print(f"申请 application {app.application_id}: {terms.both(terms.DECISIONS, s['decision'])} | 市场价值 market value {s['market_value_rmb']:,.0f} RMB | "
          f"可贷上限 loan cap {s['loan_cap_rmb']:,.0f} RMB | 申请 requested {s['requested_amount_rmb']:,.0f} RMB")
    for c in result.checks[~result.checks["passed"]].itertuples():
        print(f"  {terms.zh(terms.CHECK_STATUSES, c.status)} {c.scope} {terms.zh(terms.CHECKS, c.check)}: {c.reason_zh}")
    print(f"report: {paths['html']}" + (f"\npdf:    {paths['pdf']}" if paths.get("pdf") else "") + f"\njson:   {paths['json']}\naudit:  {recorded.store} (valuation {result.valuation_id})")
    return EXIT_OK if s["eligible"] else EXIT_PARTIAL
