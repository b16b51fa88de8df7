"""``ipvalue score``: batch-score a book with a registered model (local chunks or Spark)."""

from __future__ import annotations

import sys

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, checked, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="batch-score a book (CSV/Parquet/Excel) with a registered model; nothing lost, resumable")
    p.add_argument("input", help="the book: CSV, TSV, Parquet or Excel (.xlsx), as ipvalue validate reads it")
    p.add_argument("--model", required=True, help="registered model URI, e.g. models:/ipvalue-value@champion")
    p.add_argument("--out", required=True, help="output file by its extension: .parquet, .csv (UTF-8 with BOM, for Excel) or .xlsx "
                                                "(a Parquet folder with --engine spark)")
    p.add_argument("--quarantine-out", default=None, help="rejected rows with reasons, .parquet/.csv/.xlsx (default: beside --out, same type)")
    p.add_argument("--engine", choices=["local", "spark"], default="local")
    p.add_argument("--chunk-size", type=positive_int, default=None, help="rows per chunk, local engine (default: 50000)")
    p.add_argument("--workers", type=positive_int, default=2, help="chunks scored at a time, local engine (default: 2; memory grows with it)")
    p.add_argument("--partitions", type=positive_int, default=None, help="Spark partitions before the UDF (default: 2 × cores)")
    p.add_argument("--explain", type=checked(_explain_mode), default="all", help="SHAP columns: all (every feature), topN (the N largest drivers, e.g. top3), none")
    p.add_argument("--explain-sample", type=checked(_sample_fraction, float), default=None, metavar="FRACTION",
                   help="explain only this fraction of patents (the same ones on every run), local engine; e.g. 0.05")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow/mlflow.db)")
    p.set_defaults(func=run)


def _explain_mode(mode: str) -> None:
    from ipvalue.models.output import explain_top

    explain_top(mode)


def _sample_fraction(fraction: float) -> None:
    from ipvalue.models.output import check_sample_fraction

    check_sample_fraction(fraction)


def run(args) -> int:
    from ipvalue.io.spreadsheets import OutputTypeError
    from ipvalue.scoring import DEFAULT_CHUNK_SIZE, score_file, score_spark

    common = dict(model_uri=args.model, out=args.out, quarantine_out=args.quarantine_out, explain=args.explain, tracking_uri=args.tracking_uri)
    try:
        if args.engine == "spark":
            if args.explain_sample is not None:
                print("error: --explain-sample works with the local engine only. Fix: drop it, or use --engine local.", file=sys.stderr)
                return EXIT_USAGE
            summary = score_spark(args.input, partitions=args.partitions, **common)
        else:
            summary = score_file(args.input, chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE, workers=args.workers, explain_sample=args.explain_sample, **common)
    except OutputTypeError as exc:  # checked before any work starts
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary.line())
    print(f"model {summary.model_uri} (version {summary.model_version}, run {summary.run_id}, feature spec {summary.feature_spec_hash})")
    print(f"quarantine: {summary.quarantine}")
    return EXIT_PARTIAL if summary.rows_quarantined else EXIT_OK
