"""The value regressor: conformal intervals, monotonicity, SHAP."""

import numpy as np
import pytest

from ipvalue.synthetic import make_demo_portfolio
from ipvalue.models.value import ValueRegressor, conformal_quantile

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")
OBSERVED = "2017-06-01"


# --- value regressor --------------------------------------------------------------------------


def test_conformal_quantile_by_hand():
    r = np.arange(1, 10, dtype=float)  # 9 residuals, alpha 0.2: ceil(10 × 0.8) = 8th smallest
    assert conformal_quantile(r, 0.2) == 8.0
    assert conformal_quantile(-r, 0.2) == 8.0


@pytest.fixture(scope="module")
def value_split():
    patents = make_demo_portfolio(3000, seed=11).patents
    labelled = patents[patents["appraised_value_rmb"].notna()]
    train = labelled[labelled["loan_id"] < "SYN-LOAN-00700"]
    test = labelled[labelled["loan_id"] >= "SYN-LOAN-00700"]
    model = ValueRegressor("value-v1", valuation_date="2026-06-30").fit(train, train["appraised_value_rmb"])
    return model, test


def test_value_interval_covers_held_out_appraisals(value_split):
    model, test = value_split
    iv = model.predict_interval(test)
    assert list(iv.columns) == ["low_rmb", "p50_rmb", "high_rmb"]
    assert ((iv["low_rmb"] <= iv["p50_rmb"]) & (iv["p50_rmb"] <= iv["high_rmb"])).all()
    y = test["appraised_value_rmb"]
    coverage = ((y >= iv["low_rmb"]) & (y <= iv["high_rmb"])).mean()
    assert 0.74 <= coverage <= 0.88, coverage  # nominal 80 %, on 600+ held-out patents


def test_value_model_has_no_monotonicity_violations(value_split):
    model, test = value_split
    violations = model.monotonicity_violations(test)
    assert "remaining_life_years" in violations.index and "log_revenue_rmb" in violations.index
    assert violations.sum() == 0


def test_value_contributions_sum_to_log_value(value_split):
    model, test = value_split
    c = model.contributions(test.head(50))
    np.testing.assert_allclose(np.exp(c.sum(axis=1)), model.predict(test.head(50)), rtol=1e-9)


def test_value_regressor_refuses_missing_appraisals():
    p = make_demo_portfolio(60, seed=2).patents
    with pytest.raises(ValueError, match=r"Appraised values must be positive RMB amounts: \d+ are not, e.g. row \d+ \(SYN-CN-"):
        ValueRegressor(valuation_date="2026-06-30").fit(p, p["appraised_value_rmb"])
