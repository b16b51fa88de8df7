"""Explanations: SHAP contributions turned into plain reason codes (Chinese and English).

Contributions come from LightGBM's ``pred_contrib`` (exact TreeSHAP; ``shap.TreeExplainer``
gives the same numbers, checked in the tests) and sum, with the base value, to the model's raw
output (log-odds, or log value).
"""

from __future__ import annotations


import numpy as np
import pandas as pd


def global_importance(contributions: pd.DataFrame) -> pd.Series:
    """Mean absolute contribution per feature, largest first."""
    return contributions.drop(columns=["expected_value"], errors="ignore").abs().mean().sort_values(ascending=False)


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "缺失/missing"
        return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def reason_codes(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    spec,
    *,
    medians: dict | None = None,
    top: int = 3,
    favourable_sign: int = 1,
    outcome_zh: str = "估值",
    outcome_en: str = "the value",
    units: str = "raw",
) -> pd.DataFrame:
    """The ``top`` drivers of each patent as sentences, and data-quality notes for missing inputs.

    A feature whose value is missing is never a driver ("missing lowers the renewal probability"
    would blame a data gap, not the patent): where it moved the result it gets a data-quality note
    instead (``rank`` 0,
    ``direction`` 'data_quality'), and the drivers are the largest contributions among the
    features that are present.

    Parameters
    ----------
    contributions : pandas.DataFrame, shape (n_patents, n_features [+ expected_value])
        SHAP contributions on the model's raw scale (``units='raw'``: log-odds, log value), or
        probability changes (``units='probability'``, e.g.
        :meth:`ipvalue.models.RenewalModel.probability_contributions`).
    features : pandas.DataFrame
        The feature values (same rows and feature columns).
    spec : FeatureSpec
        For the features' Chinese and English descriptions.
    medians : dict, optional
        Reference medians, to say "above / below the median".
    favourable_sign : {1, -1}, default=1
        +1 when a positive contribution is good for the borrower (value models, probabilities of
        paying); -1 when it is bad (a lapse-hazard model's log-odds).
    outcome_zh, outcome_en : str
        What the model predicts, for the sentence (e.g. "第2期续费概率", "P(fee 2 paid)").
    units : {'raw', 'probability'}, default='raw'
        With 'probability' the sentence gives the size in percentage points
        ("raises P(fee 2 paid) by 4.1 pp"; "使第2期续费概率提高 4.1 个百分点").

    Returns
    -------
    pandas.DataFrame, one row per patent and rank: ``rank, feature, value, contribution,
    direction, reason_zh, reason_en``; indexed by the row label of the patent.
    """
    if units not in ("raw", "probability"):
        raise ValueError(f"The 'units' of reason_codes must be 'raw' or 'probability'. Got {units!r}.")
    contrib = contributions.drop(columns=["expected_value"], errors="ignore")
    labels = {f.name: (f.description_zh, f.description_en) for f in spec.features}
    values = contrib.to_numpy(dtype=float)
    missing = features[contrib.columns].isna().to_numpy()
    order = np.argsort(-np.where(missing, -1.0, np.abs(values)), axis=1, kind="stable")
    rows = []
    for i, idx in enumerate(contrib.index):
        for j in np.flatnonzero(missing[i] & (values[i] != 0)):  # a missing input the model ignores moves nothing
            zh, en = labels.get(contrib.columns[j], (contrib.columns[j], contrib.columns[j]))
            rows.append({
                "row": idx, "rank": 0, "feature": contrib.columns[j], "value": np.nan, "contribution": float(values[i, j]),
                "direction": "data_quality",
                "reason_zh": f"数据质量提示：{zh} 缺失，未作为理由；请补充该数据",
                "reason_en": f"Data-quality note: {en} is missing; not used as a reason. Supply it to refine the result",
            })
        for rank, j in enumerate([j for j in order[i] if not missing[i, j]][:top], start=1):
            name = contrib.columns[j]
            c = values[i, j]
            value = features.loc[idx, name]
            good = np.sign(c) == favourable_sign
            zh, en = labels.get(name, (name, name))
            cmp_zh = cmp_en = ""
            if medians and name in medians and isinstance(value, (int, float, np.number)) and not np.isnan(value):
                above = value > medians[name]
                cmp_zh = f"，{'高于' if above else '低于或等于'}中位数 {_fmt(medians[name])}"
                cmp_en = f", {'above' if above else 'at or below'} the median {_fmt(medians[name])}"
            if units == "probability":
                pp = f"{abs(c) * 100:.1f}"
                reason_zh = f"{zh} {_fmt(value)}{cmp_zh}，使{outcome_zh}{'提高' if good else '降低'} {pp} 个百分点"
                reason_en = f"{en} {_fmt(value)}{cmp_en}: {'raises' if good else 'lowers'} {outcome_en} by {pp} pp"
            else:
                reason_zh = f"{zh} {_fmt(value)}{cmp_zh}，{'提高' if good else '降低'}{outcome_zh}"
                reason_en = f"{en} {_fmt(value)}{cmp_en}: {'raises' if good else 'lowers'} {outcome_en}"
            rows.append({
                "row": idx, "rank": rank, "feature": name, "value": value, "contribution": float(c),
                "direction": "favourable" if good else "unfavourable", "reason_zh": reason_zh, "reason_en": reason_en,
            })
    columns = ["row", "rank", "feature", "value", "contribution", "direction", "reason_zh", "reason_en"]
    return pd.DataFrame(rows, columns=columns).sort_values(["row", "rank"], kind="stable").set_index("row") if rows else pd.DataFrame(columns=columns).set_index("row")
