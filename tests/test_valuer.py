"""The valuer contract (ipvalue/valuer.py), run over every valuation method like scikit-learn's
``parametrize_with_checks``: fit returns the valuer, predict gives RMB indexed like the frame,
predict_interval gives ordered low / p50 / high for any coverage, provenance and value type are
stated, the input is not mutated and the same input gives the same output."""

import numpy as np
import pandas as pd
import pytest

from ipvalue.methods.cost import CostApproachValuer
from ipvalue.methods.income import IncomeApproachValuer
from ipvalue.methods.market import MarketApproachValuer
from ipvalue.models import ValueRegressor
from ipvalue.synthetic import make_demo_portfolio
from ipvalue.methods.base import INTERVAL_COLUMNS, VALUE_TYPES, Valuer

pytestmark = pytest.mark.filterwarnings("ignore")
VD = "2026-06-30"


@pytest.fixture(scope="module")
def book():
    return make_demo_portfolio(600, seed=3).patents


def _income(book):
    return IncomeApproachValuer(valuation_date=VD), book, None, book.head(40)


def _value(book):
    labelled = book[book["appraised_value_rmb"].notna()]
    return ValueRegressor("value-v1", valuation_date=VD), labelled, labelled["appraised_value_rmb"], labelled.tail(40)


def _subjects(book) -> pd.DataFrame:
    """Subject patents as the market and cost approaches take them (the income approach's inputs)."""
    valuer = IncomeApproachValuer(valuation_date=VD).fit(book)
    inputs = valuer.inputs(book.head(40))
    return book.head(40)[["patent_type", "ipc_main", "package_id"]].join(inputs[["remaining_life_years", "score"]])


def _market(book):
    subjects = _subjects(book)
    others = book.iloc[100:160].join(IncomeApproachValuer(valuation_date=VD).fit(book).inputs(book.iloc[100:160])[["remaining_life_years", "score"]])
    others = others[others["appraised_value_rmb"].notna() & (others["remaining_life_years"] > 0)]
    comparables = pd.DataFrame({
        "transaction_id": [f"T{i}" for i in range(len(others))], "date": "2026-01-31", "kind": "transfer",
        "price_rmb": others["appraised_value_rmb"].to_numpy(), "patent_type": others["patent_type"].to_numpy(),
        "ipc_main": others["ipc_main"].to_numpy(), "remaining_life_years": others["remaining_life_years"].to_numpy(),
        "score": others["score"].to_numpy(),
    })
    return MarketApproachValuer(comparables, valuation_date=VD), None, None, subjects


def _cost(book):
    subjects = _subjects(book).assign(rd_cost_rmb=2_000_000.0, rd_cost_year=2022, statutory_term_years=20.0)
    return CostApproachValuer(valuation_date=VD), None, None, subjects


CASES = {"income": _income, "value_model": _value, "market": _market, "cost": _cost}


@pytest.fixture(params=sorted(CASES), scope="module")
def case(request, book):
    valuer, fit_x, fit_y, frame = CASES[request.param](book)
    return request.param, valuer, fit_x, fit_y, frame


def test_the_valuer_contract(case):
    name, valuer, fit_x, fit_y, frame = case
    assert valuer.value_type in VALUE_TYPES
    before = frame.copy()
    assert valuer.fit(fit_x, fit_y) is valuer
    assert isinstance(valuer, Valuer), name  # every member of the protocol, provenance included, once fitted
    values = valuer.predict(frame)
    assert isinstance(values, pd.Series) and values.index.equals(frame.index)
    known = values.dropna()
    assert len(known) and np.isfinite(known).all() and (known >= 0).all()
    for coverage in (0.8, 0.9):
        interval = valuer.predict_interval(frame, coverage=coverage)
        assert tuple(interval.columns) == INTERVAL_COLUMNS and interval.index.equals(frame.index)
        ok = interval.dropna()
        assert ((ok["low_rmb"] <= ok["p50_rmb"] + 1e-6) & (ok["p50_rmb"] <= ok["high_rmb"] + 1e-6)).all()
    wide, narrow = valuer.predict_interval(frame, coverage=0.95), valuer.predict_interval(frame, coverage=0.5)
    both = wide.notna().all(axis=1) & narrow.notna().all(axis=1)
    assert (wide.loc[both, "low_rmb"] <= narrow.loc[both, "low_rmb"] + 1e-6).all()  # a wider coverage never narrows
    with pytest.raises(ValueError, match="coverage"):
        valuer.predict_interval(frame, coverage=1.5)
    assert isinstance(valuer.provenance, dict) and valuer.provenance
    pd.testing.assert_frame_equal(frame, before)  # the input is not mutated
    pd.testing.assert_series_equal(valuer.predict(frame), values)  # same input, same output
