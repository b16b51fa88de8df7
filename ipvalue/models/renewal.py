"""Renewal model: the probability that an owner keeps paying renewal fees, stage by stage.

A discrete-time hazard model. Each patent contributes one row per fee stage it was at risk of
(all earlier fees paid; due after its grant and, for filing-anchored CN 年费, before its expiry)
and whose due date plus grace is observed; the label is 1 when the fee of that stage was not paid
(the patent lapsed there). Stages not yet due at the observation date are right-censored: they
contribute no row, so the model never counts an unobserved fee as unpaid. Fees due on or before
the grant were paid with it (left truncation): their hazard is 0, as is that of a fee due after
the expiry.
LightGBM learns the hazard h_k(x) with the stage as a feature; then

* survival (fee k paid):        S_k = Π_{j ≤ k} (1 − h_j)
* expected life from the anchor: Σ_k S_{k−1} h_k (due_k + grace) + S_K × statutory end
* quality percentile:            rank of S_K among the training patents (Ocean Tomo IPQ idea)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ipvalue.config import load_yaml
from ipvalue.exceptions import AssumptionError, SpecError
from ipvalue.features import PatentFeatureBuilder
from ipvalue.features.builders import DAYS_PER_YEAR, add_years
from ipvalue.features.owners import LayeredOwnerBook, check_owner_book, owner_book_from_frame
from ipvalue.frame import COLUMNS, as_patent_frame, validate_patent_frame
from ipvalue.models.life import (
    FEES_PAID_TO_TERM, CNLifeTable, FeeLapseEvents, cn_annual_fee_dates, cn_annual_fee_label, documented_paid_until, years_after,
)
from ipvalue.models.output import explained, feature_columns
from ipvalue.models.threads import predict_options

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
    lapse_at: str = "end_of_grace"

    @classmethod
    def load(cls, name: str = "us-maintenance") -> "FeeSchedule":
        raw, origin = load_yaml("fee-schedules")
        schedules = raw["schedules"]
        if name not in schedules:
            raise AssumptionError(f"No fee schedule {name!r} in {origin}. Fix: use one of {sorted(schedules)} or add it.")
        s = schedules[name]
        if s["anchor"] not in ("grant", "filing") or list(s["due_years"]) != sorted(s["due_years"]):
            raise AssumptionError(f"Fee schedule {name!r} needs anchor 'grant' or 'filing' and increasing due_years.")
        if s.get("lapse_at", "end_of_grace") not in ("due", "end_of_grace"):
            raise AssumptionError(f"Fee schedule {name!r}: 'lapse_at' must be 'due' or 'end_of_grace'. Got {s.get('lapse_at')!r}.")
        return cls(name, s["anchor"], tuple(float(d) for d in s["due_years"]), int(s["grace_days"]), s.get("lapse_at", "end_of_grace"))

    @property
    def lapse_offsets_years(self) -> np.ndarray:
        """Years after the anchor at which an unpaid fee of each stage ends the right."""
        grace = self.grace_days / DAYS_PER_YEAR if self.lapse_at == "end_of_grace" else 0.0
        return np.array(self.due_years) + grace

    @property
    def n_stages(self) -> int:
        return len(self.due_years)

    def anchor_dates(self, frame: pd.DataFrame) -> pd.Series:
        return frame["grant_date"] if self.anchor == "grant" else frame["filing_date"]

    def due_dates(self, frame: pd.DataFrame) -> np.ndarray:
        """Due date of every stage, shape (n_patents, n_stages), datetime64 (NaT without an anchor):
        the calendar anniversary for whole years (CN 年费), anchor + years × 365.25 days otherwise."""
        anchor = self.anchor_dates(frame)
        due = [add_years(anchor, d) if float(d).is_integer() else anchor + pd.to_timedelta(d * DAYS_PER_YEAR, unit="D") for d in self.due_years]
        return np.column_stack([d.to_numpy().astype("datetime64[ns]") for d in due])

    def paid_with_grant(self, frame: pd.DataFrame, due: np.ndarray | None = None) -> np.ndarray:
        """(n_patents, n_stages): the stage fell due on or before the grant date. For a schedule
        anchored at filing (CN 年费) the fees of those years are paid with the grant, so a granted
        right is never at risk of lapsing there (left truncation). False for pending patents.
        ``due``: :meth:`due_dates` of the frame when the caller has them."""
        grant = frame["grant_date"].to_numpy()[:, None]
        return (self.due_dates(frame) if due is None else due) <= grant

    def payable(self, frame: pd.DataFrame, expiry) -> np.ndarray:
        """(n_patents, n_stages): the fee is one the owner of the granted right must pay to keep it:
        due after the grant date and, for a filing-anchored schedule (CN 年费, term fixed from the
        filing date by 专利法 第42条), before the statutory expiry. Grant-anchored (US) schedules
        are not cut at the computed expiry: US terms also depend on term adjustment and the
        pre-1995 17-years-from-grant rule that the data often lack, and on the university data
        owners paid 25 of the 50 third fees falling due after 20 years from filing."""
        due = self.due_dates(frame)
        after_grant = due > frame["grant_date"].to_numpy()[:, None]
        if self.anchor != "filing":
            return after_grant
        return after_grant & (due < pd.to_datetime(expiry).to_numpy()[:, None])

    def observed(self, frame: pd.DataFrame, observed_until) -> np.ndarray:
        """Boolean (n_patents, n_stages): the stage's due date plus grace is on or before the date."""
        return self.due_dates(frame) + np.timedelta64(self.grace_days, "D") <= np.datetime64(pd.Timestamp(observed_until))


