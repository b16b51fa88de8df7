"""Peak memory of reading an upload against its size (a hostile upload), beside a valid file of the
same rows in the same run.

    .venv/bin/python -m benchmarks.upload_memory                    # 1k, 2k, 4k, 20k rows; 200k-row .xlsx
    .venv/bin/python -m benchmarks.upload_memory --sizes 1000 2000 --xlsx-rows 0

Each read runs in a fresh process (``read_patents`` as the CLI and the service call it) and
reports its own peak resident set (``ru_maxrss``), so figures do not mix. The hostile files:

* a CSV of n rows sharing one patent id (every row quarantined as a duplicate): before the fix
  each row's message listed every row, so memory grew as n² (1k 228 MB, 2k 342 MB, 4k 773 MB,
  20k past 5 GB in the security review); the baseline is a valid CSV of n distinct ids;
* an .xlsx of 200,000 such rows, 257 KB (the review's was 180 KB and OOM-killed at 22.7 GB):
  read with the upload limits (refused from the sheet's XML, streamed) and with the default
  limits (read and quarantined), beside a valid .xlsx of 200,000 distinct ids;
* the same .xlsx with the default limits through ``read_patents_bounded`` with the worker
  capped at 256 MB of address space above its start: the worker stops, the file is refused, and
  the peak shown is the calling process's (the worker is a child of the fork server).

Nothing here is timed against a target: the seconds are printed for information only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path

from benchmarks._common import CACHE, peak_rss_mb, run_isolated

HEADER = ["patent_id", "jurisdiction", "patent_type", "filing_date", "applicants", "claims_total"]


def patent_row(i: int, duplicate: bool) -> list[str]:
    """One export row: the same id for every row (``duplicate``) or a distinct one."""
    return ["CN100000001B" if duplicate else f"CN1{i:08d}B", "CN", "invention", "2020-01-01", "某某科技有限公司", "10"]


def write_csv(path: Path, n: int, duplicate: bool) -> Path:
    rows = [",".join(HEADER)] + [",".join(patent_row(i, duplicate)) for i in range(n)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_xlsx(path: Path, header: list[str], rows) -> Path:
    """A minimal .xlsx (one sheet, inline strings) written straight to the zip: what a hostile
    or a generated export looks like, in a second for 200,000 rows (openpyxl takes 20 s)."""
    from xml.sax.saxutils import escape

    def row_xml(cells) -> str:  # no r= attributes (they are optional): identical rows compress to almost nothing
        return "<row>" + "".join(f'<c t="inlineStr"><is><t>{escape(str(v))}</t></is></c>' for v in cells) + "</row>"

    sheet = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>', row_xml(header)]
    sheet += [row_xml(cells) for cells in rows]
    sheet.append("</sheetData></worksheet>")
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                               '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                               '<Default Extension="xml" ContentType="application/xml"/>'
                               '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                               '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                       f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                           f'xmlns:r="{rel}"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                                      f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": "".join(sheet),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return path


def measure(path: str, how: str) -> dict:
    """In this (fresh) process: read ``path`` as ``how`` says; peak RSS and the outcome."""
    from ipvalue.exceptions import InputError

    started = time.perf_counter()
    try:
        if how == "bounded-256MB":  # the default limits, but a worker capped at 256 MB above its start
            from ipvalue.io import DEFAULT_LIMITS
            from ipvalue.io.bounded import read_patents_bounded

            result = read_patents_bounded(path, limits=DEFAULT_LIMITS, memory_bytes=256 * 2**20)
        elif how == "upload-limits":
            from ipvalue.io import UPLOAD_LIMITS, read_patents

            result = read_patents(path, limits=UPLOAD_LIMITS)
        else:
            from ipvalue.io import read_patents

            result = read_patents(path)
        outcome = f"{len(result.valid):,} valid, {len(result.quarantine):,} quarantined"
    except InputError as exc:
        outcome = f"refused: {str(exc)[:90]}"
    return {"peak_mb": round(peak_rss_mb(), 1), "seconds": round(time.perf_counter() - started, 2), "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 2000, 4000, 20000], help="CSV rows (none: only the .xlsx)")
    parser.add_argument("--xlsx-rows", type=int, default=200_000, help="rows of the .xlsx files (0: none)")
    parser.add_argument("--one", nargs=2, metavar=("PATH", "HOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one), ensure_ascii=False))
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    module = "benchmarks.upload_memory"
    print(f"{'file':44} {'bytes':>10} {'peak MB':>8} {'s':>6}  outcome")

    def show(path: Path, how: str = "read_patents") -> dict:
        m = run_isolated(module, "--one", str(path), how)
        print(f"{path.name + ' (' + how + ')':44} {path.stat().st_size:>10,} {m['peak_mb']:>8,.0f} {m['seconds']:>6.1f}  {m['outcome']}", flush=True)
        return m

    for n in args.sizes:
        valid = show(write_csv(CACHE / f"upload-valid-{n}.csv", n, duplicate=False))
        hostile = show(write_csv(CACHE / f"upload-duplicated-{n}.csv", n, duplicate=True))
        print(f"{'':44} {'':>10} {hostile['peak_mb'] - valid['peak_mb']:>+8,.0f}  duplicated − valid, {n:,} rows")
    n = args.xlsx_rows
    if not n:
        return
    valid_xlsx = write_xlsx(CACHE / f"upload-valid-{n}.xlsx", HEADER, (patent_row(i, False) for i in range(n)))
    hostile_xlsx = write_xlsx(CACHE / f"upload-duplicated-{n}.xlsx", HEADER, (patent_row(i, True) for i in range(n)))
    show(valid_xlsx)
    show(hostile_xlsx)
    show(hostile_xlsx, "upload-limits")
    show(hostile_xlsx, "bounded-256MB")
    print(f"python {sys.version.split()[0]}; each row is a fresh process's peak resident set")


if __name__ == "__main__":
    main()
