"""Value regressor: LightGBM on log appraisal value, monotone in the spec's directions, with
split-conformal P10 / P50 / P90 intervals.

Banks that hold past external appraisals have natural labels. The model learns log(value); a
calibration part of the training data, held out by group (package / loan, so no leakage of a
product's patents across the split), gives the absolute log residuals whose conformal quantile
widens the point prediction into an interval with guaranteed marginal coverage ≥ 1 − alpha
(Lei et al. 2018). LightGBM refuses monotone constraints with its quantile objective, which is
why the interval does not come from quantile models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupShuffleSplit
from sklearn.utils.validation import check_is_fitted

from ipvalue.features import PatentFeatureBuilder
from ipvalue.models.output import explained, feature_columns
from ipvalue.models.threads import predict_options
from ipvalue.methods.base import check_coverage, interval_frame

DEFAULT_PARAMS = {
    "n_estimators": 400,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 30,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "random_state": 0,
    "verbose": -1,
    "n_jobs": 2,
}


def conformal_quantile(residuals: np.ndarray, alpha: float) -> float:
    """The ⌈(n + 1)(1 − alpha)⌉-th smallest absolute residual (finite-sample split conformal)."""
    r = np.sort(np.abs(np.asarray(residuals, float)))
    k = int(np.ceil((len(r) + 1) * (1 - alpha)))
    return float(r[min(k, len(r)) - 1])


class ValueRegressor(BaseEstimator):
    """Appraisal-value model (the valuer contract of :mod:`ipvalue.valuer`).

    Its money figures are ``market_value`` only when its labels are market prices or appraisals
    of market value; trained on synthetic labels it is a demonstration (see the run's
    ``data_origin`` tag).

    Parameters
    ----------
    feature_spec : str, Path or dict, default="core-v1"
    valuation_date : date-like, default=None
    alpha : float, default=0.2
        Miscoverage of the interval: 0.2 gives P10-P90.
    calibration_fraction : float, default=0.25
        Share of groups held out for conformal calibration.
    group_column : str, default="package_id"
        Rows sharing it stay on one side of the calibration split (the patent id when missing).
    params : dict, default=None
        LightGBM parameters over :data:`DEFAULT_PARAMS`.
    data_dir : str or Path, default=None
    """

    value_type = "market_value"

    def __init__(self, feature_spec="core-v1", *, valuation_date=None, alpha=0.2, calibration_fraction=0.25, group_column="package_id", params=None, data_dir=None):
        self.feature_spec = feature_spec
        self.valuation_date = valuation_date
        self.alpha = alpha
        self.calibration_fraction = calibration_fraction
        self.group_column = group_column
        self.params = params
        self.data_dir = data_dir

    def fit(self, X: pd.DataFrame, y) -> "ValueRegressor":
        """Fit on PatentFrame records and appraised values ``y`` in RMB (all > 0)."""
        import lightgbm as lgb

        if not 0 < self.alpha < 1:
            raise ValueError(f"The 'alpha' of ValueRegressor must be in (0, 1). Got {self.alpha}.")
        y = pd.Series(np.asarray(y, dtype=float), index=X.index)
        bad = y.isna() | (y <= 0)
        if bad.any():
            raise ValueError(
                f"Appraised values must be positive RMB amounts: {int(bad.sum())} are not, e.g. row {bad.idxmax()} "
                f"({X.loc[bad.idxmax(), 'patent_id']}) = {y[bad.idxmax()]!r}. Fix: train only on patents with an appraisal."
            )
        self.features_ = PatentFeatureBuilder(self.feature_spec, valuation_date=self.valuation_date, data_dir=self.data_dir)
        matrix = self.features_.fit_transform(X)
        groups = X[self.group_column].fillna(X["patent_id"]) if self.group_column in X.columns else X["patent_id"]
        fit_idx, cal_idx = next(GroupShuffleSplit(n_splits=1, test_size=self.calibration_fraction, random_state=0).split(matrix, groups=groups))
        monotone = self.features_.spec_.monotone
        self.monotone_constraints_ = [monotone[c] if matrix[c].dtype != "category" else 0 for c in matrix.columns]
        params = {**DEFAULT_PARAMS, **(self.params or {}), "monotone_constraints": self.monotone_constraints_}
        log_y = np.log(y.to_numpy())
        self.booster_ = lgb.LGBMRegressor(**params).fit(matrix.iloc[fit_idx], log_y[fit_idx])
        residuals = log_y[cal_idx] - self.booster_.predict(matrix.iloc[cal_idx])
        self.calibration_residuals_ = np.sort(np.abs(residuals))
        self.conformal_halfwidth_ = conformal_quantile(residuals, self.alpha)
        self.n_calibration_ = len(cal_idx)
        self.feature_medians_ = matrix.select_dtypes("number").median().to_dict()
        return self

    def predict_log(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "booster_")
        matrix = self.features_.transform(X)
        return self.booster_.predict(matrix, **predict_options(len(matrix)))

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """P50 value in RMB."""
        return pd.Series(np.exp(self.predict_log(X)), index=X.index, name="value_p50_rmb")

    def predict_interval(self, X: pd.DataFrame, *, coverage: float | None = None) -> pd.DataFrame:
        """``low_rmb, p50_rmb, high_rmb``: the split-conformal interval with marginal ``coverage``
        (default ``1 - alpha``, 0.8: P10-P90), from the calibration residuals kept at fit."""
        return self._interval(self.predict_log(X), X.index, coverage)

    def _interval(self, mid: np.ndarray, index, coverage: float | None = None) -> pd.DataFrame:
        check_is_fitted(self, "calibration_residuals_")
        alpha = self.alpha if coverage is None else 1 - check_coverage(coverage)
        q = conformal_quantile(self.calibration_residuals_, alpha)
        return interval_frame(np.exp(mid - q), np.exp(mid), np.exp(mid + q), index)

    @property
    def scored_interval_columns(self) -> list[str]:
        """The interval columns of :meth:`score_frame`, named by alpha: ``value_p10_rmb,
        value_p50_rmb, value_p90_rmb`` for the default 0.2."""
        lo, hi = round(100 * self.alpha / 2), round(100 * (1 - self.alpha / 2))
        return [f"value_p{lo}_rmb", "value_p50_rmb", f"value_p{hi}_rmb"]

    @property
    def provenance(self) -> dict:
        """The feature spec and the interval's calibration."""
        check_is_fitted(self, "booster_")
        return {**self.features_.provenance, "value_model_alpha": self.alpha, "value_model_calibration_patents": self.n_calibration_}

    def output_frame(self, frame: pd.DataFrame, *, explain: str = "all", explain_rows=None) -> pd.DataFrame:
        """Per patent: the interval in RMB (``value_p10_rmb`` ...), the features
        (``feature_<name>``, for stability monitoring) and the explanation columns (SHAP in log
        value, for the ``explain_rows`` mask or all rows; see :func:`ipvalue.models.output.explained`)."""
        matrix = self.features_.transform(frame)  # built once for the interval and the explanation
        interval = self._interval(self.booster_.predict(matrix, **predict_options(len(matrix))), frame.index).set_axis(self.scored_interval_columns, axis=1)
        return pd.concat([interval, feature_columns(matrix), explained(self._contributions, matrix, explain, explain_rows)], axis=1)

    def monotonicity_violations(self, X: pd.DataFrame, *, step: float = 0.25) -> pd.Series:
        """For each constrained feature, the number of patents whose prediction moves against the
        spec's direction when the feature rises by ``step`` × its spread (0 everywhere = none)."""
        matrix = self.features_.transform(X)
        base = self.booster_.predict(matrix)
        out = {}
        for name, sign in zip(matrix.columns, self.monotone_constraints_):
            if sign == 0 or matrix[name].isna().all():
                continue
            bumped = matrix.copy()
            spread = float(np.nanstd(matrix[name])) or 1.0
            bumped[name] = matrix[name] + step * spread
            moved = (self.booster_.predict(bumped) - base) * sign
            out[name] = int((moved < -1e-12).sum())
        return pd.Series(out, name="violations")

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """SHAP contributions to log value (+ ``expected_value``); each row sums to the log P50.
        ``exp(contribution)`` is the factor by which the feature multiplies the value."""
        return self._contributions(self.features_.transform(X))

    def _contributions(self, matrix: pd.DataFrame) -> pd.DataFrame:
        c = self.booster_.predict(matrix, pred_contrib=True, **predict_options(len(matrix)))
        return pd.DataFrame(c, index=matrix.index, columns=[*matrix.columns, "expected_value"])
