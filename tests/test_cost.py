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
