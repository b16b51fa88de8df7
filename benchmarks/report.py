"""Time of the 内部评估报告's rendering (HTML with its charts, PDF) beside baselines measured in the same run.

    .venv/bin/python -m benchmarks.report                 # runs `ipvalue demo` into a temp folder first
    .venv/bin/python -m benchmarks.report --folder demo-output --tracking-uri sqlite:///mlflow/mlflow.db

On the demo's application (``demo_application.yaml``, the one `ipvalue demo` values), prints
medians of --repeat runs of:

- ``python_c_pass_s``: a fresh interpreter doing nothing (the floor of any command);
- ``valuation_s``: the valuation step alone (models loaded once, as a service keeps them);
- ``html_s``: the report's HTML with its charts drawn (:func:`ipvalue.report.render_html`);
- ``pdf_chromium_s`` and ``pdf_weasyprint_s``: that HTML printed by :func:`ipvalue.report.render_pdf`
  with each engine (``IPVALUE_PDF_ENGINE``), side by side; Chromium's figure includes starting
  and stopping its processes, as every print does; ``pdf_chromium_blank_s``: Chromium printing a
  one-line page (its fixed cost: process start, profile, one page); tables laid out with the column
  widths the renderer computes (``table-layout: fixed``); ``*_kb`` and ``*_pages`` their files;
- ``pdf_auto_layout_s``: the same HTML printed by WeasyPrint with the table CSS the report had
  before (``table-layout: auto``, ``border-collapse: collapse``, ``overflow-wrap: anywhere``):
  WeasyPrint measures every cell of every table, then resolves the collapsed borders;
- ``cli_value_s``: ``ipvalue value`` on the same application in a fresh process, end to end
  (imports, model loading, valuation, audit record, HTML, JSON and PDF), the median of
  ``--cli-repeat`` runs; with ``--before CHECKOUT``, ``cli_value_before_s``: that checkout's own
  ``.venv/bin/ipvalue value`` on the same application, run alternately with this one's;
- ``cli_value_no_pdf_s``: the same command in a fresh process with the PDF left out (the
  report writer told the machine prints none), everything else as in ``cli_value_s``: what the
  command costs beside its PDF engine. ``cli_value_s`` minus it is the PDF's share (import and
  print).

Timings on the shared 2-core machine move with its load: compare each figure with the
baselines of the same run, not with another run's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from benchmarks.valuation import demo_folder

#: The report's table CSS before the fixed layout (the baseline the PDF time is compared with).
FIXED, AUTO = "table { table-layout: fixed; width: 100%; border-collapse: separate; border-spacing: 0;", "table { table-layout: auto; width: 100%; border-collapse: collapse;"
NO_WRAP, ANYWHERE = "overflow-wrap: normal; word-break: normal;", "overflow-wrap: anywhere;"


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def pages(pdf: bytes, folder: Path) -> int | None:
    """The page count of a PDF (poppler's ``pdfinfo``), or None where poppler-utils is missing."""
    path = folder / "count.pdf"
    path.write_bytes(pdf)
    try:
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default=None, help="a demo output folder with demo_application.yaml (default: run the demo into a temp folder)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end `ipvalue value` run")
    parser.add_argument("--cli-repeat", type=int, default=1, help="runs of `ipvalue value` per version (median reported)")
    parser.add_argument("--before", default=None, help="an older checkout with its own .venv: its `ipvalue value` is timed alternately with this one's")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="ipvalue-bench-report-"))
    uri = args.tracking_uri or f"sqlite:///{tmp / 'mlflow.db'}"
    application = demo_folder(Path(sys.executable).parent, Path(args.folder) if args.folder else tmp / "demo", uri)

    python_s, _ = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeat)

    import pandas as pd

    from ipvalue.lending import LoanApplication, load_application_models, value_application
    from ipvalue.report import render_html, render_pdf

    app = LoanApplication.load(application)
    models = load_application_models(app, tracking_uri=uri)
    no_others = pd.DataFrame(columns=["application_id", "borrower", "requested_amount_rmb", "decision", "term_years", "valuation_date"])
    value_application(app, models=models, user="bench", applications=no_others)  # warm
    valuation_s, result = timed(lambda: value_application(app, models=models, user="bench", applications=no_others), args.repeat)
    render_html(result.report)  # warm: matplotlib and its font cache, the template
    html_s, html = timed(lambda: render_html(result.report), args.repeat)
    assert FIXED in html and NO_WRAP in html, "the report's table CSS changed: update the benchmark's baseline"

    def printed(engine: str, page: str):
        os.environ["IPVALUE_PDF_ENGINE"] = engine
        try:
            render_pdf("<p>warm</p>")  # warm: WeasyPrint's import and fonts; Chromium's files in the page cache
            return timed(lambda: render_pdf(page), args.repeat)
        finally:
            os.environ.pop("IPVALUE_PDF_ENGINE")

    chromium_s, chromium_pdf = printed("chromium", html)
    blank_s, _ = printed("chromium", "<p>报告</p>")
    weasyprint_s, weasyprint_pdf = printed("weasyprint", html)
    pdf_auto_s, pdf_auto = printed("weasyprint", html.replace(FIXED, AUTO).replace(NO_WRAP, ANYWHERE))
    figures = {"patents": int(len(app.patents)), "python_c_pass_s": round(python_s, 3), "valuation_s": round(valuation_s, 2),
               "html_s": round(html_s, 2), "pdf_chromium_s": round(chromium_s, 2), "pdf_weasyprint_s": round(weasyprint_s, 2),
               "pdf_chromium_blank_s": round(blank_s, 2), "pdf_auto_layout_s": round(pdf_auto_s, 2),
               "pdf_chromium_kb": round(len(chromium_pdf) / 1024), "pdf_weasyprint_kb": round(len(weasyprint_pdf) / 1024),
               "pdf_chromium_pages": pages(chromium_pdf, tmp), "pdf_weasyprint_pages": pages(weasyprint_pdf, tmp), "pdf_auto_layout_kb": round(len(pdf_auto) / 1024),
               "repeat": args.repeat}
    if not args.no_cli:
        from ipvalue.audit import add_user

        commands = {"cli_value_s": Path(sys.executable).parent / "ipvalue"}
        if args.before:
            commands["cli_value_before_s"] = Path(args.before).resolve() / ".venv" / "bin" / "ipvalue"
        # each version its own audit store (their schemas may differ) and an officer's token for it
        stores = {name: tmp / f"audit-{name}.db" for name in commands}
        tokens = {name: add_user("bench-officer", "officer", stores[name]) for name in commands}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.cli_repeat):  # the versions alternate, so the machine's load falls on both alike
            for name, command in commands.items():
                store = stores[name]
                started = time.perf_counter()
                run = subprocess.run([str(command), "value", str(application), "--out", str(tmp / f"reports-{name}"), "--audit-db", str(store),
                                      "--tracking-uri", uri], capture_output=True, text=True, env={**os.environ, "IPVALUE_TOKEN": tokens[name]})
                times[name].append(time.perf_counter() - started)
                if run.returncode not in (0, 1):
                    raise SystemExit(f"{command} value exited {run.returncode}: {run.stderr.strip()[-500:]}")
        figures.update({name: round(statistics.median(values), 2) for name, values in times.items()})
        figures.update({name.replace("_s", "_runs_s"): [round(v, 2) for v in values] for name, values in times.items()})
        argv = ["ipvalue", "value", str(application), "--out", str(tmp / "reports-no-pdf"), "--audit-db", str(stores["cli_value_s"]), "--tracking-uri", uri]
        no_pdf = ("import sys\nimport ipvalue.report.render as render\nrender.prints_pdf = lambda pdf, what: False\n"
                  f"sys.argv = {argv!r}\nfrom ipvalue.cli import run\nrun()")
        started = time.perf_counter()  # no PDF: nothing prints it, and no Chromium is started for it
        run = subprocess.run([sys.executable, "-P", "-c", no_pdf], capture_output=True, text=True,
                             env={**os.environ, "IPVALUE_TOKEN": tokens["cli_value_s"], "IPVALUE_PDF_ENGINE": "weasyprint"})
        figures["cli_value_no_pdf_s"] = round(time.perf_counter() - started, 2)
        if run.returncode not in (0, 1) or "pdf:" in run.stdout:
            raise SystemExit(f"ipvalue value without the PDF exited {run.returncode}: {(run.stderr or run.stdout).strip()[-500:]}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
