"""The valuer contract: what every valuation method exposes, so that the income approach, the
market and cost approaches and the ML value model can be swapped in valuations, batch scoring,
reports and comparisons (STYLE rule 1).

A valuer is a scikit-learn style estimator over a PatentFrame (one row per patent):

- ``fit(frame, y=None) -> self`` learns what the method learns (cohort references, a model);
- ``predict(frame) -> pandas.Series``: the central value of each patent in RMB, indexed like
  ``frame``;
- ``predict_interval(frame, *, coverage=0.9) -> pandas.DataFrame``: columns ``low_rmb``,
  ``p50_rmb``, ``high_rmb``, the central ``coverage`` interval of each patent's value in RMB
  (``low_rmb <= p50_rmb <= high_rmb``), indexed like ``frame``;
- ``provenance -> dict``: where every number came from (assumption-set, spec and model hashes);
- ``value_type``: the value type of its money figures (one of :data:`VALUE_TYPES`).

``tests/test_valuer.py`` runs the same checks over every valuer.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

#: Value types (《资产评估价值类型指导意见》, IVS 104): every money figure names one.
VALUE_TYPES = {
    "market_value": "市场价值 market value: the estimated amount for which the right would change hands between a willing buyer and seller, in continued use",
    "value_in_use": "在用价值 value in use: the value of the right to its present owner in its present use (the borrower's own product income)",
    "collateral_value": "抵质押价值 collateral value: the amount a lender can expect to realise from the right after default, net of disposal costs and time",
    "liquidation_value": "清算价值 liquidation value: the amount realisable in a forced sale within a short disposal period",
}

INTERVAL_COLUMNS = ("low_rmb", "p50_rmb", "high_rmb")


@runtime_checkable
class Valuer(Protocol):
    """A valuation method over PatentFrame rows (see the module docstring)."""

    value_type: str

    def fit(self, frame: pd.DataFrame, y=None) -> "Valuer": ...

    def predict(self, frame: pd.DataFrame) -> pd.Series: ...

    def predict_interval(self, frame: pd.DataFrame, *, coverage: float = 0.9) -> pd.DataFrame: ...

    @property
    def provenance(self) -> dict: ...


def check_coverage(coverage) -> float:
    """``coverage`` as a float in (0, 1), or a ValueError naming it."""
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float)) or not 0 < float(coverage) < 1:
        raise ValueError(f"The 'coverage' of an interval must be a number in (0, 1), e.g. 0.9 for P5-P95. Got {coverage!r}.")
    return float(coverage)


def coverage_quantiles(coverage: float) -> np.ndarray:
    """The (low, median, high) quantiles of a central ``coverage`` interval: 0.9 → (0.05, 0.5, 0.95)."""
    c = check_coverage(coverage)
    return np.array([(1 - c) / 2, 0.5, (1 + c) / 2])


def interval_frame(low, p50, high, index) -> pd.DataFrame:
    """The contract's interval table from three arrays of RMB values."""
    return pd.DataFrame(dict(zip(INTERVAL_COLUMNS, (low, p50, high))), index=index)
