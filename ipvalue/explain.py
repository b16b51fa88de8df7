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
) -> pd.DataFrame:
    """The ``top`` drivers of each patent as sentences.

    Parameters
    ----------
    contributions : pandas.DataFrame, shape (n_patents, n_features [+ expected_value])
    features : pandas.DataFrame
        The feature values (same rows and feature columns).
    spec : FeatureSpec
        For the features' Chinese and English descriptions.
    medians : dict, optional
        Reference medians, to say "above / below the median".
    favourable_sign : {1, -1}, default=1
        +1 when a positive contribution is good for the borrower (value models); -1 when it is
        bad (a lapse-hazard model, where positive contributions raise the risk of lapsing).
    outcome_zh, outcome_en : str
        What the model predicts, for the sentence.

    Returns
    -------
    pandas.DataFrame, one row per patent and rank: ``rank, feature, value, contribution,
    direction, reason_zh, reason_en``; indexed by the row label of the patent.
    """
    contrib = contributions.drop(columns=["expected_value"], errors="ignore")
    labels = {f.name: (f.description_zh, f.description_en) for f in spec.features}
    values = contrib.to_numpy()
    order = np.argsort(-np.abs(values), axis=1)[:, :top]
    rows = []
    for i, idx in enumerate(contrib.index):
        for rank, j in enumerate(order[i], start=1):
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
            rows.append({
                "row": idx, "rank": rank, "feature": name, "value": value, "contribution": float(c),
                "direction": "favourable" if good else "unfavourable",
                "reason_zh": f"{zh} {_fmt(value)}{cmp_zh}，{'提高' if good else '降低'}{outcome_zh}",
                "reason_en": f"{en} {_fmt(value)}{cmp_en}: {'raises' if good else 'lowers'} {outcome_en}",
            })
    return pd.DataFrame(rows).set_index("row")
