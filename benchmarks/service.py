"""Warm latency and throughput of the valuation service, beside the CLI, on the demo application.

    .venv/bin/python -m benchmarks.service                 # 2 workers, 30 sequential + 4 clients × 10
    .venv/bin/python -m benchmarks.service --workers 1 --requests 50

Builds the demo (``ipvalue demo``: the synthetic book, the value and renewal models registered in a
temporary MLflow store, the SYNTHETIC 5-patent loan application), then:

1. the CLI: ``ipvalue value demo_application.yaml`` in a fresh process, wall time (imports, model
   loading, valuation, report, audit record);
2. the service: ``ipvalue serve`` on a free loopback port with the application's models; the
   demo export uploaded once (``POST /v1/uploads``); a few warm-up valuations; then --requests
   sequential ``POST /v1/valuations`` (warm latency p50 / p95: validation, valuation, audit record;
   the HTML report is rendered after the response) and 4 concurrent clients × --per-client
   requests (throughput, latency under load). The sequential requests wait for each report to be
   rendered before the next one (untimed), as an officer's next valuation would; the concurrent
   clients do not wait, so their figures include the rendering.

Target (issue 17): p95 < 1 s warm on this 2-core machine.
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


def build_demo(folder: Path) -> tuple[Path, str]:
    from ipvalue.demo import run_demo

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    run_demo(folder / "demo", tracking_uri=uri)
    return folder / "demo" / "demo_application.yaml", uri


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
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ipvalue-bench-service-"))
    application, uri = build_demo(folder)
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
    finally:
        process.terminate()
        process.wait(timeout=30)
    result = {
        "patents": len(raw["patents"]["ids"]), "workers": args.workers, "cli_s": round(cli, 2),
        "warm_p50_s": round(float(np.median(sequential)), 3), "warm_p95_s": round(float(np.quantile(sequential, 0.95)), 3),
        "clients4_throughput_per_s": round(len(loaded) / wall, 2), "clients4_p50_s": round(float(np.median(loaded)), 3),
        "clients4_p95_s": round(float(np.quantile(loaded, 0.95)), 3),
    }
    print(f"demo application ({result['patents']} patents), service with {args.workers} worker(s):")
    print(f"  CLI 'ipvalue value' (fresh process)      {result['cli_s']:.2f} s")
    print(f"  service warm, 1 client, {args.requests} requests   p50 {result['warm_p50_s']:.3f} s   p95 {result['warm_p95_s']:.3f} s   (target p95 < 1 s)")
    print(f"  service, 4 clients × {args.per_client}            {result['clients4_throughput_per_s']:.2f} valuations/s   "
          f"p50 {result['clients4_p50_s']:.3f} s   p95 {result['clients4_p95_s']:.3f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
