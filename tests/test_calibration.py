"""Calibration from the pilot ledger: the ledger's validation and quarantine, the estimators'
intervals against the generator's known truth, thin ledgers, the out-of-time back-test, the
candidate sets and the ``ipvalue calibrate`` command."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ipvalue.calibration import PilotTruth, load_ledger, make_pilot_ledger, write_ledger
from ipvalue.calibration.backtest import run_backtest
from ipvalue.calibration.estimate import SetsInUse, Settings, estimate_coefficients

pytestmark = pytest.mark.filterwarnings("ignore")

TRUTH = PilotTruth()


@pytest.fixture(scope="module")
def ledger_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ledger") / "pilot"
    write_ledger(make_pilot_ledger(TRUTH, seed=0), path)
    return path


@pytest.fixture(scope="module")
def ledger(ledger_dir):
    return load_ledger(ledger_dir, as_of=TRUTH.as_of)


def test_the_generated_ledger_is_labelled_synthetic_and_loads_whole(ledger_dir, ledger):
    tables = {t: pd.read_csv(ledger_dir / f"{t}.csv", dtype=str) for t in ("loans", "cash_flows", "deals", "overrides")}
    for name, table in tables.items():
        assert (table["data_origin"] == "synthetic: pilot-ledger generator").all(), name
        assert ledger.n_rows[name] == len(table) == len(getattr(ledger, name)) + len(ledger.quarantine[name])
    assert tables["loans"]["loan_id"].str.startswith("SYN-").all() and tables["deals"]["transaction_id"].str.startswith("SYN-").all()
    assert tables["loans"]["officer"].str.startswith("SYN-").all() and tables["loans"]["appraiser"].dropna().str.startswith("SYN-").all()
    assert ledger.problems.empty and ledger.data_origin == "synthetic"
    assert ledger.loans["valuation_date"].dtype.kind == "M" and ledger.loans["bank_share"].notna().all()


def test_an_excel_workbook_reads_like_the_folder(tmp_path, ledger):
    tables = make_pilot_ledger(PilotTruth(n_loans=60), seed=1)
    write_ledger(tables, tmp_path / "ledger.xlsx")
    write_ledger(tables, tmp_path / "folder")
    book, folder = load_ledger(tmp_path / "ledger.xlsx"), load_ledger(tmp_path / "folder")
    assert book.n_rows == folder.n_rows and book.problems.empty
    pd.testing.assert_frame_equal(book.loans, folder.loans, check_dtype=False)


def test_bad_rows_are_quarantined_with_row_column_value_and_fix(tmp_path):
    tables = make_pilot_ledger(PilotTruth(n_loans=40), seed=2)
    loans, flows, deals, overrides = (tables[t].copy() for t in ("loans", "cash_flows", "deals", "overrides"))
    loans["loan_amount_rmb"] = loans["loan_amount_rmb"].astype(object)
    loans.loc[3, "loan_amount_rmb"] = "1,5OO,000"  # letter O for zero
    loans.loc[5, "outcome"] = "defaulted"
    loans.loc[5, ["default_date", "realised_price_rmb", "disposal_date", "disposal_costs_rmb"]] = None
    loans.loc[7, "risk_sharing"] = "shenzhen"
    first = flows.index[flows["loan_id"] == loans.loc[10, "loan_id"]]
    flows.loc[first[0], "cash_flow_high_rmb"] = flows.loc[first[0], "cash_flow_low_rmb"] - 1
    deals.loc[0, "kind"] = "gift"
    overrides = pd.concat([overrides, overrides.head(1).assign(valuation_id="SYN-VAL-99999", loan_id=None)], ignore_index=True)
    write_ledger({"loans": loans, "cash_flows": flows, "deals": deals, "overrides": overrides}, tmp_path)
    result = load_ledger(tmp_path)
    p = result.problems.set_index(["table", "row", "column"])
    assert p.loc[("loans", 4, "loan_amount_rmb"), "value"] == "1,5OO,000"
    assert p.loc[("loans", 4, "loan_amount_rmb"), "problem"] == "not a number"
    assert p.loc[("loans", 4, "loan_amount_rmb"), "fix"] == "write loan_amount_rmb as a plain number"
    assert p.loc[("loans", 6, "default_date"), "problem"] == "a defaulted loan needs its default date"
    assert p.loc[("loans", 8, "risk_sharing"), "value"] == "shenzhen"
    assert p.loc[("loans", 8, "risk_sharing"), "fix"].startswith("use one of guangzhou-55, 5311")
    bad_flow = p.loc[("cash_flows", int(first[0]) + 1, "cash_flow_high_rmb")]
    assert bad_flow["problem"] == "the top of the sharing range gives less than its bottom" and bad_flow["fix"] == "cash_flow_high_rmb ≥ cash_flow_low_rmb"
    siblings = result.problems[result.problems["problem"] == "another cash-flow row of this loan is quarantined"]
    assert set(siblings["row"]) == {int(i) + 1 for i in first[1:]}  # the loan's other periods go with it
    assert p.loc[("deals", 1, "kind"), "value"] == "gift"
    quarantined_loan = result.problems[(result.problems["table"] == "cash_flows") & (result.problems["problem"] == "its loan is quarantined")]
    assert set(quarantined_loan["value"].str.split(" ").str[0]) <= set(loans.loc[[3, 5, 7], "loan_id"])
    assert p.loc[("overrides", len(overrides), "valuation_id"), "problem"] == "no loan with this valuation_id"
    for table in ("loans", "cash_flows", "deals", "overrides"):
        assert result.n_rows[table] == len(getattr(result, table)) + len(result.quarantine[table])
    assert set(result.quarantine["loans"]["row"]) == {4, 6, 8}
    assert "loans row 4 (SYN-LOAN-00004): column 'loan_amount_rmb' = '1,5OO,000': not a number. Fix: write loan_amount_rmb as a plain number" in result.report()


def test_a_table_without_a_required_column_is_refused_naming_it(tmp_path):
    from ipvalue.exceptions import ColumnError

    tables = make_pilot_ledger(PilotTruth(n_loans=20), seed=3)
    write_ledger({"loans": tables["loans"].drop(columns=["outcome"])}, tmp_path)
    with pytest.raises(ColumnError, match=r"The 'loans' table of the pilot ledger .* lacks required column\(s\) \['outcome'\]"):
        load_ledger(tmp_path)


def _covered(table: pd.DataFrame, truth: dict) -> pd.Series:
    rows = table[table["key"].isin(truth)].set_index("key")
    value = pd.Series(truth).reindex(rows.index)
    return (rows["low"] <= value) & (value <= rows["high"])


#: The coefficients the generator knows the truth of, each checked over the seeds.
CHECKED = ("forced_sale_discount", "disposal_cost_rate", "time_to_dispose_years", "position_intercept", "position_slope", "premium_total",
           "pledge_rate.invention", "pledge_rate.utility_model", "pledge_rate.design", "disagreement_factor",
           "default_probability.invention", "default_probability.utility_model", "default_probability.design")


@pytest.mark.slow
def test_the_intervals_cover_the_true_values_over_ten_seeds(tmp_path):
    """Ten generated ledgers (seeds 0-9), every coefficient the generator knows the truth of.

    An honest 90 % interval covers its truth 9 or 10 times in 10 seeds with probability 0.74 only
    (binomial), so requiring 9 of 10 for each of 13 coefficients would fail honest intervals most
    of the time. The test asks what honest intervals give: at least 85 % of the 130 intervals cover
    (expected 117, sd 3.4), and no coefficient covers fewer than 7 of 10 (P = 0.07 for an honest
    interval, 0.62 for one covering 70 %). benchmarks/calibration_coverage.py measures each
    coefficient's coverage over 200 seeds."""
    truth = TRUTH.truth()
    hits = pd.Series(0, index=list(CHECKED))
    estimates = []
    for seed in range(10):
        write_ledger(make_pilot_ledger(TRUTH, seed=seed), tmp_path / str(seed))
        table, _ = estimate_coefficients(load_ledger(tmp_path / str(seed), as_of=TRUTH.as_of), seed=seed)
        assert table.set_index("key").loc[list(CHECKED[:-3]), "changed"].all(), "each coefficient is estimated on a full ledger"
        hits += _covered(table, {k: truth[k] for k in CHECKED}).reindex(hits.index).astype(int)
        estimates.append(table.set_index("key")["estimate"].rename(seed))
    print(pd.concat(estimates, axis=1).loc[list(CHECKED)].assign(truth=pd.Series(truth)).round(4).to_string())
    print(hits.rename("covered of 10").to_string(), f"\ntotal {hits.sum()} of {hits.size * 10}")
    assert hits.sum() >= 0.85 * hits.size * 10, hits
    assert (hits >= 7).all(), hits[hits < 7]


