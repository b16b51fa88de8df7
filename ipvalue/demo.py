"""The README's main job, ``ipvalue demo``: the synthetic pledge book written and loaded back,
models trained and registered, every patent valued, and one synthetic loan application valued as
a loan officer would. **SYNTHETIC DATA** (see :mod:`ipvalue.synthetic`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue import terms
from ipvalue.audit import Identity, add_user, authenticate
from ipvalue.io import default_data_dir, read_patents, write_atomic, write_text_atomic
from ipvalue.lending import LoanApplication, load_pledge_policy, value_book
from ipvalue.lending.disposal import DisposalAssumptions
from ipvalue.registry import load_champion
from ipvalue.synthetic import DATA_DATE, DemoPortfolio, make_demo_portfolio
from ipvalue.training import run_experiment
from ipvalue import workflow

def run_demo(out_dir: str | Path = "demo-output", *, n: int = 400, seed: int = 0, tracking_uri: str | None = None, data_dir=None) -> int:
    """The README's main job on the embedded defaults. Returns an exit code.

    1. writes the SYNTHETIC pledge book to ``out_dir`` and loads it back through the loader and
       validation a bank's export goes through;
    2. trains, logs and registers the renewal model on the real US maintenance-fee data (when
       ``../shared/data`` or ``$IPVALUE_DATA_DIR`` is there) and the value regressor on synthetic
       appraisals, in the MLflow store (default ``sqlite:///mlflow/mlflow.db``);
    3. values every patent: features, pledge scorecard, income approach with Monte Carlo, the
       economic life from the registered renewal champion, and the value champion's P10-P90;
       results with provenance go to ``out_dir/valuations.parquet``;
    4. values the synthetic loan application as a loan officer would (recorded, reported);
    5. ends with a calibration and its out-of-time back-test on a generated pilot ledger
       (:func:`run_calibration_demo`).
    """
    out_dir = Path(out_dir)
    demo = make_demo_portfolio(n, seed)
    patents_csv = write_atomic(demo.patents.drop(columns=["appraised_value_rmb"]), out_dir / "demo_patents.csv")
    write_atomic(demo.loans, out_dir / "demo_loans.csv")
    print(f"SYNTHETIC demo pledge book: {len(demo.patents)} patents, {len(demo.loans)} loan applications -> {out_dir}/")
    loaded = read_patents(patents_csv)
    print(loaded.report(max_problems=10))
    patents = loaded.valid
    valuation_date = demo.loans["valuation_date"].iloc[0]

    experiments = Path(__file__).resolve().parent / "experiments"  # the wheel's copy of experiments/ (setup.py)
    if not experiments.is_dir():
        experiments = Path(__file__).resolve().parents[1] / "experiments"  # a checkout
    try:
        data_dir = data_dir or default_data_dir()
    except FileNotFoundError:
        data_dir = None
    models = {}
    runs = [("value-demo.yaml", "value")] + ([("renewal-us-university.yaml", "renewal")] if data_dir else [])
    for file, kind in runs:
        result = run_experiment(experiments / file, tracking_uri=tracking_uri, data_dir=data_dir)
        print(f"\n{result.summary()}")
        models[kind] = load_champion(f"ipvalue-{kind}", tracking_uri=tracking_uri)  # this run's, or an earlier one
    if not data_dir:
        print("\nrenewal model skipped: no public data (set IPVALUE_DATA_DIR); economic life from the assumption set")

    values, packages = value_book(patents, valuation_date, models={k: v for k, v in models.items() if v}, data_dir=data_dir)
    if models.get("renewal"):
        print(f"\nyearly survival and economic life from {models['renewal'].uri} (version {models['renewal'].version}; "
              f"median expected period in force {values['economic_life_years'].median():.1f} years)")
    write_atomic(values, out_dir / "valuations.parquet")

    by_grade = values.groupby("grade").agg(patents=("patent_id", "size"), value_in_use=("value_in_use_rmb", "sum"), market_value=("market_value_rmb", "sum"))
    if "method_ml_rmb" in values:
        by_grade["ml_p50"] = values.groupby("grade")["method_ml_rmb"].sum()
    print(f"\nthe pledge book at {valuation_date.date()}: assumption set {values['assumption_set'].iloc[0]} "
          f"(hash {values['assumption_set_hash'].iloc[0]}), features {values['feature_spec'].iloc[0]} (hash {values['feature_spec_hash'].iloc[0]})")
    table = by_grade.assign(**{c: (by_grade[c].astype(float) / 1e4).round(1) for c in by_grade.columns if c != "patents"})
    print(table.rename(columns={"value_in_use": "在用价值 value in use (万元)", "market_value": "市场价值 market value, in force (万元)",
                                "ml_p50": "模型 ML P50 (万元, synthetic labels: information only)"}).to_string())
    status = values["register_status"]
    pending = status.eq("pending")
    print(f"rights in force: {int(status.eq('in_force').sum())}; ended (lapsed, expired, invalidated): {int((~status.isin(['in_force', 'pending'])).sum())}, "
          f"market and collateral value 0; pending applications: {int(pending.sum())}, valued only as pending "
          f"(expected value {values.loc[pending, 'pending_expected_value_rmb'].astype(float).sum() / 1e4:,.0f} 万元, never summed into the book)")
    print(f"book: value in use {values.loc[status.eq('in_force'), 'value_in_use_rmb'].sum() / 1e4:,.0f} 万元 → market value {values['market_value_rmb'].sum() / 1e4:,.0f} 万元 → "
          f"collateral value at P{100 * packages['quantile'].iloc[0]:.0f} ({len(packages)} packages) {packages['loan_cap_rmb'].sum() / 1e4:,.0f} 万元")
    print(f"results: {out_dir / 'valuations.parquet'}")

    models = {k: v for k, v in models.items() if v}
    application = write_demo_application(values, demo, out_dir, models={k: v.uri for k, v in models.items()})
    # the models are loaded already: the valuation uses them instead of loading them again
    store = out_dir / "audit.db"
    officer, reviewer = demo_users(store)
    app = LoanApplication.load(application, officer=officer.name)
    recorded = workflow.value_and_record(app, store=store, identity=officer, authenticated_by="api token (SYNTHETIC demo officer)", models=models,
                                         data_dir=data_dir, out_dir=out_dir / "reports")
    _print_application(recorded.result, application.name)
    if recorded.result.summary["decision"] == "review required":
        # the methods disagree beyond the policy's factor: another person, a reviewer, signs off with a reason (审贷分离), as
        # 'ipvalue review sign-off' and POST /v1/valuations/{id}/sign-off do: the sign-off binds to the figures approved
        recorded = workflow.sign_off(recorded.result.valuation_id, app, identity=reviewer, store=store, models=models, data_dir=data_dir,
                                     out_dir=out_dir / "reports", authenticated_by="api token (SYNTHETIC demo reviewer)",
                                     reason="收益法以借款人财务报表为依据，可比交易已核对 (SYNTHETIC demo sign-off)")
        print(f"\nafter the SYNTHETIC reviewer {reviewer.name}'s sign-off (valuation {recorded.result.valuation_id}, superseding "
              f"{recorded.result.provenance['supersedes']}): {recorded.result.summary['decision']}")
    paths = recorded.paths
    print(f"report: {paths['html']}" + (f" (PDF {paths['pdf']})" if paths.get("pdf") else "") + f"\naudit trail: {recorded.store}")
    run_calibration_demo(out_dir, seed=seed, tracking_uri=tracking_uri)
    print("browse the runs: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db")
    return 0


def demo_users(store) -> tuple[Identity, Identity]:
    """The demo's SYNTHETIC officer and reviewer in the demo's own audit store, each authenticated
    by a token issued here (two names, two roles: the reviewer is not the preparer)."""
    officer = authenticate(add_user("syn-demo-officer", "officer", store, created_by="ipvalue demo (SYNTHETIC)"), store)
    reviewer = authenticate(add_user("syn-demo-reviewer", "reviewer", store, created_by="ipvalue demo (SYNTHETIC)"), store)
    return officer, reviewer


def _print_application(result, name: str) -> None:
    """What a credit officer reads first: the value chain with its value types, the methods, the
    choice and the cap."""
    s, p = result.summary, result.patents
    print(f"\nloan application {name} (SYNTHETIC): {terms.both(terms.DECISIONS, s['decision'])}")
    columns = ["patent_id", *[c for c in p if c.startswith("method_") and c.endswith("_rmb")], "basis_method", "market_value_rmb", "collateral_value_rmb"]
    with pd.option_context("display.width", 200, "display.max_columns", 12, "display.float_format", "{:,.0f}".format):
        print(p[columns].to_string(index=False))
    for row in p.itertuples():
        print(f"  {row.patent_id}: {row.method_reason_en}")
    q = round(100 * s["disposal_quantile"])
    print(f"value chain: value in use {s['value_in_use_rmb']:,.0f} RMB (在用价值) → market value {s['market_value_rmb']:,.0f} RMB (市场价值) → "
          f"collateral value P50 {s['collateral_value_p50_rmb']:,.0f} / P{q} {s['collateral_value_rmb']:,.0f} RMB (抵质押价值); pledge-rate limit {s['pledge_value_rmb']:,.0f} RMB")
    print(f"loan cap {s['loan_cap_rmb']:,.0f} RMB (set by {terms.en(terms.CAP_BASIS, s['loan_cap_basis'])}), requested {s['requested_amount_rmb']:,.0f} RMB")
    for c in result.checks[~result.checks["passed"]].itertuples():
        print(f"  {terms.en(terms.CHECK_STATUSES, c.status).upper()} {c.scope} {c.check}: {c.reason_en}")


def write_demo_application(values: pd.DataFrame, demo: DemoPortfolio, out_dir: Path, *, models: dict) -> Path:
    """A SYNTHETIC loan application for the loan of the book most likely to pass the checks (all
    its patents in force with life to spare and fees current), with what a bank would attach:
    three years of the borrower's statements, its tax rate (15 %, 高新技术企业), the product's R&D
    cost, and comparable transactions (the synthetic appraisals of other loans' patents, written to
    ``demo_comparables.csv``). The request is half the cap estimated from the book (the collateral
    basis × the lower of the pledge rate and the disposal view's realisation)."""
    patents = demo.patents.set_index("patent_id")
    v = values.set_index("patent_id").join(patents[["loan_id", "fees_paid_until", "appraised_value_rmb", "ipc_main"]])
    policy, _ = load_pledge_policy("pledge-policy-cn")
    realisation = DisposalAssumptions.load().realisation_factor
    rates = patents["patent_type"].map({ptype: float(rate["value"]) for ptype, rate in policy["pledge_rate"].items()})
    v["cap"] = v["market_value_rmb"].astype(float) * np.minimum(rates, realisation)
    # in force, legal and expected economic life beyond the 2-year term plus the 1-year buffer, fees current
    ok = (v["legal_status"] == "in_force") & (v["remaining_life_years"] > 5) & (v["economic_life_years"].fillna(np.inf) > 3.5) \
        & (v["fees_paid_until"] > DATA_DATE + pd.Timedelta(days=120))
    loans = v.groupby("loan_id").agg(all_ok=("cap", lambda c: bool(ok[c.index].all())), cap=("cap", "sum"), n=("cap", "size"))
    # the loans whose patents all pass first; in a small book there may be none
    loan_id = loans.sort_values(["all_ok", "n", "cap"], ascending=False).index[0]
    loan = demo.loans.set_index("loan_id").loc[loan_id]
    mine = v[v["loan_id"] == loan_id]
    product = patents.loc[mine.index]  # the product's revenue, as the book gives it for the package
    base, growth = float(product["revenue_base_rmb"].iloc[0]), float(product["revenue_growth"].fillna(0.05).iloc[0])
    others = v[(v["loan_id"] != loan_id) & (v["legal_status"] == "in_force") & v["appraised_value_rmb"].notna()].head(40)
    comparables = pd.DataFrame({
        "transaction_id": [f"SYN-TX-{i:04d}" for i in range(len(others))], "date": str((DATA_DATE - pd.Timedelta(days=180)).date()),
        "kind": "transfer", "price_rmb": others["appraised_value_rmb"].round(-2).to_numpy(), "patent_type": others["patent_type"].to_numpy(),
        "ipc_main": others["ipc_main"].to_numpy(), "remaining_life_years": others["remaining_life_years"].round(2).to_numpy(),
        "score": others["score"].round(1).to_numpy(), "source": "SYNTHETIC: appraisal of a synthetic patent",
    })
    write_atomic(comparables, out_dir / "demo_comparables.csv")
    application = {
        "application_id": f"SYN-APP-{loan_id[-5:]}",
        "borrower": loan["borrower"],
        "requested_amount_rmb": float(np.round(0.5 * loans.loc[loan_id, "cap"], -4)),
        "term_years": 2,
        "purpose": "working capital (SYNTHETIC demo application)",
        "valuation_date": str(DATA_DATE.date()),
        "patents": {"file": "demo_patents.csv", "ids": list(mine.index)},
        "revenue_forecast": {"base_rmb": base, "growth": growth},
        "financials": [{"year": year, "revenue_rmb": round(base / (1 + growth) ** k, -2), "operating_margin": 0.07}
                       for k, year in ((3, DATA_DATE.year - 3), (2, DATA_DATE.year - 2), (1, DATA_DATE.year - 1))],
        "tax_rate": 0.15,
        "rd_cost": {"rmb": round(0.2 * base, -3), "year": DATA_DATE.year - 4},
        "comparables": "demo_comparables.csv",
        "assumption_set": "cn-pledge-2025",
        "pledge_policy": "pledge-policy-cn",
        "risk_sharing": "guangzhou-55",
        "models": models,
        "registered_pledges": [],
        "documents": _demo_documents(patents.loc[mine.index], loan["borrower"], term_years=2),
        "overrides": [],
    }
    return write_text_atomic(yaml.safe_dump(application, allow_unicode=True, sort_keys=False), out_dir / "demo_application.yaml")


def _demo_documents(patents: pd.DataFrame, borrower: str, *, term_years: float) -> list[dict]:
    """The SYNTHETIC documents a bank would collect: each co-owner's consent to the pledge
    (专利法 第14条), a 专利权评价报告 for utility models and designs, the receipt of annual fees
    prepaid through the loan term plus the policy's one-year buffer, and an extract of the patent
    register (专利登记簿副本) as the evidence of status and pledges."""
    paid_until = str((DATA_DATE + pd.Timedelta(days=round((term_years + 1) * 365.25) + 31)).date())
    documents = []
    for pid, p in patents.iterrows():
        for co_owner in [a.strip() for a in str(p["applicants"] or "").split(";") if a.strip() and a.strip() != borrower]:
            documents.append({"patent_id": pid, "kind": "co_owner_consent", "co_owner": co_owner, "reference": f"SYN-CONSENT-{pid[-4:]}"})
        if p["patent_type"] in ("utility_model", "design"):
            documents.append({"patent_id": pid, "kind": "evaluation_report", "reference": f"SYN-PJBG-{pid[-4:]}"})
        documents.append({"patent_id": pid, "kind": "fee_prepayment", "reference": f"SYN-FEE-{pid[-4:]}", "paid_until": paid_until})
        documents.append({"patent_id": pid, "kind": "register_extract", "reference": f"SYN-DJB-{pid[-4:]}"})
    return documents


def run_calibration_demo(out_dir: str | Path, *, seed: int = 0, tracking_uri: str | None = None):
    """The demo's last step: a SYNTHETIC pilot ledger with known true parameters
    (:class:`ipvalue.calibration.PilotTruth`) written to ``out_dir/pilot-ledger`` and read back,
    calibrated and back-tested out of time (``out_dir/calibration``: candidate sets, back-test report
    HTML / PDF / JSON, logged to MLflow); prints the recovered coefficients beside the truth, the
    back-test before and after, and where the report is. Returns the calibration."""
    from ipvalue.calibration import PilotTruth, make_pilot_ledger, write_ledger
    from ipvalue.calibration.estimate import SetsInUse
    from ipvalue.calibration.run import calibrate

    out_dir = Path(out_dir)
    truth = PilotTruth()
    ledger = write_ledger(make_pilot_ledger(truth, seed=seed), out_dir / "pilot-ledger")
    print(f"\n校准 calibration: SYNTHETIC pilot ledger of {truth.n_loans} loans with known true parameters -> {ledger}/")
    result = calibrate(ledger, out=out_dir / "calibration", seed=seed, as_of=truth.as_of, tracking_uri=tracking_uri)
    sets = SetsInUse.load()
    true = truth.truth(loss_target=sets.loss_target, holding_rate=sets.disposal.holding_rate, review_share=sets.review_share)
    rows = result.estimates.set_index("key")
    print("系数 coefficient: 真值 truth | 现行 in use → 估计 recovered [90 % interval]")
    for key, value in true.items():
        if key not in rows.index or not np.isfinite(rows.at[key, "estimate"]):
            continue
        r = rows.loc[key]
        inside = "✓" if r["low"] <= value <= r["high"] else "✗"
        now = f"{r['current']:.4g} → " if np.isfinite(r["current"]) else ""
        print(f"  {r['label_zh']} {r['label_en']}: truth {value:.4g} | {now}{r['estimate']:.4g} [{r['low']:.4g}, {r['high']:.4g}] {inside}")
    print(f"样本外回测 out-of-time back-test (calibrated on loans valued up to {result.backtest.split_date.date()}, tested on the later ones):")
    for r in result.backtest.summary.itertuples(index=False):
        if r.metric.startswith(("bias", "mdale", "P10", "net recovery")):
            style = "{:.1%}" if r.metric.startswith(("P10", "net recovery")) else "{:+.3f}" if r.metric.startswith("bias") else "{:.3f}"
            print(f"  {r.metric}: before {style.format(r.before)} → after {style.format(r.after)} (n {r.n})")
    print("闸门 gates: " + ", ".join(f"{k} {'pass' if v else 'FAIL'}" for k, v in result.gates.items())
          + f"; candidate sets in {result.out / 'candidates'} (no valuation uses them until a validator promotes them: ipvalue calibrate promote)")
    print(f"回测报告 back-test report: {result.files['backtest_report_html']}"
          + (f" (PDF {result.files['backtest_report_pdf']})" if "backtest_report_pdf" in result.files else "") + f"; MLflow run {result.run_id}")
    return result
