"""Renewal hazard model on the real data, the value regressor's intervals and constraints, baselines."""

import numpy as np
import pandas as pd
import pytest

from ipvalue.synthetic import make_demo_portfolio
from ipvalue.models import ClaimsOnlyRule, FeeSchedule, LogisticBaseline, RenewalModel
from ipvalue.models.metrics import expected_calibration_error, reliability_table
from ipvalue.models.renewal import stage_rows
from ipvalue.models.value import ValueRegressor, conformal_quantile

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")
OBSERVED = "2017-06-01"


@pytest.fixture(scope="module")
def renewal(university):
    train = university[university["grant_date"].dt.year <= 2005]
    return RenewalModel(observed_until=OBSERVED, params={"min_child_samples": 300}).fit(train, train["fees_paid"])


def test_stage_rows_censor_unobserved_fees_and_stop_at_the_lapse():
    features = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    paid = pd.Series([0, 1, 3, 1])
    observed = np.array([[True, True, True], [True, True, False], [True, True, True], [True, False, False]])
    rows = stage_rows(features, paid, observed)
    got = rows[["patent_row", "stage", "lapsed"]].astype(int).values.tolist()
    assert sorted(got) == sorted([
        [0, 1, 1],                      # lapsed at the first fee: no later rows
        [1, 1, 0], [1, 2, 1],           # paid one, did not pay the second
        [2, 1, 0], [2, 2, 0], [2, 3, 0],
        [3, 1, 0],                      # second fee not yet due: censored, no row
    ])


def test_fee_schedule_observation_uses_due_date_plus_grace():
    s = FeeSchedule.load("us-maintenance")
    frame = pd.DataFrame({"grant_date": pd.to_datetime(["2006-01-01", "2007-01-01"]), "filing_date": pd.to_datetime(["2004-01-01"] * 2)})
    obs = s.observed(frame, "2017-06-01")
    # third fee: due 11.5 years after grant, +183 days grace: 2018-01 for the 2006 grant
    assert obs.tolist() == [[True, True, False], [True, True, False]]
    assert s.observed(frame, "2019-01-01")[:, 2].tolist() == [True, False]


def test_renewal_model_on_real_data(renewal, university):
    test = university[university["grant_date"].dt.year > 2005]
    s = renewal.predict_survival(test)
    assert list(s.columns) == ["p_fee_1", "p_fee_2", "p_fee_3"]
    assert (s.diff(axis=1).iloc[:, 1:] <= 1e-12).all().all()  # survival never rises
    y = (test["fees_paid"] >= 2).astype(int)
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(y, s["p_fee_2"])
    assert auc > roc_auc_score(y, ClaimsOnlyRule().predict(test))
    assert expected_calibration_error(y, s["p_fee_2"]) < 0.05
    life = renewal.expected_life_years(test)
    assert life.between(4.0, 20.5).all()
    remaining = renewal.expected_remaining_life(test, OBSERVED)
    assert (remaining >= 0).all() and (remaining <= life).all()
    pct = renewal.quality_percentile(test)
    assert pct.between(0, 1).all() and 0.3 < pct.median() < 0.7
    # training stage counts: the third fee is observed only for 2004-2005 grants paying the second
    assert renewal.stage_counts_["rows"].tolist() == [4540, 4069, 2236]


def test_shap_contributions_are_exact_and_agree_with_shap(renewal, university):
    import shap

    sample = university.head(200)
    contrib = renewal.contributions(sample, stage=2)
    matrix = renewal._stage_matrix(renewal.transform_features(sample), 2)
    raw = renewal.booster_.predict(matrix, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-9)
    explainer = shap.TreeExplainer(renewal.booster_.booster_)
    values = explainer.shap_values(matrix)
    values = values[1] if isinstance(values, list) else values
    ours = renewal.booster_.predict(matrix, pred_contrib=True)[:, :-1]
    np.testing.assert_allclose(values, ours, atol=1e-6)


def test_renewal_refuses_bad_labels_and_missing_date(university):
    with pytest.raises(ValueError, match="needs 'observed_until'"):
        RenewalModel().fit(university.head(50), university["fees_paid"].head(50))
    with pytest.raises(ValueError, match=r"must be a count >= 0. Got -1 at row \d+ \(US"):
        RenewalModel(observed_until=OBSERVED).fit(university.head(50), np.r_[-1, university["fees_paid"].head(49)])


def test_logistic_baseline_scores_probabilities(university):
    train = university.head(2000)
    b = LogisticBaseline(valuation_date=OBSERVED).fit(train, (train["fees_paid"] >= 2).astype(int))
    p = b.predict(university.tail(100))
    assert p.between(0, 1).all() and p.std() > 0


def test_reliability_table_counts_every_prediction():
    t = reliability_table([0, 1, 1, 0], [0.05, 0.95, 0.55, 0.5])
    assert t["n"].sum() == 4 and t["bin"].tolist() == [0, 5, 9]


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