def test_a_thin_ledger_leaves_coefficients_unchanged_and_says_why(tmp_path):
    write_ledger(make_pilot_ledger(PilotTruth(n_loans=40), seed=4), tmp_path)
    table, _ = estimate_coefficients(load_ledger(tmp_path, as_of=TRUTH.as_of))
    rows = table.set_index("key")
    assert not rows["changed"].any()
    disposals = int(rows.at["forced_sale_discount", "n"])
    assert rows.at["forced_sale_discount", "reason"] == f"unchanged: {disposals} completed disposals with realised_price_rmb (minimum 20)"
    assert rows.at["forced_sale_discount", "current"] == 0.60 and np.isnan(rows.at["forced_sale_discount", "estimate"])
    assert rows.at["position_slope", "reason"].startswith("unchanged: ") and "(minimum 30)" in rows.at["position_slope", "reason"]
    assert rows.at["pledge_rate.design", "reason"].startswith("unchanged: ")
    assert rows.at["holding_rate", "reason"].startswith("not identified by disposals")


def test_scores_that_do_not_vary_leave_the_mapping_unchanged(tmp_path):
    tables = make_pilot_ledger(PilotTruth(n_loans=300), seed=5)
    tables["loans"]["score"] = 60.0
    tables["loans"]["sharing_position"] = 0.6
    write_ledger(tables, tmp_path)
    rows = estimate_coefficients(load_ledger(tmp_path, as_of=TRUTH.as_of))[0].set_index("key")
    assert not rows.loc[["position_intercept", "position_slope", "premium_total"], "changed"].any()
    assert rows.at["position_slope", "reason"] == ("unchanged: the scores of the priced packages hardly vary (sd 0.0 points, minimum 5): "
                                                   "the slope is not identified")


