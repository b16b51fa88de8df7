"""Reason codes from SHAP contributions."""

import pandas as pd

from ipvalue.explain import global_importance, reason_codes
from ipvalue.features import FeatureSpec


def test_reason_codes_rank_by_absolute_contribution_in_both_languages():
    spec = FeatureSpec.load("core-v1")
    contrib = pd.DataFrame({"remaining_life_years": [-0.8, 0.1], "claims_total": [0.3, 0.05], "fwd_cits": [0.1, -0.4], "expected_value": [1.0, 1.0]})
    feats = pd.DataFrame({"remaining_life_years": [3.1, 12.0], "claims_total": [15.0, 8.0], "fwd_cits": [2.0, 0.0]})
    r = reason_codes(contrib, feats, spec, medians={"remaining_life_years": 8.0, "claims_total": 10.0}, top=2)
    first = r.loc[0]
    assert first["feature"].tolist() == ["remaining_life_years", "claims_total"]
    assert first["reason_zh"].iloc[0] == "剩余法定有效期（年） 3.1，低于或等于中位数 8，降低估值"
    assert first["reason_en"].iloc[0] == "Remaining legal life at the valuation date in years 3.1, at or below the median 8: lowers the value"
    assert first["direction"].tolist() == ["unfavourable", "favourable"]
    assert r.loc[1, "feature"].tolist() == ["fwd_cits", "remaining_life_years"]


def test_hazard_models_flip_the_favourable_sign():
    spec = FeatureSpec.load("core-v1")
    r = reason_codes(pd.DataFrame({"claims_total": [-0.5]}), pd.DataFrame({"claims_total": [20.0]}), spec, top=1,
                     favourable_sign=-1, outcome_zh="续费概率", outcome_en="the renewal probability")
    assert r["direction"].item() == "favourable" and r["reason_en"].item().endswith("raises the renewal probability")


def test_global_importance_orders_features():
    imp = global_importance(pd.DataFrame({"a": [1.0, -1.0], "b": [0.1, 0.2], "expected_value": [5.0, 5.0]}))
    assert imp.index.tolist() == ["a", "b"]
