"""Indicator scorecard in the shape of GB/T 42748-2023: legal, technical and economic dimensions.

Every score is a sum of indicator points, so :meth:`IndicatorScorecard.points` explains each
total exactly. The total (0-100) sets the sharing rate's position inside its industry range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import load_set
from ipvalue.exceptions import AssumptionError

DIMENSIONS = ("legal", "technical", "economic")


#: Checked scorecards of this process by their content hash: (the indicators table, the grades).
_CHECKED: dict[str, tuple[pd.DataFrame, list]] = {}


def _checked_indicators(raw: dict, name: str) -> tuple[pd.DataFrame, list]:
    """The indicators table (with ``max_points``) and the grades of a scorecard spec, checked."""
    dims = raw.get("dimensions") or {}
    if set(dims) != set(DIMENSIONS) or abs(sum(dims.values()) - 1) > 1e-9:
        raise AssumptionError(f"The 'dimensions' of scorecard {name!r} must weigh legal, technical and economic, summing to 1. Got {dims}.")
    rows = []
    for i, ind in enumerate(raw.get("indicators") or []):
        where = f"indicator {i + 1} ({ind.get('name', '?')}) of scorecard {name!r}"
        if ind.get("dimension") not in DIMENSIONS:
            raise AssumptionError(f"The 'dimension' of {where} must be one of {list(DIMENSIONS)}. Got {ind.get('dimension')!r}.")
        rule = ind.get("rule") or {}
        if len(rule) != 1 or next(iter(rule)) not in ("linear", "bins", "categories"):
            raise AssumptionError(f"The 'rule' of {where} must be one of linear, bins or categories. Got {rule!r}.")
        kind, params = next(iter(rule.items()))
        if kind == "linear" and not params["high"] > params["low"]:
            raise AssumptionError(f"The linear rule of {where} needs high > low. Got low {params['low']}, high {params['high']}.")
        if kind == "bins" and list(b["below"] for b in params) != sorted(b["below"] for b in params):
            raise AssumptionError(f"The bins of {where} must be in increasing order of 'below'.")
        scores = [params["low"] * 0] if kind == "linear" else [b["score"] for b in params] if kind == "bins" else list(params.values())
        if not all(0 <= float(s) <= 1 for s in [*scores, ind.get("missing", 0.0)]):
            raise AssumptionError(f"The scores of {where} must be in [0, 1].")
        rows.append({**ind, "kind": kind, "params": params, "missing": float(ind.get("missing", 0.0))})
    table = pd.DataFrame(rows)
    for dim, group in table.groupby("dimension"):
        if abs(group["weight"].sum() - 1) > 1e-9:
            raise AssumptionError(f"The indicator weights of dimension {dim!r} in scorecard {name!r} must sum to 1. Got {group['weight'].sum():g}.")
    table["max_points"] = table["dimension"].map(dims) * table["weight"] * 100.0
    grades = sorted((raw.get("grades") or {}).items(), key=lambda kv: -kv[1])
    if not grades or grades[-1][1] != 0:
        raise AssumptionError(f"The 'grades' of scorecard {name!r} must end with a grade whose minimum is 0.")
    return table, grades


class IndicatorScorecard(BaseEstimator):
    """Score patents from their feature matrix with a YAML scorecard.

    Parameters
    ----------
    spec : str, Path or dict, default="scorecard-pledge"
        A packaged scorecard name, a YAML path or the parsed dict.

    Attributes
    ----------
    spec_ : dict
    hash_ : str
        Content hash of the spec, recorded with every result.
    indicators_ : pandas.DataFrame
        One row per indicator with its ``max_points`` (= dimension weight × weight × 100).

    Examples
    --------
    >>> card = IndicatorScorecard().fit()
    >>> round(card.indicators_["max_points"].sum(), 6)
    100.0
    """

    def __init__(self, spec: str | Path | dict = "scorecard-pledge"):
        self.spec = spec

    def fit(self, X=None, y=None) -> "IndicatorScorecard":
        """Load and validate the spec (a scorecard learns nothing from data). A spec is checked
        once per process and content (a valuation fits its scorecard twice); a bad one raises at
        every fit."""
        s = load_set(self.spec)
        if s.hash not in _CHECKED:
            _CHECKED[s.hash] = _checked_indicators(s.raw, s.name)
        table, grades = _CHECKED[s.hash]
        self.spec_, self.hash_, self.indicators_, self.grades_ = s.raw, s.hash, table.copy(), list(grades)
        return self

    def _indicator_score(self, ind, x: pd.Series) -> np.ndarray:
        if ind.kind == "categories":
            score = x.astype(object).map(ind.params).to_numpy(dtype="float64", na_value=np.nan)
        else:
            xs = x.to_numpy(dtype="float64", na_value=np.nan)
            if ind.kind == "linear":
                lo, hi = float(ind.params["low"]), float(ind.params["high"])
                score = np.clip((xs - lo) / (hi - lo), 0.0, 1.0)
            else:  # bins
                edges = np.array([float(b["below"]) for b in ind.params])
                values = np.array([float(b["score"]) for b in ind.params])
                score = np.where(np.isnan(xs), np.nan, values[np.minimum(np.searchsorted(edges, xs, side="right"), len(values) - 1)])
        return np.where(np.isnan(score), float(ind.missing), score)

    def points(self, features: pd.DataFrame) -> pd.DataFrame:
        """Points of every indicator, shape (n_patents, n_indicators); rows sum to the total."""
        return pd.DataFrame(self._points(features).T, index=features.index, columns=self.indicators_["name"].to_list())

    def _points(self, features: pd.DataFrame) -> np.ndarray:
        """The points as an array of shape (n_indicators, n_patents): one indicator a row, as the
        frame of :meth:`points` holds them (its row sums add the indicators in order)."""
        check_is_fitted(self, "indicators_")
        missing = [f for f in self.indicators_["feature"] if f not in features.columns]
        if missing:
            raise AssumptionError(f"Scorecard {self.spec_.get('name')!r} needs feature(s) {missing}, absent from the feature matrix. Fix: use a feature spec that builds them.")
        return np.array([self._indicator_score(ind, features[ind.feature]) * ind.max_points for ind in self.indicators_.itertuples()]).reshape(
            len(self.indicators_), len(features))

    def score(self, features: pd.DataFrame, *, points: pd.DataFrame | None = None) -> pd.DataFrame:
        """Dimension scores (0-100 each), ``total`` (0-100), ``grade`` and ``sharing_position`` (0-1).

        Parameters
        ----------
        features : pandas.DataFrame, shape (n_patents, n_features)
        points : pandas.DataFrame, optional
            :meth:`points` of ``features`` when the caller built them already (computed once).
        """
        check_is_fitted(self, "indicators_")
        # one indicator a row (n_indicators, n_patents): sums over rows add the indicators in order
        pts = self._points(features) if points is None else np.ascontiguousarray(points[self.indicators_["name"].to_list()].to_numpy().T)
        weights = self.spec_["dimensions"]
        dimension = self.indicators_["dimension"].to_numpy()
        out = {dim: pts[dimension == dim].sum(axis=0) / weights[dim] for dim in DIMENSIONS}
        total = pts.sum(axis=0)
        out.update(total=total, grade=self.grade(total), sharing_position=total / 100.0)
        return pd.DataFrame(out, index=features.index)

    def grade(self, totals) -> np.ndarray:
        """The grade of each total (0-100): the grade with the highest minimum at or below it."""
        check_is_fitted(self, "grades_")
        thresholds = np.array([g[1] for g in self.grades_][::-1], dtype=float)
        labels = np.array([g[0] for g in self.grades_][::-1])
        return labels[np.searchsorted(thresholds, np.asarray(totals, dtype=float) + 1e-9, side="right") - 1]

    def table(self) -> pd.DataFrame:
        """The scorecard as a table: dimension, indicator, feature, weight, max points, rule, labels."""
        check_is_fitted(self, "indicators_")
        t = self.indicators_
        return t.assign(rule=t["kind"] + " " + t["params"].astype(str))[
            ["dimension", "name", "feature", "weight", "max_points", "rule", "missing", "label_zh", "label_en"]
        ]

    @property
    def provenance(self) -> dict:
        check_is_fitted(self, "indicators_")
        return {"scorecard": f"{self.spec_.get('name')}-v{self.spec_.get('version')}", "scorecard_hash": self.hash_}
