"""The market value of a ledger package recomputed from its cash-flow table, for any sharing
position p and discount rate r: ``V(p, r) = Σ_t [low_t + p (high_t − low_t)] / (1 + r)^t``."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ValueTable", "market_value"]


def market_value(low: np.ndarray, high: np.ndarray, t: np.ndarray, position, rate) -> np.ndarray:
    """V(p, r) = Σ_t [low_t + p (high_t − low_t)] / (1 + r)^t over the last axis (zeros pad)."""
    position, rate = np.asarray(position, float)[..., None], np.asarray(rate, float)[..., None]
    return np.sum((low + position * (high - low)) * (1.0 + rate) ** (-t), axis=-1)


class ValueTable:
    """The cash-flow table as arrays, one row per loan with a complete table: ``V(p, r)`` of any
    loans for any positions and rates (also per Monte Carlo draw)."""

    def __init__(self, cash_flows: pd.DataFrame):
        flows = cash_flows.sort_values(["loan_id", "year"], kind="stable")
        self.loan_ids = pd.Index(flows["loan_id"].unique())
        row = self.loan_ids.get_indexer(flows["loan_id"])
        col = flows.groupby("loan_id", sort=False).cumcount().to_numpy()
        width = int(col.max()) + 1 if len(col) else 1
        self.t, self.low, self.high = (np.zeros((len(self.loan_ids), width)) for _ in range(3))
        self.t[:] = 1.0
        self.t[row, col], self.low[row, col], self.high[row, col] = flows["year"], flows["cash_flow_low_rmb"], flows["cash_flow_high_rmb"]

    def has(self, loan_ids) -> np.ndarray:
        return self.loan_ids.get_indexer(pd.Index(loan_ids)) >= 0

    def values(self, loan_ids, position, rate) -> np.ndarray:
        """V of ``loan_ids`` (n,) for ``position`` and ``rate`` broadcasting to (..., n)."""
        i = self.loan_ids.get_indexer(pd.Index(loan_ids))
        if (i < 0).any():
            raise KeyError(f"No cash-flow table for loan(s) {list(pd.Index(loan_ids)[i < 0][:5])}.")
        return market_value(self.low[i], self.high[i], self.t[i], position, rate)

    def duration(self, loan_ids, position, rate) -> np.ndarray:
        """Macaulay duration (years) of each loan's cash flows at ``position`` and ``rate``."""
        i = self.loan_ids.get_indexer(pd.Index(loan_ids))
        flow = (self.low[i] + np.asarray(position)[:, None] * (self.high[i] - self.low[i])) * (1 + np.asarray(rate)[:, None]) ** (-self.t[i])
        return np.sum(self.t[i] * flow, axis=1) / np.maximum(np.sum(flow, axis=1), 1e-300)
