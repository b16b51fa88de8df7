"""Percentiles within filing-year × technology-field cohorts.

A value's percentile is its mid-rank in the reference distribution: the share of reference values
below it plus half the share equal to it, in [0, 1]. References are, in order of preference:
the fitted data's own cohort (when it has at least ``min_size`` values), the OECD cohort table
(filing year × WIPO field, interpolated between its quantiles), the fitted data's filing year,
and all fitted data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILE_COLUMNS = ["min", "p1", "p10", "p25", "p50", "p75", "p90", "p99", "max"]
QUANTILE_PROBS = np.array([0.0, 0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99, 1.0])
SOURCES = ("cohort", "oecd", "year", "all", "missing")


def midrank(sorted_ref: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mid-rank percentile of each ``x`` in the sorted reference."""
    lo = np.searchsorted(sorted_ref, x, side="left")
    hi = np.searchsorted(sorted_ref, x, side="right")
    return (lo + hi) / (2.0 * len(sorted_ref))


def quantile_percentile(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Percentile of ``x`` from quantile points (``values`` at :data:`QUANTILE_PROBS`).

    Linear between distinct points; on a value shared by several points (common with counts:
    p10 = p25 = 0) the middle of their probabilities, the mid-rank convention.
    """
    values = np.maximum.accumulate(np.asarray(values, dtype="float64"))
    lo = np.searchsorted(values, x, side="left")
    hi = np.searchsorted(values, x, side="right")
    tie = hi > lo
    p_tie = (QUANTILE_PROBS[np.minimum(lo, 8)] + QUANTILE_PROBS[np.maximum(hi - 1, 0)]) / 2.0
    i = np.clip(lo, 1, 8)
    x0, x1 = values[i - 1], values[i]
    p_lin = QUANTILE_PROBS[i - 1] + (QUANTILE_PROBS[i] - QUANTILE_PROBS[i - 1]) * (x - x0) / np.where(x1 > x0, x1 - x0, 1.0)
    out = np.where(tie, p_tie, p_lin)
    return np.clip(np.where(x < values[0], 0.0, np.where(x > values[-1], 1.0, out)), 0.0, 1.0)


class CohortReference:
    """Fitted reference distributions of one feature."""

    def __init__(self, *, min_size: int = 20, oecd: pd.DataFrame | None = None):
        self.min_size = min_size
        # quantile points of one OECD variable by (filing_year, tech_field)
        self.oecd = {} if oecd is None else dict(zip(oecd.index, oecd[QUANTILE_COLUMNS].to_numpy(dtype="float64")))

    def fit(self, values: pd.Series, year: pd.Series, field: pd.Series) -> "CohortReference":
        ok = values.notna()
        frame = pd.DataFrame({"v": values[ok].to_numpy(), "y": year[ok].to_numpy(), "f": field[ok].to_numpy()})
        self.cohorts_ = {
            key: np.sort(g["v"].to_numpy())
            for key, g in frame.dropna(subset=["y", "f"]).groupby(["y", "f"])
            if len(g) >= self.min_size
        }
        self.years_ = {key: np.sort(g["v"].to_numpy()) for key, g in frame.dropna(subset=["y"]).groupby("y") if len(g) >= self.min_size}
        self.all_ = np.sort(frame["v"].to_numpy())
        return self

    def transform(self, values: pd.Series, year: pd.Series, field: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Percentiles and the reference each one came from (one of :data:`SOURCES`)."""
        n = len(values)
        pct = np.full(n, np.nan)
        source = np.full(n, "missing", dtype=object)
        x = values.to_numpy(dtype="float64")
        keys = pd.DataFrame({"y": year.to_numpy(), "f": field.to_numpy()})
        for (y, f), rows in keys.groupby(["y", "f"], dropna=False).indices.items():
            rows = rows[~np.isnan(x[rows])]
            if not len(rows):
                continue
            if (y, f) in self.cohorts_:
                pct[rows], source[rows] = midrank(self.cohorts_[(y, f)], x[rows]), "cohort"
            elif (y, f) in self.oecd:
                pct[rows], source[rows] = quantile_percentile(self.oecd[(y, f)], x[rows]), "oecd"
            elif y in self.years_:
                pct[rows], source[rows] = midrank(self.years_[y], x[rows]), "year"
            elif len(self.all_):
                pct[rows], source[rows] = midrank(self.all_, x[rows]), "all"
        return pct, source
