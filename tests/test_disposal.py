"""Disposal view: hand-computed figures, properties, the assumption set's checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ipvalue.config import load_yaml
from ipvalue.exceptions import AssumptionError
from ipvalue.lending.disposal import DisposalAssumptions, collateral_value, disposal_view, package_disposal_view


def test_default_set_has_a_source_for_every_number():
    raw, _ = load_yaml("disposal-cn")
    for key in ("forced_sale_discount", "disposal_cost_rate", "time_to_dispose_years", "holding_rate", "cap_quantile"):
        assert raw[key]["source"]
    a = DisposalAssumptions.load()
    assert (a.forced_sale_discount, a.disposal_cost_rate, a.time_to_dispose_years, a.holding_rate, a.cap_quantile) == (0.6, 0.03, 1.0, 0.1, 0.1)


def test_collateral_value_by_hand():
    # ¥1,000,000 market value: sold at 40 %, 3 % fees, paid after 1 year at 10 %: 370,000 / 1.1
    assert collateral_value(1_000_000.0)[()] == pytest.approx(336_363.636364, rel=1e-9)
    # 18 months to dispose, 5 % fees, 50 % discount, 8 % holding
    custom = {"forced_sale_discount": 0.5, "disposal_cost_rate": 0.05, "time_to_dispose_years": 1.5, "holding_rate": 0.08, "cap_quantile": 0.1}
    assert collateral_value([2_000_000.0], custom)[0] == pytest.approx(2_000_000 * 0.45 / 1.08**1.5, rel=1e-12)


def test_cap_read_at_p10_of_the_draws():
    draws = np.arange(1, 11, dtype=float) * 100_000  # 100k .. 1M
    view = disposal_view(draws, index=["PKG-1"])
    # P10 of 100k..1M (linear) = 190,000; × 0.37 / 1.1
    assert view.loc["PKG-1", "loan_cap_rmb"] == pytest.approx(190_000 * 0.37 / 1.1, rel=1e-12)
    assert view.loc["PKG-1", "market_value_p50_rmb"] == pytest.approx(550_000)
    assert view.loc["PKG-1", "collateral_value_p50_rmb"] == pytest.approx(550_000 * 0.37 / 1.1)
    assert view.attrs["value_types"]["loan_cap_rmb"] == "collateral_value"
    assert view["disposal_assumption_set"].iloc[0] == "disposal-cn-v1"


def test_bad_inputs_and_sets_are_named():
    with pytest.raises(ValueError, match=r"'market_value_rmb' must be finite RMB amounts >= 0. Got -5.0 at position \(1,\)"):
        collateral_value([1.0, -5.0])
    with pytest.raises(ValueError, match=r"'quantile' of the disposal view must be in \(0, 0.5\]. .*Got 0.9"):
        disposal_view([1.0, 2.0], quantile=0.9)
    bad = {"name": "x", "forced_sale_discount": 0.9, "disposal_cost_rate": 0.2, "time_to_dispose_years": 1, "holding_rate": 0.1, "cap_quantile": 0.1}
    with pytest.raises(AssumptionError, match=r"'forced_sale_discount' \(0.9\) plus 'disposal_cost_rate' \(0.2\) of assumption set 'x' exceed 1"):
        DisposalAssumptions.load(bad)
    with pytest.raises(AssumptionError, match=r"'holding_rate' of assumption set 'x' must be in \[0, 1\]. Got -0.1"):
        DisposalAssumptions.load({**bad, "forced_sale_discount": 0.5, "holding_rate": -0.1})


share = st.floats(0, 1)


@settings(max_examples=100, deadline=None)
@given(
    values=arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1e10)),
    discount=share, cost=share, years=st.floats(0, 10), rate=st.floats(0, 1),
)
def test_disposal_view_never_exceeds_market_value_and_is_never_negative(values, discount, cost, years, rate):
    cost = min(cost, 1 - discount)
    a = {"forced_sale_discount": discount, "disposal_cost_rate": cost, "time_to_dispose_years": years, "holding_rate": rate, "cap_quantile": 0.1}
    got = collateral_value(values, a)
    assert (got >= 0).all()
    assert (got <= values).all()
    view = disposal_view(values, assumptions=a)
    assert 0 <= view["loan_cap_rmb"].iloc[0] <= view["collateral_value_p50_rmb"].iloc[0] <= view["market_value_p50_rmb"].iloc[0]


def test_the_package_is_the_pledge_unit():
    # two patents of package P (draws summed scenario by scenario), one alone in Q
    draws = np.array([[100.0, 300.0, 200.0], [50.0, 10.0, 30.0], [80.0, 80.0, 80.0]])
    packages, allocation = package_disposal_view(draws, ["P", "P", "Q"], patent_id=["a", "b", "c"], quantile=0.5)
    factor = 0.37 / 1.1
    # P's scenarios: 150, 310, 230 → median 230
    assert packages.loc["P", "market_value_p50_rmb"] == pytest.approx(230.0)
    assert packages.loc["P", "loan_cap_rmb"] == pytest.approx(230.0 * factor)
    assert packages.loc["Q", "loan_cap_rmb"] == pytest.approx(80.0 * factor)
    # allocation by the patents' own medians: a 200, b 30 → 200/230 and 30/230
    a = allocation.set_index("patent_id")
    assert a.loc["a", "allocation_share"] == pytest.approx(200 / 230) and a.loc["c", "allocation_share"] == 1.0
    np.testing.assert_allclose(allocation.groupby("package_id")["loan_cap_rmb"].sum(), packages["loan_cap_rmb"])
    with pytest.raises(ValueError, match=r"one row per patent \(2\). Got shape \(3, 3\)"):
        package_disposal_view(draws, ["P", "P"])
