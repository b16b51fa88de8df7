"""``ipvalue value``: value one pledge-loan application (report, JSON and audit record)."""

from __future__ import annotations

import getpass

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL


def add_parser(sub) -> None:
    p = sub.add_parser("value", help="value one pledge-loan application: internal value, pledge value, checks, report, audit")
    p.add_argument("application", help="application file (.yaml or .json)")
    p.add_argument("--out", default="reports", help="folder for the HTML and JSON reports (default: reports)")
    p.add_argument("--audit-db", default=None, help="SQLite audit store (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--user", default=getpass.getuser(), help="who runs the valuation (recorded in the audit trail)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for the models named in the application")
    p.add_argument("--data-dir", default=None, help="public reference data folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from ipvalue.audit import pledge_applications, recording
    from ipvalue.lending import LoanApplication, value_application
    from ipvalue.report import write_reports

    app = LoanApplication.load(args.application)
    # the borrower's other open IP-pledge applications in the audit store count towards the ¥10M limit
    result = value_application(app, tracking_uri=args.tracking_uri, data_dir=args.data_dir, user=args.user, applications=pledge_applications(args.audit_db))
    with recording(result, args.audit_db) as audit:  # the report is written only with its audit record
        paths = write_reports(result, args.out)
    s = result.summary
    print(f"application {app.application_id}: {s['decision']} | internal value {s['internal_value_rmb']:,.0f} RMB | "
          f"loan cap {s['loan_cap_rmb']:,.0f} RMB | requested {s['requested_amount_rmb']:,.0f} RMB")
    for c in result.checks[~result.checks["passed"]].itertuples():
        print(f"  FAIL {c.scope} {c.check}: {c.reason_en}")
    print(f"report: {paths['html']}" + (f"\npdf:    {paths['pdf']}" if paths.get("pdf") else "") + f"\njson:   {paths['json']}\naudit:  {audit} (valuation {result.valuation_id})")
    return EXIT_OK if s["eligible"] else EXIT_PARTIAL
