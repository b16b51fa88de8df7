"""``ipvalue pool``: offering-circular tables and monitoring alerts of a scored book."""

from __future__ import annotations

import json
from pathlib import Path

from ipvalue.cli.exitcodes import EXIT_OK, EXIT_PARTIAL, fraction, iso_date, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("pool", help="pool analytics and monitoring alerts of a scored book")
    p.add_argument("book", help="the book (CSV/Parquet/Excel PatentFrame; optional columns borrower, loan_end_date)")
    p.add_argument("--scored", required=True, help="output of ipvalue score (.parquet, .csv or .xlsx)")
    p.add_argument("--previous", default=None, help="an earlier scoring, for value-drop alerts")
    p.add_argument("--value-column", default="value_p50_rmb")
    p.add_argument("--as-of", type=iso_date, default=None, help="date of the alerts, YYYY-MM-DD (default: today)")
    p.add_argument("--fee-due-days", type=positive_int, default=60)
    p.add_argument("--value-drop", type=fraction, default=0.2, help="alert when the value fell by more than this share")
    p.add_argument("--out", default="pool", help="folder for pool.xlsx, pool_summary.json and alerts.csv")
    p.set_defaults(func=run)


def run(args) -> int:
    import pandas as pd

    from ipvalue.io import read_patents, read_table, write_text_atomic
    from ipvalue.io.spreadsheets import write_csv_atomic
    from ipvalue.pool import TABLE_TITLES, format_table, monitoring_alerts, pool_summary, readable_tables, write_pool_workbook
    from ipvalue.scoring.parts import read_output

    loaded = read_patents(args.book)
    raw, _ = read_table(args.book)
    extras = {c: raw.loc[loaded.valid.index, c] for c in ("borrower", "loan_end_date") if c in raw.columns}
    book = loaded.valid.assign(**extras)
    scored = read_output(args.scored)
    as_of = args.as_of or pd.Timestamp.today().date().isoformat()
    tables = pool_summary(book, scored, value_column=args.value_column, valuation_date=as_of)
    previous = read_output(args.previous) if args.previous else None
    alerts = monitoring_alerts(book, as_of=as_of, scored=scored, previous=previous, value_column=args.value_column,
                               fee_due_days=args.fee_due_days, value_drop=args.value_drop)
    out = Path(args.out)
    payload = {k: json.loads(v.to_json(orient="records", force_ascii=False)) for k, v in tables.items()}
    write_text_atomic(json.dumps({"as_of": as_of, "book": str(args.book), "quarantined_rows": len(loaded.quarantine), **payload}, ensure_ascii=False, indent=2), out / "pool_summary.json")
    write_csv_atomic(alerts, out / "alerts.csv")
    readable = readable_tables(tables, alerts)
    notes = [("基准日 As of", as_of), ("资产包 Book", Path(args.book).name), ("评分文件 Scored file", Path(args.scored).name),
             ("价值列 Value column", args.value_column), ("未通过校验的行（未计入） Book rows failing validation (left out)", f"{len(loaded.quarantine):,}")]
    workbook = write_pool_workbook(readable, out / "pool.xlsx", notes=notes)
    with pd.option_context("display.width", 200, "display.max_columns", 12, "display.max_colwidth", 60, "display.unicode.east_asian_width", True):
        for name, table in readable.items():
            if name != "alerts":
                print(f"\n{TABLE_TITLES[name]}\n{format_table(table).to_string(index=False)}")
    counts = alerts["alert"].value_counts() if len(alerts) else pd.Series(dtype=int)
    print(f"\n{len(alerts):,} alerts 预警" + (" (" + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + ")" if len(counts) else "") + f" -> {out / 'alerts.csv'}")
    print(f"workbook 工作簿 -> {workbook}")
    if len(loaded.quarantine):
        print(f"{len(loaded.quarantine):,} book rows failed validation and are not in the pool (see ipvalue validate)")
    return EXIT_PARTIAL if len(alerts) or len(loaded.quarantine) else EXIT_OK
