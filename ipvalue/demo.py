"""The README's main job, ``ipvalue demo``: the synthetic pledge book written and loaded back,
models trained and registered, every patent valued, and one synthetic loan application valued as
a loan officer would. **SYNTHETIC DATA** (see :mod:`ipvalue.synthetic`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue.audit import pledge_applications, recording
from ipvalue.income import IncomeApproachValuer
from ipvalue.io import default_data_dir, read_patents, write_atomic, write_text_atomic
from ipvalue.lending import LoanApplication, load_pledge_policy, value_application
from ipvalue.lending.disposal import DisposalAssumptions, package_disposal_view
from ipvalue.lending.reconcile import reconcile
from ipvalue.lending.valuation import SURVIVAL_YEARS, collateral_status, ml_label_source
from ipvalue.registry import load_champion
from ipvalue.report import write_reports
from ipvalue.synthetic import DATA_DATE, DemoPortfolio, make_demo_portfolio
from ipvalue.training import run_experiment

def run_demo(out_dir: str | Path = "demo-output", *, n: int = 400, seed: int = 0, tracking_uri: str | None = None, data_dir=None) -> int:
    """The README's main job on the embedded defaults. Returns an exit code.

    1. writes the SYNTHETIC pledge book to ``out_dir`` and loads it back through the loader and
       validation a bank's export goes through;
    2. trains, logs and registers the renewal model on the real US maintenance-fee data (when
       ``../shared/data`` or ``$IPVALUE_DATA_DIR`` is there) and the value regressor on synthetic
       appraisals, in the MLflow store (default ``sqlite:///mlflow/mlflow.db``);
    3. values every patent: features, pledge scorecard, income approach with Monte Carlo, the
       economic life from the registered renewal champion, and the value champion's P10-P90;
       results with provenance go to ``out_dir/valuations.parquet``.
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

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # event counts absent in the file are zero-filled by the spec
        survival = None
        if models.get("renewal"):
            renewal = models["renewal"]
            # US-trained on university maintenance fees; CN patents take the CN life table's level
            # (defaults to calibrate) and the model's ranking, until a bank trains on 年费 data.
            outputs = renewal.estimator.valuation_outputs(patents, valuation_date, years=SURVIVAL_YEARS)
            patents = patents.assign(economic_life_years=outputs.economic_life_years)
            survival = outputs.survival
            print(f"\nyearly survival and economic life from {renewal.uri} (version {renewal.version}; "
                  f"median expected economic life {patents['economic_life_years'].median():.1f} years)")
        valuer = IncomeApproachValuer(valuation_date=valuation_date).fit(patents)
        inputs = valuer.inputs(patents, survival=survival)
        values, draws = valuer.value(inputs=inputs, return_draws=True)
        methods = pd.DataFrame({"legal_status": collateral_status(patents, valuer.features_.transform(patents)),
                                "patent_type": patents["patent_type"], "income_rmb": values["income_value_rmb"], "has_financials": False})
        if models.get("value"):
            value_model = models["value"]
            interval = value_model.estimator.predict_interval(patents)
            values[["ml_value_p10_rmb", "ml_value_p50_rmb", "ml_value_p90_rmb"]] = interval.to_numpy()
            values["ml_value_model"] = value_model.uri
            methods = methods.assign(ml_rmb=values["ml_value_p50_rmb"], ml_label_source=ml_label_source(value_model))
        rec = reconcile(methods)
        values[["primary_method", "reconciled_value_rmb", "collateral_basis_rmb", "pending_expected_value_rmb", "review_required"]] = \
            rec[["primary_method", "reconciled_value_rmb", "collateral_basis_rmb", "pending_expected_value_rmb", "review_required"]].to_numpy()
        centre = np.median(draws, axis=1)
        scale = np.divide(values["collateral_basis_rmb"].to_numpy(float), centre, out=np.zeros(len(values)), where=centre > 0)
        packages, _ = package_disposal_view(draws * scale[:, None], values["package_id"])
    write_atomic(values, out_dir / "valuations.parquet")

    by_grade = values.groupby("grade").agg(patents=("patent_id", "size"), income=("income_value_rmb", "sum"), collateral_basis=("collateral_basis_rmb", "sum"))
    if "ml_value_p50_rmb" in values:
        by_grade["ml_p50"] = values.groupby("grade")["ml_value_p50_rmb"].sum()
    print(f"\nincome approach (收益分成法) at {valuation_date.date()}: assumption set {values['assumption_set'].iloc[0]} "
          f"(hash {values['assumption_set_hash'].iloc[0]}), features {values['feature_spec'].iloc[0]} (hash {values['feature_spec_hash'].iloc[0]}); "
          f"cash flows weighted by {values['cash_flow_weighting'].iloc[0]}")
    table = by_grade.assign(**{c: (by_grade[c].astype(float) / 1e4).round(1) for c in by_grade.columns if c != "patents"})
    print(table.rename(columns={"income": "income value in use (万元)", "collateral_basis": "in force, as collateral basis (万元)",
                                "ml_p50": "ML P50 (万元)"}).to_string())
    status = methods["legal_status"]
    pending = status.eq("pending")
    print(f"rights in force: {int(status.eq('in_force').sum())}; ended (lapsed, expired, invalidated): {int((~status.isin(['in_force', 'pending'])).sum())}, "
          f"collateral value 0; pending applications: {int(pending.sum())}, valued only as pending "
          f"(expected value {values.loc[pending, 'pending_expected_value_rmb'].astype(float).sum() / 1e4:,.0f} 万元, never summed into the book)")
    print(f"book: value in use {values['income_value_rmb'].sum() / 1e4:,.0f} 万元; collateral basis (rights in force) "
          f"{values['collateral_basis_rmb'].astype(float).sum() / 1e4:,.0f} 万元; disposal view at P{100 * packages['quantile'].iloc[0]:.0f} "
          f"(collateral value, {len(packages)} packages) {packages['loan_cap_rmb'].sum() / 1e4:,.0f} 万元")
    print(f"results: {out_dir / 'valuations.parquet'}")

    models = {k: v for k, v in models.items() if v}
    application = write_demo_application(values, demo, out_dir, models={k: v.uri for k, v in models.items()})
    # the models are loaded already: the valuation uses them instead of loading them again
    app = LoanApplication.load(application)
    result = value_application(app, models=models, data_dir=data_dir, user="demo", applications=pledge_applications(out_dir / "audit.db"))
    with recording(result, out_dir / "audit.db") as audit:
        paths = write_reports(result, out_dir / "reports")
    _print_application(result, application.name)
    if result.summary["decision"] == "review required":
        # the methods disagree beyond the policy's factor: a named reviewer signs off with a reason
        raw = {**app.raw, "review": {"reviewer": "SYNTHETIC reviewer 审查员", "reason": "收益法以借款人财务报表为依据，可比交易已核对 (synthetic demo sign-off)"}}
        application = write_text_atomic(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), out_dir / "demo_application_signed.yaml")
        result = value_application(LoanApplication.load(application), models=models, data_dir=data_dir, user="demo", applications=pledge_applications(out_dir / "audit.db"))
        with recording(result, out_dir / "audit.db") as audit:
            paths = write_reports(result, out_dir / "reports")
        print(f"\nafter the reviewer's sign-off ({application.name}): {result.summary['decision']}")
    print(f"report: {paths['html']}" + (f" (PDF {paths['pdf']})" if paths.get("pdf") else "") + f"\naudit trail: {audit}")
    print("browse the runs: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db")
    return 0


