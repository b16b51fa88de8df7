"""Cost approach: hand-computed figures, package sharing, indexation, bad rows."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvalue.config import load_yaml
from ipvalue.methods.cost import CostApproachValuer


def _frame(**extra):
    base = {"rd_cost_rmb": [1_200_000.0, np.nan, 500_000.0], "rd_cost_year": [2019, np.nan, 2023],
            "remaining_life_years": [12.0, 5.0, 0.0], "statutory_term_years": [20.0, 10.0, 10.0]}
    return pd.DataFrame({**base, **extra}, index=["a", "b", "c"])


def test_cost_indication_by_hand():
    valuer = CostApproachValuer(valuation_date="2025-06-30").fit()
    got = valuer.predict(_frame())
    # 1.2M × 12/20 = 720,000; no cost → NaN; lapsed (0 remaining) → 0
    assert got["a"] == pytest.approx(720_000.0)
    assert np.isnan(got["b"])
    assert got["c"] == 0.0
    assert not valuer.inputs(_frame())["cost_index_applied"].any()
    iv = valuer.predict_interval(_frame().loc[["a"]])
    assert iv.loc["a"].tolist() == [720_000.0, 720_000.0, 720_000.0]


def test_indexation_when_the_bank_gives_an_index():
    raw, _ = load_yaml("cost-cn")
    raw["cost_index"]["values"] = {2019: 100.0, 2025: 110.0}
    got = CostApproachValuer(raw, valuation_date="2025-06-30").fit().inputs(_frame())
    assert got.loc["a", "cost_value_rmb"] == pytest.approx(1_200_000 * 1.1 * 0.6)
    assert got.loc["a", "cost_index_applied"] and not got.loc["c", "cost_index_applied"]


def test_package_cost_is_shared_among_live_patents():
    frame = _frame(package_id=["P", "P", "P"], package_rd_cost_rmb=[900_000.0] * 3).assign(rd_cost_rmb=np.nan, rd_cost_year=2024)
    got = CostApproachValuer(valuation_date="2025-06-30").fit().inputs(frame)
    # two live patents share 900,000: 450,000 × 12/20 and 450,000 × 5/10
    assert got["rd_cost_rmb"].tolist() == [450_000.0, 450_000.0, 0.0]
    assert got["cost_value_rmb"].tolist() == pytest.approx([270_000.0, 225_000.0, 0.0])


def test_bad_rows_are_named():
    valuer = CostApproachValuer(valuation_date="2025-06-30").fit()
    with pytest.raises(ValueError, match=r"Column 'rd_cost_rmb' must be a number in \[0, 1e\+12\]. Got -3.0 in row 'b'"):
        valuer.predict(_frame(rd_cost_rmb=[1.0, -3.0, 1.0]))
    with pytest.raises(ValueError, match=r"Column 'rd_cost_year' must be a number in \[1980, 2025\]. Got 2031.0 in row 'a'"):
        valuer.predict(_frame(rd_cost_year=[2031, np.nan, 2020]))
    with pytest.raises(ValueError, match=r"Row 'a': 'remaining_life_years' \(25\) exceeds 'statutory_term_years' \(20\)"):
        valuer.predict(_frame(remaining_life_years=[25.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match=r"Row 'b' gives an R&D cost but no 'rd_cost_year'"):
        valuer.predict(_frame(rd_cost_rmb=[1.0, 2.0, 3.0]))


@settings(max_examples=100, deadline=None)
@given(cost=st.floats(0, 1e9), life=st.floats(0, 20), less=st.floats(0, 20))
def test_cost_value_never_rises_as_remaining_life_falls(cost, life, less):
    frame = pd.DataFrame({"rd_cost_rmb": cost, "rd_cost_year": 2020, "remaining_life_years": [life, max(life - less, 0.0)], "statutory_term_years": 20.0})
    values = CostApproachValuer(valuation_date="2025-06-30").fit().predict(frame)
    assert 0 <= values[1] <= values[0] <= cost


def test_the_cost_approach_deducts_functional_and_economic_obsolescence_by_hand():
    # R&D ¥1,000,000 in 2020, valued 2025 (no index); 5 years old with 6 years of economic life left:
    # condition factor 成新率 = 6 / (5 + 6); the patent can earn at most ¥300,000: economic obsolescence takes the rest
    frame = pd.DataFrame({"rd_cost_rmb": [1_000_000.0, 1_000_000.0], "rd_cost_year": [2020, 2020], "remaining_life_years": [15.0, 15.0],
                          "statutory_term_years": [20.0, 20.0], "age_years": [5.0, 5.0], "remaining_economic_life": [6.0, 6.0],
                          "earning_capacity_rmb": [300_000.0, np.nan]})
    out = CostApproachValuer(valuation_date="2025-06-30").fit().inputs(frame)
    assert out["condition_factor"].tolist() == pytest.approx([6 / 11, 6 / 11])
    assert out["functional_value_rmb"].tolist() == pytest.approx([545_454.545454, 545_454.545454])
    assert out["economic_obsolescence_rmb"].tolist() == pytest.approx([245_454.545454, 0.0])
    assert out["cost_value_rmb"].tolist() == pytest.approx([300_000.0, 545_454.545454])  # without an earning capacity: functional only
    assert out["economic_obsolescence_applied"].tolist() == [True, False]


def test_the_earning_capacity_by_hand():
    from ipvalue.methods.capacity import earning_capacity

    # one live patent, revenue ¥10M a year, industry margin 5.76 %, top of the split 27 %, standard tax 25 %, 8.8 % over 6.5 years
    frame = pd.DataFrame({"package_id": ["P", "P"], "revenue_base_rmb": [10_000_000.0, 10_000_000.0]})
    got = earning_capacity(frame, [6.5, 0.0], financials=None, assumption_set="cn-pledge-2025")
    yearly = 10_000_000 * 0.0576 * 0.27 * 0.75
    annuity = sum(1.088 ** -t for t in range(1, 7)) + 0.5 * 1.088 ** -7
    assert got.tolist() == pytest.approx([yearly * annuity, 0.0])  # the dead patent earns nothing and takes no share
