"""The out-of-time back-test of ``ipvalue calibrate`` over generated pilot ledgers: before (the
shipped sets) against after (the coefficients calibrated on the earlier loans).

For each seed a SYNTHETIC ledger (``PilotTruth()`` defaults) is written, read back and back-tested
with the shipped settings; prints per seed and on average the bias and median absolute log error
against deal prices and the share of realised net recoveries above the P10, before and after, and
the gates. Figures, not assertions (tests/test_calibration.py asserts the direction on seed 0).

    .venv/bin/python -m benchmarks.calibration_backtest --seeds 10
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd

from ipvalue.calibration import PilotTruth, load_ledger, make_pilot_ledger, write_ledger
from ipvalue.calibration.backtest import run_backtest
from ipvalue.calibration.estimate import SetsInUse, Settings

METRICS = {"bias vs deal prices": "bias", "mdale vs deal prices": "mdale", "P10 beaten by realised net recoveries": "p10_coverage"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()
    truth, sets, settings = PilotTruth(), SetsInUse.load(), Settings.load()
    rows = []
    for seed in range(args.first, args.first + args.seeds):
        with tempfile.TemporaryDirectory() as folder:
            write_ledger(make_pilot_ledger(truth, seed=seed), folder)
            ledger = load_ledger(folder, as_of=truth.as_of)
        start = time.perf_counter()
        bt = run_backtest(ledger, sets, settings, seed=seed)
        summary = bt.summary.set_index("metric")
        row = {"seed": seed, "seconds": time.perf_counter() - start, "split": str(bt.split_date.date()),
               "test_deals": int(summary.at["bias vs deal prices", "n"]), "test_disposals": int(summary.at["P10 beaten by realised net recoveries", "n"])}
        for metric, short in METRICS.items():
            row[f"{short}_before"], row[f"{short}_after"] = summary.at[metric, "before"], summary.at[metric, "after"]
        row["gates_passed"] = all(bt.gates.values())
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, header=seed == args.first, float_format=lambda v: f"{v:.3f}"), flush=True)
    table = pd.DataFrame(rows)
    print(f"\nover {len(table)} seeds (SYNTHETIC ledgers of {truth.n_loans} loans): mean | abs bias vs deals before {table['bias_before'].abs().mean():.3f} "
          f"after {table['bias_after'].abs().mean():.3f}; mdale before {table['mdale_before'].mean():.3f} after {table['mdale_after'].mean():.3f}; "
          f"P10 beaten before {table['p10_coverage_before'].mean():.1%} after {table['p10_coverage_after'].mean():.1%} (target 90 %); "
          f"|bias| lower after in {int((table['bias_after'].abs() < table['bias_before'].abs()).sum())} of {len(table)}, "
          f"coverage higher after in {int((table['p10_coverage_after'] > table['p10_coverage_before']).sum())} of {len(table)}; "
          f"gates passed in {int(table['gates_passed'].sum())} of {len(table)}; {table['seconds'].mean():.1f} s per back-test")


if __name__ == "__main__":
    main()
