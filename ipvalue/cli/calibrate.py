"""``ipvalue calibrate LEDGER``: re-estimate the valuation's coefficients from the bank's pilot
ledger, write candidate sets (with diffs and gates) and the out-of-time back-test report, log the
run to MLflow. ``ipvalue calibrate promote CANDIDATE.yaml --reason ...``: a validator's promotion
of a candidate (signed and audited), installed where valuations read the bank's sets."""

from __future__ import annotations

import sys

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, iso_date


def add_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="re-estimate coefficients from the pilot ledger (loans, outcomes, disposals, deals, overrides); "
             "candidate sets, out-of-time back-test, MLflow run",
        description="ipvalue calibrate LEDGER [options]: LEDGER is a folder of loans.csv, cash_flows.csv, deals.csv, overrides.csv, patents.csv "
                    "(UTF-8 or GBK) or an .xlsx workbook with sheets of those names; the schema is in ipvalue.calibration.ledger. Exit 0 when "
                    "every row is valid and every gate passes, 1 when rows were quarantined or a gate failed (outputs written). "
                    "With an API token ($IPVALUE_TOKEN or the token file) the run records who calibrated, so that person cannot promote it. "
                    "ipvalue calibrate promote CANDIDATE.yaml --reason TEXT: a validator (API token with role validator) promotes a candidate "
                    "whose gates passed: recorded in the audit store (--audit-db, the store valuations are recorded in) and installed in "
                    "$IPVALUE_CONFIG_DIR/assumptions/; exit 1 when refused.",
    )
    p.add_argument("ledger", metavar="LEDGER | promote", help="the pilot ledger (a folder of CSV files or an .xlsx workbook), or 'promote'")
    p.add_argument("candidate", nargs="?", default=None, help="with 'promote': the candidate set (candidates/<name>-v<N>.yaml)")
    p.add_argument("--out", default="calibration-output", help="output folder: estimates, candidates/, backtest/ (default: calibration-output)")
    p.add_argument("--seed", type=int, default=0, help="seed of the intervals' Monte Carlo (default: 0)")
    p.add_argument("--as-of", type=iso_date, default=None, help="the ledger's date, YYYY-MM-DD (default: its latest date)")
    p.add_argument("--split-date", type=iso_date, default=None, help="back-test: loans valued up to this date calibrate, later ones test "
                                                                    "(default: the earliest 60 %%)")
    p.add_argument("--register", default=None, help="a CNIPA legal-status export: re-estimate the CN life table from it")
    p.add_argument("--register-patents", default=None, help="the patent list the export joins by 申请号 (default: the ledger folder's patents.csv)")
    p.add_argument("--exported-on", type=iso_date, default=None, help="the export's date (default: its latest announcement)")
    p.add_argument("--assumption-set", default="cn-pledge-2025", help="income-approach set in use (default: cn-pledge-2025)")
    p.add_argument("--disposal-set", default="disposal-cn", help="disposal set in use (default: disposal-cn)")
    p.add_argument("--pledge-policy", default="pledge-policy-cn", help="pledge policy in use (default: pledge-policy-cn)")
    p.add_argument("--settings", default="calibration-cn", help="calibration settings: minimum n, gates (default: calibration-cn)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow/mlflow.db)")
    promote = p.add_argument_group("promote (a validator approves a candidate)")
    promote.add_argument("--reason", default="", help="why the set is approved (required with promote)")
    promote.add_argument("--config-dir", default=None, help="the bank's configuration folder (default: $IPVALUE_CONFIG_DIR)")
    promote.add_argument("--audit-db", default=None, help="the audit store valuations are recorded in (default: $IPVALUE_AUDIT_DB or audit/ipvalue-audit.db); "
                                                          "with a token, calibrate authenticates against it too")
    promote.add_argument("--audit-key", default=None, help="the audit key file (default: $IPVALUE_AUDIT_KEY_FILE)")
    promote.add_argument("--checkpoints", default=None, help="the audit checkpoint file (default: beside the key)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.ledger == "promote":
        return run_promote(args)
    if args.candidate is not None:
        print(f"error: unexpected argument {args.candidate!r}. Fix: 'ipvalue calibrate LEDGER [options]' or 'ipvalue calibrate promote CANDIDATE.yaml --reason TEXT'.",
              file=sys.stderr)
        return EXIT_USAGE
    from ipvalue.calibration.run import calibrate
    from ipvalue.identity import command_identity, token_from_environment

    calibrated_by = None
    if token_from_environment()[0]:  # a token given: the run records who calibrated (the promotion refuses that person)
        calibrated_by = command_identity(args.audit_db, key_file=args.audit_key).name
    else:
        print("note: no API token ($IPVALUE_TOKEN): the run records the operating-system user only; a validator promoting from the same "
              "account is refused.", file=sys.stderr)
    result = calibrate(args.ledger, out=args.out, seed=args.seed, as_of=args.as_of, split_date=args.split_date, register=args.register,
                       register_patents=args.register_patents, exported_on=args.exported_on, tracking_uri=args.tracking_uri,
                       assumption_set=args.assumption_set, disposal_set=args.disposal_set, pledge_policy=args.pledge_policy, settings=args.settings,
                       calibrated_by=calibrated_by)
    if len(result.ledger.problems):
        print(result.ledger.report(max_problems=20))
        print(f"quarantine written to {result.out / 'quarantine.csv'}\n")
    print(result.summary())
    return EXIT_OK if result.gates_passed and not len(result.ledger.problems) else EXIT_PARTIAL


def run_promote(args) -> int:
    from ipvalue.calibration.promote import SetPromotionError, promote_set
    from ipvalue.identity import command_identity, token_from_environment

    if args.candidate is None:
        print("error: 'ipvalue calibrate promote' needs the candidate file. Fix: ipvalue calibrate promote candidates/NAME-vN.yaml --reason TEXT.",
              file=sys.stderr)
        return EXIT_USAGE
    who = command_identity(args.audit_db, roles=("validator",), key_file=args.audit_key)  # the API token, not a name typed here
    try:
        promotion = promote_set(args.candidate, reason=args.reason, token=token_from_environment()[0], store=args.audit_db, key_file=args.audit_key,
                                checkpoint_file=args.checkpoints, config_dir=args.config_dir, tracking_uri=args.tracking_uri)
    except SetPromotionError as exc:
        print(f"promotion refused: {exc}", file=sys.stderr)
        return EXIT_PARTIAL
    print(f"晋级 promoted ({who.name}): {promotion}")
    return EXIT_OK
