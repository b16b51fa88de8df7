"""Speed and peak memory of the income approach's Monte Carlo.

    .venv/bin/python -m benchmarks.income                       # 10,000 patents × 10,000 draws
    .venv/bin/python -m benchmarks.income --patents 2000 --draws 5000

Prints the time to build the DCF inputs (features + scorecard) and, separately, the Monte Carlo
(P5/P50/P95 of every patent, computed in blocks of patents × draws to bound memory), with the
process's peak resident memory. Target: 10k × 10k in under 5 s and under 4 GB.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from benchmarks._common import peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patents", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=10_000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from ipvalue.synthetic import make_demo_portfolio
    from ipvalue.methods.income import IncomeApproachValuer

    patents = make_demo_portfolio(args.patents, seed=1).patents
    valuer = IncomeApproachValuer(valuation_date="2026-06-30").fit(patents)
    t0 = time.perf_counter()
    inputs = valuer.inputs(patents)
    t1 = time.perf_counter()
    q = valuer.simulate(inputs=inputs, n_draws=args.draws, quantiles=np.array([0.05, 0.5, 0.95]))
    t2 = time.perf_counter()
    cells = args.patents * args.draws
    print(f"patents {args.patents:,} × draws {args.draws:,} = {cells:,} valuations")
    print(f"inputs (features + scorecard): {t1 - t0:.2f} s")
    print(f"Monte Carlo P5/P50/P95:        {t2 - t1:.2f} s  ({cells / (t2 - t1) / 1e6:.1f} M valuations/s)")
    print(f"peak memory:                   {peak_rss_mb():,.0f} MB")
    print(f"check: P5 <= P50 <= P95 for all patents: {bool(((q[:, 0] <= q[:, 1]) & (q[:, 1] <= q[:, 2])).all())}")


if __name__ == "__main__":
    main()
