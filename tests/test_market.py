"""Market approach: two comparables by hand, matching levels, the file's checks, the CNIPA range check."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvalue.exceptions import ColumnError, ComparablesError
from ipvalue.methods.market import MarketApproachValuer, cnipa_range_check, load_comparables

FIXTURE = Path(__file__).parent / "fixtures" / "comparables.csv"


@pytest.fixture(scope="module")
def valuer():
    return MarketApproachValuer(FIXTURE, valuation_date="2025-06-30").fit()


def subject(**kw):
    row = {"patent_type": "invention", "ipc_main": "G06F 21/10", "remaining_life_years": 10.0, "score": 60.0}
    return pd.DataFrame([{**row, **kw}], index=["S"])


def test_two_comparables_by_hand(valuer):
    # T1 transfer 2.0M, 8 years left, score 50: life 10/8 = 1.25, score 1 + (60-50)/100 = 1.1 → 2,750,000
    # T2 licence 1.0M for 4 years, score 70: life 10/4 = 2.5 capped at 2.0, score 0.9 → 1,800,000
    ev = valuer.evidence(subject()).loc["S"]
    assert ev["match_level"] == "ipc_subclass" and ev["n_comparables"] == 2 and ev["comparables_used"] == "T1,T2"
    assert ev["market_value_rmb"] == pytest.approx(2_275_000.0)
    assert ev["spread"] == pytest.approx(2.75 / 1.8)
    iv = valuer.predict_interval(subject()).loc["S"]
    assert iv["low_rmb"] == pytest.approx(1_800_000 + 0.05 * 950_000)
    assert iv["high_rmb"] == pytest.approx(1_800_000 + 0.95 * 950_000)
    assert valuer.value_type == "market_value"


def test_the_failed_evidence_tests_are_named_in_order_and_none_is_blank(valuer):
    tests = pd.DataFrame({"passed_count": [True, False, True], "passed_spread": [False, False, True], "passed_recency": [True, True, True],
                          "passed_similarity": [True, False, True], "passed_profit_capacity": [False, True, True]}, index=["a", "b", "c"])
    zh, en = valuer.failed_reasons(tests)
    t = valuer.tests_
    assert zh["a"] == f"价差超过{t['max_spread']:g}倍；专利包市场价值超过{t['profit_capacity_years']:g}年可归属利润（盈利能力检验）"
    assert en["b"] == f"fewer than {t['min_comparables']} comparables; spread above {t['max_spread']:g}x; matched at too coarse a level"
    assert zh["c"] == "" and en["c"] == "" and list(zh.index) == ["a", "b", "c"]


def test_old_and_running_royalty_transactions_are_excluded(valuer):
    assert set(valuer.excluded_["transaction_id"]) == {"T4", "T5"}
    assert valuer.excluded_.set_index("transaction_id").loc["T4", "reason"] == "older than 5 years (no time index)"


def test_fallback_levels_and_no_evidence(valuer):
    # H04L has one comparable (< 2): falls back to section H (none) → patent type: T1, T2, T3
    ev = valuer.evidence(subject(ipc_main="H04L 29/06", score=np.nan)).loc["S"]
    assert ev["match_level"] == "patent_type" and ev["n_comparables"] == 3
    # no score: no score adjustment; life factors 1.25, 2.0, 1.0 → 2.5M, 2.0M, 9.0M
    assert ev["market_value_rmb"] == pytest.approx(2_500_000.0)
    none = valuer.evidence(subject(patent_type="design")).loc["S"]
    assert none["match_level"] == "none" and none["n_comparables"] == 0 and np.isnan(none["market_value_rmb"])
    assert valuer.predict(subject(remaining_life_years=0.0))["S"] == 0.0


def test_bad_rows_are_all_reported_with_their_fix(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "transaction_id,date,kind,price_rmb,patent_type,remaining_life_years,licence_years\n"
        "A,2024-01-01,transfer,-5,invention,8,\n"
        "A,2024-13-01,licence_fixed_fee,100,invention,8,\n"
        "C,2024-01-01,gift,100,software,40,\n",
        encoding="utf-8",
    )
    with pytest.raises(ComparablesError, match=r"7 problem\(s\) in 3 row\(s\)") as info:
        load_comparables(bad, valuation_date="2025-06-30")
    assert "row 0 (A): 'price_rmb' = '-5': not a number in (0, 1e+11]. Fix: correct the value." in str(info.value)
    p = info.value.problems
    assert set(p["column"]) == {"price_rmb", "transaction_id", "date", "licence_years", "kind", "patent_type", "remaining_life_years"}
    with pytest.raises(ColumnError, match=r"lacks column\(s\) \['remaining_life_years'\]"):
        load_comparables(pd.DataFrame({"transaction_id": ["A"], "date": ["2024-01-01"], "kind": ["transfer"], "patent_type": ["invention"]}))
    future = pd.read_csv(FIXTURE, dtype=str).head(1).assign(date="2026-01-01")
    with pytest.raises(ComparablesError, match=r"'date' = '2026-01-01': after the valuation date 2025-06-30"):
        load_comparables(future, valuation_date="2025-06-30")


def test_cnipa_range_check_is_a_range_not_a_value():
    out = cnipa_range_check([6_000_000.0, 2_000_000.0, 50_000_000.0, 1.0], [10.0, 10.0, 10.0, 0.0])
    assert out["cnipa_low_per_year_rmb"].iloc[0] == pytest.approx(1_660_000 / 3.0)
    assert out["cnipa_high_per_year_rmb"].iloc[0] == pytest.approx(3_210_000 / 3.6)
    assert out["position"].tolist() == ["within", "below", "above", "no remaining life"]
    assert "a range check, not a market value" in out["note"].iloc[0]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(life=st.floats(0, 25), less=st.floats(0, 25), score=st.floats(0, 100))
def test_value_never_rises_as_remaining_life_falls_and_input_is_not_mutated(valuer, life, less, score):
    frame = pd.concat([subject(remaining_life_years=life, score=score), subject(remaining_life_years=max(life - less, 0.0), score=score).set_axis(["T"])])
    before = frame.copy()
    values = valuer.predict(frame)
    assert values["T"] <= values["S"] + 1e-6
    pd.testing.assert_frame_equal(frame, before)
    pd.testing.assert_series_equal(values, valuer.predict(frame))


def test_a_comparables_file_is_read_once_per_version_and_date(tmp_path, monkeypatch):
    # a service values every application against the bank's same file: read and checked once;
    # an edited file (new size / modification time) is read again, and a caller's copy is its own
    path = tmp_path / "comparables.csv"
    path.write_bytes(FIXTURE.read_bytes())
    reads = []
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    first = load_comparables(path, valuation_date="2025-06-30")
    first.loc[0, "price_rmb"] = -1.0
    again = load_comparables(str(path), valuation_date="2025-06-30")
    assert len(reads) == 1
    pd.testing.assert_frame_equal(again, load_comparables(pd.read_csv(FIXTURE, dtype=str, keep_default_na=False), valuation_date="2025-06-30"))
    path.write_text(FIXTURE.read_text(encoding="utf-8") + "T9,2024-05-01,transfer,900000,invention,G06F 21/10,5,,50,test\n", encoding="utf-8")
    assert len(load_comparables(path, valuation_date="2025-06-30")) == len(again) + 1
    with pytest.raises(ComparablesError):
        load_comparables(path, valuation_date="2024-01-01")  # the date is part of the check
