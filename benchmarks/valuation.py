"""One loan application, step by step, beside baselines measured in the same run.

    .venv/bin/python -m benchmarks.valuation                          # runs `ipvalue demo` into a temp folder first
    .venv/bin/python -m benchmarks.valuation --folder demo-output --tracking-uri sqlite:///mlflow/mlflow.db
    .venv/bin/python -m benchmarks.valuation --before ../ipvalue-1324e16   # also an older checkout (its own .venv), same figures

Prints, for the demo application (its patents, statements, comparables, R&D cost and the registered
renewal and value models):

- ``python -c pass`` and ``ipvalue --help`` in fresh processes (the floor of any command);
- the registry load of the application's models;
- the valuation pipeline cold (the first, imports done) and warm (median of ``--repeat``, models
  loaded once, as the service keeps them);
- rendering the report: HTML (with its charts) and PDF;
- ``ipvalue value`` end to end in a fresh process (imports, model load, valuation, record, HTML,
  JSON, PDF).

With ``--before DIR`` the same CLI figures for another checkout (its own ``DIR/.venv``, which runs
its own ``ipvalue demo`` for its own application) in the same run, so the two are comparable on a
busy machine. Wall seconds on the 2-core machine vary; the medians and the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def wall(command: list[str], repeat: int = 3, **kw) -> float:
    """Median wall seconds of ``command`` in a fresh process."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=False, capture_output=True, **kw)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def demo_folder(bin_dir: Path, folder: Path, uri: str) -> Path:
    """The demo's output folder (``ipvalue demo`` is run into it when it holds no application)."""
    if not (folder / "demo_application.yaml").exists():
        subprocess.run([str(bin_dir / "ipvalue"), "demo", "--out", str(folder), "--tracking-uri", uri], check=True, capture_output=True)
    return folder / "demo_application.yaml"


def cli_figures(bin_dir: Path, application: Path, uri: str, work: Path, repeat: int) -> dict:
    """``python -c pass``, ``ipvalue --help`` and ``ipvalue value`` end to end with ``bin_dir``'s
    ipvalue, as an officer whose token is in the audit store (a checkout without token identity
    ignores it); a ``value`` that fails stops the benchmark rather than timing an error."""
    import os

    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    token = subprocess.run([str(bin_dir / "ipvalue"), "users", "add", "bench-officer", "--role", "officer", "--audit-db", str(work / "audit.db")],
                           capture_output=True, text=True)
    if token.returncode == 0 and token.stdout.strip():
        env["IPVALUE_TOKEN"] = token.stdout.strip().splitlines()[-1].split()[-1]
    command = [str(bin_dir / "ipvalue"), "value", str(application), "--out", str(work / "reports"), "--audit-db", str(work / "audit.db"), "--tracking-uri", uri]
    first = subprocess.run(command, capture_output=True, text=True, cwd=application.parent, env=env)
    if first.returncode not in (0, 1):  # 0 eligible, 1 not eligible / review required: both a valuation
        raise SystemExit(f"ipvalue value exited {first.returncode}: {first.stderr.strip()[-500:]}")
    cli = wall(command, repeat=repeat, cwd=application.parent, env=env)
    return {"python_c_pass_s": round(wall([str(bin_dir / "python"), "-c", "pass"], repeat=5), 3),
            "ipvalue_help_s": round(wall([str(bin_dir / "ipvalue"), "--help"], repeat=5), 3), "ipvalue_value_end_to_end_s": round(cli, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default=None, help="a demo output folder with demo_application.yaml (default: run the demo into a temp folder)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", default=None, help="another checkout with its own .venv, measured the same way in the same run")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    bin_dir = Path(sys.executable).parent
    tmp = Path(tempfile.mkdtemp(prefix="ipvalue-bench-valuation-"))
    uri = args.tracking_uri or f"sqlite:///{tmp / 'mlflow.db'}"
    application = demo_folder(bin_dir, Path(args.folder) if args.folder else tmp / "demo", uri)

    import pandas as pd

    from ipvalue.lending import LoanApplication, load_application_models, value_application
    from ipvalue.report import render_html, render_pdf

    none = pd.DataFrame(columns=["application_id", "borrower", "requested_amount_rmb", "decision", "term_years", "valuation_date"])
    started = time.perf_counter()
    app = LoanApplication.load(application)
    models = load_application_models(app, tracking_uri=uri)
    load_s = time.perf_counter() - started
    times = []
    for _ in range(args.repeat + 1):
        started = time.perf_counter()
        result = value_application(LoanApplication.load(application), models=models, user="bench", applications=none)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    html = render_html(result.report)
    html_s = time.perf_counter() - started
    started = time.perf_counter()
    render_pdf(html)
    pdf_s = time.perf_counter() - started
    after = {"patents": int(len(app.patents)), "model_load_s": round(load_s, 2), "cold_valuation_s": round(times[0], 2),
             "warm_valuation_median_s": round(statistics.median(times[1:]), 2), "warm_runs": args.repeat,
             "report_html_s": round(html_s, 2), "report_pdf_s": round(pdf_s, 2), **cli_figures(bin_dir, application, uri, tmp / "after", 3)}
    print(json.dumps({"this checkout": after}, ensure_ascii=False))
    if args.before:
        other = Path(args.before).resolve()
        other_bin = other / ".venv" / "bin"
        other_uri = f"sqlite:///{tmp / 'before-mlflow.db'}"
        other_app = demo_folder(other_bin, tmp / "before-demo", other_uri)
        print(json.dumps({str(other): cli_figures(other_bin, other_app, other_uri, tmp / "before", 3)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