def life_table_estimate(model: "RenewalModel", source: str, *, min_rows: int = 50) -> dict:
    """A CN life table (the schema of ``cn-life-table.yaml``) estimated from the lapses a model
    trained on CN annual fees saw: hazard(type, age) = lapses / patents at risk at the fee due at
    filing anniversary ``age`` (Kaplan-Meier's discrete hazard, with the same left truncation and
    censoring as the model). An age with fewer than ``min_rows`` patents at risk takes the nearest
    estimated age's hazard, a type absent from the data keeps the current table's, and each band
    says which. A bank reviews it and installs it as ``$IPVALUE_CONFIG_DIR/assumptions/cn-life-table.yaml``.
    """
    if not model.trained_on_cn_fees:
        raise ValueError(f"A life table is estimated from CN annual fees; the model's schedule is {model.schedule_.name!r}.")
    current = model.life_table_
    counts = model.stage_counts_.reset_index()
    counts["age"] = np.asarray(model.schedule_.due_years)[counts["stage"].astype(int).to_numpy() - 1].astype(int)
    types = {}
    for ptype, hazards in current.hazards.items():
        c = counts[(counts["patent_type"] == ptype) & (counts["rows"] >= min_rows)].set_index("age")
        bands = []
        for age in range(1, len(hazards) + 1):
            if c.empty:
                bands.append({"ages": [age, age], "value": float(hazards[age - 1]), "source": f"kept from {current.origin}: no {ptype} in the data"})
                continue
            nearest = int(c.index[np.abs(c.index.to_numpy() - age).argmin()])
            r = c.loc[nearest]
            where = "" if nearest == age else f" (age {age}: fewer than {min_rows} at risk; nearest estimated age {nearest})"
            bands.append({"ages": [age, age], "value": round(float(r["lapse_rate"]), 4),
                          "source": f"estimated: {int(r['lapses'])} lapses of {int(r['rows'])} {ptype} patents at risk at age {nearest}, {source}{where}"})
        types[ptype] = {"term_source": f"as in {current.origin}", "bands": bands}
    return {"name": "cn-life-table", "version": f"estimated from {source}", "method": f"discrete hazards from a CN annual-fee model's training rows ({model.schedule_.name})", "types": types}


def level_shift(target_hazard: np.ndarray, reference_scores: np.ndarray, *, iterations: int = 50) -> np.ndarray:
    """The logit shift per target hazard so that mean(sigmoid(logit(target) + shift + z)) over the
    reference scores ``z`` equals the target (Newton's method, vectorised over the targets)."""
    base = logit(np.clip(target_hazard, 1e-9, 1 - 1e-9))[:, None]
    shift = np.zeros_like(base)
    z = np.asarray(reference_scores, float)[None, :]
    for _ in range(iterations):
        p = expit(base + shift + z)
        step = (p.mean(axis=1, keepdims=True) - target_hazard[:, None]) / np.maximum((p * (1 - p)).mean(axis=1, keepdims=True), 1e-12)
        shift -= step
        if np.abs(step).max() < 1e-10:
            break
    return (base + shift)[:, 0]


def remembered_level_shift(target_hazard: np.ndarray, reference_scores: np.ndarray) -> np.ndarray:
    """:func:`level_shift`, solved once per process for the same targets and reference scores (a
    model's life-table level is the same at every valuation); read-only."""
    target, reference = np.asarray(target_hazard), np.asarray(reference_scores)
    return _level_shift_of(target.tobytes(), target.dtype.str, reference.tobytes(), reference.dtype.str)


@functools.lru_cache(maxsize=32)
def _level_shift_of(target: bytes, target_dtype: str, reference: bytes, reference_dtype: str) -> np.ndarray:
    level = level_shift(np.frombuffer(target, dtype=target_dtype), np.frombuffer(reference, dtype=reference_dtype))
    level.flags.writeable = False
    return level


