"""Baselines: the challengers every model is scored beside."""

import pytest

from ipvalue.models import LogisticBaseline

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")
OBSERVED = "2017-06-01"


def test_logistic_baseline_scores_probabilities(university):
    train = university.head(2000)
    b = LogisticBaseline(valuation_date=OBSERVED).fit(train, (train["fees_paid"] >= 2).astype(int))
    p = b.predict(university.tail(100))
    assert p.between(0, 1).all() and p.std() > 0
