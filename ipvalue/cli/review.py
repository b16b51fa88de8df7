"""``ipvalue review sign-off | queue``: a reviewer's acts on recorded valuations.

A sign-off is its own act by an authenticated reviewer (``$IPVALUE_TOKEN`` or the token file),
never a field of the application: the application is valued again with the review, which binds
to the figures the reviewer approved, and recorded as the version that supersedes the one signed.
The reviewer must not be the officer who valued or overrode the application (审贷分离).
"""

from __future__ import annotations

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL


def add_parser(sub) -> None:
    review = sub.add_parser("review", help="a reviewer's acts: sign off a 'review required' valuation; the queue awaiting sign-off")
    rsub = review.add_subparsers(dest="review_command", metavar="REVIEW_COMMAND", required=True)
    p = rsub.add_parser("sign-off", help="sign off the latest, 'review required' version of an application (needs a reviewer's token)")
    p.add_argument("valuation_id", help="the version approved (the application's latest)")
    p.add_argument("--application", required=True, help="the application file as it was valued (checked against the record's input hash)")
    p.add_argument("--reason", required=True, help="why the valuation may stand (recorded)")
    p.add_argument("--out", default="reports", help="folder for the reports of the signed version (default: reports)")
    p.add_argument("--audit-db", default=None, help="audit store (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db)")
    p.add_argument("--config", default=None, help="the bank's valuation configuration (as for ipvalue value)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for the models named in the application")
    p.add_argument("--data-dir", default=None, help="public reference data folder")
    p.set_defaults(func=run_sign_off)
    p = rsub.add_parser("queue", help="the reviewer's branch's valuations awaiting sign-off (latest versions)")
    p.add_argument("--audit-db", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=run_queue)


def run_sign_off(args) -> int:
    from ipvalue.cli.value import report_tools_started

    with report_tools_started():  # the signed version's report is printed as `value` prints it
        return _sign_off(args)


def _sign_off(args) -> int:
    from ipvalue import terms, workflow
    from ipvalue.identity import command_identity, os_user
    from ipvalue.lending import LoanApplication
    from ipvalue.lending.configuration import BankConfiguration

    who = command_identity(args.audit_db, roles=("reviewer",))
    configuration = BankConfiguration.load(args.config, pinned=False)
    app = LoanApplication.load(args.application, configuration=configuration)
    recorded = workflow.sign_off(args.valuation_id, app, reason=args.reason, identity=who, store=args.audit_db,
                                 authenticated_by=f"api token (command line; os user {os_user()})", tracking_uri=args.tracking_uri,
                                 data_dir=args.data_dir, out_dir=args.out, provenance={"os_user": os_user(), "configuration": configuration.source})
    s = recorded.result.summary
    print(f"signed off {args.valuation_id} as {who.name}: {terms.both(terms.DECISIONS, s['decision'])} (valuation {recorded.result.valuation_id}, "
          f"report {recorded.paths['html']})")
    return EXIT_OK if s["eligible"] else EXIT_PARTIAL


def run_queue(args) -> int:
    from ipvalue.audit import list_valuations
    from ipvalue.identity import command_identity

    who = command_identity(args.audit_db, roles=("reviewer",))
    page, total = list_valuations(args.audit_db, branch=who.branch, decision="review required", limit=args.limit)
    print(f"{total} valuation(s) of branch {who.branch} awaiting sign-off")
    if len(page):
        money = "{:,.0f}".format
        table = page[["valuation_id", "application_id", "valued_at", "user", "internal_value_rmb", "loan_cap_rmb"]]
        print(table.to_string(index=False, formatters={"internal_value_rmb": money, "loan_cap_rmb": money}))
    return EXIT_OK if total == 0 else EXIT_PARTIAL
