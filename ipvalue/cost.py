"""Cost approach (成本法): the borrower's R&D cost, indexed and written down by the used life.

Per patent::

    replacement_cost_rmb = rd_cost_rmb × index[valuation year] / index[rd_cost_year]
    cost_value_rmb       = replacement_cost_rmb × remaining_life_years / statutory_term_years

The index table and the obsolescence rule come from the ``cost-cn`` assumption set with their
sources; no public R&D cost index is sourced yet, so by default no indexation is applied and each
result says so (``cost_index_applied``).

Value type: ``market_value``. The cost approach is one of the three approaches to market value
(《资产评估执业准则——资产评估方法》, IVS 105): it gives a cost-based *indication* of market value,
not a value to the borrower, and not a realisable amount. It is used as a floor / cross-check in
the reconciliation (:mod:`ipvalue.lending.reconcile`), never as the primary method on its own.

Input columns (per patent, plain numbers):

=======================  ===============================================================
``rd_cost_rmb``          R&D cost of the patent in RMB (>= 0; missing = no cost evidence)
``rd_cost_year``         calendar year the cost was incurred (1980 .. valuation year)
``package_id``           optional; with ``package_rd_cost_rmb`` (one product's cost, the
                         same on each patent of the package) the cost is shared equally
                         among the package's live patents
``remaining_life_years`` remaining legal life (IncomeApproachValuer.inputs gives it)
``statutory_term_years`` the statutory term (IncomeApproachValuer.inputs gives it)
=======================  ===============================================================
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import content_hash, load_yaml
from ipvalue.exceptions import AssumptionError, ColumnError
from ipvalue.valuer import check_coverage, interval_frame

logger = logging.getLogger(__name__)

__all__ = ["CostApproachValuer"]


def _column(frame: pd.DataFrame, name: str, lo: float, hi: float, *, required: bool = True) -> pd.Series:
    """Column ``name`` as floats in [lo, hi] (NaN allowed where not ``required``), or an error naming row and value."""
    if name not in frame.columns:
        if required:
            raise ColumnError(f"The cost approach needs column '{name}'. Fix: add it (see ipvalue/cost.py).")
        return pd.Series(np.nan, index=frame.index)
    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce")
    bad = (raw.notna() & values.isna()) | (values < lo) | (values > hi) | (required & values.isna())
    if bad.any():
        row = bad.idxmax()
        got = raw[row].item() if hasattr(raw[row], "item") else raw[row]
        raise ValueError(f"Column '{name}' must be a number in [{lo:g}, {hi:g}]. Got {got!r} in row {row!r}. Fix: correct the row.")
    return values.astype(float)


class CostApproachValuer(BaseEstimator):
    """Value patents by the cost approach (成本法), a floor / cross-check of market value.

    Parameters
    ----------
    assumptions : str, Path or dict, default="cost-cn"
    valuation_date : date-like, default=None (today at fit)

    Attributes
    ----------
    valuation_year_ : int
    index_ : dict[int, float]
        Cost index by calendar year (empty: no indexation).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"rd_cost_rmb": [1_000_000.0], "rd_cost_year": [2020],
    ...                       "remaining_life_years": [15.0], "statutory_term_years": [20.0]})
    >>> CostApproachValuer(valuation_date="2025-06-30").fit(frame).predict(frame).tolist()
    [750000.0]
    """

    value_type = "market_value"

    def __init__(self, assumptions="cost-cn", *, valuation_date=None):
        self.assumptions = assumptions
        self.valuation_date = valuation_date

    def fit(self, X=None, y=None) -> "CostApproachValuer":
        """Load the assumption set and fix the valuation year; learns nothing from ``X``."""
        raw, origin = (self.assumptions, "dict") if isinstance(self.assumptions, dict) else load_yaml(self.assumptions)
        name = raw.get("name", origin)
        values = ((raw.get("cost_index") or {}).get("values")) or {}
        try:
            index = {int(k): float(v) for k, v in values.items()}
        except (TypeError, ValueError):
            raise AssumptionError(f"The 'cost_index.values' of assumption set {name!r} must map years to numbers. Got {values!r}.") from None
        if any(not np.isfinite(v) or v <= 0 for v in index.values()):
            raise AssumptionError(f"The 'cost_index.values' of assumption set {name!r} must be positive. Got {index!r}.")
        method = (raw.get("obsolescence") or {}).get("method")
        if method != "straight_line_legal_life":
            raise AssumptionError(f"The 'obsolescence.method' of assumption set {name!r} must be 'straight_line_legal_life'. Got {method!r}.")
        self.index_ = index
        self.valuation_year_ = int(pd.Timestamp(self.valuation_date or pd.Timestamp.today()).year)
        self.provenance_ = {"cost_assumption_set": f"{name}-v{raw.get('version', 0)}", "cost_assumption_set_hash": content_hash(raw)}
        return self

    def inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        """Cost, index factor, obsolescence and the cost indication per patent (RMB), indexed like ``X``."""
        check_is_fitted(self, "index_")
        remaining = _column(X, "remaining_life_years", 0.0, 60.0)
        term = _column(X, "statutory_term_years", 1e-9, 60.0)
        over = remaining > term
        if over.any():
            row = over.idxmax()
            raise ValueError(f"Row {row!r}: 'remaining_life_years' ({remaining[row]:g}) exceeds 'statutory_term_years' ({term[row]:g}). Fix: check the dates.")
        cost = _column(X, "rd_cost_rmb", 0.0, 1e12, required=False)
        if "package_rd_cost_rmb" in X.columns:
            if "package_id" not in X.columns:
                raise ColumnError("Column 'package_rd_cost_rmb' needs 'package_id' to share a product's R&D cost among its patents.")
            package_cost = _column(X, "package_rd_cost_rmb", 0.0, 1e12, required=False)
            live = (remaining > 0).astype(float)
            share = live / live.groupby(X["package_id"]).transform("sum").replace(0.0, np.nan)
            cost = cost.fillna(package_cost * share.fillna(0.0))
        year = _column(X, "rd_cost_year", 1980, self.valuation_year_, required=False)
        missing_year = cost.notna() & year.isna()
        if missing_year.any():
            row = missing_year.idxmax()
            raise ValueError(f"Row {row!r} gives an R&D cost but no 'rd_cost_year'. Fix: give the calendar year the cost was incurred.")
        now = self.index_.get(self.valuation_year_)
        then = year.map(self.index_)
        applied = then.notna() & (now is not None)
        factor = (now / then).where(applied, 1.0) if now is not None else pd.Series(1.0, index=X.index)
        out = pd.DataFrame(index=X.index)
        out["rd_cost_rmb"] = cost
        out["rd_cost_year"] = year
        out["cost_index_factor"] = factor
        out["cost_index_applied"] = applied
        out["replacement_cost_rmb"] = cost * factor
        out["remaining_life_share"] = remaining / term
        out["cost_value_rmb"] = out["replacement_cost_rmb"] * out["remaining_life_share"]
        out["value_type"] = self.value_type
        for key, value in self.provenance_.items():
            out[key] = value
        return out

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Cost indication of market value per patent in RMB (NaN where no R&D cost is given)."""
        return self.inputs(X)["cost_value_rmb"].rename("cost_value_rmb")

    def predict_interval(self, X: pd.DataFrame, *, coverage: float = 0.9) -> pd.DataFrame:
        """The cost indication has no sampling distribution: ``low_rmb = p50_rmb = high_rmb``."""
        check_coverage(coverage)
        point = self.predict(X).to_numpy()
        return interval_frame(point, point, point, X.index)

    @property
    def provenance(self) -> dict:
        check_is_fitted(self, "index_")
        return {**self.provenance_, "cost_valuation_year": self.valuation_year_}
