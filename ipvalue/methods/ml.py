"""The ML value model as a valuation method: a registered LightGBM value regressor
(:class:`ipvalue.models.ValueRegressor`, conformal P10-P90) adapted to the method contract.

What it offers the reconciliation depends on its labels (its run's ``data_origin`` tag): trained
on real prices or appraisals (``ml-value``: ``real_label_sources``) it is a market-value candidate
of the rank the set gives; trained on synthetic labels it is shown for information only and enters
no check (a synthetic challenger must not send every application to review).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator

from ipvalue.config import assumption_value, load_set
from ipvalue.exceptions import AssumptionError
from ipvalue.explain import reason_codes
from ipvalue.methods.base import MethodResult, check_coverage, offers_frame
from ipvalue.methods.registry import register_method
from ipvalue.report.sections import Column, Section


def label_source(model) -> str:
    """What a registered value model was trained on, from its run's ``data_origin`` tag:
    'synthetic' or a real source ('real_prices', 'appraisals', ...)."""
    origin = str(model.run_tags.get("data_origin", "unknown")).lower()
    return "synthetic" if "synthetic" in origin else origin


class ValueModelMethod(BaseEstimator):
    """A registered value model as a valuer (the method contract).

    Parameters
    ----------
    model : RegisteredModel
        The registered value model (``models:/NAME@ALIAS``), loaded.
    assumptions : str, Path or dict, default="ml-value"
    """

    value_type = "market_value"

    def __init__(self, model=None, *, assumptions="ml-value"):
        self.model = model
        self.assumptions = assumptions

    def fit(self, X=None, y=None) -> "ValueModelMethod":
        """Read the set; the model itself was trained and registered by ``ipvalue train``."""
        if self.model is None:
            raise ValueError("ValueModelMethod needs 'model', a registered value model (ipvalue.registry.load_model). Got None.")
        s = load_set(self.assumptions)
        raw = s.raw
        sources = (raw.get("real_label_sources") or {}).get("value")
        if not isinstance(sources, list) or not all(isinstance(x, str) for x in sources):
            raise AssumptionError(f"The 'real_label_sources' of assumption set {s.name!r} must be a list of label sources. Got {sources!r}.")
        self.real_label_sources_ = sources
        self.rank_ = assumption_value(raw, "reconciliation.rank", 0.0, 100.0)
        self.label_source_ = label_source(self.model)
        self.provenance_ = {**s.provenance("ml_value_set"),
                            "value_model": self.model.uri, "value_model_version": self.model.version, "value_run_id": self.model.run_id,
                            "value_model_labels": self.label_source_}
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        return self.model.estimator.predict(X).rename("ml_value_rmb")

    def predict_interval(self, X: pd.DataFrame, *, coverage: float = 0.8) -> pd.DataFrame:
        return self.model.estimator.predict_interval(X, coverage=check_coverage(coverage))

    @property
    def provenance(self) -> dict:
        return dict(self.provenance_)

    def assess(self, X: pd.DataFrame, inputs) -> MethodResult:
        """The value model's P10 / P50 / P90 per patent (one feature build, SHAP reasons from the
        same matrix), offered as a market-value candidate when it learnt from real labels, else
        for information. Its draws: lognormal on the shared scenario ``model_error``, with the
        sd that makes its conformal P10-P90 the 10th and 90th percentiles."""
        self.fit()
        est = self.model.estimator
        out = est.output_frame(X, explain="all")
        low, mid, high = (out[c].to_numpy(float) for c in est.scored_interval_columns)
        values = pd.DataFrame({"value_rmb": mid, "low_rmb": low, "p50_rmb": mid, "high_rmb": high}, index=X.index)
        real = self.label_source_ in self.real_label_sources_
        offers = offers_frame(
            X.index, role="primary" if real else "information", rank=self.rank_, market_value_rmb=mid,
            reason_zh=f"价值模型以{'真实成交价或评估值' if real else '合成数据'}训练" + ("" if real else "，仅供参考，不参与结论与差异检验"),
            reason_en=f"the value model learnt from {'real prices or appraisals' if real else 'synthetic labels'}" + ("" if real else ": for information only, in no check"),
        )
        z90 = norm.ppf(1 - est.alpha / 2)
        sd = np.log(np.where(low > 0, high / np.where(low > 0, low, 1.0), 1.0)) / (2 * z90)
        draws = mid[:, None] * np.exp(sd[:, None] * inputs.scenarios.z("model_error")[None, :])
        contributions = out.filter(like="shap_").rename(columns=lambda c: c.removeprefix("shap_"))
        features = out.filter(like="feature_").rename(columns=lambda c: c.removeprefix("feature_"))
        reasons = reason_codes(contributions, features, est.features_.spec_, medians=est.feature_medians_).assign(model="value")
        reasons.insert(0, "patent_id", X.loc[reasons.index, "patent_id"].to_numpy())
        result = MethodResult(
            method="ml", label_zh="机器学习价值模型", label_en="ML value model", value_type=self.value_type, values=values, offers=offers,
            draws=draws, columns=pd.DataFrame({"ml_label_source": self.label_source_, "ml_role": np.where(real, "market-value candidate", "information")}, index=X.index),
            value_types={c: "market_value" for c in ("value_rmb", "low_rmb", "p50_rmb", "high_rmb", "market_value_rmb")},
            evidence={"reasons": reasons}, provenance=self.provenance,
        )
        result.sections = [ml_section(result, X, real)]
        return result


def ml_section(result: MethodResult, frame: pd.DataFrame, real: bool) -> Section:
    sec = Section("method-ml", "机器学习价值模型", "ML value model")
    p = result.provenance
    sec.text(f"模型 {p['value_model']}（版本 {p['value_model_version']}）以{'真实成交价或评估值' if real else '合成数据'}训练；区间为分位一致性（conformal）P10–P90。"
             + ("作为市场价值候选参与调和。" if real else "合成标签训练的模型仅供参考，不参与结论与方法差异检验。"),
             f"Model {p['value_model']} (version {p['value_model_version']}) learnt from {'real prices or appraisals' if real else 'synthetic labels'}; "
             "its interval is the conformal P10-P90. " + ("It is a market-value candidate." if real else "A model trained on synthetic labels is for information only and enters no check."))
    table = result.values.assign(patent_id=frame["patent_id"].to_numpy())
    sec.table("ml-values-table", table, [Column("patent_id", "专利", "Patent"), Column("low_rmb", "P10", "P10", "money"),
                                         Column("p50_rmb", "P50", "P50", "money"), Column("high_rmb", "P90", "P90", "money")])
    reasons = result.evidence["reasons"]
    sec.table("ml-reasons-table", reasons, [Column("patent_id", "专利", "Patent"), Column("rank", "序", "#", "integer"),
                                            Column("reason_zh", "原因", "Reason (zh)"), Column("reason_en", "Reason", "Reason (en)")])
    return sec


@register_method("ml", label_zh="机器学习价值模型", label_en="ML value model", needs=("value_model",), order=3)
def ml_method(inputs) -> ValueModelMethod:
    """The registered value model the valuation uses."""
    return ValueModelMethod(inputs.value_model)
