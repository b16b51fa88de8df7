"""Baselines, always trained and logged beside the champion as challengers.

Each scores patents (higher = more likely to keep paying / more valuable) from the same
PatentFrame records, with ``fit(X, y)`` / ``predict(X)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ipvalue.features import PatentFeatureBuilder


class ClaimsOnlyRule(BaseEstimator):
    """The naive rule: more claims, more value. ``predict`` returns the claim count."""

    def fit(self, X, y=None):
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        return pd.to_numeric(X["claims_total"], errors="coerce").fillna(0.0).rename("score")


class CompositeIndex(BaseEstimator):
    """OECD-style composite quality index: the mean of the cohort percentiles the spec builds
    (forward citations, family, claims, ... as available), like quality_index_4/6."""

    def __init__(self, feature_spec="core-v1", *, valuation_date=None, data_dir=None):
        self.feature_spec = feature_spec
        self.valuation_date = valuation_date
        self.data_dir = data_dir

    def fit(self, X, y=None):
        self.features_ = PatentFeatureBuilder(self.feature_spec, valuation_date=self.valuation_date, data_dir=self.data_dir).fit(X)
        return self

    def predict(self, X) -> pd.Series:
        pct = self.features_.transform(X).filter(regex="_pct$")
        usable = pct.columns[pct.notna().any()]
        return pct[usable].mean(axis=1).fillna(0.5).rename("score")


class LogisticBaseline(BaseEstimator):
    """Logistic regression on the same features as the champion (one-hot categories, imputed,
    standardised). ``predict`` returns the probability of the positive class."""

    def __init__(self, feature_spec="renewal-v1", *, valuation_date=None, data_dir=None, owner_book=None):
        self.feature_spec = feature_spec
        self.valuation_date = valuation_date
        self.data_dir = data_dir
        self.owner_book = owner_book  # the champion's owner book, so both see the same features

    def _design(self, X) -> pd.DataFrame:
        m = self.features_.transform(X)
        cats = list(m.select_dtypes("category").columns)
        design = pd.get_dummies(m, columns=cats, dtype=float)
        return design.reindex(columns=self.columns_, fill_value=0.0) if hasattr(self, "columns_") else design

    def fit(self, X, y):
        self.features_ = PatentFeatureBuilder(self.feature_spec, valuation_date=self.valuation_date, data_dir=self.data_dir, owner_book=self.owner_book).fit(X)
        design = self._design(X)
        self.columns_ = list(design.columns)
        keep = [c for c in self.columns_ if design[c].notna().any()]
        self.columns_ = keep
        self.model_ = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000)).fit(design[keep], np.asarray(y))
        return self

    def predict(self, X) -> pd.Series:
        return pd.Series(self.model_.predict_proba(self._design(X))[:, 1], index=X.index, name="score")
