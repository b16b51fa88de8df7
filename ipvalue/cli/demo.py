"""``ipvalue demo``: the main job on the embedded defaults (a SYNTHETIC pledge book end to end)."""

from __future__ import annotations

from pathlib import Path

from ipvalue.cli.exitcodes import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded defaults: synthetic pledge book end to end")
    p.add_argument("--n", type=positive_int, default=400, help="synthetic patents (default: 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow/mlflow.db)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ipvalue.demo import run_demo

    return run_demo(out_dir=Path(args.out), n=args.n, seed=args.seed, tracking_uri=args.tracking_uri)
