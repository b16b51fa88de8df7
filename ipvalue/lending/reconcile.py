"""Reconciliation of the valuation methods, with reasons (评估结论的分析与选择).

《资产评估基本准则》第十六条 and 《资产评估执业准则——资产评估方法》 ask that, when several
methods are used, their results be analysed and the conclusion chosen with reasons based on the
quality and quantity of the data, not by a mechanical rule. :func:`reconcile` does that per patent
over the :class:`~ipvalue.methods.base.MethodResult` of every method that ran, without naming
any: each method says what it offers (``offers``: a role, a rank and the figure it offers as
market value), in its own assumption set.

Per patent:

1. a right not in force (lapsed, expired, invalidated, withdrawn, rejected, unknown) has market
   value and collateral value 0;
2. the **market value** is the offer of the best rank among the ``primary`` candidates (a market
   approach whose comparables pass their evidence tests, the income approach restated for a
   market participant, a value model trained on real labels); with none, the best
   ``cross_check``; with none, the ``floor``; with none, no value (review required);
3. every offered figure of role primary or cross-check enters the **disagreement** check: when
   the highest exceeds the lowest by more than the policy's ``reconciliation.disagreement_factor``
   the patent is **review required** until a named reviewer signs off;
4. a floor (the cost approach) above the market value is reported, never applied;
5. a pending application is valued only as pending: ``pending_expected_value_rmb`` = market value
   if granted × the grant probability of its type (``reconciliation-cn``); its collateral basis is
   0, and it is never summed into a book as if granted.

Methods of role ``information`` (a model trained on synthetic labels) are shown and take part in
nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue.config import assumption_value, load_set
from ipvalue.exceptions import ColumnError

__all__ = ["NOT_IN_FORCE", "STATUSES", "collateral_status", "reconcile"]

NOT_IN_FORCE = ("lapsed", "expired", "invalidated", "withdrawn", "rejected", "unknown")
STATUSES = ("in_force", "pending") + NOT_IN_FORCE
STATUS_ZH = {"lapsed": "已失效", "expired": "已届满", "invalidated": "已被宣告无效", "withdrawn": "已撤回", "rejected": "已驳回", "unknown": "法律状态不明"}


def collateral_status(patents: pd.DataFrame, features: pd.DataFrame | None = None) -> pd.Series:
    """The register status the reconciliation sees: the given status, but 'lapsed' where the fees
    are unpaid beyond the grace period, 'expired' past the term and 'pending' without a grant (the
    features know all three; without them only the missing grant date is seen). Only 'in_force'
    rights have a collateral value: every other status is worth 0 as collateral."""
    status = patents["legal_status"].astype(str).copy()
    if features is None:  # without features: a right in force needs a grant date
        status[patents["grant_date"].isna() & status.eq("in_force")] = "pending"
        return status
    status[(features["is_lapsed"] == 1) & status.eq("in_force")] = "lapsed"
    status[(features["is_expired"] == 1) & status.eq("in_force")] = "expired"
    status[(features["is_granted"] == 0) & status.eq("in_force")] = "pending"
    return status


def _rules(which) -> dict:
    s = load_set(which)
    return {
        "grant_probability": {t: assumption_value(s.raw, f"grant_probability.{t}", 0.0, 1.0) for t in ("invention", "utility_model", "design")},
        "provenance": s.label,
        "hash": s.hash,
    }


def reconcile(results: dict, status: pd.Series, patent_type: pd.Series, *, policy, rules="reconciliation-cn") -> pd.DataFrame:
    """Choose each patent's market value from the methods' offers, with reasons and checks.

    Parameters
    ----------
    results : dict of str to MethodResult
        The methods that ran (registry name → result), all indexed like ``status``.
    status : pandas.Series
        Register status per patent (in_force, pending, lapsed, expired, ...).
    patent_type : pandas.Series
        invention / utility_model / design (a pending application's grant probability).
    policy : dict
        The pledge policy: ``reconciliation.disagreement_factor``.
    rules : str, Path or dict, default="reconciliation-cn"

    Returns
    -------
    pandas.DataFrame, indexed like ``status``
        ``basis_method`` (the method whose offer is the market value, '' where none),
        ``market_value_rmb`` (market value if granted and in force), ``weight_<method>``,
        ``<method>_role``, ``disagreement`` (highest / lowest of the checked figures),
        ``disagreement_methods``, ``review_required``, ``below_floor``, ``floor_rmb``,
        ``grant_probability``, ``pending_expected_value_rmb``, ``collateral_basis_rmb`` (the
        market value a disposal view may start from: 0 unless in force), ``reason_zh``,
        ``reason_en``, the factor and the rule set's name and hash.
    """
    index = status.index
    status = status.astype("string").str.strip().str.lower()
    bad = ~status.isin(STATUSES)
    if bad.any():
        row = bad.idxmax()
        raise ValueError(f"The register status must be one of {list(STATUSES)}. Got {status[row]!r} for row {row!r}.")
    for name, r in results.items():
        if not r.offers.index.equals(index):
            raise ColumnError(f"The offers of method {name!r} are not indexed like the patents. Fix: a method returns one row per patent, in order.")
    r = _rules(rules)
    factor = assumption_value(policy, "reconciliation.disagreement_factor", 1.0, 1000.0, lo_open=True)
    names = list(results)
    roles = pd.DataFrame({m: results[m].offers["role"] for m in names}, index=index, dtype=object)
    ranks = pd.DataFrame({m: results[m].offers["rank"] for m in names}, index=index, dtype=float)
    offered = pd.DataFrame({m: results[m].offers["market_value_rmb"] for m in names}, index=index, dtype=float)
    usable = offered.notna() & (offered >= 0)

    basis = pd.Series("", index=index, dtype=object)
    for role in ("primary", "cross_check", "floor"):
        if not names:
            break
        candidates = np.where(((roles == role) & usable).to_numpy(), ranks.to_numpy(float), np.inf)
        candidates = np.where(np.isnan(candidates), np.inf, candidates)
        pick = np.array(names, dtype=object)[candidates.argmin(axis=1)]  # the best rank; ties: registry order
        fill = (basis == "").to_numpy() & np.isfinite(candidates.min(axis=1))
        basis[fill] = pick[fill]
    dead = status.isin(NOT_IN_FORCE)
    chosen = np.array([offered.at[i, m] if m else np.nan for i, m in basis.items()], dtype=float) if names else np.full(len(index), np.nan)

    out = pd.DataFrame(index=index)
    out["basis_method"] = basis.where(~dead, "")
    out["market_value_rmb"] = np.where(dead, 0.0, chosen)
    out["value_type"] = "market_value"
    for m in names:
        out[f"weight_{m}"] = (out["basis_method"] == m).astype(float)
        out[f"{m}_role"] = roles[m]

    checked = offered.where(roles.isin(["primary", "cross_check"]) & (offered > 0))
    high, low = checked.max(axis=1), checked.min(axis=1)
    out["disagreement"] = (high / low).where(checked.notna().sum(axis=1) >= 2)
    arr = checked.to_numpy(float)
    labels = np.array(names, dtype=object)
    if names:
        pair = labels[np.argmax(np.nan_to_num(arr, nan=-np.inf), axis=1)] + " vs " + labels[np.argmin(np.nan_to_num(arr, nan=np.inf), axis=1)]
    else:
        pair = np.full(len(index), "", dtype=object)
    out["disagreement_methods"] = np.where(out["disagreement"].notna(), pair, "")
    floor = offered.where(roles == "floor").max(axis=1)
    out["floor_rmb"] = floor
    out["below_floor"] = ~dead & (floor > out["market_value_rmb"]).fillna(False)
    no_value = ~dead & (out["basis_method"] == "")
    out["review_required"] = ~dead & ((out["disagreement"] > factor).fillna(False) | no_value)

    ptype = patent_type.astype("string").str.lower()
    pending = status == "pending"
    unknown_type = pending & ~ptype.isin(list(r["grant_probability"])).fillna(False).astype(bool)
    if unknown_type.any():
        row = unknown_type.idxmax()
        raise ValueError(f"Row {row!r} is a pending application with 'patent_type' {patent_type[row]!r}. "
                         "Fix: give invention, utility_model or design (its grant probability depends on it).")
    prob = ptype.map(r["grant_probability"]).astype(float)
    out["grant_probability"] = prob.where(pending)
    out["pending_expected_value_rmb"] = (out["market_value_rmb"] * prob).where(pending)
    out["collateral_basis_rmb"] = out["market_value_rmb"].where(status == "in_force", 0.0).fillna(0.0)

    zh = pd.Series("", index=index, dtype=object)
    en = pd.Series("", index=index, dtype=object)
    for m in names:
        hit = out["basis_method"] == m
        zh[hit] = results[m].offers["reason_zh"][hit].astype(str)
        en[hit] = results[m].offers["reason_en"][hit].astype(str)
    zh[no_value] = "无可用的市场价值"
    en[no_value] = "no method offers a market value"
    for m in names:
        cross = (roles[m].isin(["primary", "cross_check"]) & usable[m] & (out["basis_method"] != m)).to_numpy()
        zh = zh + np.where(cross, f"；{results[m].label_zh}作交叉核对", "")
        en = en + np.where(cross, f"; {results[m].label_en} as a cross-check", "")
        floor_role = ((roles[m] == "floor") & usable[m] & (out["basis_method"] != m)).to_numpy()
        zh = zh + np.where(floor_role, f"；{results[m].label_zh}作下限参考", "")
        en = en + np.where(floor_role, f"; {results[m].label_en} as a floor", "")
        info = (roles[m] == "information").to_numpy()
        zh = zh + np.where(info, f"；{results[m].label_zh}仅供参考", "")
        en = en + np.where(info, f"; {results[m].label_en} for information only", "")
    ratio = out["disagreement"].round(2).astype(str)
    over = out["review_required"] & ~no_value
    zh = zh + np.where(over, "；方法间差异" + ratio + "倍（" + out["disagreement_methods"] + "）超过政策系数" + f"{factor:g}" + "倍，需复核签字", "")
    en = en + np.where(over, "; the methods differ by " + ratio + "x (" + out["disagreement_methods"] + "), above the policy factor " + f"{factor:g}x: review required", "")
    zh = zh + np.where(out["below_floor"], "；市场价值低于成本法下限，未上调", "")
    en = en + np.where(out["below_floor"], "; the market value is below the cost floor (not raised to it)", "")
    zh[dead] = ("权利" + status.map(STATUS_ZH).fillna("") + "，市场价值与抵质押价值为0")[dead]
    en[dead] = ("the right is " + status.astype(str) + " (not in force): market and collateral value 0")[dead]
    pend_zh = "；专利申请尚未授权，仅按授权概率" + prob.round(2).astype(str) + "计期望值，抵质押价值为0"
    pend_en = "; a pending application: expected value at grant probability " + prob.round(2).astype(str) + " only, collateral value 0"
    zh[pending] = zh[pending] + pend_zh[pending]
    en[pending] = en[pending] + pend_en[pending]
    out["reason_zh"], out["reason_en"] = zh, en
    out["disagreement_factor_policy"] = factor
    out["reconciliation_rules"] = r["provenance"]
    out["reconciliation_rules_hash"] = r["hash"]
    return out
