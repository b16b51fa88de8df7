"""Warm latency of the valuation service and its page, beside baselines measured in the same run, on
the demo application.

    .venv/bin/python -m benchmarks.service                                  # builds the demo first (minutes)
    .venv/bin/python -m benchmarks.service --demo demo-output --tracking-uri sqlite:///mlflow/mlflow.db
    .venv/bin/python -m benchmarks.service --workers 1 --requests 50

Uses the demo (``ipvalue demo``: the synthetic book, the value and renewal models registered in an
MLflow store, the SYNTHETIC loan application; built in a temporary folder unless ``--demo`` names
one), then measures:

1. baselines: ``python -c pass`` (a process start), and the valuation step alone in this process
   (``value_application`` with the models loaded once: no HTTP, no audit record, no report);
2. the CLI: ``ipvalue value demo_application.yaml`` in a fresh process, wall time (imports, model
   loading, valuation, report, audit record);
3. the service: ``ipvalue serve`` on a free loopback port with the application's models and an
   officer's token in a fresh audit store; the demo export and comparables uploaded once; a few
   warm-up valuations; then --requests sequential ``POST /v1/valuations`` (warm latency p50 / p95:
   validation, valuation, audit record; the report is rendered after the response, off the
   request path) and 4 concurrent clients x --per-client requests. The sequential requests wait
   for each report (untimed), as an officer's next valuation would;
4. the page, signed in by a session: the officer's queue (``GET /ui``), the decision page on its
   first view (its charts drawn) and warm (p50 / p95 of --requests views).

Target: the service's warm valuation p95 < 0.5 s, the report rendered off the request path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def build_demo(folder: Path, demo: str | None, uri: str | None) -> tuple[Path, str]:
    """The demo's application (``ipvalue demo`` is run into ``folder/demo`` unless ``demo`` names an output folder)."""
    if demo:
        return Path(demo).resolve() / "demo_application.yaml", uri or "sqlite:///mlflow/mlflow.db"
    from ipvalue.demo import run_demo

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    run_demo(folder / "demo", tracking_uri=uri)
    return folder / "demo" / "demo_application.yaml", uri


def baseline_seconds(application: Path, uri: str, repeat: int) -> dict:
    """``python -c pass`` and the valuation step alone (models loaded once, in this process)."""
    from ipvalue.lending import LoanApplication
    from ipvalue.lending.pipeline import load_application_models, value_application

    starts = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        starts.append(time.perf_counter() - start)
    app = LoanApplication.load(application, officer="bench-officer")
    models = load_application_models(app, tracking_uri=uri)
    value_application(app, models=models)  # warm
    steps = []
    for _ in range(repeat):
        start = time.perf_counter()
        value_application(app, models=models)
        steps.append(time.perf_counter() - start)
    return {"python_c_pass_s": round(float(np.median(starts)), 3), "valuation_step_p50_s": round(float(np.median(steps)), 3),
            "valuation_step_p95_s": round(float(np.quantile(steps, 0.95)), 3)}


def cli_seconds(application: Path, uri: str, folder: Path) -> float:
    from ipvalue.audit import add_user

    token = add_user("bench-cli", "officer", folder / "cli-audit.db")  # the CLI authenticates its user by token
    command = [sys.executable, "-c", "import sys; from ipvalue.cli import main; sys.exit(main(sys.argv[1:]))", "value", str(application),
               "--out", str(folder / "cli-reports"), "--audit-db", str(folder / "cli-audit.db"), "--tracking-uri", uri]
    start = time.perf_counter()
    subprocess.run(command, check=False, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT), "IPVALUE_TOKEN": token})
    return time.perf_counter() - start


def start_server(folder: Path, uri: str, models: dict, workers: int):
    import socket

    import requests

    from ipvalue.audit import add_user

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = folder / "service-audit.db"
    token = add_user("bench-officer", "officer", db)
    command = [sys.executable, "-c", "import sys; from ipvalue.cli import main; sys.exit(main(sys.argv[1:]))", "serve", "--port", str(port),
               "--workers", str(workers), "--audit-db", str(db), "--state-dir", str(folder / "state"), "--tracking-uri", uri,
               *[a for m in models.values() for a in ("--model", m)]]
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url, token
        except requests.ConnectionError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError((folder / "server.log").read_text()[-3000:])


