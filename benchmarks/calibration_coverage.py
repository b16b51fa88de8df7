"""Coverage of ``ipvalue calibrate``'s 90 % intervals on synthetic pilot ledgers with known truth.

For each seed a ledger is generated (``PilotTruth()`` defaults), written, loaded and calibrated;
each coefficient's interval is checked against the generator's truth. Prints, per coefficient, the
share of seeds whose interval covers the truth with its own 90 % (Jeffreys) interval, the mean
estimate beside the truth, and the seconds per calibration.

    .venv/bin/python benchmarks/calibration_coverage.py --seeds 200
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd
from scipy.stats import beta

from ipvalue.calibration import PilotTruth, load_ledger, make_pilot_ledger, write_ledger
from ipvalue.calibration.estimate import estimate_coefficients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()
    truth_params = PilotTruth()
    truth = truth_params.truth()
    rows, seconds = [], []
    for seed in range(args.first, args.first + args.seeds):
        with tempfile.TemporaryDirectory() as folder:
            write_ledger(make_pilot_ledger(truth_params, seed=seed), folder)
            ledger = load_ledger(folder, as_of=truth_params.as_of)
        start = time.perf_counter()
        table, _ = estimate_coefficients(ledger, seed=seed)
        seconds.append(time.perf_counter() - start)
        table = table[table["key"].isin(truth)].assign(seed=seed)
        table["truth"] = table["key"].map(truth)
        table["covered"] = (table["low"] <= table["truth"]) & (table["truth"] <= table["high"])
        rows.append(table)
    all_rows = pd.concat(rows)
    summary = all_rows.groupby("key").agg(seeds=("covered", "size"), covered=("covered", "sum"), mean_estimate=("estimate", "mean"), truth=("truth", "first"))
    summary["coverage"] = summary["covered"] / summary["seeds"]
    summary["coverage_low"] = beta.ppf(0.05, summary["covered"] + 0.5, summary["seeds"] - summary["covered"] + 0.5)
    summary["coverage_high"] = beta.ppf(0.95, summary["covered"] + 0.5, summary["seeds"] - summary["covered"] + 0.5)
    pd.set_option("display.width", 200)
    print(summary.round(4).to_string())
    print(f"all intervals: {all_rows['covered'].mean():.3f} of {len(all_rows)} (nominal 0.90); "
          f"{sum(seconds) / len(seconds):.2f} s per calibration (estimates only, {len(seconds)} seeds)")


if __name__ == "__main__":
    main()
