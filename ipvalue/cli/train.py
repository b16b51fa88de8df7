"""``ipvalue train``: run an experiment file (train, evaluate, log; register if the gates pass)."""

from __future__ import annotations

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="run an experiment file: train, evaluate, log to MLflow, register if the gates pass")
    p.add_argument("experiment", help="experiments/<name>.yaml (data.loader: university_maintenance, demo_portfolio, cnipa_register for a "
                                      "bank's patent list + CNIPA legal-status export, or file)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow/mlflow.db)")
    p.add_argument("--data-dir", default=None, help="public data folder (default: $IPVALUE_DATA_DIR or ../shared/data)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ipvalue.training import run_experiment

    result = run_experiment(args.experiment, tracking_uri=args.tracking_uri, data_dir=args.data_dir)
    print(result.summary())
    return EXIT_OK if result.gates_passed else EXIT_PARTIAL
