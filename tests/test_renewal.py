"""Renewal model: stage rows, fee schedules, owner history in the model, yearly survival for CN
patents on the CN life table, probability-point reasons. Real data from ../shared/data."""

import numpy as np
import pandas as pd
import pytest

from ipvalue.demo import make_demo_portfolio
from ipvalue.exceptions import AssumptionError, SpecError
from ipvalue.explain import reason_codes
from ipvalue.features import FeatureSpec
from ipvalue.models import ClaimsOnlyRule, FeeSchedule, RenewalModel
from ipvalue.models.metrics import expected_calibration_error
from ipvalue.models.renewal import CNLifeTable, lapse_dates, level_shift, remembered_level_shift, stage_rows

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")
OBSERVED = "2017-06-01"
VALUATION = "2026-06-30"


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


def test_cn_annual_fees_are_at_risk_only_between_grant_and_expiry():
    s = FeeSchedule.load("cn-annual")
    frame = pd.DataFrame({"filing_date": pd.to_datetime(["2010-03-01", "2010-03-01", "2010-03-01"]),
                          "grant_date": pd.to_datetime(["2013-06-01", "2010-11-01", None])})
    expiry = pd.to_datetime(["2030-03-01", "2020-03-01", "2030-03-01"])
    payable = s.payable(frame, expiry)
    anniversaries = np.arange(1, 20)
    assert anniversaries[payable[0]].tolist() == list(range(4, 20))  # 1-3 paid with the 2013 grant
    assert anniversaries[payable[1]].tolist() == list(range(1, 10))  # utility model: none at or after the 10-year term
    assert not payable[2].any()  # pending: no fee of a granted right yet
    assert s.paid_with_grant(frame)[0].tolist() == [True] * 3 + [False] * 16
    us = FeeSchedule.load("us-maintenance")
    assert us.payable(frame.assign(grant_date=pd.to_datetime(["1999-01-01"] * 3)), expiry).all()  # not cut at a computed US expiry


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
    assert life.between(0.0, 20.5).all() and life.median() > 8  # short only where the legal term ends early
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


@pytest.fixture(scope="module")
def cn_patents():
    return make_demo_portfolio(120, seed=3).patents


def test_lapse_dates_by_hand():
    s = FeeSchedule.load("us-maintenance")
    frame = pd.DataFrame({"grant_date": pd.to_datetime(["2006-01-01"] * 4), "filing_date": pd.to_datetime(["2004-01-01"] * 4)})
    got = lapse_dates(frame, pd.Series([0, 1, 3, 2]), s, OBSERVED)
    # fee 1 due 3.5 y after grant (1278.375 d) + 183 d grace; fee 3 (11.5 y) is after the observation date
    assert got.iloc[0] == pd.Timestamp("2006-01-01") + pd.Timedelta(days=3.5 * 365.25 + 183)
    assert got.iloc[1] == pd.Timestamp("2006-01-01") + pd.Timedelta(days=7.5 * 365.25 + 183)
    assert got.iloc[2:].isna().all()


def test_cn_life_table_survival_is_monotone_sourced_and_ends_with_the_term():
    table = CNLifeTable.load()
    import yaml
    from importlib import resources

    raw = yaml.safe_load((resources.files("ipvalue") / "assumptions" / "cn-life-table.yaml").read_text(encoding="utf-8"))
    terms = {"invention": 20, "utility_model": 10, "design": 15}  # 专利法 第42条 (statutory-terms.yaml)
    for ptype, term in terms.items():
        s = table.population_survival(ptype)
        assert len(s) == term - 1  # a fee at each filing anniversary 1 .. term-1
        assert np.all(np.diff(s) <= 0) and 0 < s[-1] <= s[0] <= 1
        for band in raw["types"][ptype]["bands"]:
            # no published CN hazard exists yet: every value must say so rather than pose as fact
            assert "default to calibrate" in band["source"]
        assert "第42条" in raw["types"][ptype]["term_source"]


