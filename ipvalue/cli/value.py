"""``ipvalue value``: value one pledge-loan application (report, JSON and audit record).

The user is authenticated, not named: an officer's API token from ``$IPVALUE_TOKEN`` or a 0600
token file (:mod:`ipvalue.identity`), checked against the audit store; the operating-system user
is recorded beside the authenticated name.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE


def add_parser(sub) -> None:
    p = sub.add_parser("value", help="value one pledge-loan application: market value, collateral value, cap, checks, report, audit")
    p.add_argument("application", help="application file (.yaml or .json)")
    p.add_argument("--out", default="reports", help="folder for the HTML, PDF and JSON reports (default: reports)")
    p.add_argument("--audit-db", default=None, help="audit store: a SQLite file or postgresql:// URL (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--config", default=None, help="the bank's valuation configuration (default: $IPVALUE_CONFIG_DIR/valuation.yaml when it exists): "
                                                  "the models, policies, assumption sets and risk-sharing schemes an application may name")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for the models named in the application")
    p.add_argument("--data-dir", default=None, help="public reference data folder")
    p.add_argument("--user", default=None, help=argparse.SUPPRESS)  # refused: a name is not proof of identity
    p.set_defaults(func=run)


@contextmanager
def report_tools_started():
    """The PDF's Chromium and a chart helper (which imports matplotlib) started at once: they get
    ready while the command imports its libraries and values, and the report is out about a second
    sooner (:func:`~ipvalue.report.printing.chromium_started`, :func:`~ipvalue.report.drawing.charts_drawn_aside`)."""
    from ipvalue.report.drawing import charts_drawn_aside
    from ipvalue.report.printing import chromium_started

    with chromium_started(), charts_drawn_aside():
        yield


def run(args) -> int:
    with report_tools_started():
        return _value(args)


def _value(args) -> int:
    import sys

    from ipvalue import terms, workflow
    from ipvalue.identity import command_identity, os_user
    from ipvalue.lending import LoanApplication
    from ipvalue.lending.configuration import BankConfiguration

    if args.user is not None:
        print("error: --user is not proof of identity and is no longer taken. Fix: set $IPVALUE_TOKEN (or the token file) to your API token "
              "from 'ipvalue users add'; the audit record carries the authenticated name and your operating-system user.", file=sys.stderr)
        return EXIT_USAGE
    who = command_identity(args.audit_db, roles=("officer",))
    configuration = BankConfiguration.load(args.config, pinned=False)
    app = LoanApplication.load(args.application, configuration=configuration, officer=who.name)
    recorded = workflow.value_and_record(app, store=args.audit_db, identity=who, authenticated_by=f"api token (command line; os user {os_user()})",
                                         tracking_uri=args.tracking_uri, data_dir=args.data_dir, out_dir=args.out,
                                         provenance={"os_user": os_user(), "configuration": configuration.source})
    result, paths = recorded.result, recorded.paths
    s = result.summary
    print(f"申请 application {app.application_id}: {terms.both(terms.DECISIONS, s['decision'])} | 市场价值 market value {s['market_value_rmb']:,.0f} RMB | "
          f"可贷上限 loan cap {s['loan_cap_rmb']:,.0f} RMB | 申请 requested {s['requested_amount_rmb']:,.0f} RMB")
    for c in result.checks[~result.checks["passed"]].itertuples():
        print(f"  {terms.zh(terms.CHECK_STATUSES, c.status)} {c.scope} {terms.zh(terms.CHECKS, c.check)}: {c.reason_zh}")
    print(f"report: {paths['html']}" + (f"\npdf:    {paths['pdf']}" if paths.get("pdf") else "") + f"\njson:   {paths['json']}\naudit:  {recorded.store} (valuation {result.valuation_id})")
    if s["decision"] == "review required":
        print(f"a reviewer signs it off: ipvalue review sign-off {result.valuation_id} --application {args.application} --reason '...'")
    return EXIT_OK if s["eligible"] else EXIT_PARTIAL