def _print_application(result, name: str) -> None:
    """What a credit officer reads first: value types, methods, the choice and the cap."""
    s, p = result.summary, result.patents
    print(f"\nloan application {name} (SYNTHETIC): {s['decision']}")
    columns = [c for c in ("patent_id", "income_value_rmb", "market_value_rmb", "cost_value_rmb", "ml_value_p50_rmb", "primary_method", "value_type",
                           "internal_value_rmb", "disposal_cap_rmb") if c in p]
    with pd.option_context("display.width", 200, "display.max_columns", 12, "display.float_format", "{:,.0f}".format):
        print(p[columns].to_string(index=False))
    for row in p.itertuples():
        print(f"  {row.patent_id}: {row.method_reason_en}")
    print(f"internal value {s['internal_value_rmb']:,.0f} RMB ({s['internal_value_type']}); income approach {s['income_value_rmb']:,.0f} RMB (value in use)")
    print(f"disposal view (collateral value): P50 {s['collateral_value_p50_rmb']:,.0f} RMB, P{100 * s['disposal_quantile']:.0f} {s['disposal_cap_rmb']:,.0f} RMB; "
          f"pledge-rate limit {s['pledge_value_rmb']:,.0f} RMB")
    print(f"loan cap {s['loan_cap_rmb']:,.0f} RMB (set by the {s['loan_cap_basis']}), requested {s['requested_amount_rmb']:,.0f} RMB")
    for c in result.checks[~result.checks["passed"]].itertuples():
        print(f"  FAIL {c.scope} {c.check}: {c.reason_en}")


def write_demo_application(values: pd.DataFrame, demo: DemoPortfolio, out_dir: Path, *, models: dict) -> Path:
    """A SYNTHETIC loan application for the loan of the book most likely to pass the checks (all
    its patents in force with life to spare and fees current), with what a bank would attach:
    three years of the borrower's statements, its tax rate (15 %, 高新技术企业), the product's R&D
    cost, and comparable transactions (the synthetic appraisals of other loans' patents, written to
    ``demo_comparables.csv``). The request is half the cap estimated from the book (the collateral
    basis × the lower of the pledge rate and the disposal view's realisation)."""
    patents = demo.patents.set_index("patent_id")
    v = values.set_index("patent_id").join(patents[["loan_id", "fees_paid_until", "appraised_value_rmb", "legal_status", "ipc_main", "patent_type"]])
    policy, _ = load_pledge_policy("pledge-policy-cn")
    realisation = DisposalAssumptions.load().realisation_factor
    rates = patents["patent_type"].map({ptype: float(rate["value"]) for ptype, rate in policy["pledge_rate"].items()})
    v["cap"] = v["collateral_basis_rmb"].astype(float) * np.minimum(rates, realisation)
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
    (专利法 第14条), a 专利权评价报告 for utility models and designs, and the receipt of annual fees
    prepaid through the loan term plus the policy's one-year buffer."""
    paid_until = str((DATA_DATE + pd.Timedelta(days=round((term_years + 1) * 365.25) + 31)).date())
    documents = []
    for pid, p in patents.iterrows():
        for co_owner in [a.strip() for a in str(p["applicants"] or "").split(";") if a.strip() and a.strip() != borrower]:
            documents.append({"patent_id": pid, "kind": "co_owner_consent", "co_owner": co_owner, "reference": f"SYN-CONSENT-{pid[-4:]}"})
        if p["patent_type"] in ("utility_model", "design"):
            documents.append({"patent_id": pid, "kind": "evaluation_report", "reference": f"SYN-PJBG-{pid[-4:]}"})
        documents.append({"patent_id": pid, "kind": "fee_prepayment", "reference": f"SYN-FEE-{pid[-4:]}", "paid_until": paid_until})
    return documents