def test_cn_life_table_refuses_gaps(tmp_path):
    (tmp_path / "t.yaml").write_text("name: t\ntypes:\n  invention:\n    bands:\n      - {ages: [1, 2], value: 0.1, source: x}\n      - {ages: [4, 5], value: 0.1, source: x}\n")
    with pytest.raises(AssumptionError, match=r"must run 1..5 without gaps. Got \[1, 2, 4, 5\]"):
        CNLifeTable.load(str(tmp_path / "t.yaml"))


def test_level_shift_matches_the_table_mean_and_keeps_the_order():
    from scipy.special import expit

    z = np.array([-1.0, 0.0, 0.5, 2.0])
    target = np.array([0.05, 0.2])
    level = level_shift(target, z)
    h = expit(level[:, None] + z[None, :])
    np.testing.assert_allclose(h.mean(axis=1), target, atol=1e-10)
    assert np.all(np.diff(h, axis=1) > 0)


def test_the_remembered_level_shift_is_solved_once_and_equals_a_fresh_one():
    from ipvalue.models import renewal as module

    z, target = np.linspace(-2.0, 2.0, 101), np.array([0.03, 0.1, 0.4])
    module._level_shift_of.cache_clear()
    first = remembered_level_shift(target, z)
    np.testing.assert_array_equal(first, level_shift(target, z))
    assert remembered_level_shift(target.copy(), z.copy()) is first and module._level_shift_of.cache_info().hits == 1
    assert not first.flags.writeable  # shared between valuations: nobody may change it
    np.testing.assert_array_equal(remembered_level_shift(target[:2], z), level_shift(target[:2], z))  # other targets: solved anew


def test_cn_yearly_survival_uses_the_table_level_and_stops_at_the_term(renewal, cn_patents):
    ys = renewal.yearly_survival(cn_patents, VALUATION, 20)
    assert list(ys.columns) == [f"s_{t}" for t in range(1, 21)]
    assert (ys.diff(axis=1).iloc[:, 1:] <= 1e-12).all().all() and ys.to_numpy().max() <= 1
    life = renewal.expected_remaining_life(cn_patents, VALUATION)
    total = ys.sum(axis=1)
    assert ((total <= life + 1e-9) & (life <= total + 1 + 1e-9)).all()
    # never beyond the legal term (the US schedule made 79 % of utility models outlive it)
    from ipvalue.features import PatentFeatureBuilder

    legal = PatentFeatureBuilder(FeatureSpec.load("core-v1"), valuation_date=VALUATION).fit(cn_patents).transform(cn_patents)["remaining_life_years"]
    live = legal > 0
    assert (life[live] <= legal[live] + 1e-6).all()
    past_term = np.arange(1, 21)[None, :] > np.ceil(legal[live].to_numpy())[:, None]
    assert (ys[live].to_numpy()[past_term] == 0).all()
    # the level is the table's, the order the model's: over the training patents' scores the mean
    # hazard at each age equals the table
    table = renewal.life_table_.hazards["utility_model"]
    from scipy.special import expit

    h = expit(level_shift(table, renewal.reference_scores_)[:, None] + renewal.reference_scores_[None, :])
    np.testing.assert_allclose(h.mean(axis=1), table, atol=1e-9)


def test_a_spec_with_dataset_only_columns_may_not_value_cn_patents(university, cn_patents):
    train = university[university["grant_date"].dt.year == 2004]
    research = RenewalModel("renewal-v1", observed_until=OBSERVED, params={"n_estimators": 20}).fit(train, train["fees_paid"])
    with pytest.raises(SpecError, match=r"uses dataset-only columns \['cpc_code_count', 'similar_doc_count'\]: it may not value Chinese patents"):
        research.yearly_survival(cn_patents, VALUATION, 5)
    assert FeatureSpec.load("renewal-cn-v1").passthrough == []