def main() -> None:
    import requests
    import yaml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--demo", default=None, help="a demo output folder (default: run the demo into a temporary folder)")
    parser.add_argument("--tracking-uri", default=None, help="the demo's MLflow tracking URI (with --demo)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ipvalue-bench-service-"))
    application, uri = build_demo(folder, args.demo, args.tracking_uri)
    baseline = baseline_seconds(application, uri, repeat=min(args.requests, 20))
    cli = cli_seconds(application, uri, folder)
    raw = yaml.safe_load(application.read_text(encoding="utf-8"))
    process, url, token = start_server(folder, uri, raw["models"], args.workers)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with open(application.parent / raw["patents"]["file"], "rb") as f:
            upload = requests.post(url + "/v1/uploads", files={"file": ("demo_patents.csv", f)}, headers=headers, timeout=120).json()
        body = {**raw, "patents": {"file": upload["upload_id"], "ids": raw["patents"]["ids"]}}
        if raw.get("comparables"):  # the bank's comparables: an upload too
            with open(application.parent / raw["comparables"], "rb") as f:
                body["comparables"] = requests.post(url + "/v1/uploads", files={"file": (raw["comparables"], f)}, headers=headers, timeout=120).json()["upload_id"]

        def one(_=None, settle: bool = False) -> float:
            start = time.perf_counter()
            r = requests.post(url + "/v1/valuations", json=body, headers=headers, timeout=120)
            if r.status_code != 201:
                raise RuntimeError(f"{r.status_code}: {r.text[:2000]}")
            elapsed = time.perf_counter() - start
            while settle and requests.get(url + r.json()["links"]["report"], headers=headers, timeout=120).status_code == 202:
                time.sleep(0.05)  # an officer's next request comes after the report is there
            return elapsed

        for _ in range(3):
            one(settle=True)
        sequential = np.array([one(settle=True) for _ in range(args.requests)])
        time.sleep(3)
        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            loaded = np.array(list(pool.map(one, range(4 * args.per_client))))
        wall = time.perf_counter() - start
        page = page_seconds(url, token, one_id=requests.post(url + "/v1/valuations", json=body, headers=headers, timeout=120).json()["valuation_id"],
                            repeat=args.requests)
    finally:
        process.terminate()
        process.wait(timeout=30)
    result = {
        "patents": len(raw["patents"]["ids"]), "workers": args.workers, **baseline, "cli_s": round(cli, 2), **page,
        "warm_p50_s": round(float(np.median(sequential)), 3), "warm_p95_s": round(float(np.quantile(sequential, 0.95)), 3),
        "clients4_throughput_per_s": round(len(loaded) / wall, 2), "clients4_p50_s": round(float(np.median(loaded)), 3),
        "clients4_p95_s": round(float(np.quantile(loaded, 0.95)), 3),
    }
    print(f"demo application ({result['patents']} patents), service with {args.workers} worker(s):")
    print(f"  baseline: python -c pass                 {result['python_c_pass_s']:.3f} s")
    print(f"  baseline: the valuation step alone       p50 {result['valuation_step_p50_s']:.3f} s   p95 {result['valuation_step_p95_s']:.3f} s   (in process, models loaded)")
    print(f"  CLI 'ipvalue value' (fresh process)      {result['cli_s']:.2f} s")
    print(f"  service warm, 1 client, {args.requests} requests   p50 {result['warm_p50_s']:.3f} s   p95 {result['warm_p95_s']:.3f} s   (target p95 < 0.5 s)")
    print(f"  service, 4 clients × {args.per_client}            {result['clients4_throughput_per_s']:.2f} valuations/s   "
          f"p50 {result['clients4_p50_s']:.3f} s   p95 {result['clients4_p95_s']:.3f} s")
    print(f"  page: officer's queue GET /ui            p50 {result['page_queue_p50_s']:.3f} s")
    print(f"  page: decision, first view (charts drawn) {result['page_decision_first_s']:.3f} s;  warm p50 {result['page_decision_p50_s']:.3f} s   "
          f"p95 {result['page_decision_p95_s']:.3f} s")
    print(json.dumps(result))


def page_seconds(url: str, token: str, *, one_id: str, repeat: int) -> dict:
    """The page as an officer uses it, signed in by a session: the queue, a decision page first and warm."""
    import requests

    browser = requests.Session()
    browser.headers["Origin"] = url
    browser.post(url + "/ui/login", data={"token": token}, timeout=60).raise_for_status()

    def timed(path):
        start = time.perf_counter()
        r = browser.get(url + path, timeout=120)
        r.raise_for_status()
        return time.perf_counter() - start

    first = timed(f"/ui/valuations/{one_id}")
    decision = [timed(f"/ui/valuations/{one_id}") for _ in range(repeat)]
    queue = [timed("/ui") for _ in range(repeat)]
    return {"page_queue_p50_s": round(float(np.median(queue)), 3), "page_decision_first_s": round(first, 3),
            "page_decision_p50_s": round(float(np.median(decision)), 3), "page_decision_p95_s": round(float(np.quantile(decision, 0.95)), 3)}


if __name__ == "__main__":
    main()
