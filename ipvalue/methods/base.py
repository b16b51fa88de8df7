"""The valuation-method contract: what every method exposes, what it returns, and how the
pipeline finds it.

A method is a scikit-learn style estimator over a PatentFrame (one row per patent), the
**valuer**:

- ``fit(frame, y=None) -> self`` learns what the method learns (cohort references, a model);
- ``predict(frame) -> pandas.Series``: the central value of each patent in RMB, indexed like
  ``frame``;
- ``predict_interval(frame, *, coverage=0.9) -> pandas.DataFrame``: columns ``low_rmb``,
  ``p50_rmb``, ``high_rmb``, the central ``coverage`` interval of each patent's value in RMB;
- ``provenance -> dict``: where every number came from (assumption-set, spec and model hashes);
- ``value_type``: the value type of its central figure (a key of :data:`VALUE_TYPES`);
- ``assess(frame, inputs) -> MethodResult``: everything the valuation pipeline needs from the
  method, from the PatentFrame and the shared :class:`~ipvalue.methods.inputs.ValuationInputs`
  (never from another method's output).

The pipeline (:mod:`ipvalue.lending.pipeline`) loops over the registered methods
(:mod:`ipvalue.methods.registry`); reconciliation and the report iterate over their
:class:`MethodResult` objects instead of naming methods. ``ipvalue.testing.check_valuer`` runs the
contract's checks over any valuer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ipvalue.report.sections import Section

#: Value types (《资产评估价值类型指导意见》, IVS 104): every money figure names one. Key →
#: (Chinese name, English name, Chinese definition, English definition).
VALUE_TYPES = {
    "market_value": (
        "市场价值", "market value",
        "自愿买方和自愿卖方在各自理性行事且未受任何强迫的情况下，评估对象在评估基准日进行正常公平交易的价值估计数额",
        "the estimated amount for which the right would exchange on the valuation date between a willing buyer and a willing seller "
        "in an arm's-length transaction, each acting knowledgeably and without compulsion",
    ),
    "value_in_use": (
        "在用价值", "value in use",
        "将评估对象作为企业组成部分或者要素资产按其正在使用方式和程度及其对所属企业的贡献的价值估计数额",
        "the value of the right to the borrower as part of its business, used as it is used now, by its contribution to that business",
    ),
    "collateral_value": (
        "抵质押价值", "collateral value",
        "以抵（质）押为目的，评估对象在处置时扣除强制变现折扣、处置费用与处置时间影响后可实现的价值",
        "for a pledge: what the lender can expect to realise from the right after default, net of the forced-sale discount, "
        "disposal costs and the time to dispose",
    ),
    "liquidation_value": (
        "清算价值", "liquidation value",
        "评估对象处于被迫出售、快速变现等非正常市场条件下的价值估计数额",
        "the amount realisable in a forced sale within a short disposal period",
    ),
}
VALUE_TYPE_SOURCE = "《资产评估价值类型指导意见》(中评协〔2017〕47号); IVS 104 Bases of Value; definitions paraphrased"

INTERVAL_COLUMNS = ("low_rmb", "p50_rmb", "high_rmb")

#: What a method's figure may do in the reconciliation, per patent:
#: ``primary``: a candidate for the market value (the best-ranked candidate leads);
#: ``cross_check``: enters the disagreement check, leads only when no primary candidate exists;
#: ``floor``: a lower reference (a primary value below it is reported, never raised to it);
#: ``information``: shown, in no check (e.g. a model trained on synthetic labels);
#: ``none``: the method gave no figure for the patent.
ROLES = ("primary", "cross_check", "floor", "information", "none")
OFFER_COLUMNS = ("role", "rank", "market_value_rmb", "reason_zh", "reason_en")
FLAG_COLUMNS = ("scope", "code", "review", "reason_zh", "reason_en")


@dataclass
class MethodResult:
    """What one method gives the valuation pipeline, for every patent of a frame.

    Attributes
    ----------
    method : str
        The registry name (``income``, ``market``, ...).
    label_zh, label_en : str
        The method's name for readers (收益法 / income approach).
    value_type : str
        Value type of ``values["value_rmb"]`` (a key of :data:`VALUE_TYPES`).
    values : pandas.DataFrame, indexed like the frame
        ``value_rmb`` (the central figure, RMB; NaN where the method gives none) and ``low_rmb``,
        ``p50_rmb``, ``high_rmb`` (its interval at the pipeline's coverage).
    offers : pandas.DataFrame, indexed like the frame
        What the method offers the reconciliation: ``role`` (one of :data:`ROLES`), ``rank``
        (lower leads among candidates of the same role), ``market_value_rmb`` (the figure offered
        as market value, RMB; for the income approach its market-participant restatement),
        ``reason_zh`` / ``reason_en`` (why this role).
    draws : numpy.ndarray or None, shape (n_patents, n_draws)
        Scenario draws of ``offers["market_value_rmb"]`` on the pipeline's shared scenarios
        (:class:`~ipvalue.methods.inputs.Scenarios`): the market value's distribution the disposal
        view reads. None: a point figure only.
    columns : pandas.DataFrame, indexed like the frame
        Other per-patent figures the valuation's patent table shows (e.g. the income approach's
        sharing rate); money columns end in ``_rmb`` and have a value type in ``value_types``.
    value_types : dict
        Value type of each money column of ``values``, ``offers`` and ``columns``.
    evidence : dict of str to pandas.DataFrame
        What the method used and how it adjusted it (comparables and their adjustments, the
        yearly cash flows, the cost build-up), by table name.
    provenance : dict
        Assumption sets, hashes, model versions.
    sections : list of Section
        The report sections the method owns (its part of the 计算过程 appendix and of the
        parameter table).
    flags : pandas.DataFrame
        What a reviewer must look at: ``scope`` (a patent id or 'application'), ``code``,
        ``review`` (True: the valuation is "review required" until signed off), ``reason_zh``,
        ``reason_en``.
    """

    method: str
    label_zh: str
    label_en: str
    value_type: str
    values: pd.DataFrame
    offers: pd.DataFrame
    draws: np.ndarray | None = None
    columns: pd.DataFrame | None = None
    value_types: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    sections: list = field(default_factory=list)
    flags: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(FLAG_COLUMNS)))

    def __post_init__(self) -> None:
        if self.value_type not in VALUE_TYPES:
            raise ValueError(f"The 'value_type' of method {self.method!r} must be one of {list(VALUE_TYPES)}. Got {self.value_type!r}.")
        missing = [c for c in ("value_rmb", *INTERVAL_COLUMNS) if c not in self.values.columns]
        if missing:
            raise ValueError(f"The 'values' of method {self.method!r} lack column(s) {missing}. Fix: give value_rmb, low_rmb, p50_rmb, high_rmb.")
        missing = [c for c in OFFER_COLUMNS if c not in self.offers.columns]
        if missing:
            raise ValueError(f"The 'offers' of method {self.method!r} lack column(s) {missing}. Fix: give {list(OFFER_COLUMNS)}.")
        if not self.offers.index.equals(self.values.index):
            raise ValueError(f"The 'offers' and 'values' of method {self.method!r} must be indexed alike (one row per patent).")
        bad = ~self.offers["role"].isin(ROLES)
        if bad.any():
            raise ValueError(f"The 'role' of method {self.method!r} must be one of {list(ROLES)}. Got {self.offers['role'][bad].iloc[0]!r}.")
        if self.draws is not None and (np.ndim(self.draws) != 2 or len(self.draws) != len(self.values)):
            raise ValueError(f"The 'draws' of method {self.method!r} must have shape (n_patents={len(self.values)}, n_draws). Got {np.shape(self.draws)}.")
        if self.columns is None:
            self.columns = pd.DataFrame(index=self.values.index)


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


def offers_frame(index, *, role, rank, market_value_rmb, reason_zh, reason_en) -> pd.DataFrame:
    """The ``offers`` table of a :class:`MethodResult` (scalars broadcast over ``index``)."""
    out = pd.DataFrame({"role": role, "rank": rank, "market_value_rmb": market_value_rmb, "reason_zh": reason_zh, "reason_en": reason_en}, index=index)
    return out.astype({"rank": float, "market_value_rmb": float})


def value_type_label(value_type: str) -> str:
    """'市场价值 market value' for a value-type key (the key itself when unknown)."""
    zh, en, *_ = VALUE_TYPES.get(value_type, (value_type, value_type))
    return f"{zh} {en}"


__all__ = ["INTERVAL_COLUMNS", "MethodResult", "OFFER_COLUMNS", "ROLES", "Section", "VALUE_TYPES", "VALUE_TYPE_SOURCE", "Valuer",
           "check_coverage", "coverage_quantiles", "interval_frame", "offers_frame", "value_type_label"]
