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


def quantile_percentile(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Percentile of ``x`` from quantile points (``values`` at :data:`QUANTILE_PROBS`).

    Linear between distinct points; on a value shared by several points (common with counts:
    p10 = p25 = 0) the middle of their probabilities, the mid-rank convention. ``values`` is one
    set of 9 points, or one row of 9 per ``x``.
    """
    x = np.asarray(x, dtype="float64")
    values = np.maximum.accumulate(np.broadcast_to(np.asarray(values, dtype="float64"), (len(x), 9)), axis=1)
    lo = (values < x[:, None]).sum(axis=1)
    hi = (values <= x[:, None]).sum(axis=1)
    tie = hi > lo
    p_tie = (QUANTILE_PROBS[np.minimum(lo, 8)] + QUANTILE_PROBS[np.maximum(hi - 1, 0)]) / 2.0
    i = np.clip(lo, 1, 8)
    x0, x1 = np.take_along_axis(values, (i - 1)[:, None], 1)[:, 0], np.take_along_axis(values, i[:, None], 1)[:, 0]
    p_lin = QUANTILE_PROBS[i - 1] + (QUANTILE_PROBS[i] - QUANTILE_PROBS[i - 1]) * (x - x0) / np.where(x1 > x0, x1 - x0, 1.0)
    out = np.where(tie, p_tie, p_lin)
    return np.clip(np.where(x < values[:, 0], 0.0, np.where(x > values[:, -1], 1.0, out)), 0.0, 1.0)


def key_rows(columns: list, *, dropna: bool) -> dict:
    """The row positions of each distinct key (one value of each column), keys in sorted order, as
    ``groupby(...).indices`` gives them: a scalar key for one column, a tuple for several. Rows with
    a missing key value are left out when ``dropna``, else a missing value is a key value (sorted last)."""
    codes, levels = [], []
    for column in columns:
        code, level = pd.factorize(np.asarray(column), sort=True, use_na_sentinel=dropna)
        codes.append(code)
        levels.append(level.tolist())
    kept = np.flatnonzero(np.all([c >= 0 for c in codes], axis=0)) if codes else np.empty(0, dtype="int64")
    combined = np.zeros(len(kept), dtype="int64")
    for code, level in zip(codes, levels):  # mixed radix: sorted as the keys are
        combined = combined * len(level) + code[kept]
    distinct, first, inverse, counts = np.unique(combined, return_index=True, return_inverse=True, return_counts=True)
    groups = np.split(kept[np.argsort(inverse, kind="stable")], np.cumsum(counts)[:-1])
    keys = [tuple(level[code[kept[i]]] for code, level in zip(codes, levels)) for i in first]
    return {key if len(columns) > 1 else key[0]: rows for key, rows in zip(keys, groups)}


def cohort_rows(year: pd.Series, field: pd.Series) -> dict:
    """The row positions of each (filing year, technology field) cohort, missing keys included."""
    return key_rows([year.to_numpy(), field.to_numpy()], dropna=False)


def oecd_quantile_points(table: pd.DataFrame, variable: str | None = None) -> dict:
    """The OECD cohort table's quantile points (:data:`QUANTILE_COLUMNS`) by (filing year,
    technology field), as floats: of the rows of ``variable`` (the table's ``variable`` column), or
    of a table of one variable already indexed by the two."""
    if variable is not None:
        table = table[table["variable"] == variable].set_index(["filing_year", "tech_field"])
        table.index = pd.MultiIndex.from_arrays([table.index.get_level_values(0).astype(float), table.index.get_level_values(1).astype(float)])
    return dict(zip(table.index, table[QUANTILE_COLUMNS].to_numpy(dtype="float64")))


class CohortReference:
    """Fitted reference distributions of one feature.

    The fitted references (each cohort, each filing year, all data) are kept as segments of one
    sorted integer array (segment number × M + rank of the value among all reference values), so
    a chunk's percentiles are a few ``searchsorted`` calls over all patents, whatever the number
    of cohorts.
    """

    def __init__(self, *, min_size: int = 20, oecd: pd.DataFrame | dict | None = None):
        self.min_size = min_size
        # quantile points of one OECD variable by (filing_year, tech_field): a table indexed by them, or its
        # :func:`oecd_quantile_points` already read
        self.oecd = {} if oecd is None else dict(oecd) if isinstance(oecd, dict) else oecd_quantile_points(oecd)

    def fit(self, values: pd.Series, year: pd.Series, field: pd.Series) -> "CohortReference":
        ok = values.notna().to_numpy()
        v, y, f = values.to_numpy()[ok], year.to_numpy()[ok], field.to_numpy()[ok]
        # rows with a missing key are left out of the cohorts and years; positions, not sub-frames, per cohort
        cohorts = {key: v[rows] for key, rows in key_rows([y, f], dropna=True).items() if len(rows) >= self.min_size}
        years = {key: v[rows] for key, rows in key_rows([y], dropna=True).items() if len(rows) >= self.min_size}
        segments = [*cohorts.values(), *years.values(), v]
        self.cohort_segment_ = dict(zip(cohorts, range(len(cohorts))))
        self.year_segment_ = dict(zip(years, range(len(cohorts), len(cohorts) + len(years))))
        self.all_segment_ = len(segments) - 1 if len(v) else -1
        self.values_ = np.unique(v.astype("float64"))  # distinct reference values, sorted
        self.length_ = np.array([len(v) for v in segments], dtype="int64")
        self.start_ = np.concatenate([[0], np.cumsum(self.length_)[:-1]])
        width = len(self.values_) + 1
        self.keys_ = np.concatenate(
            [seg * width + np.sort(np.searchsorted(self.values_, v)) for seg, v in enumerate(segments)] or [np.empty(0, "int64")]
        ).astype("int64")
        return self

    def _midrank(self, x: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """Mid-rank of each ``x`` within its reference segment (share below + half the share equal)."""
        width = len(self.values_) + 1
        r = np.searchsorted(self.values_, x, side="left")
        equal = (r < len(self.values_)) & (self.values_[np.minimum(r, len(self.values_) - 1)] == x)
        key = segment * width + r
        below = np.searchsorted(self.keys_, key, side="left")
        upto = np.where(equal, np.searchsorted(self.keys_, key, side="right"), below)
        return (below + upto - 2 * self.start_[segment]) / (2.0 * self.length_[segment])

    def transform(self, values: pd.Series, year: pd.Series, field: pd.Series, *, cohorts: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Percentiles and the reference each one came from (one of :data:`SOURCES`).
        ``cohorts``: :func:`cohort_rows` of ``year`` and ``field`` when the caller has them (one
        grouping for all the percentile features of a matrix)."""
        n = len(values)
        x = values.to_numpy(dtype="float64")
        segment = np.full(n, -1, dtype="int64")
        kind = np.full(n, SOURCES.index("missing"), dtype="int8")
        oecd_rows, oecd_points = [], []
        for (y, f), rows in (cohort_rows(year, field) if cohorts is None else cohorts).items():  # one decision per cohort
            if (y, f) in self.cohort_segment_:
                segment[rows], kind[rows] = self.cohort_segment_[(y, f)], SOURCES.index("cohort")
            elif (y, f) in self.oecd:
                kind[rows] = SOURCES.index("oecd")
                oecd_rows.append(rows)
                oecd_points.append(np.broadcast_to(self.oecd[(y, f)], (len(rows), 9)))
            elif y in self.year_segment_:
                segment[rows], kind[rows] = self.year_segment_[y], SOURCES.index("year")
            elif self.all_segment_ >= 0:
                segment[rows], kind[rows] = self.all_segment_, SOURCES.index("all")
        kind[np.isnan(x)] = SOURCES.index("missing")
        pct = np.full(n, np.nan)
        empirical = (segment >= 0) & ~np.isnan(x)
        pct[empirical] = self._midrank(x[empirical], segment[empirical])
        if oecd_rows:
            rows = np.concatenate(oecd_rows)
            pct[rows] = quantile_percentile(np.concatenate(oecd_points), x[rows])  # a missing x stays missing
        return pct, np.asarray(SOURCES)[kind]
