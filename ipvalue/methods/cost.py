"""Cost approach (成本法): the borrower's R&D cost, indexed, less functional and economic
obsolescence.

Per patent::

    replacement_cost_rmb  = rd_cost_rmb × index[valuation year] / index[rd_cost_year]
    condition_factor      = remaining_economic_life / (age_years + remaining_economic_life)   (成新率)
    functional_value_rmb  = replacement_cost_rmb × condition_factor
    cost_value_rmb        = min(functional_value_rmb, earning_capacity_rmb)                    (economic obsolescence)

The index table, the obsolescence rules and their sources come from the ``cost-cn`` assumption
set; no public R&D cost index is sourced yet, so by default no indexation is applied and each
result says so (``cost_index_applied``). The earning capacity is the present value of what the
patent can earn (:func:`ipvalue.methods.capacity.earning_capacity`); without it there is no
economic obsolescence and the result says so.

Value type: ``market_value``. The cost approach is one of the three approaches to market value
(《资产评估执业准则——资产评估方法》, IVS 105): it gives a cost-based *indication*, used as a floor /
cross-check in the reconciliation, never as the market value on its own.

Input columns (per patent, plain numbers):

==============================  ===========================================================
``rd_cost_rmb``                 R&D cost of the patent in RMB (>= 0; missing = no cost evidence)
``rd_cost_year``                calendar year the cost was incurred (1980 .. valuation year)
``package_id``                  optional; with ``package_rd_cost_rmb`` (one product's cost,
                                the same on each patent of the package) the cost is shared
                                equally among the package's live patents
``remaining_life_years``        remaining legal life
``statutory_term_years``        the statutory term
``age_years``                   years since filing
``remaining_economic_life``     remaining economic life (years, <= the legal life); default
                                the remaining legal life
``earning_capacity_rmb``        optional: what the patent can earn (the economic-obsolescence bound)
==============================  ===========================================================
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import assumption_value, load_set
from ipvalue.exceptions import AssumptionError, ColumnError
from ipvalue.methods.base import MethodResult, check_coverage, interval_frame, offers_frame
from ipvalue.methods.capacity import earning_capacity
from ipvalue.methods.registry import register_method
from ipvalue.report.sections import Column, Section

logger = logging.getLogger(__name__)

__all__ = ["CostApproachValuer"]


def _column(frame: pd.DataFrame, name: str, lo: float, hi: float, *, required: bool = True) -> np.ndarray:
    """Column ``name`` as floats in [lo, hi] (NaN allowed where not ``required``; all NaN where an
    optional column is absent), or an error naming row and value."""
    if name not in frame.columns:
        if required:
            raise ColumnError(f"The cost approach needs column '{name}'. Fix: add it (see ipvalue/cost.py).")
        return np.full(len(frame), np.nan)
    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    absent = np.isnan(values)
    bad = (raw.notna().to_numpy() & absent) | (values < lo) | (values > hi) | (required & absent)
    if bad.any():
        row = frame.index[np.argmax(bad)]
        got = raw[row].item() if hasattr(raw[row], "item") else raw[row]
        raise ValueError(f"Column '{name}' must be a number in [{lo:g}, {hi:g}]. Got {got!r} in row {row!r}. Fix: correct the row.")
    return values


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
        s = load_set(self.assumptions)
        raw, name = s.raw, s.name
        values = ((raw.get("cost_index") or {}).get("values")) or {}
        try:
            index = {int(k): float(v) for k, v in values.items()}
        except (TypeError, ValueError):
            raise AssumptionError(f"The 'cost_index.values' of assumption set {name!r} must map years to numbers. Got {values!r}.") from None
        if any(not np.isfinite(v) or v <= 0 for v in index.values()):
            raise AssumptionError(f"The 'cost_index.values' of assumption set {name!r} must be positive. Got {index!r}.")
        method = (raw.get("obsolescence") or {}).get("method")
        if method != "economic_life_condition":
            raise AssumptionError(f"The 'obsolescence.method' of assumption set {name!r} must be 'economic_life_condition'. Got {method!r}.")
        economic = (raw.get("economic_obsolescence") or {}).get("method")
        if economic != "earning_capacity":
            raise AssumptionError(f"The 'economic_obsolescence.method' of assumption set {name!r} must be 'earning_capacity'. Got {economic!r}.")
        self.rank_ = assumption_value(raw, "reconciliation.rank", 0.0, 100.0)
        self.index_ = index
        self.valuation_year_ = int(pd.Timestamp(self.valuation_date or pd.Timestamp.today()).year)
        self.provenance_ = s.provenance("cost_assumption_set")
        return self

    def inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        """Cost, index factor, obsolescence and the cost indication per patent (RMB), indexed like ``X``."""
        check_is_fitted(self, "index_")
        remaining = _column(X, "remaining_life_years", 0.0, 60.0)
        term = _column(X, "statutory_term_years", 1e-9, 60.0)
        over = remaining > term
        if over.any():
            i = np.argmax(over)
            raise ValueError(f"Row {X.index[i]!r}: 'remaining_life_years' ({remaining[i]:g}) exceeds 'statutory_term_years' ({term[i]:g}). Fix: check the dates.")
        cost = _column(X, "rd_cost_rmb", 0.0, 1e12, required=False)
        if "package_rd_cost_rmb" in X.columns:
            if "package_id" not in X.columns:
                raise ColumnError("Column 'package_rd_cost_rmb' needs 'package_id' to share a product's R&D cost among its patents.")
            package_cost = _column(X, "package_rd_cost_rmb", 0.0, 1e12, required=False)
            live = (remaining > 0).astype(float)
            package_live = pd.Series(live, index=X.index).groupby(X["package_id"]).transform("sum").to_numpy(dtype=float, na_value=np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.nan_to_num(live / np.where(package_live == 0, np.nan, package_live), nan=0.0)
            cost = np.where(np.isnan(cost), package_cost * share, cost)
        year = _column(X, "rd_cost_year", 1980, self.valuation_year_, required=False)
        missing_year = ~np.isnan(cost) & np.isnan(year)
        if missing_year.any():
            raise ValueError(f"Row {X.index[np.argmax(missing_year)]!r} gives an R&D cost but no 'rd_cost_year'. Fix: give the calendar year the cost was incurred.")
        now = self.index_.get(self.valuation_year_)
        then = np.array([self.index_.get(y, np.nan) for y in year], dtype=float)
        applied = ~np.isnan(then) & (now is not None)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(applied, (now if now is not None else np.nan) / then, 1.0)
        age = _column(X, "age_years", 0.0, 100.0) if "age_years" in X.columns else term - remaining
        economic = _column(X, "remaining_economic_life", 0.0, 60.0, required=False)
        economic = np.minimum(np.where(np.isnan(economic), remaining, economic), remaining)
        total = age + economic
        with np.errstate(divide="ignore", invalid="ignore"):
            condition = np.nan_to_num(economic / np.where(total > 0, total, np.nan), nan=0.0)
        replacement = cost * factor
        functional = replacement * condition
        capacity = _column(X, "earning_capacity_rmb", 0.0, 1e13, required=False)
        has_capacity = ~np.isnan(capacity)
        obsolescence = np.where(has_capacity, np.maximum(functional - capacity, 0.0), 0.0)
        return pd.DataFrame({
            "rd_cost_rmb": cost, "rd_cost_year": year, "cost_index_factor": factor, "cost_index_applied": applied,
            "replacement_cost_rmb": replacement, "age_years": age, "remaining_economic_life": economic, "condition_factor": condition,
            "functional_value_rmb": functional, "earning_capacity_rmb": capacity, "economic_obsolescence_rmb": obsolescence,
            "economic_obsolescence_applied": has_capacity, "cost_value_rmb": functional - np.where(np.isnan(functional), np.nan, obsolescence),
            "value_type": self.value_type, **self.provenance_,
        }, index=X.index)

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Cost indication of market value per patent in RMB (NaN where no R&D cost is given)."""
        return self.inputs(X)["cost_value_rmb"].rename("cost_value_rmb")

    def predict_interval(self, X: pd.DataFrame, *, coverage: float = 0.9) -> pd.DataFrame:
        """The cost indication has no sampling distribution: ``low_rmb = p50_rmb = high_rmb``."""
        check_coverage(coverage)
        point = self.predict(X).to_numpy()
        return interval_frame(point, point, point, X.index)

    def assess(self, X: pd.DataFrame, inputs) -> MethodResult:
        """The cost approach's part of a valuation: the product's R&D cost shared among the
        package's live patents, indexed, less functional obsolescence (the condition factor on
        the remaining economic life) and economic obsolescence (bounded by what the patent can
        earn); offered to the reconciliation as a floor, never as the market value."""
        if not hasattr(self, "index_"):
            self.fit()
        life = inputs.life_columns
        economic = life["economic_life_years"] if life is not None and "economic_life_years" in life else None
        remaining = inputs.features["remaining_life_years"]
        periods = np.minimum(remaining, economic) if economic is not None else remaining
        subject = pd.DataFrame({
            "package_id": X["package_id"], "package_rd_cost_rmb": inputs.rd_cost["rmb"], "rd_cost_year": inputs.rd_cost["year"],
            "remaining_life_years": remaining, "statutory_term_years": inputs.features["statutory_term_years"], "age_years": inputs.features["age_years"],
            "remaining_economic_life": periods,
        }, index=X.index)
        subject["earning_capacity_rmb"] = earning_capacity(X, periods, financials=inputs.financials, assumption_set=inputs.assumption_set)
        table = self.inputs(subject)
        value = table["cost_value_rmb"]
        values = pd.DataFrame({"value_rmb": value, "low_rmb": value, "p50_rmb": value, "high_rmb": value}, index=X.index)
        offers = offers_frame(X.index, role=np.where(value.notna(), "floor", "none"), rank=self.rank_, market_value_rmb=value,
                              reason_zh="成本法（研发成本扣除功能性与经济性贬值）作下限参考", reason_en="cost approach (R&D cost less functional and economic obsolescence) as a floor")
        result = MethodResult(
            method="cost", label_zh="成本法", label_en="cost approach", value_type=self.value_type, values=values, offers=offers,
            columns=table.drop(columns=[c for c in table.columns if c.startswith("cost_assumption") or c == "value_type"]),
            value_types={c: "market_value" for c in ("value_rmb", "low_rmb", "p50_rmb", "high_rmb", "market_value_rmb", "cost_value_rmb")}
            | {"rd_cost_rmb": "cost (not a value)", "replacement_cost_rmb": "cost (not a value)", "functional_value_rmb": "market_value",
               "earning_capacity_rmb": "market_value", "economic_obsolescence_rmb": "obsolescence (a deduction)"},
            evidence={"cost_build_up": table.assign(patent_id=X["patent_id"].to_numpy())}, provenance=self.provenance,
        )
        result.sections = cost_sections(result, X)
        return result

    @property
    def provenance(self) -> dict:
        check_is_fitted(self, "index_")
        return {**self.provenance_, "cost_valuation_year": self.valuation_year_}


