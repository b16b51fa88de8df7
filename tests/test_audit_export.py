"""``ipvalue audit export``: the audit store's valuations as the pilot ledger's loans, cash-flows and
overrides tables, read back by the ledger loader, whose cash flows give back each recorded market
value (so a bank's own valuations feed ``ipvalue calibrate``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ipvalue import workflow
from ipvalue.audit import Identity, read_audit_table
from ipvalue.calibration import load_ledger
from ipvalue.calibration.estimate import estimate_coefficients
from ipvalue.calibration.export import export_ledger
from ipvalue.calibration.values import ValueTable
from ipvalue.lending import LoanApplication
from tests.conftest import synthetic_application

pytestmark = pytest.mark.filterwarnings("ignore")

OVERRIDE = {"patent_id": "SYN-CN-T001", "field": "sharing_rate", "value": 0.005, "reason": "产品毛利低于行业均值", "officer": "wang.officer"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Four valuations of three applications recorded through the one workflow (the first valued twice:
    the export takes the latest), one with an officer's override, one on comparables."""
    folder = tmp_path_factory.mktemp("store")
    db = folder / "audit.db"
    pd.DataFrame([{"transaction_id": f"T{i}", "date": "2025-06-30", "kind": "transfer", "price_rmb": 1_500_000 * (1 + i / 20), "patent_type": t,
                   "ipc_main": "G06F 16/00", "remaining_life_years": 12.0} for i, t in enumerate(["invention"] * 3 + ["utility_model"] * 3)]
                 ).to_csv(folder / "comparables.csv", index=False)
    applications = [
        synthetic_application(application_id="SYN-EXP-1", requested_amount_rmb=200_000),
        synthetic_application(application_id="SYN-EXP-1", requested_amount_rmb=250_000),
        synthetic_application(application_id="SYN-EXP-2", term_years=3, risk_sharing="guangzhou-55", overrides=[OVERRIDE],
                              revenue_forecast={"base_rmb": 90_000_000, "growth": 0.03}),
        synthetic_application(application_id="SYN-EXP-3", comparables="comparables.csv"),
    ]
    recorded = [workflow.value_and_record(LoanApplication.from_dict(raw, base_dir=folder), store=db, identity=Identity(user, "officer"))
                for raw, user in zip(applications, ("li.officer", "li.officer", "wang.officer", "li.officer"))]
    return db, recorded


def test_the_export_reads_back_as_a_ledger_whose_cash_flows_give_the_recorded_market_values(store, tmp_path):
    db, recorded = store
    export = export_ledger(tmp_path / "ledger", db, branch="SYN-分行01")
    ledger = load_ledger(tmp_path / "ledger")
    assert ledger.problems.empty and ledger.n_rows == {"loans": 3, "cash_flows": len(export.tables["cash_flows"]), "overrides": 1}
    loans = ledger.loans.set_index("loan_id")
    latest = {r.result.application.application_id: r.result for r in recorded}  # the last valuation of each application
    assert loans.loc["SYN-EXP-1", "valuation_id"] == recorded[1].result.valuation_id.upper() and loans.loc["SYN-EXP-1", "loan_amount_rmb"] == 250_000
    for loan_id, result in latest.items():
        s = result.summary
        assert loans.loc[loan_id, "market_value_rmb"] == pytest.approx(s["market_value_rmb"])
        assert loans.loc[loan_id, "loan_cap_rmb"] == pytest.approx(s["loan_cap_rmb"]) and loans.loc[loan_id, "outcome"] == "open"
        assert loans.loc[loan_id, "assumption_set"] == result.provenance["assumption_set"] and loans.loc[loan_id, "branch"] == "SYN-分行01"
    assert loans.loc["SYN-EXP-2", "risk_sharing"] == "guangzhou-55" and loans.loc["SYN-EXP-2", "bank_share"] == 0.5
    assert loans.loc["SYN-EXP-2", "officer"] == "wang.officer" and loans.loc["SYN-EXP-2", "term_years"] == 3
    # the income-based loans: V(position, rate) of the exported cash flows is the recorded market value
    income = loans[loans["market_value_basis"] == "income_market_participant"]
    assert set(income.index) == {"SYN-EXP-1", "SYN-EXP-2"} and loans.loc["SYN-EXP-3", "market_value_basis"] == "market_approach"
    table = ValueTable(ledger.cash_flows)
    recomputed = table.values(income.index, income["sharing_position"].to_numpy(), income["discount_rate"].to_numpy())
    np.testing.assert_allclose(recomputed, income["market_value_rmb"].to_numpy(), rtol=1e-6)
    assert not table.has(["SYN-EXP-3"]).any()  # a value on comparables is not recomputed from cash flows
    # a package's position and score: its patents' weighted as the module says; the officer's rate leaves one patent's range flat
    flows = ledger.cash_flows[ledger.cash_flows["loan_id"] == "SYN-EXP-2"]
    assert (flows["cash_flow_high_rmb"] >= flows["cash_flow_low_rmb"]).all() and (flows["cash_flow_high_rmb"] > flows["cash_flow_low_rmb"]).any()
    assert 0 < income.loc["SYN-EXP-2", "sharing_position"] < 1
    over = ledger.overrides.iloc[0]
    assert (over["loan_id"], over["officer"], over["field"], over["override_value"]) == ("SYN-EXP-2", "wang.officer", "sharing_rate", 0.005)
    assert over["model_value"] == pytest.approx(recorded[2].result.overrides["model_value"].iloc[0])
    assert (ledger.loans["data_origin"] == f"ipvalue audit export of {db}").all()
    # what calibrate makes of it: too few loans for anything, each coefficient left unchanged, saying why
    rows, _ = estimate_coefficients(ledger)
    assert not rows["changed"].any() and rows["reason"].str.len().gt(0).all()


def test_the_command_exports_and_says_what_the_bank_fills_in(store, tmp_path, capsys):
    from ipvalue.cli import main

    db, _ = store
    assert main(["audit", "export", "--out", str(tmp_path / "ledger"), "--audit-db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "台账导出 ledger export: loans 3, cash_flows" in out and "3 loan(s) without a branch" in out and "fill in what happened" in out
    loans = pd.read_csv(tmp_path / "ledger" / "loans.csv")
    assert loans["branch"].isna().all()  # not invented: the bank fills it in
    problems = load_ledger(tmp_path / "ledger").problems
    assert set(problems["problem"]) == {"required value is missing", "its loan is quarantined"}  # named, not guessed
    assert problems.loc[problems["table"] == "loans", "column"].eq("branch").all()
    assert main(["audit", "export", "--out", str(tmp_path / "x"), "--audit-db", str(tmp_path / "none.db")]) == 3
    assert json.loads(read_audit_table("valuations", db)["result_json"].iloc[0])["report"]["sections"]  # read from the recorded JSON
