"""Time of one loan-application valuation, cold and warm, beside the CLI's end-to-end time.

    .venv/bin/python -m benchmarks.valuation                  # runs `ipvalue demo` into a temp folder first
    .venv/bin/python -m benchmarks.valuation --folder demo-output --tracking-uri sqlite:///mlflow/mlflow.db

Warm = the models loaded once (as a service keeps them) and the application read again: what
`value_application` itself costs (one validation, one feature build per model, one Monte Carlo).
Prints the model-load time, the first (cold) and the median of --repeat warm valuations, and the
wall time of `ipvalue value` on the same application in a fresh process (imports and model
loading included). Timings on the 2-core reference machine vary by about ±10 %.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", default=None, help="a demo output folder with demo_application.yaml (default: run the demo into a temp folder)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    bin_dir = Path(sys.executable).parent
    tmp = Path(tempfile.mkdtemp(prefix="ipvalue-bench-valuation-"))
    folder = Path(args.folder) if args.folder else tmp / "demo"
    uri = args.tracking_uri or f"sqlite:///{tmp / 'mlflow.db'}"
    if not (folder / "demo_application.yaml").exists():
        subprocess.run([str(bin_dir / "ipvalue"), "demo", "--out", str(folder), "--tracking-uri", uri], check=True, capture_output=True)
    application = folder / "demo_application.yaml"

    from ipvalue.lending import LoanApplication, load_application_models, value_application

    started = time.perf_counter()
    app = LoanApplication.load(application)
    models = load_application_models(app, tracking_uri=uri)
    load_s = time.perf_counter() - started
    times = []
    for _ in range(args.repeat + 1):
        started = time.perf_counter()
        value_application(LoanApplication.load(application), models=models, user="bench")
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    subprocess.run([str(bin_dir / "ipvalue"), "value", str(application), "--out", str(tmp / "reports"), "--audit-db", str(tmp / "audit.db"),
                    "--tracking-uri", uri], check=False, capture_output=True)
    cli_s = time.perf_counter() - started
    print(json.dumps({"patents": int(len(app.patents)), "model_load_s": round(load_s, 2), "cold_valuation_s": round(times[0], 2),
                      "warm_valuation_median_s": round(statistics.median(times[1:]), 2), "warm_runs": args.repeat,
                      "cli_end_to_end_s": round(cli_s, 2)}))


if __name__ == "__main__":
    main()