def test_appraisals_stand_in_for_deals_and_say_so(tmp_path):
    tables = make_pilot_ledger(TRUTH, seed=6)
    tables["deals"] = tables["deals"][tables["deals"]["loan_id"].isna()]
    write_ledger(tables, tmp_path)
    rows = estimate_coefficients(load_ledger(tmp_path, as_of=TRUTH.as_of))[0].set_index("key")
    assert rows.at["position_slope", "changed"]
    assert "external appraisals (calibrates to the appraisers, not the market)" in rows.at["position_slope", "method"]
    assert "the market value as recorded" in rows.at["appraiser_bias.SYN-评估甲", "method"]


def test_out_of_time_the_calibrated_set_improves_bias_and_p10_coverage(ledger):
    bt = run_backtest(ledger, SetsInUse.load(), Settings.load(), seed=0)
    summary = bt.summary.set_index("metric")
    print(f"\nsplit {bt.split_date.date()}\n" + bt.summary.to_string())
    bias = summary.loc["bias vs deal prices"]
    coverage = summary.loc["P10 beaten by realised net recoveries"]
    assert abs(bias["after"]) < abs(bias["before"])
    assert summary.loc["mdale vs deal prices", "after"] < summary.loc["mdale vs deal prices", "before"]
    assert coverage["after"] > coverage["before"] and coverage["n"] >= 10
    assert set(bt.tables) == {"values", "coverage", "losses", "overrides_by_officer", "overrides_by_branch", "override_drift"}
    assert (bt.tables["values"]["valuation_date"] > bt.split_date).all()
    assert not bt.train_estimates.empty


def test_the_drifting_officer_is_flagged(ledger):
    from ipvalue.calibration.backtest import override_tables

    _, by_branch, drift = override_tables(ledger, Settings.load())
    flagged = drift.loc[drift["drifting_upward"], "officer"].tolist()
    assert TRUTH.drifting_officer in flagged and len(flagged) <= 2
    row = drift.set_index("officer").loc[TRUTH.drifting_officer]
    assert 0 < row["low"] < row["slope_per_year"] < row["high"] and row["overrides"] >= 20
    assert (by_branch["overrides"] <= by_branch["valuations"]).all()


