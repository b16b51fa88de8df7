"""Renewal model: the probability that an owner keeps paying renewal fees, stage by stage.

A discrete-time hazard model. Each patent contributes one row per fee stage it was at risk of
(all earlier fees paid) and whose due date plus grace is observed; the label is 1 when the fee of
that stage was not paid (the patent lapsed there). Stages not yet due at the observation date are
right-censored: they contribute no row, so the model never counts an unobserved fee as unpaid.
LightGBM learns the hazard h_k(x) with the stage as a feature; then

* survival (fee k paid):        S_k = Π_{j ≤ k} (1 − h_j)
* expected life from the anchor: Σ_k S_{k−1} h_k (due_k + grace) + S_K × statutory end
* quality percentile:            rank of S_K among the training patents (Ocean Tomo IPQ idea)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import load_yaml
from ipvalue.exceptions import AssumptionError
from ipvalue.features import PatentFeatureBuilder
from ipvalue.frame import as_patent_frame
from ipvalue.models.output import explained, feature_columns
from ipvalue.features.builders import DAYS_PER_YEAR

DEFAULT_PARAMS = {
    "n_estimators": 300,
    "learning_rate": 0.02,
    "num_leaves": 7,
    "min_child_samples": 200,
    "reg_lambda": 5.0,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "random_state": 0,
    "verbose": -1,
    "n_jobs": 2,
}


@dataclass(frozen=True)
class FeeSchedule:
    """Fee stages: ``due_years`` after ``anchor`` ('grant' or 'filing'), plus ``grace_days``."""

    name: str
    anchor: str
    due_years: tuple[float, ...]
    grace_days: int

    @classmethod
    def load(cls, name: str = "us-maintenance") -> "FeeSchedule":
        raw, origin = load_yaml("fee-schedules")
        schedules = raw["schedules"]
        if name not in schedules:
            raise AssumptionError(f"No fee schedule {name!r} in {origin}. Fix: use one of {sorted(schedules)} or add it.")
        s = schedules[name]
        if s["anchor"] not in ("grant", "filing") or list(s["due_years"]) != sorted(s["due_years"]):
            raise AssumptionError(f"Fee schedule {name!r} needs anchor 'grant' or 'filing' and increasing due_years.")
        return cls(name, s["anchor"], tuple(float(d) for d in s["due_years"]), int(s["grace_days"]))

    @property
    def n_stages(self) -> int:
        return len(self.due_years)

    def anchor_dates(self, frame: pd.DataFrame) -> pd.Series:
        return frame["grant_date"] if self.anchor == "grant" else frame["filing_date"]

    def observed(self, frame: pd.DataFrame, observed_until) -> np.ndarray:
        """Boolean (n_patents, n_stages): the stage's due date plus grace is on or before the date."""
        anchor = self.anchor_dates(frame)
        limit = pd.Timestamp(observed_until)
        return np.column_stack([
            (anchor + pd.to_timedelta(d * DAYS_PER_YEAR + self.grace_days, unit="D") <= limit).to_numpy() for d in self.due_years
        ])


def stage_rows(features: pd.DataFrame, fees_paid: pd.Series, observed: np.ndarray) -> pd.DataFrame:
    """Person-period expansion: one row per patent and observed stage at risk.

    Returns the features with ``stage`` (1..K), ``lapsed`` (0/1) and ``patent_row`` (position).
    """
    paid = fees_paid.to_numpy()
    parts = []
    for k in range(1, observed.shape[1] + 1):
        at_risk = (paid >= k - 1) & observed[:, k - 1]
        rows = features[at_risk].assign(stage=float(k), lapsed=(paid[at_risk] == k - 1).astype(int), patent_row=np.flatnonzero(at_risk))
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


