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
    dead = status.isin(NOT_IN_FORCE).to_numpy(dtype=bool)
    chosen = np.array([offered.at[i, m] if m else np.nan for i, m in basis.items()], dtype=float) if names else np.full(len(index), np.nan)
    basis_of = np.where(dead, "", basis.to_numpy(dtype=object)).astype(object)
    market = np.where(dead, 0.0, chosen)
    role_of, offered_of = roles.to_numpy(dtype=object), offered.to_numpy(dtype=float)

    def highest(a):  # per row, NaN where a row has nothing (or there is no method)
        return np.fmax.reduce(a, axis=1) if a.shape[1] else np.full(len(a), np.nan)

    def lowest(a):
        return np.fmin.reduce(a, axis=1) if a.shape[1] else np.full(len(a), np.nan)

    checked = np.where(np.isin(role_of, ["primary", "cross_check"]) & (offered_of > 0), offered_of, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        disagreement = np.where((~np.isnan(checked)).sum(axis=1) >= 2, highest(checked) / lowest(checked), np.nan)
    labels = np.array(names, dtype=object)
    if names:
        hi, lo = np.argmax(np.nan_to_num(checked, nan=-np.inf), axis=1), np.argmin(np.nan_to_num(checked, nan=np.inf), axis=1)
        pair = labels[hi] + " vs " + labels[lo]
        words_zh = np.array([results[m].label_zh for m in names], dtype=object)
        words_en = np.array([results[m].label_en for m in names], dtype=object)
        pair_zh, pair_en = words_zh[hi] + "与" + words_zh[lo], words_en[hi] + " vs " + words_en[lo]
    else:
        pair = pair_zh = pair_en = np.full(len(index), "", dtype=object)
    floor = highest(np.where(role_of == "floor", offered_of, np.nan))
    below_floor = ~dead & (floor > market)
    no_value = ~dead & (basis_of == "")
    review_required = ~dead & ((disagreement > factor) | no_value)
    columns = {"basis_method": pd.Series(basis_of, index=index, dtype=object), "market_value_rmb": market, "value_type": "market_value"}
    for m in names:
        columns[f"weight_{m}"] = (basis_of == m).astype(float)
        columns[f"{m}_role"] = roles[m]
    columns.update(disagreement=disagreement, disagreement_methods=np.where(np.isnan(disagreement), "", pair), floor_rmb=floor,
                   below_floor=below_floor, review_required=review_required)

    ptype = patent_type.astype("string").str.lower()
    pending = status == "pending"
    unknown_type = pending & ~ptype.isin(list(r["grant_probability"])).fillna(False).astype(bool)
    if unknown_type.any():
        row = unknown_type.idxmax()
        raise ValueError(f"Row {row!r} is a pending application with 'patent_type' {patent_type[row]!r}. "
                         "Fix: give invention, utility_model or design (its grant probability depends on it).")
    prob = ptype.map(r["grant_probability"]).astype(float)
    pending_of = pending.to_numpy(dtype=bool)
    in_force = (status == "in_force").to_numpy(dtype=bool)
    columns.update(grant_probability=np.where(pending_of, prob, np.nan), pending_expected_value_rmb=np.where(pending_of, market * prob, np.nan),
                   collateral_basis_rmb=np.nan_to_num(np.where(in_force, market, 0.0), nan=0.0))

    # the reasons are built on numpy object arrays: a few dozen concatenations, cheap on 3 patents and on a book alike
    usable_of = usable.to_numpy(dtype=bool)
    zh = np.full(len(index), "", dtype=object)
    en = np.full(len(index), "", dtype=object)
    for m in names:
        hit = basis_of == m
        zh[hit] = results[m].offers["reason_zh"].astype(str).to_numpy(dtype=object)[hit]
        en[hit] = results[m].offers["reason_en"].astype(str).to_numpy(dtype=object)[hit]
    zh[no_value] = "无可用的市场价值"
    en[no_value] = "no method offers a market value"
    for j, m in enumerate(names):
        role, other = role_of[:, j], usable_of[:, j] & (basis_of != m)
        cross = np.isin(role, ["primary", "cross_check"]) & other
        zh = zh + np.where(cross, f"；{results[m].label_zh}作交叉核对", "")
        en = en + np.where(cross, f"; {results[m].label_en} as a cross-check", "")
        floor_role = (role == "floor") & other
        zh = zh + np.where(floor_role, f"；{results[m].label_zh}作下限参考", "")
        en = en + np.where(floor_role, f"; {results[m].label_en} as a floor", "")
        info = role == "information"
        zh = zh + np.where(info, f"；{results[m].label_zh}仅供参考", "")
        en = en + np.where(info, f"; {results[m].label_en} for information only", "")
    ratio = pd.Series(disagreement).round(2).astype(str)
    over = review_required & ~no_value
    zh = zh + np.where(over, "；方法间差异" + ratio + "倍（" + pair_zh + "）超过政策系数" + f"{factor:g}" + "倍，需复核签字", "")
    en = en + np.where(over, "; the methods differ by " + ratio + "x (" + pair_en + "), above the policy factor " + f"{factor:g}x: review required", "")
    zh = zh + np.where(below_floor, "；市场价值低于成本法下限，未上调", "")
    en = en + np.where(below_floor, "; the market value is below the cost floor (not raised to it)", "")
    zh[dead] = ("权利" + status.map(STATUS_ZH).fillna("") + "，市场价值与抵质押价值为0").to_numpy(dtype=object)[dead]
    en[dead] = ("the right is " + status.astype(str) + " (not in force): market and collateral value 0").to_numpy(dtype=object)[dead]
    if pending_of.any():
        grant = prob.round(2).astype(str)
        zh[pending_of] = zh[pending_of] + ("；专利申请尚未授权，仅按授权概率" + grant + "计期望值，抵质押价值为0").to_numpy(dtype=object)[pending_of]
        en[pending_of] = en[pending_of] + ("; a pending application: expected value at grant probability " + grant + " only, collateral value 0").to_numpy(dtype=object)[pending_of]
    return pd.DataFrame({**columns, "reason_zh": pd.Series(zh, index=index, dtype=object), "reason_en": pd.Series(en, index=index, dtype=object),
                         "disagreement_factor_policy": factor, "reconciliation_rules": r["provenance"], "reconciliation_rules_hash": r["hash"]}, index=index)
