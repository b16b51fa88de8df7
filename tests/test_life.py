"""Economic life: fee survival with prepaid fees, the hazard multiplier, obsolescence from its YAML,
the DCF weights W_t, the multiplier grid. Hand-computed figures; hypothesis for the properties."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvalue.exceptions import AssumptionError, InputError
from ipvalue.features.builders import add_years
from ipvalue.frame import validate_patent_frame
from ipvalue.models.life import (
    EconomicLifeAssumptions, FeeLapseEvents, cn_annual_fee_dates, cn_annual_fee_label, documented_paid_until, economic_life,
)

pytestmark = pytest.mark.filterwarnings("ignore::ipvalue.features.FeatureWarning")
VD = "2026-06-30"
# A utility model filed 2019-12-31: term 10 years to 2029-12-31 (专利法 第42条). From the valuation
# date 2026-06-30 its annual fees fall due 2026-12-31, 2027-12-31 and 2028-12-31 (184, 549 and 915
# days later; 2028 is a leap year); none on the expiry itself (1,280 days later). The shipped CN
# life table gives utility models of ages 4-9 a yearly hazard of 0.18.
T1, T2, T3, LEGAL = 184 / 365.25, 549 / 365.25, 915 / 365.25, 1280 / 365.25
H = 0.18
UM = {"jurisdiction": "CN", "patent_type": "utility_model", "filing_date": "2019-12-31", "grant_date": "2020-06-30",
      "legal_status": "in_force", "ipc_main": "H02J 7/00", "applicants": "某某科技有限公司"}


def patents(n: int, **overrides) -> pd.DataFrame:
    raw = pd.DataFrame([{**UM, "patent_id": f"CN20192222222{i}U", **overrides} for i in range(n)])
    return validate_patent_frame(raw, strict=True).valid


def hand_dcf(weights: np.ndarray, cash: float = 100.0, rate: float = 0.10) -> np.ndarray:
    """A constant cash flow, end-of-year discounting: Σ_t cash × W_t / (1 + rate)^t."""
    return (cash * weights / (1 + rate) ** np.arange(1, weights.shape[-1] + 1)).sum(axis=-1)


# -- fee survival with prepaid fees --------------------------------------------------------------


def test_fees_prepaid_through_a_date_carry_no_lapse_before_it():
    frame = patents(4).assign(fees_paid_until=pd.to_datetime([None, None, None, "2026-12-31"]))
    paid = pd.Series(pd.to_datetime([None, "2027-12-31", "2029-12-31", None]), index=frame.index)
    life = economic_life(frame, VD, years=5, paid_until=paid, obsolescence=False)
    k = 1 - H
    np.testing.assert_allclose(life.legal_life, LEGAL)
    np.testing.assert_allclose(life.survival(), [
        [k, k**2, k**3, k**3, k**3],     # nothing documented: three fees at risk
        [1, k, k**2, k**2, k**2],        # paid through 2027-12-31: the 2026-12-31 fee is paid, the one due that day is not
        [1, 1, 1, 1, 1],                 # paid through the expiry: no lapse
        [k, k**2, k**3, k**3, k**3],     # the frame's fees_paid_until 2026-12-31 is the next due date: still at risk
    ])
    np.testing.assert_allclose(life.expected_in_force_years(), [
        T1 + k * (T2 - T1) + k**2 * (T3 - T2) + k**3 * (LEGAL - T3),  # 2.547975: the area under the step curve
        T2 + k * (T3 - T2) + k**2 * (LEGAL - T3),                       # 2.996704
        LEGAL,                                                          # 3.504449
        T1 + k * (T2 - T1) + k**2 * (T3 - T2) + k**3 * (LEGAL - T3),
    ])
    assert life.expected_in_force_years()[0] == pytest.approx(2.547975, abs=1e-6)
    # the DCF weights: S_t within the legal life, the last year pro rata (A_4 = 0.504449)
    np.testing.assert_allclose(life.weights()[2], [1, 1, 1, LEGAL - 3, 0])
    assert list(life.fees_paid_until.dt.strftime("%Y-%m-%d").fillna("")) == ["", "2027-12-31", "2029-12-31", "2026-12-31"]
    assert (life.summary()["fee_survival_source"] == "CN life table by patent type and age (default to calibrate); no renewal model").all()


def test_the_later_of_the_frame_and_the_documents_wins_and_bad_dates_are_refused():
    frame = patents(2).assign(fees_paid_until=pd.to_datetime(["2028-06-30", "2026-12-31"]))
    got = documented_paid_until(frame, ["2027-12-31", "2029-12-31"])
    assert got.dt.strftime("%Y-%m-%d").tolist() == ["2028-06-30", "2029-12-31"]
    with pytest.raises(InputError, match=r"'paid_until' of row 1 \(CN201922222221U\) is not a date. Got 'end of term'. Fix: YYYY-MM-DD"):
        documented_paid_until(frame, ["", "end of term"])
    with pytest.raises(InputError, match=r"one entry per patent \(2\). Got 3"):
        documented_paid_until(frame, ["2027-12-31"] * 3)
    with pytest.raises(InputError, match=r"no entry for row 1 \(CN201922222221U\)"):
        documented_paid_until(frame, pd.Series(["2027-12-31"], index=[0]))


# -- the hazard multiplier -----------------------------------------------------------------------


def test_the_hazard_multiplier_scales_every_fee_hazard_and_moves_the_value():
    life = economic_life(patents(1), VD, years=5, obsolescence=False)
    s = life.survival([0.5, 1.0, 2.0])[0]
    np.testing.assert_allclose(s[:, :4], [[0.91, 0.91**2, 0.91**3, 0.91**3], [0.82, 0.82**2, 0.82**3, 0.82**3], [0.64, 0.64**2, 0.64**3, 0.64**3]])
    # a constant 100 RMB a year at 10 %, end of year, weighted by W_t = S_t × A_t (A = 1, 1, 1, 0.504449, 0):
    # 100 × (0.82/1.1 + 0.6724/1.21 + 0.551368/1.331 + 0.551368 × 0.504449/1.4641) = 190.5379
    values = hand_dcf(life.weights([0.5, 1.0, 2.0])[0])
    np.testing.assert_allclose(values, [233.7461, 190.5379, 120.7604], atol=1e-4)
    assert values[0] / values[1] - 1 == pytest.approx(0.2268, abs=1e-4) and values[2] / values[1] - 1 == pytest.approx(-0.3662, abs=1e-4)
    assert hand_dcf(life.weights())[0] == pytest.approx(190.5379, abs=1e-4)  # a scalar multiplier, (n, T)
    np.testing.assert_allclose(life.expected_in_force_years([0.5, 2.0])[0], [2.995997, 1.815732], atol=1e-6)
    # a hazard never exceeds 1: a multiplier of 10 ends the right at the first fee
    assert life.survival(10.0)[0, 0] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match=r"'multiplier' must be a number or a 1-D array of finite numbers >= 0. Got -1.0"):
        life.weights(-1.0)
    # the tornado's life row and the Monte Carlo's draws come from the assumption set
    a = EconomicLifeAssumptions.load()
    assert a.tornado_multipliers == (0.5, 2.0)
    np.testing.assert_allclose(a.hazard_multipliers([-1.645, 0.0, 1.645]), [0.5, 1.0, 2.0], rtol=0.01)


def test_the_multiplier_grid_is_exact_for_small_books_and_close_on_its_grid():
    life = economic_life(patents(3).assign(patent_type=["utility_model", "utility_model", "invention"]), VD, years=20)
    draws = EconomicLifeAssumptions.load().hazard_multipliers(np.random.default_rng(0).standard_normal(400))
    exact = life.grid(draws)
    assert exact.mode == "exact"
    np.testing.assert_array_equal(exact.weights(), life.weights(draws))
    np.testing.assert_array_equal(exact.weights_at(3), life.weights(draws)[:, :, 2])
    raw = {**EconomicLifeAssumptions.load("economic-life").__dict__}
    on_grid = EconomicLifeAssumptions(**{**raw, "exact_max_cells": 0})
    grid = economic_life(patents(3).assign(patent_type=["utility_model", "utility_model", "invention"]), VD, years=20, assumptions=on_grid).grid(draws)
    assert grid.mode == "grid" and len(grid.grid_multipliers) == 41
    w = grid.weights()
    assert np.abs(w - life.weights(draws)).max() < 2e-3
    ends = [draws.argmin(), draws.argmax()]  # the grid's end points are exact
    np.testing.assert_allclose(w[:, ends], life.weights(draws[ends]), rtol=0, atol=1e-7)  # float32 on the grid
    assert (np.diff(w, axis=2) <= 1e-12).all() and w.min() >= 0 and w.max() <= 1
    buffer = np.empty((3, len(draws)), dtype="float32")  # a Monte Carlo's loop writes each year into one buffer
    assert grid.weights_at(5, out=buffer) is buffer and np.array_equal(buffer, w[:, :, 4])
    np.testing.assert_array_equal(exact.weights_at(5, out=np.empty((3, len(draws)))), exact.weights()[:, :, 4])
    with pytest.raises(ValueError, match=r"'year' must be in 1..20. Got 21"):
        grid.weights_at(21)
    with pytest.raises(ValueError, match="multipliers of a grid must be > 0"):
        life.__class__(**{**life.__dict__, "assumptions": on_grid}).grid(np.r_[0.0, draws])


# -- obsolescence --------------------------------------------------------------------------------


def test_obsolescence_curve_from_its_yaml():
    a = EconomicLifeAssumptions.load()
    rate, source = a.obsolescence_rates([6.0, np.nan, np.nan, 16.0, np.nan], ["Electrical engineering", "Chemistry", "Instruments", "Chemistry", None])
    np.testing.assert_allclose(rate, [0.3764, 0.18, 0.15, 0.1182, 0.15])  # field, else sector, else the default
    assert all("default to calibrate" in s for s in source)
    assert "IT hardware" in source[0] and "chemical products" in source[1] and "traditionally assumed 15 percent" in source[2]
    assert all("check against the original" in s for s in source[[0, 1, 3]])
    # a computer-technology patent with 2.5 years of legal life left:
    # O = 1, 0.6236, 0.6236², ...; economic life = 1 + 0.6236 + 0.5 × 0.6236² = 1.818038 years
    frame = patents(1)
    features = pd.DataFrame({"remaining_life_years": [2.5], "tech_field": [6.0], "tech_sector": ["Electrical engineering"]}, index=frame.index)
    life = economic_life(frame, VD, years=5, features=features)
    np.testing.assert_allclose(life.obsolescence[0], 0.6236 ** np.arange(5))
    assert life.economic_life_years[0] == pytest.approx(1.818038, abs=1e-6)
    s = life.summary().iloc[0]
    assert s["obsolescence_rate"] == 0.3764 and s["economic_life_source"] == "area under the obsolescence curve within the remaining legal life"
    np.testing.assert_allclose(life.weights()[0], life.survival()[0] * 0.6236 ** np.arange(5) * [1, 1, 0.5, 0, 0])


def test_without_an_obsolescence_rate_the_returns_last_the_remaining_legal_life():
    frame = patents(2)
    features = pd.DataFrame({"remaining_life_years": [2.5, 0.0], "tech_field": [np.nan, np.nan], "tech_sector": ["Other fields", "Other fields"]}, index=frame.index)
    raw = {"name": "bank-life", "version": 1,
           "obsolescence": {"default": {"rate": None, "source": "no figure for this bank's fields"},
                            "sectors": {"Chemistry": {"rate": 0.2, "source": "bank study"}}},
           "fee_lapse_uncertainty": {"hazard_multiplier_sd": 0.3, "tornado_low": 0.5, "tornado_high": 2.0, "grid_points": 9, "exact_max_cells": 100}}
    life = economic_life(frame, VD, years=4, features=features, assumptions=raw)
    np.testing.assert_array_equal(life.obsolescence, 1.0)
    np.testing.assert_allclose(life.economic_life_years, [2.5, 0.0])  # a right that has ended has none
    np.testing.assert_array_equal(life.weights()[1], 0.0)
    assert life.summary()["economic_life_source"].eq("remaining legal life: no obsolescence curve applied").all()
    assert life.obsolescence_source[0] == "remaining legal life: no obsolescence curve applied (no figure for this bank's fields)"
    off = economic_life(frame, VD, years=4, features=features.assign(tech_field=6.0))
    assert off.obsolescence_rate[0] == 0.3764
    off = economic_life(frame, VD, years=4, features=features.assign(tech_field=6.0), obsolescence=False)
    assert np.isnan(off.obsolescence_rate).all() and "switched off" in off.obsolescence_source[0]


@pytest.mark.parametrize("change, message", [
    ({"obsolescence": {"default": {"rate": 1.2, "source": "x"}}}, r"'obsolescence.default.rate' of assumption set 'economic-life' must be in \[0, 1\) or null. Got 1.2"),
    ({"obsolescence": {"default": {"rate": 0.1}}}, r"'obsolescence.default' of assumption set 'economic-life' needs a 'rate'.* and a 'source'"),
    ({"obsolescence": {"default": {"rate": 0.1, "source": "x"}, "fields": {40: {"rate": 0.1, "source": "x"}}}}, "field 40 .* must be a WIPO technology field 1..35"),
    ({"fee_lapse_uncertainty": {"hazard_multiplier_sd": 0.4, "tornado_low": 2.0, "tornado_high": 2.0, "grid_points": 41, "exact_max_cells": 1}},
     r"'fee_lapse_uncertainty.tornado_low' of assumption set 'economic-life' must be in \(0, 1\]. Got 2"),
])
def test_the_economic_life_set_is_validated(change, message):
    import yaml
    from importlib import resources

    raw = yaml.safe_load((resources.files("ipvalue") / "assumptions" / "economic-life.yaml").read_text(encoding="utf-8"))
    with pytest.raises(AssumptionError, match=message):
        EconomicLifeAssumptions.load({**raw, **change})


def test_the_shipped_rates_are_all_labelled():
    import yaml
    from importlib import resources

    raw = yaml.safe_load((resources.files("ipvalue") / "assumptions" / "economic-life.yaml").read_text(encoding="utf-8"))
    obs = raw["obsolescence"]
    curves = [obs["default"], *obs["sectors"].values(), *obs["fields"].values()]
    # no public figure exists for Chinese patents: every rate must say so rather than pose as fact
    assert all(c["source"].startswith("default to calibrate") for c in curves)
    assert all("check against the original" in c["source"] for c in [*obs["sectors"].values(), *obs["fields"].values()])
    assert "default to calibrate" in raw["fee_lapse_uncertainty"]["hazard_multiplier_sd"]["source"]


# -- without a renewal model, other offices ------------------------------------------------------


def test_without_a_model_other_patents_stay_in_force_through_the_legal_life():
    raw = pd.DataFrame([{**UM, "patent_id": "US9000001B2", "jurisdiction": "US", "patent_type": "invention", "filing_date": "2015-03-01"}])
    frame = validate_patent_frame(raw, strict=True).valid
    life = economic_life(frame, VD, years=12, obsolescence=False)
    np.testing.assert_array_equal(life.survival(), 1.0)
    assert life.summary()["fee_survival_source"].iloc[0].startswith("no renewal model: fee lapse not modelled")
    legal = (pd.Timestamp("2035-03-01") - pd.Timestamp(VD)).days / 365.25
    assert life.expected_in_force_years()[0] == pytest.approx(legal) and life.economic_life_years[0] == pytest.approx(legal)
    np.testing.assert_allclose(life.survival(np.array([0.5, 2.0])), 1.0)  # no hazard: the multiplier moves nothing


def test_calendar_anniversaries_match_add_years_and_the_cn_labels():
    filing = pd.Series(pd.to_datetime(["2012-02-29", "2019-12-31", None, "2000-02-29"]))
    got = cn_annual_fee_dates(filing, 19)
    ref = np.column_stack([add_years(filing, a).to_numpy().astype("datetime64[D]") for a in range(1, 20)])
    np.testing.assert_array_equal(got, ref)
    assert str(got[0, 0]) == "2013-02-28" and str(got[0, 3]) == "2016-02-29" and np.isnat(got[2]).all()
    assert [cn_annual_fee_label(k)["en"] for k in (2, 3, 4, 11, 12, 13, 21, 22)] == [
        "P(2nd-year annual fee paid)", "P(3rd-year annual fee paid)", "P(4th-year annual fee paid)", "P(11th-year annual fee paid)",
        "P(12th-year annual fee paid)", "P(13th-year annual fee paid)", "P(21st-year annual fee paid)", "P(22nd-year annual fee paid)"]
    assert cn_annual_fee_label(8) == {"zh": "第8年年费缴纳概率", "en": "P(8th-year annual fee paid)"}


# -- properties ----------------------------------------------------------------------------------


@st.composite
def books(draw):
    n = draw(st.integers(1, 4))
    rows = []
    for i in range(n):
        filed = pd.Timestamp("2008-01-01") + pd.Timedelta(days=draw(st.integers(0, 6500)))
        lag = draw(st.integers(100, 1500))
        rows.append({**UM, "patent_id": f"CN2{i:011d}U", "patent_type": draw(st.sampled_from(["invention", "utility_model", "design"])),
                     "filing_date": filed.date().isoformat(), "grant_date": (filed + pd.Timedelta(days=lag)).date().isoformat()})
    frame = validate_patent_frame(pd.DataFrame(rows), strict=True).valid
    frame = frame[frame["grant_date"] <= pd.Timestamp(VD)]
    days = st.one_of(st.none(), st.integers(-400, 8000))
    early = [draw(days) for _ in range(len(frame))]
    extra = [draw(st.integers(0, 4000)) for _ in range(len(frame))]
    return frame, early, extra


def _dates(days):
    return pd.Series([pd.NaT if d is None else pd.Timestamp(VD) + pd.Timedelta(days=d) for d in days], dtype="datetime64[ns]")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(books(), st.floats(0.0, 0.4), st.floats(0.05, 5.0))
def test_fees_prepaid_through_a_later_date_never_lower_survival_nor_a_weighted_value(book, rate, multiplier):
    frame, early, extra = book
    if frame.empty:
        return
    first = _dates(early).set_axis(frame.index)
    later = _dates([None if e is None and x == 0 else (e if e is not None else 0) + x for e, x in zip(early, extra)]).set_axis(frame.index)
    features = pd.DataFrame({"remaining_life_years": np.nan, "tech_field": np.nan, "tech_sector": "Chemistry"}, index=frame.index)
    from ipvalue.features import PatentFeatureBuilder

    features["remaining_life_years"] = PatentFeatureBuilder("economic-life-v1", valuation_date=VD).fit_transform(frame)["remaining_life_years"]
    a, b = (economic_life(frame, VD, years=22, paid_until=p, features=features) for p in (first, later))
    assert (b.survival(multiplier) >= a.survival(multiplier) - 1e-12).all()
    assert (b.expected_in_force_years(multiplier) >= a.expected_in_force_years(multiplier) - 1e-9).all()
    assert (hand_dcf(b.weights(multiplier), rate=rate) >= hand_dcf(a.weights(multiplier), rate=rate) - 1e-9).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.floats(-2.0, 25.0), min_size=0, max_size=6), min_size=n, max_size=n),
    st.lists(st.floats(0.0, 1.0), min_size=6 * n, max_size=6 * n),
    st.lists(st.floats(0.0, 25.0), min_size=n, max_size=n),
    st.lists(st.floats(0.0, 0.99), min_size=n, max_size=n),
    st.lists(st.floats(0.0, 20.0), min_size=1, max_size=4))))
def test_weights_are_in_0_1_and_never_rise(case):
    times, hazards, legal, rates, multipliers = case
    width = max(1, max(len(t) for t in times))
    tt = np.full((len(times), width), np.inf)
    for i, t in enumerate(times):
        tt[i, : len(t)] = t
    hh = np.asarray(hazards, dtype=float).reshape(len(times), 6)[:, :width]
    events = FeeLapseEvents.build(times=tt, due=tt, hazards=hh, horizon=np.asarray(legal), source="test").within(np.asarray(legal))
    from ipvalue.models.life import LifeCurves

    n = len(times)
    life = LifeCurves(index=pd.RangeIndex(n), patent_id=np.array([f"P{i}" for i in range(n)]), valuation_date=pd.Timestamp(VD), years=26,
                      events=events, legal_life=np.asarray(legal), fees_paid_until=pd.Series(pd.NaT, index=range(n)),
                      obsolescence_rate=np.asarray(rates), obsolescence_source=np.array(["test"] * n, dtype=object), assumptions=EconomicLifeAssumptions.load())
    w = life.weights(np.asarray(multipliers))
    assert w.shape == (n, len(multipliers), 26)
    assert (w >= 0).all() and (w <= 1 + 1e-12).all()
    assert (np.diff(w, axis=2) <= 1e-12).all()
    assert (life.expected_in_force_years(np.asarray(multipliers)) <= np.asarray(legal)[:, None] + 1e-9).all()
