"""Stability: PSI of a model's outputs and CSI of its features, a scored batch against the
training population a run logged (``reference.parquet``).

Thresholds (the usual credit-risk convention): below 0.10 stable, 0.10 to 0.25 watch, above 0.25 act.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PSI_WATCH, PSI_ACT = 0.10, 0.25
EPSILON = 1e-4


def verdict(value: float) -> str:
    return "stable" if value < PSI_WATCH else "watch" if value < PSI_ACT else "act"


def psi(reference: pd.Series, current: pd.Series, *, bins: int = 10) -> tuple[float, pd.DataFrame]:
    """Population stability index of ``current`` against ``reference``.

    Numeric: bins at the reference deciles (distinct edges only); text or categories: one bin per
    value; missing values are a bin of their own. Empty bins count as 0.0001.

    Returns
    -------
    psi : float
    table : pandas.DataFrame
        ``bin, reference_share, current_share, contribution``.
    """
    numeric = pd.api.types.is_numeric_dtype(reference) and pd.api.types.is_numeric_dtype(current)
    if numeric:
        ref = reference.astype(float)
        edges = np.unique(np.nanquantile(ref.dropna(), np.linspace(0, 1, bins + 1)[1:-1])) if ref.notna().any() else np.array([])
        edges = np.concatenate([[-np.inf], edges, [np.inf]])

        def label(s):
            codes = pd.cut(s.astype(float), edges, right=True, labels=False, include_lowest=True)
            return codes.astype("Float64").astype(str).where(s.notna(), "missing")
    else:

        def label(s):
            return s.astype(object).where(s.notna(), "missing").astype(str)

    r = label(reference).value_counts(normalize=True)
    c = label(current).value_counts(normalize=True)
    table = pd.DataFrame({"reference_share": r, "current_share": c}).fillna(0.0)
    rs, cs = table["reference_share"].clip(lower=EPSILON), table["current_share"].clip(lower=EPSILON)
    table["contribution"] = (cs - rs) * np.log(cs / rs)
    return float(table["contribution"].sum()), table.rename_axis("bin").reset_index()


def drift_report(reference: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """PSI of every model output and CSI of every feature (``feature_*``) present in both frames.

    Returns one row per column: ``column, kind (PSI | CSI), value, verdict``, worst first.
    """
    outputs = [c for c in reference.columns if c in current.columns and not c.startswith(("feature_", "shap_", "driver_")) and c not in ("row", "patent_id")]
    features = [c for c in reference.columns if c.startswith("feature_") and c in current.columns]
    if not outputs and not features:
        raise ValueError("The reference and the current batch share no model output or feature_* column. Fix: score the batch with ipvalue score.")
    rows = [{"column": c, "kind": "PSI" if c in outputs else "CSI", "value": psi(reference[c], current[c])[0]} for c in outputs + features]
    table = pd.DataFrame(rows)
    table["verdict"] = table["value"].map(verdict)
    return table.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)


def load_reference(run_id: str) -> pd.DataFrame:
    """The training population a run logged (``reference.parquet``)."""
    import mlflow

    return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="reference.parquet"))


def load_reference_spec(run_id: str):
    """The feature spec a run logged (``feature_spec.yaml``), whose descriptions name the features
    in a drift report; None for a run without one."""
    import mlflow

    from ipvalue.config import parse_yaml
    from ipvalue.features import FeatureSpec

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="feature_spec.yaml")
    except Exception:  # noqa: BLE001 - MLflow's own error for a missing artifact
        return None
    return FeatureSpec.from_dict(parse_yaml(Path(path).read_bytes(), where=f"feature_spec.yaml of run {run_id}"), origin=f"run {run_id}")