def test_probability_reasons_for_cn_patents_cite_contract_columns_only_and_no_missing_driver(renewal, cn_patents):
    sample = cn_patents.head(20)
    pc = renewal.probability_contributions(sample, stage=2)
    p2 = renewal.predict_survival(sample)["p_fee_2"]
    np.testing.assert_allclose(pc.sum(axis=1), p2, atol=1e-9)  # features + baseline = P(fee 2 paid)
    features = renewal.transform_features(sample)
    r = reason_codes(pc, features, renewal.features_.spec_, medians=renewal.feature_medians_, units="probability",
                     outcome_zh="第2期续费概率", outcome_en="P(fee 2 paid)")
    drivers = r[r["rank"] > 0]
    assert set(drivers["feature"]) <= set(FeatureSpec.load("renewal-cn-v1").names)
    assert not drivers["feature"].isin(["cpc_code_count", "similar_doc_count"]).any()
    assert drivers["value"].notna().all() and not drivers["reason_en"].str.contains("missing").any()
    assert drivers["reason_en"].str.fullmatch(r".*: (raises|lowers) P\(fee 2 paid\) by \d+\.\d pp").all()
    assert drivers["reason_zh"].str.contains("个百分点").all()
    first = drivers.iloc[0]
    assert first["reason_en"].endswith(f"by {abs(first['contribution']) * 100:.1f} pp")


def test_reason_codes_turn_a_missing_input_into_a_data_quality_note():
    spec = FeatureSpec.from_dict({"name": "t", "version": 1, "features": [
        {"name": "a", "builder": "claims", "dtype": "float64", "missing": "keep", "monotone": 0, "description_zh": "甲", "description_en": "A"},
        {"name": "b", "builder": "claims", "dtype": "float64", "missing": "keep", "monotone": 0, "description_zh": "乙", "description_en": "B"},
    ]})
    contrib = pd.DataFrame({"a": [-0.30], "b": [0.041], "expected_value": [0.6]})
    r = reason_codes(contrib, pd.DataFrame({"a": [np.nan], "b": [5.0]}), spec, units="probability", outcome_en="P(fee 2 paid)", outcome_zh="续费概率")
    assert r["rank"].tolist() == [0, 1]
    assert r.iloc[0]["direction"] == "data_quality" and r.iloc[0]["reason_en"].startswith("Data-quality note: A is missing")
    assert r.iloc[1]["reason_en"] == "B 5: raises P(fee 2 paid) by 4.1 pp"
    assert r.iloc[1]["reason_zh"] == "乙 5，使续费概率提高 4.1 个百分点"
    with pytest.raises(ValueError, match="'units' of reason_codes must be 'raw' or 'probability'. Got 'pp'"):
        reason_codes(contrib, pd.DataFrame({"a": [1.0], "b": [5.0]}), spec, units="pp")


def test_owner_history_in_the_model_is_out_of_fold(renewal, university):
    train = university[university["grant_date"].dt.year <= 2005]
    m = renewal.transform_features(train.head(300))
    assert m["owner_lapse_share"].between(0, 1).all() and m["owner_portfolio_size"].ge(0).all()
    # the refitted, all-owner book: a patent's own lapse does not move its own owner features
    book = renewal.features_.owner_book_
    assert len(book) == len(train)


def borrower_patents() -> pd.DataFrame:
    """Four patents of one borrower, granted after the model's training date (2017-06-01), one pending."""
    from ipvalue.frame import validate_patent_frame

    raw = pd.DataFrame({
        "patent_id": ["CN111111111B", "CN222222222B", "CN333333333U", "CN444444444A"],
        "jurisdiction": "CN", "patent_type": ["invention", "invention", "utility_model", "invention"],
        "filing_date": ["2016-03-01", "2019-05-20", "2021-01-15", "2024-02-01"],
        "grant_date": ["2018-09-14", "2022-11-30", "2021-08-03", None],
        "legal_status": ["in_force", "in_force", "in_force", "pending"],
        "claims_total": [12, 8, 5, 10], "ipc_main": ["G06F 16/00", "H04L 9/00", "H02J 7/00", "G06N 3/08"],
        "applicants": "某某智能科技（北京）有限公司", "inventor_count": [3, 2, 2, 4],
    })
    return validate_patent_frame(raw, strict=True).valid


