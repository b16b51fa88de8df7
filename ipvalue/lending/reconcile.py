"""Reconciliation of the valuation methods, with reasons (评估结论的分析与选择).

《资产评估基本准则》第十六条 and 《资产评估执业准则——资产评估方法》 ask that, when several
methods are used, their results be analysed and the conclusion chosen with reasons based on the
quality and quantity of the data, not by a mechanical rule. :func:`reconcile` does that per unit
(a patent, or a package that protects one product) from plain columns and writes the choice, the
weights and the reason in Chinese and English.

Evidence rules (thresholds in the ``reconciliation-cn`` assumption set, each with its source),
applied in this order; the first that holds selects the primary method (weight 1, the others 0):

1. the right is not in force (lapsed, expired, invalidated, withdrawn, rejected, unknown):
   collateral value 0, no method;
2. **market approach** when it has at least ``market_primary.min_comparables`` comparables and
   their spread (highest / lowest adjusted price) is at most ``market_primary.max_spread``;
3. **income approach** when the borrower's financial statements back the forecast
   (``has_financials``);
4. **ML value model** when it was trained on real prices or appraisals (its provenance's
   ``label_source`` is in ``ml_real_label_sources``); otherwise it is a challenger only;
5. **income approach** on the borrower's forecast alone (said so in the reason);
6. **market approach** with thin evidence (any comparables);
7. **cost approach** (a floor / cross-check; primary only when nothing else exists).

The cost approach is a floor: a primary value below the cost indication is reported in the
reason, never raised to it (what was spent is not what a buyer pays). Every available central
value (income, market, cost, ML) enters the disagreement check: when the highest exceeds the
lowest by more than the policy's ``reconciliation.disagreement_factor``
(``pledge-policy-cn``), the unit is **review required** until a named reviewer signs off.

A pending application is valued only as pending: ``pending_expected_value_rmb`` = reconciled
value if granted × the grant probability of its patent type; its collateral basis is 0, and it is
never summed into a book as if granted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue.config import assumption_value, content_hash, load_yaml
from ipvalue.exceptions import AssumptionError, ColumnError

__all__ = ["METHODS", "METHOD_VALUE_TYPES", "reconcile"]

METHODS = ("income", "market", "cost", "ml")
#: Value type of each method's central figure (ipvalue.valuer.VALUE_TYPES).
METHOD_VALUE_TYPES = {"income": "value_in_use", "market": "market_value", "cost": "market_value", "ml": "market_value"}
NOT_IN_FORCE = ("lapsed", "expired", "invalidated", "withdrawn", "rejected", "unknown")
STATUSES = ("in_force", "pending") + NOT_IN_FORCE

_NAMES = {
    "income": ("收益法", "income approach"), "market": ("市场法", "market approach"),
    "cost": ("成本法", "cost approach"), "ml": ("机器学习价值模型", "ML value model"),
}
_RULES = {  # rule → (method, Chinese reason, English reason)
    "market": ("market", "可比交易{n}笔且价差{spread}倍，证据充分，以市场法为主", "{n} comparables within a spread of {spread}x: market approach is primary"),
    "income_financials": ("income", "有借款人财务报表支持收入与利润率预测，以收益法为主", "the borrower's financial statements support the forecast: income approach is primary"),
    "ml_real": ("ml", "价值模型以真实成交价或评估值训练，可比交易不足，以模型为主", "the value model was trained on real prices or appraisals and comparables are thin: ML value model is primary"),
    "income_forecast": ("income", "可比交易不足或价差过大、无财务报表，以收益法为主，但收入预测未经报表核对",
                        "too few or too dispersed comparables and no financial statements: income approach is primary on the borrower's unchecked forecast"),
    "market_thin": ("market", "仅有{n}笔可比交易（价差{spread}倍），证据薄弱，以市场法为主", "only {n} comparable(s) (spread {spread}x), thin evidence: market approach is primary"),
    "cost": ("cost", "仅有研发成本，以成本法为参考下限", "only the R&D cost is available: cost approach as a floor"),
    "none": ("none", "无可用评估方法结果", "no method gave a value"),
}


def _rules(which) -> dict:
    raw, origin = (which, "dict") if isinstance(which, dict) else load_yaml(which)
    labels = (raw.get("ml_real_label_sources") or {}).get("value")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise AssumptionError(f"The 'ml_real_label_sources' of assumption set {raw.get('name', origin)!r} must be a list of label sources. Got {labels!r}.")
    return {
        "min_comparables": assumption_value(raw, "market_primary.min_comparables", 1, 1000),
        "max_spread": assumption_value(raw, "market_primary.max_spread", 1.0, 1000.0),
        "real_labels": labels,
        "grant_probability": {t: assumption_value(raw, f"grant_probability.{t}", 0.0, 1.0) for t in ("invention", "utility_model", "design")},
        "provenance": f"{raw.get('name', origin)}-v{raw.get('version', 0)}",
        "hash": content_hash(raw),
    }


def _fill(template: str, n: pd.Series, spread: pd.Series) -> pd.Series:
    """``template`` with ``{n}`` and ``{spread}`` filled row by row (vectorised string concatenation)."""
    if "{n}" not in template:
        return pd.Series(template, index=n.index, dtype=object)
    head, rest = template.split("{n}")
    middle, tail = rest.split("{spread}")
    return head + n + middle + spread + tail


def _num(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame.columns:
        return pd.Series(np.nan, index=frame.index)
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = (raw.notna() & values.isna()) | (values < 0)
    if bad.any():
        row = bad.idxmax()
        got = raw[row].item() if hasattr(raw[row], "item") else raw[row]
        raise ValueError(f"Column '{col}' of the method results must be a number >= 0 or missing. Got {got!r} in row {row!r}. Fix: correct the row.")
    return values


def reconcile(methods: pd.DataFrame, *, policy="pledge-policy-cn", rules="reconciliation-cn") -> pd.DataFrame:
    """Choose the primary method per unit, with weights, reasons and the disagreement check.

    Parameters
    ----------
    methods : pandas.DataFrame, one row per unit (patent or package), any index
        ``legal_status`` (required; one of in_force, pending, lapsed, expired, invalidated,
        withdrawn, rejected, unknown), ``patent_type`` (for pending: invention / utility_model /
        design), and where available: ``income_rmb``, ``has_financials`` (bool), ``market_rmb``,
        ``market_n_comparables``, ``market_spread``, ``cost_rmb``, ``ml_rmb``,
        ``ml_label_source`` (the value model's provenance: e.g. 'synthetic', 'real_prices',
        'appraisals'). Missing columns mean the method was not run. Values in RMB.
    policy : str, Path or dict, default="pledge-policy-cn"
        Gives ``reconciliation.disagreement_factor``.
    rules : str, Path or dict, default="reconciliation-cn"

    Returns
    -------
    pandas.DataFrame, indexed like ``methods``
        ``primary_method``, ``weight_income``, ``weight_market``, ``weight_cost``, ``weight_ml``,
        ``reconciled_value_rmb`` and its ``value_type``, ``ml_role`` ('challenger' or 'primary
        candidate'), ``disagreement`` (highest / lowest available central value),
        ``disagreement_methods``, ``review_required``, ``below_cost_floor``,
        ``grant_probability``, ``pending_expected_value_rmb``, ``collateral_basis_rmb`` (the
        value a disposal view may start from: 0 unless the right is in force), ``reason_zh``,
        ``reason_en``, and the rule set's name and hash.
    """
    if "legal_status" not in methods.columns:
        raise ColumnError("reconcile needs column 'legal_status' for each unit. Fix: pass the register status (in_force, pending, ...).")
    status = methods["legal_status"].astype("string").str.strip().str.lower()
    bad = ~status.isin(STATUSES)
    if bad.any():
        row = bad.idxmax()
        raise ValueError(f"Column 'legal_status' must be one of {list(STATUSES)}. Got {methods.at[row, 'legal_status']!r} in row {row!r}.")
    r = _rules(rules)
    policy_raw = policy if isinstance(policy, dict) else load_yaml(policy)[0]
    factor = assumption_value(policy_raw, "reconciliation.disagreement_factor", 1.0, 1000.0, lo_open=True)

    values = pd.DataFrame({m: _num(methods, f"{m}_rmb") for m in METHODS})
    n_comp = _num(methods, "market_n_comparables").fillna(0.0)
    spread = _num(methods, "market_spread")
    values.loc[n_comp <= 0, "market"] = np.nan
    financials = methods["has_financials"].fillna(False).astype(bool) if "has_financials" in methods.columns else pd.Series(False, index=methods.index)
    labels = methods["ml_label_source"].astype("string").str.lower() if "ml_label_source" in methods.columns else pd.Series(pd.NA, index=methods.index, dtype="string")
    ml_real = labels.isin(r["real_labels"]).fillna(False).astype(bool)
    have = values.notna()

    conditions = {
        "market": have["market"] & (n_comp >= r["min_comparables"]) & (spread <= r["max_spread"]),
        "income_financials": have["income"] & financials,
        "ml_real": have["ml"] & ml_real,
        "income_forecast": have["income"],
        "market_thin": have["market"],
        "cost": have["cost"],
    }
    rule = pd.Series(np.select(list(conditions.values()), list(conditions.keys()), "none"), index=methods.index)
    primary = rule.map({k: v[0] for k, v in _RULES.items()})
    dead = status.isin(NOT_IN_FORCE)
    primary = primary.where(~dead, "none")

    out = pd.DataFrame(index=methods.index)
    out["primary_method"] = primary
    for m in METHODS:
        out[f"weight_{m}"] = (primary == m).astype(float)
    chosen = np.select([primary == m for m in METHODS], [values[m] for m in METHODS], np.nan)
    out["reconciled_value_rmb"] = np.where(dead, 0.0, chosen)
    out["value_type"] = primary.map(METHOD_VALUE_TYPES).fillna("market_value")
    out["ml_role"] = np.where(ml_real, "primary candidate", "challenger")

    positive = values.where(values > 0)
    high, low = positive.max(axis=1), positive.min(axis=1)
    out["disagreement"] = (high / low).where(positive.notna().sum(axis=1) >= 2)
    names = np.array(METHODS, dtype=object)
    arr = positive.to_numpy(float)
    pair = names[np.argmax(np.nan_to_num(arr, nan=-np.inf), axis=1)] + " vs " + names[np.argmin(np.nan_to_num(arr, nan=np.inf), axis=1)]
    out["disagreement_methods"] = np.where(out["disagreement"].notna(), pair, "")
    out["review_required"] = ~dead & ((out["disagreement"] > factor).fillna(False) | (primary == "none"))
    out["below_cost_floor"] = ~dead & (values["cost"] > out["reconciled_value_rmb"]).fillna(False)

    ptype = methods["patent_type"].astype("string").str.lower() if "patent_type" in methods.columns else pd.Series(pd.NA, index=methods.index, dtype="string")
    pending = status == "pending"
    unknown_type = pending & ~ptype.isin(list(r["grant_probability"])).fillna(False).astype(bool)
    if unknown_type.any():
        row = unknown_type.idxmax()
        raise ValueError(f"Row {row!r} is a pending application with 'patent_type' {methods.get('patent_type', pd.Series(index=methods.index)).get(row)!r}. Fix: give invention, utility_model or design (its grant probability depends on it).")
    prob = ptype.map(r["grant_probability"]).astype(float)
    out["grant_probability"] = prob.where(pending)
    out["pending_expected_value_rmb"] = (out["reconciled_value_rmb"] * prob).where(pending)
    out["collateral_basis_rmb"] = out["reconciled_value_rmb"].where(status == "in_force", 0.0)

    fmt_n = n_comp.astype(int).astype(str)
    fmt_spread = spread.round(2).astype(str)
    zh = pd.Series("", index=methods.index, dtype=object)
    en = pd.Series("", index=methods.index, dtype=object)
    for key, (_, text_zh, text_en) in _RULES.items():
        hit = rule == key
        zh[hit] = _fill(text_zh, fmt_n, fmt_spread)[hit]
        en[hit] = _fill(text_en, fmt_n, fmt_spread)[hit]
    others = {m: (values[m].notna() & (primary != m)) for m in METHODS}
    cross_zh = pd.Series("", index=methods.index, dtype=object)
    cross_en = pd.Series("", index=methods.index, dtype=object)
    for m in METHODS:
        cross_zh = cross_zh + np.where(others[m], f"；{_NAMES[m][0]}作交叉核对", "")
        cross_en = cross_en + np.where(others[m], f"; {_NAMES[m][1]} as a cross-check", "")
    ratio = out["disagreement"].round(2).astype(str)
    review_zh = np.where(out["review_required"] & (primary != "none"), "；方法间差异" + ratio + "倍（" + out["disagreement_methods"] + "）超过政策系数" + f"{factor:g}" + "倍，需复核签字", "")
    review_en = np.where(out["review_required"] & (primary != "none"), "; the methods differ by " + ratio + "x (" + out["disagreement_methods"] + "), above the policy factor " + f"{factor:g}" + "x: review required", "")
    floor_zh = np.where(out["below_cost_floor"], "；主方法结果低于成本法下限，未上调", "")
    floor_en = np.where(out["below_cost_floor"], "; the primary value is below the cost floor (not raised to it)", "")
    out["reason_zh"] = zh + cross_zh + review_zh + floor_zh
    out["reason_en"] = en + cross_en + review_en + floor_en
    status_zh = {"lapsed": "已失效", "expired": "已届满", "invalidated": "已被宣告无效", "withdrawn": "已撤回", "rejected": "已驳回", "unknown": "法律状态不明"}
    dead_zh = "权利" + status.map(status_zh).fillna("") + "，抵质押价值为0"
    dead_en = "the right is " + status.astype(str) + " (not in force): collateral value 0"
    out.loc[dead, "reason_zh"] = dead_zh[dead]
    out.loc[dead, "reason_en"] = dead_en[dead]
    pend_zh = "；专利申请尚未授权，仅按授权概率" + prob.round(2).astype(str) + "计期望值，抵质押价值为0"
    pend_en = "; a pending application: expected value at grant probability " + prob.round(2).astype(str) + " only, collateral value 0"
    out.loc[pending, "reason_zh"] = out.loc[pending, "reason_zh"] + pend_zh[pending]
    out.loc[pending, "reason_en"] = out.loc[pending, "reason_en"] + pend_en[pending]
    out["disagreement_factor_policy"] = factor
    out["reconciliation_rules"] = r["provenance"]
    out["reconciliation_rules_hash"] = r["hash"]
    return out