class RenewalModel(BaseEstimator):
    """LightGBM discrete-time hazard model of renewal-fee payment (common valuer contract).

    Parameters
    ----------
    feature_spec : str, Path or dict, default="renewal-v1"
    fee_schedule : str, default="us-maintenance"
        A schedule in ``ipvalue/assumptions/fee-schedules.yaml`` (``cn-annual`` for 年费 data).
    observed_until : date-like
        The data's observation date: later stages are censored.
    feature_date : date-like, default=None
        Valuation date of the features (default: ``observed_until``); the renewal spec holds
        attributes fixed at grant, so it does not change them.
    params : dict, default=None
        LightGBM parameters over :data:`DEFAULT_PARAMS`.
    data_dir : str or Path, default=None

    Attributes
    ----------
    features_ : PatentFeatureBuilder
    booster_ : lightgbm.LGBMClassifier
    train_survival_ : numpy.ndarray
        Sorted S_K of the training patents (for the quality percentile).
    feature_medians_ : dict
        Training medians, for reason codes.
    """

    def __init__(self, feature_spec="renewal-v1", *, fee_schedule="us-maintenance", observed_until=None, feature_date=None, params=None, data_dir=None):
        self.feature_spec = feature_spec
        self.fee_schedule = fee_schedule
        self.observed_until = observed_until
        self.feature_date = feature_date
        self.params = params
        self.data_dir = data_dir

    def fit(self, X: pd.DataFrame, y) -> "RenewalModel":
        """Fit on PatentFrame records ``X`` and ``y`` = number of fee stages paid (0..K)."""
        import lightgbm as lgb

        if self.observed_until is None:
            raise ValueError("RenewalModel needs 'observed_until' (the data's observation date) to censor fee stages. Got None.")
        self.schedule_ = FeeSchedule.load(self.fee_schedule)
        y = pd.Series(np.asarray(y), index=X.index)
        bad = y.isna() | (y < 0)
        if bad.any():
            first = bad.idxmax()
            raise ValueError(f"The renewal label (fees paid) must be a count >= 0. Got {y[first]:g} at row {first} ({X.loc[first, 'patent_id']}).")
        y = y.clip(upper=self.schedule_.n_stages)
        self.features_ = PatentFeatureBuilder(self.feature_spec, valuation_date=self.feature_date or self.observed_until, data_dir=self.data_dir)
        matrix = self.features_.fit_transform(X)
        frame = as_patent_frame(X, passthrough=self.features_.spec_.passthrough)
        rows = stage_rows(matrix, y, self.schedule_.observed(frame, self.observed_until))
        self.feature_names_ = [*matrix.columns, "stage"]
        monotone = self.features_.spec_.monotone
        # A feature that raises value lowers the lapse hazard: constrain the hazard the other way.
        constraints = [-monotone.get(c, 0) for c in matrix.columns] + [0]
        params = {**DEFAULT_PARAMS, **(self.params or {}), "monotone_constraints": constraints}
        self.booster_ = lgb.LGBMClassifier(**params).fit(rows[self.feature_names_], rows["lapsed"])
        self.stage_counts_ = rows.groupby("stage")["lapsed"].agg(["size", "mean"]).rename(columns={"size": "rows", "mean": "lapse_rate"})
        self.train_survival_ = np.sort(self._survival_matrix(matrix)[:, -1])
        self.feature_medians_ = matrix.select_dtypes("number").median().to_dict()
        return self

    # -- predictions -----------------------------------------------------------------------

    def _stage_matrix(self, matrix: pd.DataFrame, stage: int) -> pd.DataFrame:
        return matrix.assign(stage=float(stage))[self.feature_names_]

    def stage_hazards(self, matrix: pd.DataFrame) -> np.ndarray:
        """The lapse hazard of every fee stage, shape (n_patents, n_stages), for a feature matrix
        (:meth:`transform_features`): P(fee k unpaid | fees before k paid)."""
        return np.column_stack([self.booster_.predict_proba(self._stage_matrix(matrix, k))[:, 1] for k in range(1, self.schedule_.n_stages + 1)])

    def _survival_matrix(self, matrix: pd.DataFrame) -> np.ndarray:
        return np.cumprod(1.0 - self.stage_hazards(matrix), axis=1)

    def transform_features(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "booster_")
        return self.features_.transform(X)

    def predict_survival(self, X: pd.DataFrame) -> pd.DataFrame:
        """P(fee k paid) for every stage: columns ``p_fee_1 .. p_fee_K``."""
        s = self._survival_matrix(self.transform_features(X))
        return pd.DataFrame(s, index=X.index, columns=[f"p_fee_{k}" for k in range(1, s.shape[1] + 1)])

    def _prepare(self, X: pd.DataFrame) -> dict:
        """Features, hazards and the anchor / expiry facts of ``X``, built once per call."""
        check_is_fitted(self, "booster_")
        frame = as_patent_frame(X, passthrough=self.features_.spec_.passthrough)
        built = self.features_.build(frame)
        anchor = self.schedule_.anchor_dates(frame)
        ends = np.array(self.schedule_.due_years) + self.schedule_.grace_days / DAYS_PER_YEAR
        full = ((built.extras["expiry_date"] - anchor).dt.days / DAYS_PER_YEAR).to_numpy()
        return {
            "matrix": built.matrix, "hazards": self.stage_hazards(built.matrix), "anchor": anchor, "ends": ends,
            "full": np.where(np.isnan(full), ends[-1], np.maximum(full, ends[-1])),
        }

    def _expected_life_after(self, prep: dict, age_years) -> np.ndarray:
        """Expected years of life left at ``age_years`` after the anchor, for a patent alive then.

        Stages due before that age were paid; a lapse at a later stage k ends the right at its due
        date plus grace; a patent paying every fee lives to its statutory expiry.
        """
        h, ends, full = prep["hazards"], prep["ends"], prep["full"]
        age = np.broadcast_to(np.asarray(age_years, float), (len(h),))
        h_future = np.where(ends[None, :] > age[:, None], h, 0.0)
        alive_before = np.column_stack([np.ones(len(h)), np.cumprod(1 - h_future, axis=1)[:, :-1]])
        remaining = (alive_before * h_future * (ends[None, :] - age[:, None])).sum(axis=1) + np.prod(1 - h_future, axis=1) * (full - age)
        return np.maximum(remaining, 0.0)

    def expected_life_years(self, X: pd.DataFrame) -> pd.Series:
        """Expected life in years from the anchor date (grant for US maintenance fees)."""
        return pd.Series(self._expected_life_after(self._prepare(X), 0.0), index=X.index, name="expected_life_years")

    def expected_remaining_life(self, X: pd.DataFrame, valuation_date) -> pd.Series:
        """Expected economic life left at ``valuation_date`` for a patent in force then (every fee
        due so far paid): the input the income approach takes as ``economic_life_years``.
        Missing where the anchor date (e.g. the grant of a pending application) is unknown."""
        return pd.Series(self._remaining_life_at(self._prepare(X), valuation_date), index=X.index, name="economic_life_years")

    def _remaining_life_at(self, prep: dict, valuation_date) -> np.ndarray:
        age = ((pd.Timestamp(valuation_date) - prep["anchor"]).dt.days / DAYS_PER_YEAR).to_numpy()
        life = self._expected_life_after(prep, np.nan_to_num(age))
        return np.where(np.isnan(age), np.nan, life)

    def quality_percentile(self, X: pd.DataFrame) -> pd.Series:
        """Percentile (0-1) of P(every fee paid) among the training patents."""
        s = np.cumprod(1.0 - self._prepare(X)["hazards"], axis=1)[:, -1]
        return pd.Series(self._percentile(s), index=X.index, name="quality_percentile")

    def _percentile(self, s: np.ndarray) -> np.ndarray:
        ref = self.train_survival_
        return (np.searchsorted(ref, s, side="left") + np.searchsorted(ref, s, side="right")) / (2.0 * len(ref))

    def output_frame(self, frame: pd.DataFrame, *, explain: str = "all", explain_rows=None, reason_stage: int = 2, valuation_date=None) -> pd.DataFrame:
        """Everything a scorer or a valuation needs per patent, from one feature build:
        ``p_fee_k``, ``expected_life_years``, ``quality_percentile``, with ``valuation_date`` also
        ``economic_life_years`` (:meth:`expected_remaining_life`), the features
        (``feature_<name>``, for stability monitoring) and the explanation columns (SHAP on the
        log-odds of lapsing at ``reason_stage``, for the ``explain_rows`` mask or all rows; see
        :func:`ipvalue.models.output.explained`)."""
        prep = self._prepare(frame)
        survival = np.cumprod(1.0 - prep["hazards"], axis=1)
        out = pd.DataFrame(survival, index=frame.index, columns=[f"p_fee_{k}" for k in range(1, survival.shape[1] + 1)])
        out["expected_life_years"] = self._expected_life_after(prep, 0.0)
        out["quality_percentile"] = self._percentile(survival[:, -1])
        if valuation_date is not None:
            out["economic_life_years"] = self._remaining_life_at(prep, valuation_date)
        contributions = lambda m: self._contributions(m, reason_stage)  # noqa: E731
        return pd.concat([out, feature_columns(prep["matrix"]), explained(contributions, prep["matrix"], explain, explain_rows)], axis=1)

    def contributions(self, X: pd.DataFrame, *, stage: int = 2) -> pd.DataFrame:
        """SHAP contributions (LightGBM ``pred_contrib``) to the log-odds of lapsing at ``stage``.

        Columns: one per feature plus ``expected_value``; each row sums to the raw log-odds.
        Negative contributions raise the probability of renewal.
        """
        return self._contributions(self.transform_features(X), stage)

    def _contributions(self, features: pd.DataFrame, stage: int) -> pd.DataFrame:
        contrib = self.booster_.predict(self._stage_matrix(features, stage), pred_contrib=True)
        out = pd.DataFrame(contrib, index=features.index, columns=[*self.feature_names_, "expected_value"])
        # the stage is fixed here: its share joins the base value, so each row still sums to the log-odds
        return out.drop(columns=["stage"]).assign(expected_value=out["expected_value"] + out["stage"])
