"""Cost of drawing a fee-lapse hazard multiplier per Monte Carlo scenario, beside the fixed life.

    .venv/bin/python -m benchmarks.life                       # 5 × 2,000 and 10,000 × 10,000
    .venv/bin/python -m benchmarks.life --sizes 5x2000 1000x5000

For each size (patents × draws), in one process and on the same inputs (synthetic CN portfolio,
valuation date 2026-06-30, the CN life table's level: no renewal model is needed to time the
curves):

1. the economic-life curves (features, fee events, obsolescence);
2. the fixed-life path as it runs today: the income approach's Monte Carlo
   (``IncomeApproachValuer.simulate``, P5/P50/P95) with the survival table S_t of multiplier 1;
3. the multiplier path's extra work: the weights W_t of each scenario's own multiplier
   exp(sd × z) (``economic-life.yaml``) for every patent, draw and year, from
   :class:`ipvalue.models.life.MultiplierGrid` (exact below the set's cell limit, interpolated
   on its grid above it), read block by block as a Monte Carlo reads them;
4. one small Monte Carlo DCF kernel (end-of-year discounting, a discount-rate shock per
   scenario) run with the fixed weights and with the drawn ones, a like-for-like ratio;
5. for the grid, its error against the exact weights on a sample of 50 patents.

Wall and CPU seconds are printed: the reference machine is shared, and CPU time is the steadier
figure when other jobs run.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from benchmarks._common import peak_rss_mb

YEARS = 30
BLOCK_CELLS = 2_000_000  # patents × draws per block, as the income approach's Monte Carlo


def kernel(flows: np.ndarray, rate: np.ndarray, shocks: np.ndarray, fixed: np.ndarray | None = None, grid=None) -> np.ndarray:
    """Values (n, D): Σ_t flow_t × W_t / (1 + r + shock)^t, in blocks of rows, in place: with the
    ``fixed`` weights (n, T) of one multiplier, or each draw's from ``grid`` (MultiplierGrid)."""
    n, draws = len(flows), len(shocks)
    out = np.empty((n, draws))
    block = max(1, BLOCK_CELLS // draws)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        step = 1.0 / (1.0 + np.maximum(rate[rows, None] + shocks[None, :], 0.0))
        disc = np.ones_like(step)
        total = np.zeros_like(step)
        term = np.empty_like(step)
        weight = None if grid is None else np.empty(step.shape, dtype="float32" if grid.mode == "grid" else "float64")
        for t in range(1, YEARS + 1):
            disc *= step
            if grid is None:
                np.multiply(disc, (flows[rows, t - 1] * fixed[rows, t - 1])[:, None], out=term)
            else:
                np.multiply(grid.weights_at(t, rows, out=weight), disc, out=term)
                term *= flows[rows, t - 1, None]
            total += term
        out[rows] = total
    return out


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def run(n_patents: int, n_draws: int) -> dict:
    import pandas as pd

    from ipvalue.income import IncomeApproachValuer
    from ipvalue.models.life import EconomicLifeAssumptions, economic_life
    from ipvalue.synthetic import make_demo_portfolio

    patents = make_demo_portfolio(n_patents, seed=1).patents
    rng = np.random.default_rng(0)
    flows = (patents["revenue_base_rmb"].fillna(1e7).to_numpy()[:, None] * 0.03 * 1.05 ** np.arange(1, YEARS + 1)[None, :])
    rate = np.full(n_patents, 0.12)
    shocks = 0.02 * rng.standard_normal(n_draws)
    multipliers = EconomicLifeAssumptions.load().hazard_multipliers(rng.standard_normal(n_draws))
    r = {"patents": n_patents, "draws": n_draws}

    life, r["curves_wall"], r["curves_cpu"] = timed(lambda: economic_life(patents, "2026-06-30", years=YEARS))
    survival = pd.DataFrame(life.survival(), index=patents.index, columns=[f"s_{t}" for t in range(1, YEARS + 1)])
    valuer = IncomeApproachValuer(valuation_date="2026-06-30").fit(patents)
    inputs = valuer.inputs(patents, survival=survival)
    _, r["income_wall"], r["income_cpu"] = timed(lambda: valuer.simulate(inputs=inputs, n_draws=n_draws, quantiles=np.array([0.05, 0.5, 0.95])))

    grid, r["grid_wall"], r["grid_cpu"] = timed(lambda: life.grid(multipliers))
    r["mode"] = grid.mode
    block = max(1, BLOCK_CELLS // n_draws)

    def read_all():
        for start in range(0, n_patents, block):
            rows = slice(start, min(n_patents, start + block))
            buffer = np.empty((rows.stop - rows.start, n_draws), dtype="float32" if grid.mode == "grid" else "float64")
            for t in range(1, YEARS + 1):
                grid.weights_at(t, rows, out=buffer)

    _, r["read_wall"], r["read_cpu"] = timed(read_all)
    fixed_w = life.weights()
    fixed, r["kernel_fixed_wall"], r["kernel_fixed_cpu"] = timed(lambda: kernel(flows, rate, shocks, fixed=fixed_w))
    drawn, r["kernel_drawn_wall"], r["kernel_drawn_cpu"] = timed(lambda: kernel(flows, rate, shocks, grid=grid))
    r["p50_fixed"], r["p50_multiplier"] = float(np.median(fixed.sum(axis=0))), float(np.median(drawn.sum(axis=0)))
    if grid.mode == "grid":  # the interpolation's error against the exact weights of each draw, on a sample
        sample = np.sort(rng.choice(n_patents, size=min(50, n_patents), replace=False))
        exact = _exact_sample(life, multipliers, sample)
        approx = grid.weights(rows=sample)
        err = np.abs(approx - exact)
        r["grid_w_max"], r["grid_w_p999"] = float(err.max()), float(np.quantile(err, 0.999))
        discount = 1.12 ** -np.arange(1, YEARS + 1)
        v_exact = np.einsum("nt,ndt->nd", flows[sample] * discount, exact)
        v_grid = np.einsum("nt,ndt->nd", flows[sample] * discount, approx)
        scale = (flows[sample] * discount * fixed_w[sample]).sum(axis=1)  # each patent's value at multiplier 1
        live = scale > 0
        r["grid_value_max"] = float((np.abs(v_grid - v_exact)[live] / scale[live, None]).max()) if live.any() else 0.0
    return r


def _exact_sample(life, multipliers, sample):
    from ipvalue.models.life import LifeCurves

    sub = LifeCurves(index=life.index[sample], patent_id=life.patent_id[sample], valuation_date=life.valuation_date, years=life.years,
                     events=life.events.take(sample), legal_life=life.legal_life[sample], fees_paid_until=life.fees_paid_until.iloc[sample],
                     obsolescence_rate=life.obsolescence_rate[sample], obsolescence_source=life.obsolescence_source[sample], assumptions=life.assumptions)
    return sub.weights(multipliers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["5x2000", "10000x10000"], help="patents x draws")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for size in args.sizes:
        n, d = (int(v) for v in size.lower().split("x"))
        r = run(n, d)
        cells = n * d
        line = lambda label, key: print(f"  {label:<58} {r[key + '_wall']:7.2f} s wall {r[key + '_cpu']:7.2f} s CPU")  # noqa: E731
        print(f"\npatents {n:,} × draws {d:,} = {cells:,} valuations × {YEARS} years ({r['mode']} weights)")
        line("life curves (features, fee events, obsolescence)", "curves")
        line("fixed life: income approach Monte Carlo with S_t (today)", "income")
        line(f"multiplier: weights of every draw ({r['mode']} build)", "grid")
        line("multiplier: reading W_t of every patent, draw and year", "read")
        extra = r["grid_wall"] + r["read_wall"]
        print(f"  multiplier path's extra work / fixed-life Monte Carlo:     {extra / r['income_wall']:.2f} (wall), "
              f"{(r['grid_cpu'] + r['read_cpu']) / r['income_cpu']:.2f} (CPU)")
        line("DCF kernel, fixed weights", "kernel_fixed")
        line("DCF kernel, a multiplier per draw", "kernel_drawn")
        print(f"  kernel ratio, multiplier / fixed:                          {r['kernel_drawn_wall'] / r['kernel_fixed_wall']:.2f} (wall), "
              f"{r['kernel_drawn_cpu'] / r['kernel_fixed_cpu']:.2f} (CPU)")
        print(f"  kernel package P50, fixed / multiplier:                    {r['p50_fixed']:,.0f} / {r['p50_multiplier']:,.0f} RMB")
        if "grid_w_max" in r:
            print(f"  grid error, 50 patents × {d:,} draws: W max {r['grid_w_max']:.1e}, 99.9th pct {r['grid_w_p999']:.1e}; "
                  f"value max {r['grid_value_max']:.1e} of the patent's fixed-life value")
    print(f"\npeak memory: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