def test_calibrate_writes_candidates_that_cite_the_run_and_the_ledger_and_logs_the_run(ledger_dir, tmp_path):
    import mlflow

    from ipvalue.calibration.run import calibrate
    from ipvalue.config import reading_candidates
    from ipvalue.exceptions import SpecError
    from ipvalue.lending.disposal import DisposalAssumptions
    from ipvalue.lending.policy import load_pledge_policy

    result = calibrate(ledger_dir, out=tmp_path / "out", as_of=TRUTH.as_of, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", report_pdf=False)
    names = sorted(c.file_name for c in result.candidates)
    assert names == ["cn-pledge-2025-v4.yaml", "disposal-cn-v2.yaml", "pledge-policy-cn-v5.yaml"]
    disposal = yaml.safe_load((tmp_path / "out" / "candidates" / "disposal-cn-v2.yaml").read_text(encoding="utf-8"))
    assert disposal["governance"]["status"] == "candidate" and disposal["governance"]["calibration_run"] == result.run_id
    assert disposal["governance"]["ledger_sha256"] == result.ledger.hash and disposal["governance"]["calibrated_from"] == "disposal-cn-v1"
    for key in ("forced_sale_discount", "disposal_cost_rate", "time_to_dispose_years"):
        assert f"MLflow run {result.run_id}, pilot ledger sha256 {result.ledger.hash[:16]}" in disposal[key]["source"]
    assert disposal["holding_rate"]["value"] == 0.10 and disposal["holding_rate"]["source"].startswith("default to calibrate")  # not identified: kept
    with pytest.raises(SpecError, match="is a CANDIDATE written by ipvalue calibrate"):  # no valuation may read it
        DisposalAssumptions.load(str(tmp_path / "out" / "candidates" / "disposal-cn-v2.yaml"))
    with reading_candidates():  # what calibrate and the promotion do to check that it loads
        assert DisposalAssumptions.load(str(tmp_path / "out" / "candidates" / "disposal-cn-v2.yaml")).forced_sale_discount == round(
            float(result.estimates.set_index("key").at["forced_sale_discount", "estimate"]), 4)
        policy, _ = load_pledge_policy(str(tmp_path / "out" / "candidates" / "pledge-policy-cn-v5.yaml"))
    assert policy["version"] == 5 and policy["expected_loss_target"]["value"] == 0.01
    income = yaml.safe_load((tmp_path / "out" / "candidates" / "cn-pledge-2025-v4.yaml").read_text(encoding="utf-8"))
    premiums = sum(income["discount_rate"][p]["value"] for p in ("technology_premium", "market_premium", "funding_premium", "management_premium"))
    assert premiums == pytest.approx(result.estimates.set_index("key").at["premium_total", "estimate"], abs=2e-4)
    assert set(income["sharing_rate"]["position_mapping"]) == {"note", "intercept", "slope"}
    diff = (tmp_path / "out" / "candidates" / "disposal-cn-v2.diff").read_text(encoding="utf-8")
    assert diff.startswith("--- disposal-cn-v1 (in use)\n+++ disposal-cn-v2 (candidate)") and "-  value: 0.6\n" in diff
    gates = yaml.safe_load((tmp_path / "out" / "candidates" / "gates.yaml").read_text(encoding="utf-8"))
    assert set(gates["gates"]) == {"p10_coverage", "bias_vs_deals"} and gates["calibration_run"] == result.run_id
    for name in ("summary", "values", "coverage", "losses", "overrides_by_officer", "overrides_by_branch", "override_drift"):
        assert (tmp_path / "out" / "backtest" / f"{name}.csv").is_file(), name
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result.run_id)
    assert run.data.tags["ledger_sha256"] == result.ledger.hash and run.data.tags["data_origin"] == "synthetic"
    assert run.data.params["ledger_sha256"] == result.ledger.hash
    assert "oot_bias_vs_deal_prices_after" in run.data.metrics and "estimate_forced_sale_discount" in run.data.metrics
    artifacts = {a.path for a in mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").list_artifacts(result.run_id, "calibration/candidates")}
    assert "calibration/candidates/disposal-cn-v2.yaml" in artifacts
    logged = {a.path for a in mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").list_artifacts(result.run_id, "calibration/backtest")}
    assert {"calibration/backtest/report.html", "calibration/backtest/report.json"} <= logged  # the back-test report, logged with its run
    assert json.loads((tmp_path / "out" / "backtest" / "report.json").read_text(encoding="utf-8"))["meta"]["calibration_run"] == result.run_id
    assert "候选参数集 candidate sets" in result.summary()


def test_the_command_exits_1_with_quarantined_rows_and_writes_the_quarantine(tmp_path, capsys):
    from ipvalue.cli import main

    tables = make_pilot_ledger(TRUTH, seed=7)
    tables["loans"].loc[0, "term_years"] = 25.0
    write_ledger(tables, tmp_path / "ledger")
    code = main(["calibrate", str(tmp_path / "ledger"), "--out", str(tmp_path / "out"), "--as-of", TRUTH.as_of,
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    out = capsys.readouterr().out
    assert code == 1
    assert "loans row 1 (SYN-LOAN-00001): column 'term_years' = '25.0': above the maximum 10" in out
    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.csv")
    assert quarantine.loc[0, ["table", "row", "column"]].tolist() == ["loans", 1, "term_years"]
    assert "闸门 gates" in out


def test_the_command_refuses_a_bad_date_as_a_usage_error(capsys):
    from ipvalue.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "ledger", "--as-of", "30/06/2026"])
    assert exc.value.code == 2 and "must be a date written YYYY-MM-DD" in capsys.readouterr().err


def test_a_target_no_rate_can_meet_leaves_the_pledge_rates_unchanged(tmp_path):
    tables = make_pilot_ledger(TRUTH, seed=8)
    loans = tables["loans"]
    disposed = loans.index[loans["realised_price_rmb"].notna()]
    loans.loc[disposed[::2], "realised_price_rmb"] = 0.0  # nothing realised: a loss whatever the rate
    write_ledger(tables, tmp_path)
    sets = SetsInUse.load()
    policy = dict(sets.policy, expected_loss_target={"value": 1e-4, "source": "test"})
    strict = SetsInUse(sets.income, sets.income_raw, sets.disposal, sets.disposal_raw, policy, sets.position_mapping)
    rows = estimate_coefficients(load_ledger(tmp_path, as_of=TRUTH.as_of), strict)[0].set_index("key")
    assert not rows.loc[["pledge_rate.invention", "pledge_rate.utility_model", "pledge_rate.design"], "changed"].any()
    assert rows.at["pledge_rate.invention", "reason"].startswith("unchanged: no rate keeps the expected loss within the target")


def test_the_life_table_is_re_estimated_from_a_register_export_with_thin_ages_unchanged():
    from pathlib import Path

    from ipvalue.calibration.register import life_table_from_register
    from ipvalue.models.renewal import CNLifeTable

    fixture = Path(__file__).resolve().parents[1] / "experiments" / "data" / "cnipa-synthetic"
    rows, current, candidate = life_table_from_register(fixture / "register.csv", fixture / "patents.csv", Settings.load(), exported_on="2025-12-31")
    assert current["name"] == candidate["name"] == "cn-life-table"
    thin = rows[rows["n"] < 50]
    assert len(thin) and not thin["changed"].any() and thin["reason"].str.startswith("unchanged (").all()
    estimated = rows[rows["changed"]]
    assert len(estimated) and ((estimated["low"] <= estimated["estimate"]) & (estimated["estimate"] <= estimated["high"])).all()
    bands = {(t, b["ages"][0]): b for t, e in candidate["types"].items() for b in e["bands"]}
    for r in thin.itertuples():
        _, ptype, age = r.key.split(".")
        assert bands[(ptype, int(age))]["value"] == round(r.current, 4)
    import yaml as _yaml
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cn-life-table.yaml"
        path.write_text(_yaml.safe_dump(candidate, allow_unicode=True), encoding="utf-8")
        assert set(CNLifeTable.load(str(path)).hazards) == {"invention", "utility_model", "design"}


def test_the_command_with_a_register_export_writes_a_life_table_candidate(tmp_path, capsys):
    from pathlib import Path

    from ipvalue.cli import main

    fixture = Path(__file__).resolve().parents[1] / "experiments" / "data" / "cnipa-synthetic"
    write_ledger(make_pilot_ledger(PilotTruth(n_loans=60), seed=9), tmp_path / "ledger")
    code = main(["calibrate", str(tmp_path / "ledger"), "--out", str(tmp_path / "out"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--register", str(fixture / "register.csv"), "--register-patents", str(fixture / "patents.csv"), "--exported-on", "2025-12-31"])
    out = capsys.readouterr().out
    assert code == 1  # a 60-loan ledger has too few test deals and disposals for the gates
    assert "年费失效风险 CN life table:" in out and "cn-life-table-v2.yaml" in out
    table = yaml.safe_load((tmp_path / "out" / "candidates" / "cn-life-table-v2.yaml").read_text(encoding="utf-8"))
    run_id = yaml.safe_load((tmp_path / "out" / "candidates" / "gates.yaml").read_text(encoding="utf-8"))["calibration_run"]
    sources = [b["source"] for e in table["types"].values() for b in e["bands"]]
    assert all(s.startswith(f"calibrated by ipvalue calibrate, MLflow run {run_id}") or s.startswith("unchanged (") for s in sources)
    assert any(s.startswith("calibrated") for s in sources) and table["governance"]["status"] == "candidate"
    assert "bias_vs_deals: FAIL" in out and "not enough evidence" in out
