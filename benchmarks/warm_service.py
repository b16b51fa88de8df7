"""The service's warm valuation in process, this checkout beside another, interleaved in one run.

    .venv/bin/python -m benchmarks.warm_service --demo demo-output --tracking-uri sqlite:///mlflow/mlflow.db
    .venv/bin/python -m benchmarks.warm_service --demo demo-output --tracking-uri sqlite:///mlflow/mlflow.db --before ../ipvalue-bf4bd74

What ``POST /v1/valuations`` runs, without HTTP: :meth:`ipvalue.service.core.ValuationService.value`
(the application checked against the bank's configuration, valued with the served models, recorded
in a fresh audit store) on the demo application, its patents and comparables uploaded once, models
loaded once; after 3 warm-up requests (and, where the version has it, the serving process's
freeze of what it loaded: ``ValuationService.freeze_long_lived``), p50 and p95 of ``--requests``
requests. The report is not rendered (the service renders it after the response). Each checkout runs in its own process with
its own ``.venv``; with ``--before`` the two alternate ``--rounds`` times, so both see the same
load. ``python -c pass`` is timed in the same run as the floor of any process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Run by each checkout's own interpreter (argv: demo folder, tracking URI, requests).
MEASURE = r'''
import json, logging, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, yaml
warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
from ipvalue.audit import add_user, authenticate
from ipvalue.service.core import ServiceSettings, ValuationService

def main():
    demo, uri, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    tmp = Path(tempfile.mkdtemp(prefix="ipvalue-bench-warm-"))
    db = tmp / "audit.db"
    who = authenticate(add_user("bench-officer", "officer", db), db)
    raw = yaml.safe_load((demo / "demo_application.yaml").read_text(encoding="utf-8"))
    service = ValuationService(ServiceSettings(audit_db=db, state_dir=tmp / "state", models=tuple(raw["models"].values()), tracking_uri=uri))
    service.load_models()
    body = {**raw, "patents": {"file": service.upload(raw["patents"]["file"], (demo / raw["patents"]["file"]).read_bytes(), who)["upload_id"],
                               "ids": raw["patents"]["ids"]}}
    if raw.get("comparables"):
        body["comparables"] = service.upload(raw["comparables"], (demo / raw["comparables"]).read_bytes(), who)["upload_id"]
    for _ in range(3):
        service.value(dict(body), who)
    if hasattr(service, "freeze_long_lived"):  # as `ipvalue serve` does once started (a version that has it)
        service.freeze_long_lived()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        out = service.value(dict(body), who)
        times.append(time.perf_counter() - start)
    print(json.dumps({"p50_s": round(float(np.median(times)), 3), "p95_s": round(float(np.quantile(times, 0.95)), 3),
                      "loan_cap_rmb": round(float(out["summary"]["loan_cap_rmb"]), 2), "decision": out["summary"]["decision"]}))

if __name__ == "__main__":
    main()
'''


def measure(checkout: Path, demo: Path, uri: str, requests: int) -> dict:
    python = checkout / ".venv" / "bin" / "python"
    run = subprocess.run([str(python), "-c", MEASURE, str(demo), uri, str(requests)], capture_output=True, text=True, cwd=checkout,
                         env={**os.environ, "PYTHONPATH": str(checkout)})
    if run.returncode != 0:
        raise SystemExit(f"{checkout}: {run.stderr.strip()[-1500:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", required=True, help="an `ipvalue demo` output folder (demo_application.yaml and its files)")
    parser.add_argument("--tracking-uri", required=True, help="the demo's MLflow tracking URI (absolute sqlite path)")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default=None, help="another checkout with its own .venv, measured alternately in the same run")
    args = parser.parse_args()
    demo = Path(args.demo).resolve()
    checkouts = {"this checkout": ROOT, **({"before": Path(args.before).resolve()} if args.before else {})}
    starts = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        starts.append(time.perf_counter() - start)
    rounds = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        for name, checkout in checkouts.items():
            rounds[name].append(measure(checkout, demo, args.tracking_uri, args.requests))
    caps = {r["loan_cap_rmb"] for runs in rounds.values() for r in runs}
    print(f"python -c pass: {statistics.median(starts):.3f} s; warm service valuation, {args.requests} requests per round, {args.rounds} round(s):")
    for name, runs in rounds.items():
        print(f"  {name:14s} p50 " + " / ".join(f"{r['p50_s']:.3f}" for r in runs) + " s   p95 " + " / ".join(f"{r['p95_s']:.3f}" for r in runs) + " s")
    print(f"  the same loan cap in every run: {len(caps) == 1} ({', '.join(f'{c:,.2f}' for c in sorted(caps))} RMB)")
    print(json.dumps({"python_c_pass_s": round(statistics.median(starts), 3), **rounds}, ensure_ascii=False))


if __name__ == "__main__":
    main()