def cost_sections(result: MethodResult, frame: pd.DataFrame) -> list[Section]:
    """The cost approach's part of the report: the build-up from R&D cost to the cost indication."""
    table = result.evidence["cost_build_up"]
    sec = Section("method-cost", "成本法（下限参考）", "Cost approach (a floor)")
    sec.text("重置成本 = 研发成本 × 成本指数调整（未采用指数时为1）；成新率 = 剩余经济寿命 ÷（已使用年限 + 剩余经济寿命）（功能性贬值）；"
             "经济性贬值 = 扣除功能性贬值后的成本超过该专利可获收益现值的部分；成本法结果 = 重置成本 × 成新率 − 经济性贬值。成本法仅作下限参考，不上调结论。",
             "Replacement cost = R&D cost × cost index (1 where none is applied); condition factor = remaining economic life ÷ (age + remaining economic "
             "life) (functional obsolescence); economic obsolescence = the cost after functional obsolescence above the present value of what the patent "
             "can earn; cost indication = replacement cost × condition factor − economic obsolescence. A floor only, never raising the conclusion.")
    sec.table("cost-build-up-table", table, [
        Column("patent_id", "专利", "Patent"), Column("rd_cost_rmb", "分摊研发成本", "R&D cost attributed", "money"),
        Column("cost_index_factor", "指数调整", "Index factor", "rate"), Column("replacement_cost_rmb", "重置成本", "Replacement cost", "money"),
        Column("age_years", "已使用年限", "Age (y)", "years"), Column("remaining_economic_life", "剩余经济寿命", "Remaining economic life (y)", "years"),
        Column("condition_factor", "成新率", "Condition factor", "percent"), Column("functional_value_rmb", "扣除功能性贬值后", "After functional obsolescence", "money"),
        Column("earning_capacity_rmb", "可获收益现值", "Earning capacity", "money"), Column("economic_obsolescence_rmb", "经济性贬值", "Economic obsolescence", "money"),
        Column("cost_value_rmb", "成本法结果", "Cost indication", "money"),
    ])
    return [sec]


@register_method("cost", label_zh="成本法", label_en="cost approach", needs=("rd_cost",), order=2)
def cost_method(inputs) -> CostApproachValuer:
    """The cost approach of a valuation, as of its date."""
    return CostApproachValuer(valuation_date=inputs.valuation_date)
