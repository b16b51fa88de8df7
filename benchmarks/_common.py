"""Helpers for the benchmark scripts: cached synthetic inputs, peak memory of a fresh process."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / "ipvalue-bench"


def demo_parquet(n: int, seed: int = 0) -> Path:
    """The synthetic portfolio of ``n`` patents as Parquet (generated once, then cached)."""
    from ipvalue.synthetic import make_demo_portfolio

    path = CACHE / f"demo-{n}-{seed}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        # microsecond timestamps: Spark cannot read Parquet's nanosecond ones
        make_demo_portfolio(n, seed).patents.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_isolated(module: str, *args: str) -> dict:
    """Run ``python -m module args`` in a fresh process (so peak memory is its own); it prints JSON."""
    out = subprocess.run([sys.executable, "-m", module, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
