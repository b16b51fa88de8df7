"""The method contract (ipvalue/methods/base.py) over every valuation method, with the checks the
package ships (``ipvalue.testing``) like scikit-learn's ``parametrize_with_checks``; and a toy
fourth method that a bank adds with its own module and YAML only."""

import importlib
import os
import json
import sys

import numpy as np
import pandas as pd
import pytest

from ipvalue.lending import LoanApplication, value_application
from ipvalue.lending.pipeline import prepare
from ipvalue.methods import registered_methods, unregister_method
from ipvalue.methods.cost import CostApproachValuer
from ipvalue.methods.income import IncomeApproachValuer
from ipvalue.methods.market import MarketApproachValuer
from ipvalue.models import ValueRegressor
from ipvalue.report import render_html
from ipvalue.synthetic import make_demo_portfolio
from ipvalue.testing import check_method_result, check_valuer
from tests.conftest import NO_OTHER_APPLICATIONS

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
    """Subject patents as the market and cost approaches read them: remaining life and score."""
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


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_valuer_contract(name, book):
    valuer, fit_x, fit_y, frame = CASES[name](book)
    check_valuer(valuer, frame, fit_frame=fit_x, fit_y=fit_y, name=name)


def test_the_contract_checks_can_fail(book):
    """The shipped checks are not vacuous: a valuer whose interval is upside down is caught."""
    valuer, fit_x, fit_y, frame = _cost(book)

    class Broken(CostApproachValuer):
        def predict_interval(self, X, *, coverage=0.9):
            out = super().predict_interval(X, coverage=coverage)
            return out.assign(low_rmb=out["high_rmb"] + 1.0)

    with pytest.raises(AssertionError, match="an interval must be ordered"):
        check_valuer(Broken(valuer.assumptions, valuation_date=VD), frame, name="broken")


@pytest.fixture(scope="module")
def full_inputs(value_registry, tmp_path_factory):
    """An application with everything every shipped method needs: comparables, R&D cost, a registered value model."""
    from ipvalue.registry import load_model
    from tests.conftest import synthetic_application

    folder = tmp_path_factory.mktemp("inputs")
    pd.DataFrame([{"transaction_id": f"T{i}", "date": "2025-10-31", "kind": "transfer", "price_rmb": p, "patent_type": t, "ipc_main": "G06F 16/00",
                   "remaining_life_years": 10.0} for i, (p, t) in enumerate([(9e5, "invention"), (1.1e6, "invention"), (1.3e6, "invention"),
                                                                              (3e5, "utility_model"), (4e5, "utility_model"), (5e5, "utility_model")])]
                 ).to_csv(folder / "comparables.csv", index=False)
    app = LoanApplication.from_dict(synthetic_application(comparables="comparables.csv", rd_cost={"rmb": 3_000_000, "year": 2021}), base_dir=folder)
    return prepare(app, {"value": load_model("models:/ipvalue-value@champion", tracking_uri=value_registry[1])})


@pytest.mark.parametrize("spec", registered_methods(), ids=lambda s: s.name)
def test_every_registered_method_returns_what_the_pipeline_needs(spec, full_inputs):
    assert all(full_inputs.has(n) for n in spec.needs), spec.needs
    result = spec.factory(full_inputs).assess(full_inputs.patents, full_inputs)
    check_method_result(result, full_inputs.patents, n_draws=full_inputs.scenarios.n_draws)
    assert result.method == spec.name


@pytest.fixture
def toy():
    sys.path.insert(0, "tests/fixtures")
    module = importlib.import_module("toy_method")
    importlib.reload(module) if "toy" not in [s.name for s in registered_methods()] else None
    yield module
    unregister_method("toy")
    sys.modules.pop("toy_method", None)
    sys.path.remove("tests/fixtures")


def test_a_plug_in_imported_before_the_registry_is_read_comes_after_the_shipped_methods():
    """A bank's method module imported first (its registration is the registry's first) is still
    listed after income, market, cost and the ML model."""
    import subprocess

    code = "import toy_method; from ipvalue.methods.registry import registered_methods; print(' '.join(s.name for s in registered_methods()))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "tests/fixtures"}, check=True)
    assert run.stdout.split() == ["income", "market", "cost", "ml", "toy"]


def test_a_fourth_method_from_its_own_module_and_yaml_reaches_reconciliation_json_and_every_rendering(toy, make_application, tmp_path):
    assert "toy" in [s.name for s in registered_methods()]
    result = value_application(LoanApplication.from_dict(make_application()), user="tester", applications=NO_OTHER_APPLICATIONS)
    p = result.patents
    # the reconciliation: a cross-check in the disagreement check and the reasons
    assert (p["toy_role"] == "cross_check").all() and "toy method as a cross-check" in p["method_reason_en"].iloc[0]
    claims = 12 * 50_000
    assert p["method_toy_rmb"].tolist() == [claims, claims]
    ratio = np.maximum(p["market_value_rmb"], claims) / np.minimum(p["market_value_rmb"], claims)
    np.testing.assert_allclose(p["disagreement"], ratio)
    # the JSON result, the report's data, HTML and PDF
    payload = json.loads(result.to_json())
    assert payload["patents"][0]["method_toy_rmb"] == claims and payload["value_types"]["method_toy_rmb"] == "market_value"
    assert "method-toy" in [s["id"] for s in payload["report"]["sections"]]
    methods_table = next(t for s in payload["report"]["sections"] if s["id"] == "methods" for t in s["tables"] if t["id"] == "methods-table")
    assert "method_toy_rmb" in [c["key"] for c in methods_table["columns"]]
    html = render_html(result.report)
    assert '<section id="section-method-toy">' in html and "玩具法" in html
    from ipvalue.report import pdf_unavailable, render_pdf

    if pdf_unavailable() is None:
        import re
        import subprocess

        (tmp_path / "r.pdf").write_bytes(render_pdf(html))
        text = re.sub(r"\s", "", subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True).stdout)
        assert "玩具法（按权利要求计价）" in text
