"""The indicator scorecard: explainable points, grades, position, spec validation."""

import numpy as np
import pandas as pd
import pytest

from ipvalue.config import load_yaml
from ipvalue.exceptions import AssumptionError
from ipvalue.features import PatentFeatureBuilder
from ipvalue.methods.income.scorecard import IndicatorScorecard

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")


@pytest.fixture(scope="module")
def matrix(demo):
    return PatentFeatureBuilder(valuation_date="2026-06-30").fit_transform(demo.patents)


def test_every_score_is_the_sum_of_its_indicator_points(matrix):
    card = IndicatorScorecard().fit()
    points, score = card.points(matrix), card.score(matrix)
    np.testing.assert_allclose(points.sum(axis=1), score["total"], rtol=1e-12)
    assert score["total"].between(0, 100).all()
    for dim in ("legal", "technical", "economic"):
        assert score[dim].between(0, 100).all()
    np.testing.assert_allclose(score["sharing_position"], score["total"] / 100)
    assert card.indicators_["max_points"].sum() == pytest.approx(100.0)


def test_hand_scored_patent():
    card = IndicatorScorecard().fit()
    best = pd.DataFrame([{
        "remaining_life_years": 20.0, "is_lapsed": 0.0, "patent_type": "invention", "claims_independent": 5.0, "claims_pct": 1.0,
        "invalidation_count": 0.0, "fwd_cits_5y_pct": 1.0, "family_size_pct": 1.0, "patent_scope_pct": 1.0, "npl_cits_pct": 1.0,
        "market_coverage": 0.9, "licence_count": 3.0, "transfer_count": 1.0, "applicant_type": "company", "pledge_count": 0.0,
        "litigation_count": 1.0,
    }])
    s = card.score(best).iloc[0]
    assert s["legal"] == pytest.approx(100) and s["technical"] == pytest.approx(100)
    assert s["economic"] == pytest.approx(100 * (0.3 + 0.2 * 0.8 + 0.2 + 0.1 + 0.2 * 0.8))
    assert s["grade"] == "A"
    lapsed = best.assign(is_lapsed=1.0, remaining_life_years=0.0)
    assert card.score(lapsed)["legal"].iloc[0] == pytest.approx(100 - 35 - 15)


def test_grades_follow_the_thresholds():
    card = IndicatorScorecard().fit()
    totals = np.array([0, 34.99, 35, 50, 64.99, 65, 79.99, 80, 100])  # grades A ≥ 80, B ≥ 65, C ≥ 50, D ≥ 35, E below
    assert card.grade(totals).tolist() == ["E", "E", "D", "C", "C", "B", "B", "A", "A"]
    # the score table grades its totals the same way
    features = pd.DataFrame([{"remaining_life_years": 20.0, "is_lapsed": 0.0, "patent_type": "invention"}])
    scored = card.score(features.reindex(columns=card.indicators_["feature"].unique()))
    assert scored["grade"].tolist() == card.grade(scored["total"]).tolist()


def test_bad_weights_and_missing_features_are_refused(matrix):
    raw, _ = load_yaml("scorecard-pledge")
    raw["dimensions"]["legal"] = 0.5
    with pytest.raises(AssumptionError, match=r"'dimensions' of scorecard 'scorecard-pledge' must weigh .* summing to 1"):
        IndicatorScorecard(raw).fit()
    raw, _ = load_yaml("scorecard-pledge")
    raw["indicators"][0]["weight"] = 0.5
    with pytest.raises(AssumptionError, match=r"indicator weights of dimension 'legal' .* must sum to 1. Got 1.15"):
        IndicatorScorecard(raw).fit()
    with pytest.raises(AssumptionError, match=r"needs feature\(s\) \['remaining_life_years'\]"):
        IndicatorScorecard().fit().score(matrix.drop(columns=["remaining_life_years"]))


def test_a_spec_is_checked_once_per_content_and_each_fit_owns_its_table():
    raw, _ = load_yaml("scorecard-pledge")
    first, second = IndicatorScorecard(raw).fit(), IndicatorScorecard(raw).fit()
    first.indicators_.loc[0, "max_points"] = 99.0  # one card's table changed: not the next card's
    assert second.indicators_["max_points"].sum() == pytest.approx(100.0)
    assert IndicatorScorecard(raw).fit().indicators_["max_points"].sum() == pytest.approx(100.0)
    edited, _ = load_yaml("scorecard-pledge")  # other content: checked again (and refused at every fit)
    edited["grades"] = {"A": 80, "B": 60}
    for _ in range(2):
        with pytest.raises(AssumptionError, match=r"'grades' of scorecard 'scorecard-pledge' must end with a grade whose minimum is 0"):
            IndicatorScorecard(edited).fit()


def test_table_lists_every_indicator_with_bilingual_labels():
    t = IndicatorScorecard().fit().table()
    assert len(t) == 16 and t["label_zh"].str.len().min() > 1 and t["label_en"].str.len().min() > 3
