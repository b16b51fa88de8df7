"""``ipvalue validate``: load a patent table, validate it and print the quarantine report."""

from __future__ import annotations

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="load a patent table, validate it and print the quarantine report")
    p.add_argument("file", help="CSV, Parquet or Excel file (Chinese or English headers)")
    p.add_argument("--mapping", default="auto", help="column mapping: auto, cn, en or a YAML path (default: auto)")
    p.add_argument("--encoding", default=None, help="CSV encoding (default: UTF-8, then GB18030)")
    p.add_argument("--date-format", default=None, help="the file's date format when day and month are ambiguous, e.g. %%d/%%m/%%Y")
    p.add_argument("--strict", action="store_true", help="fail on the first invalid row instead of quarantining")
    p.add_argument("--quarantine-out", default=None, help="write rejected rows with reasons here (.csv or .parquet)")
    p.add_argument("--valid-out", default=None, help="write the valid PatentFrame here (.parquet or .csv)")
    p.add_argument("--max-problems", type=int, default=50, help="problems to print (default: 50)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ipvalue.io import read_patents, write_atomic

    result = read_patents(args.file, mapping=args.mapping, encoding=args.encoding, strict=args.strict, date_format=args.date_format)
    print(result.report(max_problems=args.max_problems))
    if args.quarantine_out and len(result.quarantine):
        write_atomic(result.quarantine, args.quarantine_out)
        print(f"quarantine written to {args.quarantine_out}")
    if args.valid_out:
        write_atomic(result.valid, args.valid_out)
        print(f"valid PatentFrame written to {args.valid_out}")
    return EXIT_PARTIAL if len(result.quarantine) else EXIT_OK
