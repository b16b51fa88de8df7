"""Metrics a validator accepts: discrimination, calibration, regression accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score


def reliability_table(y_true, p, *, bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: mean predicted, observed rate and count per bin."""
    p = np.asarray(p, float)
    b = np.clip((p * bins).astype(int), 0, bins - 1)
    df = pd.DataFrame({"bin": b, "p": p, "y": np.asarray(y_true, float)})
    return df.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size")).reset_index()


def expected_calibration_error(y_true, p, *, bins: int = 10) -> float:
    """ECE: the count-weighted mean |predicted − observed| over equal-width bins."""
    t = reliability_table(y_true, p, bins=bins)
    return float((t["n"] * (t["predicted"] - t["observed"]).abs()).sum() / t["n"].sum())


def binary_metrics(y_true, p) -> dict:
    """AUC, Brier score and ECE of probabilities ``p`` for the 0/1 outcome ``y_true``, the mean
    prediction and the observed rate (calibration in the large), and the ECE a perfectly
    calibrated model would show on the same predictions from sampling alone
    (:func:`calibrated_ece_reference`): an ECE target below it cannot be met."""
    floor_mean, floor_p95 = calibrated_ece_reference(p)
    return {"auc": float(roc_auc_score(y_true, p)), "brier": float(brier_score_loss(y_true, p)), "ece": expected_calibration_error(y_true, p),
            "mean_predicted": float(np.mean(p)), "observed_rate": float(np.mean(y_true)),
            "ece_if_calibrated_mean": floor_mean, "ece_if_calibrated_p95": floor_p95}


def calibrated_ece_reference(p, *, n: int = 200, seed: int = 0) -> tuple[float, float]:
    """Mean and 95th percentile of the ECE of ``p`` when the outcomes are drawn from ``p`` itself
    (a perfectly calibrated model), over ``n`` seeded draws: the sampling noise of the ECE on a
    sample of this size and spread."""
    rng = np.random.default_rng(seed)
    p = np.asarray(p, dtype=float)
    draws = [expected_calibration_error((rng.random(len(p)) < p).astype(int), p) for _ in range(n)]
    return float(np.mean(draws)), float(np.percentile(draws, 95))


def bootstrap_interval(metric, y_true, score, *, n: int = 500, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of ``metric(y, score)``, resampling patents (seeded: reproducible).
    Resamples with a single outcome class are skipped."""
    rng = np.random.default_rng(seed)
    y, s = np.asarray(y_true), np.asarray(score)
    stats = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() != y[i].max():
            stats.append(metric(y[i], s[i]))
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def bootstrap_auc(y_true, score, *, n: int = 500, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the AUC."""
    return bootstrap_interval(roc_auc_score, y_true, score, n=n, seed=seed)
