"""Reconciliation over the methods' offers: the best-ranked market-value candidate, cross-checks in
the disagreement check, floors reported, information shown only, dead and pending rights."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvalue.lending.policy import load_pledge_policy
from ipvalue.lending.reconcile import NOT_IN_FORCE, reconcile
from ipvalue.methods.base import MethodResult, offers_frame

POLICY, _ = load_pledge_policy("pledge-policy-cn")
LABELS = {"income": ("收益法", "income approach"), "market": ("市场法", "market approach"), "cost": ("成本法", "cost approach"),
          "ml": ("机器学习价值模型", "ML value model")}


def result(name, roles, ranks, values, n=None):
    index = pd.RangeIndex(len(values))
    offers = offers_frame(index, role=roles, rank=ranks, market_value_rmb=values, reason_zh=f"{LABELS[name][0]}理由", reason_en=f"{LABELS[name][1]} reason")
    v = pd.DataFrame({"value_rmb": values, "low_rmb": values, "p50_rmb": values, "high_rmb": values}, index=index, dtype=float)
    return MethodResult(name, *LABELS[name], "market_value", v, offers)


def run(results, status=("in_force",), ptype=("invention",), policy=POLICY):
    index = pd.RangeIndex(len(status))
    return reconcile(results, pd.Series(list(status), index=index), pd.Series(list(ptype), index=index), policy=policy)


def test_the_best_ranked_candidate_is_the_market_value_and_cross_checks_enter_the_disagreement():
    out = run({"income": result("income", "primary", 2.0, [3e6]), "market": result("market", "primary", 1.0, [2e6]),
               "cost": result("cost", "floor", 6.0, [1e6])}).iloc[0]
    assert out["basis_method"] == "market" and out["weight_market"] == 1.0 and out["weight_income"] == 0.0
    assert out["collateral_basis_rmb"] == 2e6 and out["value_type"] == "market_value"
    assert out["disagreement"] == pytest.approx(1.5) and out["disagreement_methods"] == "income vs market"  # the floor is not in the check
    assert not out["review_required"]
    assert out["reason_en"] == "market approach reason; income approach as a cross-check; cost approach as a floor"


def test_a_failed_candidate_is_a_cross_check_that_leads_only_when_nothing_else_does():
    both = run({"income": result("income", "primary", 4.0, [1e6]), "market": result("market", "cross_check", 5.0, [3e6])}).iloc[0]
    assert both["basis_method"] == "income" and both["review_required"] and both["disagreement"] == pytest.approx(3.0)
    assert "需复核签字" in both["reason_zh"] and "above the policy factor 2x" in both["reason_en"]
    alone = run({"market": result("market", "cross_check", 5.0, [3e6]), "cost": result("cost", "floor", 6.0, [4e6])}).iloc[0]
    assert alone["basis_method"] == "market" and alone["below_floor"] and alone["reason_en"].endswith("below the cost floor (not raised to it)")
    floor_only = run({"cost": result("cost", "floor", 6.0, [4e5])}).iloc[0]
    assert floor_only["basis_method"] == "cost" and floor_only["collateral_basis_rmb"] == 4e5
    nothing = run({"cost": result("cost", "none", 6.0, [np.nan])}).iloc[0]
    assert nothing["basis_method"] == "" and nothing["review_required"] and nothing["reason_en"] == "no method offers a market value"


def test_information_takes_part_in_nothing():
    out = run({"income": result("income", "primary", 2.0, [1e6]), "ml": result("ml", "information", 3.0, [9e6])}).iloc[0]
    assert out["basis_method"] == "income" and np.isnan(out["disagreement"]) and not out["review_required"]
    assert out["reason_en"].endswith("ML value model for information only")


def test_the_disagreement_factor_comes_from_the_policy():
    results = {"income": result("income", "primary", 2.0, [1e6]), "ml": result("ml", "primary", 3.0, [2.35e6])}
    assert run(results)["review_required"].iloc[0]
    lenient = {**POLICY, "reconciliation": {"rule": "conservative", "disagreement_factor": {"value": 3.0}}}
    assert not run(results, policy=lenient)["review_required"].iloc[0]


@pytest.mark.parametrize("status", NOT_IN_FORCE)
def test_rights_not_in_force_are_worth_zero(status):
    out = run({"income": result("income", "primary", 2.0, [1e6]), "market": result("market", "primary", 1.0, [9e6])}, status=[status]).iloc[0]
    assert out["collateral_basis_rmb"] == 0 and out["market_value_rmb"] == 0 and out["basis_method"] == ""
    assert not out["review_required"] and "collateral value 0" in out["reason_en"]


def test_pending_is_valued_only_as_pending():
    out = run({"income": result("income", "primary", 2.0, [1e6, 2e5])}, status=["pending", "pending"], ptype=["invention", "utility_model"])
    assert out["collateral_basis_rmb"].tolist() == [0.0, 0.0]
    assert out["pending_expected_value_rmb"].tolist() == pytest.approx([5e5, 1.6e5])
    assert out["reason_en"].iloc[0].endswith("a pending application: expected value at grant probability 0.5 only, collateral value 0")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"The register status must be one of .*Got 'alive' for row 0"):
        run({"income": result("income", "primary", 2.0, [1.0])}, status=["alive"])
    with pytest.raises(ValueError, match=r"Row 0 is a pending application with 'patent_type' 'plant'"):
        run({"income": result("income", "primary", 2.0, [1.0])}, status=["pending"], ptype=["plant"])
    with pytest.raises(ValueError, match=r"The 'role' of method 'income' must be one of"):
        result("income", "leader", 2.0, [1.0])


@settings(max_examples=40, deadline=None)
@given(status=st.sampled_from(["in_force", "pending", *NOT_IN_FORCE]), v=st.lists(st.one_of(st.none(), st.floats(1, 1e9)), min_size=3, max_size=3),
       roles=st.lists(st.sampled_from(["primary", "cross_check", "floor", "information", "none"]), min_size=3, max_size=3))
def test_the_collateral_basis_is_zero_unless_in_force_and_is_an_offered_value(status, v, roles):
    values = [np.nan if x is None else x for x in v]
    results = {m: result(m, r, float(i), [x]) for i, (m, r, x) in enumerate(zip(("income", "market", "cost"), roles, values))}
    out = run(results, status=[status]).iloc[0]
    if status != "in_force":
        assert out["collateral_basis_rmb"] == 0
    elif out["basis_method"]:
        assert out["collateral_basis_rmb"] == values[("income", "market", "cost").index(out["basis_method"])]
        assert roles[("income", "market", "cost").index(out["basis_method"])] in ("primary", "cross_check", "floor")
