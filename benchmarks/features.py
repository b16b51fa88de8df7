"""Speed and peak memory of building the core-v1 feature set on synthetic patents.

    .venv/bin/python -m benchmarks.features            # 100k and 1M patents
    .venv/bin/python -m benchmarks.features --sizes 20000

Each size runs in a fresh process: the peak memory printed is that process's maximum resident
set (input Parquet + features). ``fit_transform`` is the training path (features built once,
cohort references fitted); ``transform`` is the scoring path on the fitted builder.
Target: 1M patents in under 30 s and under 4 GB on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

from benchmarks._common import demo_parquet, peak_rss_mb, run_isolated


def measure(n: int) -> dict:
    import pandas as pd

    from ipvalue.features import PatentFeatureBuilder
    from ipvalue.frame import validate_patent_frame

    raw = pd.read_parquet(demo_parquet(n))
    t0 = time.perf_counter()
    patents = validate_patent_frame(raw).valid
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builder = PatentFeatureBuilder(valuation_date="2026-06-30")
        matrix = builder.fit_transform(patents)  # the training path: one build, references fitted
        t2 = time.perf_counter()
        matrix = builder.transform(patents)  # the scoring path on a fitted builder
    t3 = time.perf_counter()
    return {
        "patents": n, "features": matrix.shape[1], "validate_s": round(t1 - t0, 2), "fit_transform_s": round(t2 - t1, 2),
        "transform_s": round(t3 - t2, 2), "transform_rows_per_s": round(n / (t3 - t2)), "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    print(f"{'patents':>10} {'validate s':>11} {'fit_transform s':>16} {'transform s':>12} {'transform rows/s':>17} {'peak MB':>8}")
    for n in args.sizes:
        demo_parquet(n)  # generate outside the measured process
        r = run_isolated("benchmarks.features", "--one", str(n))
        print(f"{r['patents']:>10,} {r['validate_s']:>11} {r['fit_transform_s']:>16} {r['transform_s']:>12} {r['transform_rows_per_s']:>17,} {r['peak_rss_mb']:>8,}")


if __name__ == "__main__":
    main()