def patent_frame(X: pd.DataFrame) -> pd.DataFrame:
    """``X`` as a PatentFrame: validated strictly unless it already has every contract column."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"RenewalModel expects a PatentFrame (pandas DataFrame). Got {type(X).__name__}.")
    if all(c.name in X.columns for c in COLUMNS) and str(X["filing_date"].dtype).startswith("datetime64"):
        return X
    return validate_patent_frame(X, strict=True, source="RenewalModel input").valid.set_axis(X.index)


def lapse_dates(frame: pd.DataFrame, fees_paid: pd.Series, schedule: FeeSchedule, observed_until) -> pd.Series:
    """The date each patent's right ended for an unpaid fee, from the count of fees paid.

    A patent that paid ``k`` fees lapsed at stage ``k + 1``: its due date (plus grace when the
    schedule's right ends at the end of grace), when that is observed by ``observed_until``; NaT
    when every fee was paid or the next stage is censored.
    """
    paid = np.asarray(fees_paid, dtype="float64")
    k = schedule.n_stages
    grace = np.timedelta64(schedule.grace_days if schedule.lapse_at == "end_of_grace" else 0, "D")
    ends = np.column_stack([schedule.due_dates(frame) + grace, np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[ns]")])
    stage = np.clip(np.nan_to_num(paid, nan=k), 0, k).astype(int)
    when = pd.Series(ends[np.arange(len(frame)), stage], index=frame.index)
    return when.where(when <= pd.Timestamp(observed_until))


@dataclass
class RenewalOutputs:
    """A renewal model's outputs for a valuation (see :meth:`RenewalModel.valuation_outputs`).

    Attributes
    ----------
    economic_life_years : pandas.Series
        Expected years in force after the valuation date (area under the fee-survival curve, within
        the legal term; prepaid fees without risk). The fee-lapse life, not the period of excess
        returns: :func:`ipvalue.models.life.economic_life` gives both.
    survival : pandas.DataFrame
        ``s_1 .. s_T``: P(in force at the end of year t), 0 once the legal term has ended.
    p_fee : pandas.DataFrame
        ``p_fee_1 .. p_fee_K``: P(fee k of the model's schedule paid), from the grant.
    contributions : pandas.DataFrame
        Each feature's probability contribution to P(fee ``reason_stage`` paid) of the model's
        schedule, plus ``expected_value`` (its baseline): each row sums to that probability
        (``p_fee_<reason_stage>``). For validators; what a report explains is the headline.
    features : pandas.DataFrame
        The features, built as of the valuation date.
    reason_stage : int
        The model's fee stage the headline of non-CN patents speaks of.
    headline : pandas.DataFrame
        Per patent: ``label_zh``, ``label_en`` (what the probability is, in the patent's own
        wording), ``probability``, ``stage`` (the model's stage, or for CN patents the filing
        anniversary of the fee) and ``patent_year`` (CN: the patent year the fee buys, else NaN).
        Non-CN patents: P(fee ``reason_stage`` paid). CN patents: their next annual fee at risk
        after the valuation date, P(第k年年费缴纳 | in force at the valuation date); ``年费已缴至保护期届满``
        with probability 1 when no fee is left at risk before the term ends.
    headline_contributions : pandas.DataFrame
        As ``contributions``, for the headline: each row sums to ``headline['probability']``
        (``expected_value`` is its baseline): the reasons a report gives.
    events : FeeLapseEvents
        The fee events after the valuation date the curves come from (prepaid fees without risk).
    fees_paid_until : pandas.Series
        The documented paid-until date used per patent (NaT = none).
    valuation_date : pandas.Timestamp
    """

    economic_life_years: pd.Series
    survival: pd.DataFrame  # s_1 .. s_T
    p_fee: pd.DataFrame  # p_fee_1 .. p_fee_K
    contributions: pd.DataFrame  # probability contributions to P(fee reason_stage paid) + expected_value
    features: pd.DataFrame
    reason_stage: int
    headline: pd.DataFrame | None = None
    headline_contributions: pd.DataFrame | None = None
    events: FeeLapseEvents | None = None
    fees_paid_until: pd.Series | None = None
    valuation_date: pd.Timestamp | None = None


def stage_rows(features: pd.DataFrame, fees_paid: pd.Series, observed: np.ndarray) -> pd.DataFrame:
    """Person-period expansion: one row per patent and stage at risk. ``observed`` (n_patents,
    n_stages) marks the stages a patent can contribute (:meth:`RenewalModel.at_risk`: observed,
    due after its grant and before its expiry); a stage counts when every earlier fee was paid.

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
        Valuation date of the features (default: ``observed_until``): the owner histories are
        taken up to it, in training and at prediction (the contract attributes are fixed at grant).
    params : dict, default=None
        LightGBM parameters over :data:`DEFAULT_PARAMS`.
    data_dir : str or Path, default=None
    owner_book : pandas.DataFrame, default=None
        The owners' patents with their lapse dates (a bank's export); default: the training
        patents themselves, out of fold.
    life_table : str, default="cn-life-table"
        The CN life table whose level CN patents take while the model is not trained on CN fees.
    headline_stage : int, default=2
        The fee stage its reasons, reports and ranking speak of.

    Attributes
    ----------
    features_ : PatentFeatureBuilder
    booster_ : lightgbm.LGBMClassifier
    train_survival_ : numpy.ndarray
        Sorted S_K of the training patents (for the quality percentile).
    feature_medians_ : dict
        Training medians, for reason codes.
    """

    def __init__(
        self, feature_spec="renewal-cn-v1", *, fee_schedule="us-maintenance", observed_until=None, feature_date=None, params=None, data_dir=None,
        owner_book=None, life_table="cn-life-table", headline_stage=2,
    ):
        self.feature_spec = feature_spec
        self.owner_book = owner_book
        self.life_table = life_table
        self.headline_stage = headline_stage
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
        frame = patent_frame(X)
        # The owner book: the bank's export when given, else the training patents with the date
        # each one lapsed (the owners builder keeps every patent's own outcome out of fold).
        if self.owner_book is not None:
            book = self.owner_book
        else:  # a lapse enters an owner's history once it is public: after the late period (CN rights end at the due date)
            known = lapse_dates(frame, y, self.schedule_, self.observed_until)
            if self.schedule_.lapse_at == "due":
                known = known + pd.Timedelta(days=self.schedule_.grace_days)
            book = owner_book_from_frame(frame, known)
        self.features_ = PatentFeatureBuilder(self.feature_spec, valuation_date=self.feature_date or self.observed_until, data_dir=self.data_dir, owner_book=book)
        built = self.features_.fit_build(X)
        matrix = built.matrix
        frame = as_patent_frame(X, passthrough=self.features_.spec_.passthrough)
        # at risk: observed by the data's date, due after the grant and before the expiry
        at_risk = self.schedule_.observed(frame, self.observed_until) & self.schedule_.payable(frame, built.extras["expiry_date"])
        rows = stage_rows(matrix, y, at_risk)
        self.feature_names_ = [*matrix.columns, "stage"]
        monotone = self.features_.spec_.monotone
        # A feature that raises value lowers the lapse hazard: constrain the hazard the other way.
        constraints = [-monotone.get(c, 0) for c in matrix.columns] + [0]
        params = {**DEFAULT_PARAMS, **(self.params or {}), "monotone_constraints": constraints}
        self.booster_ = lgb.LGBMClassifier(**params).fit(rows[self.feature_names_], rows["lapsed"])
        rows["patent_type"] = frame["patent_type"].astype("str").to_numpy()[rows["patent_row"].to_numpy()]
        self.stage_counts_ = rows.groupby(["stage", "patent_type"])["lapsed"].agg(["size", "sum"]).rename(columns={"size": "rows", "sum": "lapses"})
        self.stage_counts_["lapse_rate"] = self.stage_counts_["lapses"] / self.stage_counts_["rows"]
        self.train_survival_ = np.sort(np.cumprod(1.0 - self._granted_hazards(frame, matrix, built.extras["expiry_date"]), axis=1)[:, -1])
        self.feature_medians_ = matrix.select_dtypes("number").median().to_dict()
        # CN patents under a model not trained on CN 年费 data: the life table's level, the model's order
        self.life_table_ = CNLifeTable.load(self.life_table)
        if not 1 <= int(self.headline_stage) <= self.schedule_.n_stages:
            raise ValueError(f"The 'headline_stage' must be a fee stage 1..{self.schedule_.n_stages} of {self.schedule_.name}. Got {self.headline_stage!r}.")
        self.headline_stage_ = int(self.headline_stage)
        self.reference_scores_ = self._ranking_scores(matrix) if not self.trained_on_cn_fees else None
        return self

    def _ranking_scores(self, matrix: pd.DataFrame, stage_hazards: np.ndarray | None = None) -> np.ndarray:
        """The model's ranking score: log-odds of lapsing by the headline stage (fee 2 for US fees).
        Only differences matter: the level shift of the life table absorbs the mean.
        ``stage_hazards``: :meth:`stage_hazards` of ``matrix`` when the caller has them."""
        hazards = self.stage_hazards(matrix) if stage_hazards is None else stage_hazards
        lapse = 1.0 - np.cumprod(1.0 - hazards, axis=1)[:, self.headline_stage_ - 1]
        score = logit(np.clip(lapse, 1e-9, 1 - 1e-9))
        return score

    # -- predictions -----------------------------------------------------------------------

    def _stage_matrix(self, matrix: pd.DataFrame, stage) -> pd.DataFrame:
        """The model's input at a fee ``stage``: one stage for every row, or one per row."""
        return matrix.assign(stage=np.broadcast_to(np.asarray(stage, dtype="float64"), (len(matrix),)))[self.feature_names_]

    @staticmethod
    def _every_stage(matrix: pd.DataFrame, stages: int) -> tuple[pd.DataFrame, np.ndarray]:
        """The rows of ``matrix`` once per stage 1..``stages`` (stage by stage) and each row's stage:
        one LightGBM call for every stage, whose fixed cost dominates on a few patents."""
        return matrix.iloc[np.tile(np.arange(len(matrix)), stages)], np.repeat(np.arange(1, stages + 1, dtype="float64"), len(matrix))

    def stage_hazards(self, matrix: pd.DataFrame) -> np.ndarray:
        """The lapse hazard of every fee stage, shape (n_patents, n_stages), for a feature matrix
        (:meth:`transform_features`): P(fee k unpaid | fees before k paid)."""
        rows, stages = self._every_stage(matrix, self.schedule_.n_stages)
        hazards = self.booster_.predict_proba(self._stage_matrix(rows, stages), **predict_options(len(rows)))[:, 1]
        return hazards.reshape(self.schedule_.n_stages, len(matrix)).T

    def _granted_hazards(self, frame: pd.DataFrame, matrix: pd.DataFrame, expiry, due: np.ndarray | None = None,
                         stage_hazards: np.ndarray | None = None) -> np.ndarray:
        """Stage hazards of the granted right: 0 at stages paid with the grant and, for
        filing-anchored fees, at stages due after the statutory expiry (no such fee exists).
        ``stage_hazards``: :meth:`stage_hazards` of ``matrix`` when the caller has them."""
        due = self.schedule_.due_dates(frame) if due is None else due
        none_due = self.schedule_.paid_with_grant(frame, due)
        if self.schedule_.anchor == "filing":
            none_due |= due >= pd.to_datetime(expiry).to_numpy()[:, None]
        return np.where(none_due, 0.0, self.stage_hazards(matrix) if stage_hazards is None else stage_hazards)

    def at_risk(self, X: pd.DataFrame, observed_until) -> np.ndarray:
        """(n_patents, n_stages): the stages whose outcome a patent of ``X`` contributes to
        training or evaluation: observed by ``observed_until``, due after its grant and before its
        statutory expiry."""
        prep = self._prepare(X)
        return self.schedule_.observed(prep["frame"], observed_until) & self.schedule_.payable(prep["frame"], prep["expiry"])

    def transform_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """The features as of the model's feature date (training, evaluation); a valuation builds
        them as of its own date (:meth:`dated_features`)."""
        check_is_fitted(self, "booster_")
        return self.features_.transform(X)

    def predict_survival(self, X: pd.DataFrame) -> pd.DataFrame:
        """P(fee k paid) for every stage: columns ``p_fee_1 .. p_fee_K`` (of the granted right:
        fees paid with the grant count as paid)."""
        s = np.cumprod(1.0 - self._prepare(X)["hazards"], axis=1)
        return pd.DataFrame(s, index=X.index, columns=[f"p_fee_{k}" for k in range(1, s.shape[1] + 1)])

    def dated_features(self, X: pd.DataFrame, valuation_date, *, owner_book: pd.DataFrame | None = None) -> PatentFeatureBuilder:
        """The model's feature builder as of ``valuation_date``, for a valuation on that date.

        The fitted parts are kept; everything dated is taken at ``valuation_date`` (a grant up to
        it has its grant lag), and the owner history is the one known then: the model's owner book
        (its training patents, or the bank's export it was fitted with), the patents of ``X``
        themselves (an owner's patents being valued are part of its portfolio; one that has lapsed
        for unpaid fees counts from its paid-until date, else from the valuation date) and
        ``owner_book`` (a bank's export of its borrowers' portfolios, which wins for a patent it
        also lists). A patent leaves only itself out of its owner's statistics.

        Parameters
        ----------
        X : PatentFrame
        valuation_date : date-like
            Required: there is no fallback to the model's training date.
        owner_book : pandas.DataFrame, optional
            Rows of :data:`~ipvalue.features.owners.OWNER_BOOK_COLUMNS`.

        Returns
        -------
        PatentFeatureBuilder, fitted.
        """
        check_is_fitted(self, "booster_")
        when = pd.to_datetime(valuation_date, errors="coerce") if valuation_date is not None else pd.NaT
        if pd.isna(when) or isinstance(when, pd.DatetimeIndex):
            raise ValueError(f"The 'valuation_date' of a renewal valuation must be one date (YYYY-MM-DD): the features are built as of it. "
                             f"Got {valuation_date!r}.")
        vd = pd.Timestamp(when).normalize()
        if not any(f.builder == "owners" for f in self.features_.spec_.features):
            return self.features_.at_date(vd)
        frame = as_patent_frame(X, passthrough=self.features_.spec_.passthrough)
        grace = pd.Timedelta(days=int(self.features_.terms_.get("fee_grace_days", 0)))
        paid = frame["fees_paid_until"]
        unpaid = frame["grant_date"].notna() & (frame["grant_date"] <= vd) & paid.notna() & (paid + grace < vd)
        lapsed = frame["legal_status"].eq("lapsed") | unpaid
        lapse_date = paid.where(paid.notna() & (paid <= vd), vd).where(lapsed)
        tops = [check_owner_book(owner_book_from_frame(frame, lapse_date))]
        if owner_book is not None:
            tops.append(check_owner_book(owner_book))
        top = pd.concat(tops, ignore_index=True).drop_duplicates("patent_id", keep="last").reset_index(drop=True) if len(tops) > 1 else tops[0]
        base = self.features_.owner_book_
        # the model's book is summed once per date (LayeredOwnerBook), the valuation's rows added on top
        return self.features_.at_date(vd, owner_book=top if base is None else LayeredOwnerBook(base, top))

    def _prepare(self, X: pd.DataFrame) -> dict:
        """Features, hazards and the anchor / expiry facts of ``X`` as of the model's feature date
        (training, evaluation), built once per call."""
        check_is_fitted(self, "booster_")
        frame = as_patent_frame(X, passthrough=self.features_.spec_.passthrough)
        return self._prepared(frame, self.features_, None)

    def _prepare_valuation(self, X: pd.DataFrame, valuation_date, owner_book: pd.DataFrame | None = None) -> dict:
        """As :meth:`_prepare`, with the features as of ``valuation_date`` (:meth:`dated_features`;
        a missing date is an error, never the training date)."""
        check_is_fitted(self, "booster_")
        frame = as_patent_frame(X, passthrough=self.features_.spec_.passthrough)
        return self._prepared(frame, self.dated_features(frame, valuation_date, owner_book=owner_book), valuation_date)

    def _prepared(self, frame: pd.DataFrame, builder: PatentFeatureBuilder, valuation_date) -> dict:
        built = builder.build(frame)
        due = self.schedule_.due_dates(frame)
        expiry = built.extras["expiry_date"]
        raw = self.stage_hazards(built.matrix)  # predicted once: the granted right's hazards and the ranking score use them
        return {"frame": frame, "matrix": built.matrix, "due": due, "paid_with_grant": self.schedule_.paid_with_grant(frame, due),
                "stage_hazards": raw, "hazards": self._granted_hazards(frame, built.matrix, expiry, due, stage_hazards=raw), "expiry": expiry,
                "valuation_date": None if valuation_date is None else builder.valuation_date_}

    @property
    def trained_on_cn_fees(self) -> bool:
        """True when the model learnt yearly annual fees counted from the filing date (``cn-annual``,
        e.g. from a bank's CNIPA register export): its own level then applies to CN patents."""
        return self.schedule_.anchor == "filing" and self.schedule_.lapse_at == "due"

    def uses_life_table(self, X: pd.DataFrame) -> np.ndarray:
        """True for the patents whose yearly survival takes the CN life table's level: Chinese
        patents, while the model is not trained on CN annual-fee data."""
        if self.trained_on_cn_fees:
            return np.zeros(len(X), dtype=bool)
        return X["jurisdiction"].astype("str").eq("CN").to_numpy()

    def _events(self, prep: dict, start: pd.Series) -> FeeLapseEvents:
        """Every patent's fee events after ``start`` (:class:`~ipvalue.models.life.FeeLapseEvents`):
        times in years after start, hazards of lapsing there, the legal term left.

        Model path: the schedule's stages at their calendar due dates (US: 3.5, 7.5, 11.5 years
        after grant, lapse at the end of grace) with the model's hazards. Life-table path (CN
        patents, model not trained on CN data): the annual fee at each filing anniversary 1 ..
        term-1, hazard ``sigmoid(level(type, age) + z_i)`` where ``z_i`` is the model's ranking
        score and ``level`` is solved (:func:`level_shift`) so the training patents' mean hazard
        equals the table's (the table sets the level, the model only the order). Events at or
        before start are past (paid: the patent is in force at start) and events after the expiry
        never happen.
        """
        frame = prep["frame"]
        begin = pd.to_datetime(start).to_numpy()
        expiry = pd.to_datetime(prep["expiry"]).to_numpy()
        cn = self.uses_life_table(frame)
        parts = []
        model = ~cn
        if model.any():
            due = prep["due"][model]
            grace = np.timedelta64(self.schedule_.grace_days if self.schedule_.lapse_at == "end_of_grace" else 0, "D")
            stages = np.arange(1, self.schedule_.n_stages + 1, dtype=float)
            whole = self.schedule_.anchor == "filing" and all(float(d).is_integer() for d in self.schedule_.due_years)
            year = np.asarray(self.schedule_.due_years, dtype=float) + 1 if whole else np.full(self.schedule_.n_stages, np.nan)
            source = ("renewal model: hazards of the annual fees (trained on CN fee data)" if self.schedule_.anchor == "filing"
                      else "renewal model: hazards of the maintenance-fee stages")
            parts.append((model, FeeLapseEvents.build(
                times=years_after(due + grace, begin[model]), due=years_after(due, begin[model]), hazards=prep["hazards"][model],
                horizon=years_after(expiry[model], begin[model]), source=source,
                patent_year=np.broadcast_to(year, due.shape), stage=np.broadcast_to(stages, due.shape))))
        if cn.any():
            if self.features_.spec_.passthrough:
                raise SpecError(
                    f"Feature spec {self.features_.spec_.id} uses dataset-only columns {self.features_.spec_.passthrough}: it may not value "
                    "Chinese patents. Fix: use a model trained on a contract-only spec such as renewal-cn-v1."
                )
            table = self.life_table_
            z = self._ranking_scores(prep["matrix"][cn], prep["stage_hazards"][cn])
            ptype = frame["patent_type"].astype("str").to_numpy()[cn]
            hazards = np.zeros((int(cn.sum()), table.max_age))
            known = np.zeros(len(z), dtype=bool)
            for t, target in table.hazards.items():  # a loop over the three patent types, not patents
                rows = ptype == t
                if rows.any():
                    level = remembered_level_shift(target, self.reference_scores_)
                    hazards[rows, : len(target)] = expit(level[None, :] + z[rows, None])
                    known |= rows
            due = years_after(cn_annual_fee_dates(frame["filing_date"][cn], table.max_age), begin[cn])
            ages = np.arange(1, table.max_age + 1, dtype=float)
            parts.append((cn, FeeLapseEvents.build(
                times=due, due=due, hazards=hazards, horizon=years_after(expiry[cn], begin[cn]),
                source=np.where(known, "CN life table level by patent type and age (default to calibrate), ordered by the renewal model's score",
                                "no CN life table entry for this patent type: fee lapse not modelled"),
                patent_year=np.broadcast_to(ages + 1, due.shape), stage=np.broadcast_to(ages, due.shape))))
        return FeeLapseEvents.combine(parts, len(frame))

    def fee_lapse_events(self, X: pd.DataFrame, valuation_date, *, paid_until=None, owner_book: pd.DataFrame | None = None) -> FeeLapseEvents:
        """The fee events after ``valuation_date`` that can end each patent's right, with features
        as of that date (:meth:`dated_features`) and no lapse risk for a fee falling due before the
        fees documented as paid (``X['fees_paid_until']`` and ``paid_until``, the later wins): what
        :func:`ipvalue.models.life.economic_life` builds the fee survival from.

        Parameters
        ----------
        X : PatentFrame, shape (n_patents, ...)
        valuation_date : date-like
        paid_until : pandas.Series or array-like of dates, optional
            Aligned with ``X``; NaT = no information.
        owner_book : pandas.DataFrame, optional
            A bank's export of its borrowers' portfolios (see :meth:`dated_features`).
        """
        prep = self._prepare_valuation(X, valuation_date, owner_book)
        return self._valuation_events(prep, paid_until)[0]

    def _valuation_events(self, prep: dict, paid_until) -> tuple[FeeLapseEvents, pd.Series]:
        frame, vd = prep["frame"], prep["valuation_date"]
        paid = documented_paid_until(frame, paid_until)
        events = self._events(prep, pd.Series(vd, index=frame.index)).prepaid(years_after(paid.to_numpy(), vd))
        return events, paid

    def _anchor_known(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's anchor date is known: grant for its US schedule, filing for the CN life table."""
        return self.schedule_.anchor_dates(frame).where(~self.uses_life_table(frame), frame["filing_date"]).notna().to_numpy()

    def yearly_survival(self, X: pd.DataFrame, valuation_date, years: int, *, paid_until=None, owner_book: pd.DataFrame | None = None) -> pd.DataFrame:
        """The yearly survival curve the income approach weights cash flows by.

        Parameters
        ----------
        X : PatentFrame, shape (n_patents, ...)
        valuation_date : date-like
            The features are built as of it (:meth:`dated_features`).
        years : int
            T, the number of years.
        paid_until : pandas.Series or array-like of dates, optional
            Fees documented as paid through (with ``X['fees_paid_until']``): no lapse before.
        owner_book : pandas.DataFrame, optional

        Returns
        -------
        pandas.DataFrame, shape (n_patents, T), columns ``s_1 .. s_T``: the probability that the
        right is still in force at the end of year t after the valuation date, given it is in force
        at the valuation date (every fee due so far paid); 0 once the legal term has ended. For CN
        patents the yearly hazards take the CN life table's level and the model's order (see
        :meth:`_events`). Non-increasing in t by construction.
        """
        if int(years) != years or years < 1:
            raise ValueError(f"The 'years' of yearly_survival must be a whole number >= 1. Got {years!r}.")
        prep = self._prepare_valuation(X, valuation_date, owner_book)
        return self._yearly_survival(self._valuation_events(prep, paid_until)[0], prep["frame"].index, int(years))

    @staticmethod
    def _yearly_survival(events: FeeLapseEvents, index: pd.Index, years: int) -> pd.DataFrame:
        t = np.arange(1, years + 1, dtype=float)
        s = events.survival(years) * (t[None, :] <= events.horizon[:, None] + 1e-9)  # 0 past the legal term
        return pd.DataFrame(s, index=index, columns=[f"s_{int(k)}" for k in t])

    def expected_life_years(self, X: pd.DataFrame) -> pd.Series:
        """Expected life in years from the anchor date: grant for the model's US schedule, filing
        for patents on the CN life table. Missing where the anchor (a pending grant) is unknown."""
        prep = self._prepare(X)
        frame = prep["frame"]
        anchor = self.schedule_.anchor_dates(frame).where(~self.uses_life_table(frame), frame["filing_date"])
        life = self._events(prep, anchor).expected_life()
        return pd.Series(np.where(anchor.isna(), np.nan, life), index=X.index, name="expected_life_years")

    def expected_remaining_life(self, X: pd.DataFrame, valuation_date, *, paid_until=None, owner_book: pd.DataFrame | None = None) -> pd.Series:
        """Expected years in force left at ``valuation_date`` for a patent in force then: the area
        under the same step survival curve as :meth:`yearly_survival` (so ``sum(s_1..s_T) <= life
        <= 1 + sum(s_1..s_T)`` for T covering the term), prepaid fees without risk. This is the
        fee-lapse life; the period of excess returns is :func:`ipvalue.models.life.economic_life`'s.
        Missing where the model's anchor date (e.g. the grant of a pending US application) is unknown."""
        prep = self._prepare_valuation(X, valuation_date, owner_book)
        events = self._valuation_events(prep, paid_until)[0]
        life = np.where(self._anchor_known(prep["frame"]), events.expected_life(), np.nan)
        return pd.Series(life, index=X.index, name="economic_life_years")

    def quality_percentile(self, X: pd.DataFrame) -> pd.Series:
        """Percentile (0-1) of P(every fee paid) among the training patents."""
        s = np.cumprod(1.0 - self._prepare(X)["hazards"], axis=1)[:, -1]  # the model's own stages
        return pd.Series(self._percentile(s), index=X.index, name="quality_percentile")

    def _percentile(self, s: np.ndarray) -> np.ndarray:
        ref = self.train_survival_
        return (np.searchsorted(ref, s, side="left") + np.searchsorted(ref, s, side="right")) / (2.0 * len(ref))

    def stage_label(self, stage: int | None = None) -> dict:
        """What P(fee ``stage`` paid) means, in Chinese and English (default: the headline stage):
        the k-th maintenance fee for grant-anchored schedules; for CN 年费 the annual fee of the
        patent year it buys (the fee due at filing anniversary a buys year a + 1:
        :func:`~ipvalue.models.life.cn_annual_fee_label`, "第6年年费缴纳概率")."""
        k = int(stage or self.headline_stage_)
        if self.schedule_.anchor == "filing":
            return {"stage": k, **cn_annual_fee_label(int(self.schedule_.due_years[k - 1]) + 1)}
        return {"stage": k, "zh": f"第{k}期续费概率", "en": f"P(fee {k} paid)"}

    def output_frame(self, frame: pd.DataFrame, *, explain: str = "all", explain_rows=None, reason_stage: int | None = None, valuation_date=None) -> pd.DataFrame:
        """Everything a scorer or a valuation needs per patent, from one feature build:
        ``p_fee_k``, ``expected_life_years``, ``quality_percentile``, with ``valuation_date`` also
        ``economic_life_years`` (:meth:`expected_remaining_life`), the features
        (``feature_<name>``, for stability monitoring) and the explanation columns (SHAP on the
        log-odds of lapsing at ``reason_stage``, for the ``explain_rows`` mask or all rows; see
        :func:`ipvalue.models.output.explained`). With ``valuation_date`` every column is as of
        that date (:meth:`dated_features`); without it, as of the model's feature date."""
        prep = self._prepare(frame) if valuation_date is None else self._prepare_valuation(frame, valuation_date)
        survival = np.cumprod(1.0 - prep["hazards"], axis=1)
        out = pd.DataFrame(survival, index=frame.index, columns=[f"p_fee_{k}" for k in range(1, survival.shape[1] + 1)])
        anchor = self.schedule_.anchor_dates(prep["frame"]).where(~self.uses_life_table(prep["frame"]), prep["frame"]["filing_date"])
        out["expected_life_years"] = np.where(anchor.isna(), np.nan, self._events(prep, anchor).expected_life())
        out["quality_percentile"] = self._percentile(survival[:, -1])
        if valuation_date is not None:
            out["economic_life_years"] = np.where(self._anchor_known(prep["frame"]), self._valuation_events(prep, None)[0].expected_life(), np.nan)
        reason_stage = reason_stage or self.headline_stage_
        contributions = lambda m: self._contributions(m, reason_stage)  # noqa: E731
        return pd.concat([out, feature_columns(prep["matrix"]), explained(contributions, prep["matrix"], explain, explain_rows)], axis=1)

    def valuation_outputs(self, X: pd.DataFrame, valuation_date, *, years: int, reason_stage: int | None = None, paid_until=None,
                          owner_book: pd.DataFrame | None = None) -> "RenewalOutputs":
        """What a valuation takes from the model, from one feature build as of ``valuation_date``
        (:meth:`dated_features`: grant lags and owner histories as known on that date).

        Parameters
        ----------
        X : PatentFrame, shape (n_patents, ...)
        valuation_date : date-like
            Required.
        years : int
            T, the years of survival.
        reason_stage : int, optional
            The model's fee stage the headline of non-CN patents speaks of (default: the model's
            headline stage). A CN patent's headline is its next annual fee at risk (see
            :class:`RenewalOutputs`).
        paid_until : pandas.Series or array-like of dates, optional
            Fees documented as paid through (e.g. the application's fee-prepayment documents),
            aligned with ``X``, combined with ``X['fees_paid_until']`` (the later wins; NaT = none):
            no fee lapse before that date.
        owner_book : pandas.DataFrame, optional
            A bank's export of its borrowers' portfolios (:meth:`dated_features`).

        Returns
        -------
        RenewalOutputs
            The expected years in force and the yearly survival ``s_1..s_T`` (for the income
            approach), P(fee k paid) and the drivers of P(fee ``reason_stage`` paid), the
            headline of each patent in its own wording with the drivers of its probability (each
            row summing to it), the features, the fee events and the paid-until dates used.
        """
        if int(years) != years or years < 1:
            raise ValueError(f"The 'years' of valuation_outputs must be a whole number >= 1. Got {years!r}.")
        reason_stage = int(reason_stage or self.headline_stage_)
        if not 1 <= reason_stage <= self.schedule_.n_stages:
            raise ValueError(f"The 'reason_stage' must be a fee stage 1..{self.schedule_.n_stages}. Got {reason_stage!r}.")
        prep = self._prepare_valuation(X, valuation_date, owner_book)
        index = prep["frame"].index
        events, paid = self._valuation_events(prep, paid_until)
        p_fee = pd.DataFrame(np.cumprod(1.0 - prep["hazards"], axis=1), index=index)
        p_fee.columns = [f"p_fee_{k}" for k in range(1, p_fee.shape[1] + 1)]
        contributions = self._probability_contributions(prep["matrix"], reason_stage, prep["paid_with_grant"])
        headline, headline_contributions = self._headline(prep, events, reason_stage, contributions)
        return RenewalOutputs(
            economic_life_years=pd.Series(np.where(self._anchor_known(prep["frame"]), events.expected_life(), np.nan), index=index, name="economic_life_years"),
            survival=self._yearly_survival(events, index, int(years)),
            p_fee=p_fee,
            contributions=contributions,
            features=prep["matrix"],
            reason_stage=reason_stage,
            headline=headline,
            headline_contributions=headline_contributions,
            events=events,
            fees_paid_until=paid,
            valuation_date=prep["valuation_date"],
        )

    def _headline(self, prep: dict, events: FeeLapseEvents, reason_stage: int, contributions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Each patent's headline probability, in its own wording, and the probability
        contributions of the features that add up to it.

        * Non-CN patents: P(fee ``reason_stage`` paid) of the model's schedule, from the grant:
          ``contributions`` (:meth:`probability_contributions`) as they are.
        * CN patents: the next annual fee at risk after the valuation date (fees documented as paid
          are no risk), P(第k年年费 paid | in force at the valuation date) = 1 − its hazard. On the
          CN life table's level the hazard is ``sigmoid(level + z)`` with ``z`` the model's score,
          a monotone function of P(headline stage paid), so that probability's contributions are
          carried over by the secant (P − P_base) / (S − S_base): each row still sums exactly. A
          model trained on CN fees explains the hazard of that fee's own stage the same way.
          Without a fee at risk before the term ends: probability 1, no driver.
        """
        frame, matrix = prep["frame"], prep["matrix"]
        index = frame.index
        label = self.stage_label(reason_stage)
        columns = [c for c in contributions.columns if c != "expected_value"]
        contrib = contributions.copy()
        head = pd.DataFrame({"label_zh": label["zh"], "label_en": label["en"], "probability": contributions.sum(axis=1).to_numpy(),
                             "stage": float(reason_stage), "patent_year": np.nan}, index=index)
        cn = frame["jurisdiction"].astype("str").eq("CN").to_numpy()
        if not cn.any():
            return head, contrib
        ev = events.take(cn)
        col, has = ev.next_at_risk()
        pick = lambda a: a[np.arange(len(col)), col] if a.shape[1] else np.full(len(col), np.nan)  # noqa: E731
        hazard, year, stage = np.where(has, pick(ev.hazards), 0.0), np.where(has, pick(ev.patent_year), np.nan), np.where(has, pick(ev.stage), np.nan)
        rows = np.flatnonzero(cn)
        head.iloc[rows, head.columns.get_loc("probability")] = 1.0 - hazard
        head.iloc[rows, head.columns.get_loc("patent_year")] = year
        head.iloc[rows, head.columns.get_loc("stage")] = stage
        labels = [cn_annual_fee_label(y) if h else FEES_PAID_TO_TERM for y, h in zip(year, has)]
        head.iloc[rows, head.columns.get_loc("label_zh")] = [x["zh"] for x in labels]
        head.iloc[rows, head.columns.get_loc("label_en")] = [x["en"] for x in labels]
        out = np.zeros((len(rows), len(columns) + 1))
        out[:, -1] = 1.0  # no fee at risk: the probability and its baseline are 1
        table = self.uses_life_table(frame)[cn]
        # the headline stage's contributions, computed once: reused when they are the reason stage's (no fee paid with a grant)
        reuse = reason_stage == self.headline_stage_ and not prep["paid_with_grant"][rows].any()
        for path, sel in (("table", has & table), ("model", has & ~table)):
            if not sel.any():
                continue
            m = matrix.iloc[rows[sel]]
            p = 1.0 - hazard[sel]
            if path == "table":  # carried over from P(headline stage paid) = S, which sets z = logit(1 - S)
                c = contributions.iloc[rows[sel]] if reuse else self._probability_contributions(m, self.headline_stage_)
                s_base = c["expected_value"].to_numpy()
                phi = c[columns].to_numpy()
                s = s_base + phi.sum(axis=1)
                z_of = lambda v: logit(np.clip(1.0 - v, 1e-9, 1 - 1e-9))  # noqa: E731  as in _ranking_scores
                h = hazard[sel]
                p_base = 1.0 - expit(logit(np.clip(h, 1e-12, 1 - 1e-12)) - z_of(s) + z_of(s_base))
                d = s - s_base
                slope = np.where(np.abs(d) > 1e-12, (p - p_base) / np.where(np.abs(d) > 1e-12, d, 1.0), h * (1 - h) / np.maximum(s * (1 - s), 1e-12))
            else:  # a model of CN fees: the log-odds of this fee's own stage
                c = self._contributions(m, stage[sel])
                b = c["expected_value"].to_numpy()
                phi = c[columns].to_numpy()
                f = b + phi.sum(axis=1)
                p_base = 1.0 - expit(b)
                d = f - b
                slope = np.where(np.abs(d) > 1e-12, (p - p_base) / np.where(np.abs(d) > 1e-12, d, 1.0), -expit(b) * (1 - expit(b)))
            out[sel, :-1] = phi * slope[:, None]
            out[sel, -1] = p_base
        contrib.iloc[rows] = out
        return head, contrib

    def contributions(self, X: pd.DataFrame, *, stage: int | None = None) -> pd.DataFrame:
        """SHAP contributions (LightGBM ``pred_contrib``) to the log-odds of lapsing at ``stage``
        (default: the headline stage).

        Columns: one per feature plus ``expected_value``; each row sums to the raw log-odds.
        Negative contributions raise the probability of renewal.
        """
        return self._contributions(self.transform_features(X), stage or self.headline_stage_)

    def probability_contributions(self, X: pd.DataFrame, *, stage: int | None = None) -> pd.DataFrame:
        """Each feature's share of P(fee ``stage`` paid) minus its baseline, in probability (×100 = pp).

        Built from the exact TreeSHAP log-odds contributions of every stage up to ``stage``
        (:meth:`contributions`, kept for validators): each stage's log-odds contributions are
        rescaled to its change of log(1 − hazard) by the secant (f − b) → (g(f) − g(b)), summed over
        the stages into log S, and rescaled again by the secant log S → S. So each row sums exactly
        to ``S(x) − S(baseline)``; ``expected_value`` is the baseline probability (all contributions
        zero). Positive values raise the probability of paying. Stages paid with the grant
        (filing-anchored fees) are no risk for that patent, as in :meth:`predict_survival`: they add
        nothing to it or its baseline, so the row sums to the probability the valuation shows.
        """
        stage = stage or self.headline_stage_
        if not 1 <= stage <= self.schedule_.n_stages:
            raise ValueError(f"The 'stage' must be in 1..{self.schedule_.n_stages}. Got {stage!r}.")
        prep = self._prepare(X)
        return self._probability_contributions(prep["matrix"], stage, self.schedule_.paid_with_grant(prep["frame"]))

    def _probability_contributions(self, features: pd.DataFrame, stage: int, paid_with_grant: np.ndarray | None = None) -> pd.DataFrame:
        g = lambda f: np.log(expit(-f))  # noqa: E731  log(1 - sigmoid(f)), the log of the survival factor
        log_s = log_s_base = 0.0
        psi = None
        rows, stages = self._every_stage(features, stage)
        every = self._contributions(rows, stages)
        columns, values, n = every.columns[:-1], every.to_numpy(), len(features)  # the features, then expected_value
        for k in range(1, stage + 1):
            block = values[(k - 1) * n: k * n]  # stage k's rows
            b, phi = block[:, -1], block[:, :-1]
            f = b + phi.sum(axis=1)
            d = f - b
            slope = np.where(np.abs(d) > 1e-9, (g(f) - g(b)) / np.where(np.abs(d) > 1e-9, d, 1.0), -expit(b))
            if paid_with_grant is not None:  # a fee paid with the grant is no risk: its factor is 1 for the patent and its baseline
                at_risk = ~paid_with_grant[:, k - 1]
                slope, f, b = slope * at_risk, np.where(at_risk, f, -np.inf), np.where(at_risk, b, -np.inf)
            psi = phi * slope[:, None] if psi is None else psi + phi * slope[:, None]
            log_s, log_s_base = log_s + g(f), log_s_base + g(b)
        s, s_base = np.exp(log_s), np.exp(log_s_base)
        dl = log_s - log_s_base
        scale = np.where(np.abs(dl) > 1e-12, (s - s_base) / np.where(np.abs(dl) > 1e-12, dl, 1.0), s_base)
        out = pd.DataFrame(psi * scale[:, None], index=features.index, columns=columns)
        return out.assign(expected_value=s_base)

    def _contributions(self, features: pd.DataFrame, stage) -> pd.DataFrame:
        contrib = self.booster_.predict(self._stage_matrix(features, stage), pred_contrib=True, **predict_options(len(features)))
        out = pd.DataFrame(contrib, index=features.index, columns=[*self.feature_names_, "expected_value"])
        # the stage is fixed here: its share joins the base value, so each row still sums to the log-odds
        return out.drop(columns=["stage"]).assign(expected_value=out["expected_value"] + out["stage"])