def test_a_patent_granted_after_the_training_date_has_its_features_as_of_the_valuation_date(renewal):
    patents = borrower_patents()
    # what was wrong: as of the training date these grants had not happened, so the lag is missing
    assert renewal.transform_features(patents)["grant_lag_years"].isna().all()
    out = renewal.valuation_outputs(patents, VALUATION, years=10)
    lag = ((patents["grant_date"] - patents["filing_date"]).dt.days / 365.25).to_numpy()
    np.testing.assert_allclose(out.features["grant_lag_years"].to_numpy()[:3], lag[:3])  # 2.537, 3.532, 0.550 years
    assert np.isnan(out.features["grant_lag_years"].iloc[3])  # the pending application: no grant, no lag
    # the owner's portfolio: the other three patents valued with it, as of the valuation date
    assert out.features["owner_portfolio_size"].tolist() == [3.0, 3.0, 3.0, 3.0]
    # its lapse share: none of the three lapsed, smoothed towards the book's rate (prior strength 10)
    book = renewal.features_.owner_book_
    vd = pd.Timestamp(VALUATION)
    known = book["owner_key"].notna() & (book["start_date"].isna() | (book["start_date"] <= vd))
    population = float(((book["lapse_date"] <= vd) & known).sum()) / (float(known.sum()) + 3)  # the book plus the 3 others
    np.testing.assert_allclose(out.features["owner_lapse_share"], 10 * population / 13)
    assert pd.Timestamp(out.valuation_date) == vd
    # the same date gives the same survival through every public entry point
    pd.testing.assert_frame_equal(renewal.yearly_survival(patents, VALUATION, 10), out.survival)
    pd.testing.assert_series_equal(renewal.expected_remaining_life(patents, VALUATION), out.economic_life_years)
    # no silent fallback to the training date
    with pytest.raises(ValueError, match=r"'valuation_date' of a renewal valuation must be one date \(YYYY-MM-DD\).*Got None"):
        renewal.valuation_outputs(patents, None, years=5)


def test_a_cn_patents_headline_is_its_next_annual_fee_and_its_reasons_add_up(renewal):
    patents = borrower_patents().iloc[:3]
    out = renewal.valuation_outputs(patents, VALUATION, years=10)
    head = out.headline
    # CN wording, never the US maintenance stage. On 2026-06-30 the first patent (filed 2016-03-01) is in
    # its 11th year; its next fee, due 2027-03-01, buys the 12th. Likewise 2027-05-20 → 9th, 2027-01-15 → 7th.
    assert head["patent_year"].tolist() == [12.0, 9.0, 7.0]
    assert head["label_zh"].tolist() == ["第12年年费缴纳概率", "第9年年费缴纳概率", "第7年年费缴纳概率"]
    assert head["label_en"].tolist() == ["P(12th-year annual fee paid)", "P(9th-year annual fee paid)", "P(7th-year annual fee paid)"]
    # one fee falls due in each year: the probability of paying the next one is the first year's survival
    np.testing.assert_allclose(head["probability"], out.survival["s_1"], atol=1e-12)
    np.testing.assert_allclose(out.headline_contributions.sum(axis=1), head["probability"], atol=1e-12)  # drivers + baseline = the probability shown
    # the model's own stage keeps its contributions (validators), adding up to P(fee 2 paid)
    np.testing.assert_allclose(out.contributions.sum(axis=1), out.p_fee["p_fee_2"], atol=1e-12)
    r = reason_codes(out.headline_contributions.iloc[[1]], out.features.iloc[[1]], renewal.features_.spec_, medians=renewal.feature_medians_,
                     units="probability", outcome_zh=head["label_zh"].iloc[1], outcome_en=head["label_en"].iloc[1])
    drivers = r[r["rank"] > 0]
    assert drivers["reason_en"].str.fullmatch(r".*: (raises|lowers) P\(9th-year annual fee paid\) by \d+\.\d pp").all()
    assert not drivers["reason_en"].str.contains("fee 2").any() and drivers["reason_zh"].str.contains("第9年年费缴纳概率").all()
    # fees prepaid to the end of the term: no fee at risk, probability 1, nothing to explain
    paid = pd.Series(pd.to_datetime(["2036-03-01", "2039-05-20", "2031-01-15"]), index=patents.index)
    prepaid = renewal.valuation_outputs(patents, VALUATION, years=20, paid_until=paid)
    assert prepaid.headline["label_zh"].eq("年费已缴至保护期届满").all() and prepaid.headline["probability"].eq(1.0).all()
    hc = prepaid.headline_contributions
    assert (hc.drop(columns="expected_value") == 0).all().all() and hc["expected_value"].eq(1.0).all()


