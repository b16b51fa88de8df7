"""What the output type costs in ``ipvalue score``: the same book scored to .parquet (the
baseline), .csv (for Excel) and .xlsx, in one run.

    .venv/bin/python -m benchmarks.outputs                 # 20,000 patents, top-3 drivers
    .venv/bin/python -m benchmarks.outputs --sizes 5000 50000

A value model is trained on the synthetic portfolio in a temporary MLflow store (as
``benchmarks.scoring`` does). Each size is scored once per output type with the same options;
"after load" leaves out the model load. The .xlsx is written by openpyxl cell by cell (its
write-only mode keeps memory flat, not time), so it is the slow one: for books beyond what an
analyst opens in Excel, write .parquet or .csv.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

from benchmarks._common import CACHE, demo_parquet
from benchmarks.scoring import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000])
    parser.add_argument("--explain", default="top3")
    args = parser.parse_args()
    from ipvalue.scoring import score_file

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as store:
        uri = train(Path(store))
        for n in args.sizes:
            source = demo_parquet(n)
            baseline = None
            for suffix in (".parquet", ".csv", ".xlsx"):
                out = CACHE / f"scored-{n}{suffix}"
                s = score_file(source, model_uri="models:/bench-value@champion", out=out, tracking_uri=uri, explain=args.explain, progress=False)
                after = s.seconds - s.model_load_seconds
                baseline = baseline or after
                print(f"{n:>9,} patents -> {suffix:<8} {s.seconds:6.1f} s ({after:6.1f} s after the model load, {n / after:8,.0f} rows/s, "
                      f"{after / baseline:4.1f}x the .parquet time), {out.stat().st_size / 1e6:6.1f} MB", flush=True)


if __name__ == "__main__":
    main()
