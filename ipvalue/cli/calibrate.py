"""``ipvalue calibrate``: re-estimate the valuation's coefficients from the bank's pilot ledger,
write candidate sets (with diffs and gates) and the out-of-time back-test, log the run to MLflow."""

from __future__ import annotations

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, iso_date


def add_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="re-estimate coefficients from the pilot ledger (loans, outcomes, disposals, deals, overrides); "
             "candidate sets, out-of-time back-test, MLflow run",
        description="LEDGER is a folder of loans.csv, cash_flows.csv, deals.csv, overrides.csv, patents.csv (UTF-8 or GBK) or an .xlsx "
                    "workbook with sheets of those names; the schema is in ipvalue.calibration.ledger. Exit 0 when every row is valid "
                    "and every gate passes, 1 when rows were quarantined or a gate failed (outputs written).",
    )
    p.add_argument("ledger", help="the pilot ledger: a folder of CSV files or an .xlsx workbook")
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
    p.set_defaults(func=run)


def run(args) -> int:
    from ipvalue.calibration.run import calibrate

    result = calibrate(args.ledger, out=args.out, seed=args.seed, as_of=args.as_of, split_date=args.split_date, register=args.register,
                       register_patents=args.register_patents, exported_on=args.exported_on, tracking_uri=args.tracking_uri,
                       assumption_set=args.assumption_set, disposal_set=args.disposal_set, pledge_policy=args.pledge_policy, settings=args.settings)
    if len(result.ledger.problems):
        print(result.ledger.report(max_problems=20))
        print(f"quarantine written to {result.out / 'quarantine.csv'}\n")
    print(result.summary())
    return EXIT_OK if result.gates_passed and not len(result.ledger.problems) else EXIT_PARTIAL