def test_prepaid_fees_lift_the_models_survival_to_1_before_the_paid_date(renewal):
    patents = borrower_patents().iloc[:3]
    # the utility model's fees are prepaid to 2029-12-31 (fees due 2027-01-15, 2028-01-15, 2029-01-15 covered)
    paid = pd.Series([pd.NaT, pd.NaT, pd.Timestamp("2029-12-31")], index=patents.index)
    base = renewal.valuation_outputs(patents, VALUATION, years=8)
    out = renewal.valuation_outputs(patents, VALUATION, years=8, paid_until=paid)
    pd.testing.assert_frame_equal(out.survival.iloc[:2], base.survival.iloc[:2])  # the others unchanged
    np.testing.assert_allclose(out.survival.iloc[2, :3], 1.0)  # no fee at risk before 2030-01-15
    assert base.survival.iloc[2, 0] < 1 and out.survival.iloc[2, 3] < 1  # the fee due 2030-01-15 is still at risk
    # its only fee left before the expiry (2031-01-15) is due 2030-01-15, 3.55 years after the valuation date
    h = 1.0 - out.survival.iloc[2, 3]
    t = (pd.Timestamp("2030-01-15") - pd.Timestamp(VALUATION)).days / 365.25
    legal = (pd.Timestamp("2031-01-15") - pd.Timestamp(VALUATION)).days / 365.25
    assert out.economic_life_years.iloc[2] == pytest.approx(t + (1 - h) * (legal - t))
    assert out.fees_paid_until.iloc[2] == pd.Timestamp("2029-12-31")


def test_the_life_curves_take_the_models_fee_events(renewal):
    from ipvalue.models.life import economic_life

    patents = borrower_patents().iloc[:3]
    out = renewal.valuation_outputs(patents, VALUATION, years=20)
    life = economic_life(patents, VALUATION, years=20, renewal=out, obsolescence=False)
    again = economic_life(patents, VALUATION, years=20, renewal=renewal, obsolescence=False)
    np.testing.assert_array_equal(life.weights(), again.weights())
    # in force: the area under S equals the model's expected years in force, and S its survival within the term
    np.testing.assert_allclose(life.expected_in_force_years(), out.economic_life_years, rtol=1e-12)
    within = out.survival.to_numpy() > 0
    np.testing.assert_allclose(life.survival()[within], out.survival.to_numpy()[within], rtol=1e-12)
    assert life.summary()["fee_survival_source"].str.startswith("CN life table level by patent type and age").all()
    with pytest.raises(ValueError, match="renewal outputs given to economic_life are for 2026-06-30 and 3 patents; the curves are asked for 2027-06-30"):
        economic_life(patents, "2027-06-30", renewal=out)
