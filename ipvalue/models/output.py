"""The columns of a model's output frame (``RenewalModel.output_frame``,
``ValueRegressor.output_frame``), as batch scoring writes them: the features (``feature_<name>``,
for stability monitoring) and the explanation columns chosen by the ``explain`` option (``all``,
``top<N>``, ``none``), optionally for a deterministic sample of the patents."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd


def explain_top(mode: str) -> int | None:
    """The N of a ``top<N>`` mode; None for ``all`` and ``none``. Raises on anything else."""
    if mode in ("all", "none"):
        return None
    if isinstance(mode, str) and re.fullmatch(r"top[1-9]\d*", mode):
        return int(mode[3:])
    raise ValueError(f"The 'explain' option must be 'all', 'none' or 'top<N>' (e.g. 'top3'). Got {mode!r}.")


def explanation_columns(contributions: pd.DataFrame, mode: str = "all") -> pd.DataFrame:
    """Contributions as scoring output columns.

    ``all``: ``shap_<feature>`` for every feature and ``shap_expected_value``; ``top<N>``: the N
    largest drivers as ``driver_k`` (feature name) and ``driver_k_shap``; ``none``: no columns.
    """
    top = explain_top(mode)
    if mode == "none":
        return pd.DataFrame(index=contributions.index)
    if mode == "all":
        return contributions.add_prefix("shap_")
    values = contributions.drop(columns=["expected_value"], errors="ignore")
    order = np.argsort(-np.abs(values.to_numpy()), axis=1, kind="stable")[:, :top]
    names = values.columns.to_numpy()[order]
    picked = np.take_along_axis(values.to_numpy(), order, axis=1)
    out = {}
    for k in range(min(top, values.shape[1])):
        out[f"driver_{k + 1}"] = pd.array(names[:, k], dtype="str")  # text even when no row is explained
        out[f"driver_{k + 1}_shap"] = picked[:, k]
    return pd.DataFrame(out, index=contributions.index)


def explained(contributions_of, matrix: pd.DataFrame, mode: str, rows=None) -> pd.DataFrame:
    """Explanation columns (see :func:`explanation_columns`) for the ``rows`` of ``matrix`` (a
    boolean mask; all rows by default), missing for the others. ``contributions_of(matrix)`` gives
    the SHAP contributions; it is called only on the explained rows, since TreeSHAP is the costly
    part of scoring."""
    explain_top(mode)
    if mode == "none":
        return pd.DataFrame(index=matrix.index)
    picked = matrix if rows is None else matrix[np.asarray(rows, dtype=bool)]
    if len(picked):
        contributions = contributions_of(picked)
    else:
        contributions = pd.DataFrame(np.zeros((0, matrix.shape[1] + 1)), columns=[*matrix.columns, "expected_value"])
    return explanation_columns(contributions, mode).reindex(matrix.index)


def check_sample_fraction(fraction) -> float:
    """The explanation sample's fraction, checked to lie in (0, 1]."""
    if not 0 < fraction <= 1:
        raise ValueError(f"The 'explain_sample' must be a fraction in (0, 1], e.g. 0.05 for 5 %. Got {fraction!r}.")
    return fraction


def explanation_sample(patent_ids: pd.Series, fraction: float) -> np.ndarray:
    """A deterministic sample of about ``fraction`` of the patents, chosen by a hash of the patent
    id: the same patents are explained on every run, whatever the chunking or row order."""
    check_sample_fraction(fraction)
    buckets = pd.util.hash_array(patent_ids.astype("str").to_numpy(dtype=object)) % 1_000_000
    return buckets < round(fraction * 1_000_000)


def feature_columns(matrix: pd.DataFrame) -> pd.DataFrame:
    """The model's features as output columns ``feature_<name>`` (categories as text): scored
    batches carry them so that stability monitoring can compare them with the training population."""
    out = matrix.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype("str")  # text even when a whole batch is missing (Arrow would say null)
    return out.add_prefix("feature_")
