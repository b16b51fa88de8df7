"""Reconciliation: the evidence rules, weights and reasons, disagreement, dead and pending rights."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvalue.lending.reconcile import NOT_IN_FORCE, reconcile


def units(**cols):
    base = {"legal_status": "in_force", "patent_type": "invention"}
    n = max(len(v) for v in cols.values() if isinstance(v, list))
    return pd.DataFrame({**{k: [v] * n for k, v in base.items()}, **cols}, index=[f"U{i}" for i in range(n)])


def test_market_leads_with_enough_close_comparables():
    out = reconcile(units(income_rmb=[3e6], market_rmb=[2e6], market_n_comparables=[4], market_spread=[1.5], cost_rmb=[1e6])).iloc[0]
    assert out["primary_method"] == "market" and out["weight_market"] == 1.0 and out["weight_income"] == 0.0
    assert out["reconciled_value_rmb"] == 2e6 and out["value_type"] == "market_value"
    assert out["disagreement"] == pytest.approx(3.0) and out["disagreement_methods"] == "income vs cost"
    assert out["review_required"]  # 3.0 > policy factor 2.0
    assert out["reason_en"] == ("4 comparables within a spread of 1.5x: market approach is primary; income approach as a cross-check; "
                                "cost approach as a cross-check; the methods differ by 3.0x (income vs cost), above the policy factor 2x: review required")
    assert out["reason_zh"].startswith("可比交易4笔且价差1.5倍，证据充分，以市场法为主；收益法作交叉核对")
    assert out["collateral_basis_rmb"] == 2e6


def test_rule_order_by_evidence():
    frame = units(
        income_rmb=[1e6, 1e6, 1e6, 1e6, np.nan, np.nan],
        has_financials=[True, False, False, False, False, False],
        market_rmb=[1.2e6, 1.2e6, np.nan, 1.1e6, np.nan, np.nan],
        market_n_comparables=[2, 2, 0, 5, 0, 0],
        market_spread=[1.2, 1.2, np.nan, 4.0, np.nan, np.nan],
        ml_rmb=[1.5e6, 1.5e6, 1.5e6, np.nan, np.nan, np.nan],
        ml_label_source=["synthetic", "appraisals", "synthetic", None, None, None],
        cost_rmb=[np.nan, np.nan, np.nan, np.nan, 4e5, np.nan],
    )
    out = reconcile(frame)
    assert out["primary_method"].tolist() == ["income", "ml", "income", "income", "cost", "none"]
    assert out["ml_role"].tolist() == ["challenger", "primary candidate", "challenger", "challenger", "challenger", "challenger"]
    assert out["reason_en"].iloc[2].startswith("too few or too dispersed comparables and no financial statements")
    assert out["review_required"].tolist() == [False, False, False, False, False, True]
    assert out["value_type"].tolist()[:2] == ["value_in_use", "market_value"]


def test_disagreement_beyond_the_factor_requires_review_and_the_factor_comes_from_policy():
    frame = units(income_rmb=[1e6], has_financials=[True], ml_rmb=[2.35e6], ml_label_source=["synthetic"])
    out = reconcile(frame).iloc[0]
    assert out["review_required"] and out["disagreement"] == pytest.approx(2.35)
    assert "需复核签字" in out["reason_zh"]
    lenient = {"name": "p", "reconciliation": {"disagreement_factor": {"value": 3.0}}}
    assert not reconcile(frame, policy=lenient)["review_required"].iloc[0]


def test_cost_is_a_floor_reported_not_applied():
    out = reconcile(units(income_rmb=[5e5], has_financials=[True], cost_rmb=[6e5])).iloc[0]
    assert out["reconciled_value_rmb"] == 5e5 and out["below_cost_floor"]
    assert out["reason_en"].endswith("below the cost floor (not raised to it)")


@pytest.mark.parametrize("status", NOT_IN_FORCE)
def test_rights_not_in_force_have_collateral_zero(status):
    out = reconcile(units(legal_status=[status], income_rmb=[1e6], market_rmb=[9e6], market_n_comparables=[5], market_spread=[1.1])).iloc[0]
    assert out["collateral_basis_rmb"] == 0 and out["reconciled_value_rmb"] == 0 and out["primary_method"] == "none"
    assert not out["review_required"] and "collateral value 0" in out["reason_en"]


def test_pending_is_valued_only_as_pending():
    out = reconcile(units(legal_status=["pending", "pending"], patent_type=["invention", "utility_model"], income_rmb=[1e6, 2e5], has_financials=[True, True]))
    assert out["collateral_basis_rmb"].tolist() == [0.0, 0.0]
    assert out["pending_expected_value_rmb"].tolist() == pytest.approx([5e5, 1.6e5])
    assert out["reason_en"].iloc[0].endswith("a pending application: expected value at grant probability 0.5 only, collateral value 0")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"Column 'legal_status' must be one of .*Got 'alive' in row 'U0'"):
        reconcile(units(legal_status=["alive"], income_rmb=[1.0]))
    with pytest.raises(ValueError, match=r"Column 'income_rmb' of the method results must be a number >= 0 or missing. Got -1.0 in row 'U0'"):
        reconcile(units(income_rmb=[-1.0]))
    with pytest.raises(ValueError, match=r"Row 'U0' is a pending application with 'patent_type' 'plant'"):
        reconcile(units(legal_status=["pending"], patent_type=["plant"], income_rmb=[1.0]))


@settings(max_examples=40, deadline=None)
@given(status=st.sampled_from(["in_force", "pending", *NOT_IN_FORCE]), v=st.lists(st.one_of(st.none(), st.floats(1, 1e9)), min_size=4, max_size=4))
def test_collateral_basis_is_zero_unless_in_force_and_never_above_the_reconciled_value(status, v):
    frame = units(legal_status=[status], income_rmb=[v[0]], market_rmb=[v[1]], market_n_comparables=[3], market_spread=[1.0], cost_rmb=[v[2]], ml_rmb=[v[3]])
    out = reconcile(frame.astype({c: float for c in ("income_rmb", "market_rmb", "cost_rmb", "ml_rmb")})).iloc[0]
    if status != "in_force":
        assert out["collateral_basis_rmb"] == 0
    else:
        assert out["collateral_basis_rmb"] == out["reconciled_value_rmb"] or np.isnan(out["reconciled_value_rmb"])
