"""The README's main job, ``ipvalue demo``: the synthetic pledge book written and loaded back,
models trained and registered, every patent valued, and one synthetic loan application valued as
a loan officer would. **SYNTHETIC DATA** (see :mod:`ipvalue.synthetic`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ipvalue.audit import recording
from ipvalue.income import IncomeApproachValuer
from ipvalue.io import default_data_dir, read_patents, write_atomic, write_text_atomic
from ipvalue.lending import LoanApplication, load_pledge_policy, value_application
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
        if models.get("renewal"):
            renewal = models["renewal"]
            # US-trained (university maintenance fees): a documented stand-in until a bank trains on 年费 data.
            patents = patents.assign(economic_life_years=renewal.estimator.expected_remaining_life(patents, valuation_date))
            print(f"\neconomic life from {renewal.uri} (version {renewal.version}, US-trained; median {patents['economic_life_years'].median():.1f} years)")
        valuer = IncomeApproachValuer(valuation_date=valuation_date).fit(patents)
        inputs = valuer.inputs(patents)
        draws = valuer.simulate(inputs=inputs)
        values = valuer.value(inputs=inputs, draws=draws)
        book_p5, book_p95 = np.quantile(draws.sum(axis=0), [0.05, 0.95])
        if models.get("value"):
            value_model = models["value"]
            interval = value_model.estimator.predict_interval(patents)
            values[["ml_value_p10_rmb", "ml_value_p50_rmb", "ml_value_p90_rmb"]] = interval.to_numpy()
            values["ml_value_model"] = value_model.uri
    write_atomic(values, out_dir / "valuations.parquet")

    by_grade = values.groupby("grade").agg(patents=("patent_id", "size"), income=("income_value_rmb", "sum"))
    if "ml_value_p50_rmb" in values:
        by_grade["ml_p50"] = values.groupby("grade")["ml_value_p50_rmb"].sum()
    print(f"\nincome approach (收益分成法) at {valuation_date.date()}: assumption set {values['assumption_set'].iloc[0]} "
          f"(hash {values['assumption_set_hash'].iloc[0]}), features {values['feature_spec'].iloc[0]} (hash {values['feature_spec_hash'].iloc[0]})")
    table = by_grade.assign(**{c: (by_grade[c] / 1e4).round(1) for c in by_grade.columns if c != "patents"})
    print(table.rename(columns={"income": "income value (万元)", "ml_p50": "ML P50 (万元)"}).to_string())
    live = values["income_value_rmb"] > 0
    print(f"patents with value: {int(live.sum())}; with no income period (lapsed, expired, invalidated): {int((~live).sum())}")
    print(f"book total: {values['income_value_rmb'].sum() / 1e4:,.0f} 万元 (book P5 {book_p5 / 1e4:,.0f} / P95 {book_p95 / 1e4:,.0f})")
    print(f"results: {out_dir / 'valuations.parquet'}")

    models = {k: v for k, v in models.items() if v}
    application = write_demo_application(values, demo, out_dir, models={k: v.uri for k, v in models.items()})
    # the models are loaded already: the valuation uses them instead of loading them again
    result = value_application(LoanApplication.load(application), models=models, data_dir=data_dir, user="demo")
    with recording(result, out_dir / "audit.db") as audit:
        paths = write_reports(result, out_dir / "reports")
    s = result.summary
    print(f"\nloan application {application.name} (SYNTHETIC): {s['decision']}; internal value {s['internal_value_rmb']:,.0f} RMB, "
          f"loan cap {s['loan_cap_rmb']:,.0f} RMB, requested {s['requested_amount_rmb']:,.0f} RMB")
    print(f"report: {paths['html']}\naudit trail: {audit}")
    print("browse the runs: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db")
    return 0


def write_demo_application(values: pd.DataFrame, demo: DemoPortfolio, out_dir: Path, *, models: dict) -> Path:
    """A SYNTHETIC loan application for the loan of the book most likely to pass the checks: all
    its patents in force with life to spare and fees current; the request is 80 % of its cap as
    estimated from the book's values by the policy's rule (the lowest central estimate of the
    methods × the pledge rate)."""
    patents = demo.patents.set_index("patent_id")
    v = values.set_index("patent_id").join(patents[["loan_id", "fees_paid_until", "legal_status"]])
    policy, _ = load_pledge_policy("pledge-policy-cn")
    rates = {ptype: float(rate["value"]) for ptype, rate in policy["pledge_rate"].items()}
    central = v[["income_value_rmb"] + (["ml_value_p50_rmb"] if "ml_value_p50_rmb" in v else [])].min(axis=1)
    v["cap"] = central * patents["patent_type"].map(rates)
    ok = (v["legal_status"] == "in_force") & (v["remaining_life_years"] > 5) & (v["fees_paid_until"] > DATA_DATE + pd.Timedelta(days=120))
    loans = v.groupby("loan_id").agg(all_ok=("cap", lambda c: bool(ok[c.index].all())), cap=("cap", "sum"), n=("cap", "size"))
    # the loans whose patents all pass first; in a small book there may be none
    loan_id = loans.sort_values(["all_ok", "n", "cap"], ascending=False).index[0]
    loan = demo.loans.set_index("loan_id").loc[loan_id]
    application = {
        "application_id": f"SYN-APP-{loan_id[-5:]}",
        "borrower": loan["borrower"],
        "requested_amount_rmb": float(np.round(0.8 * loans.loc[loan_id, "cap"], -4)),
        "term_years": 2,
        "purpose": "working capital (SYNTHETIC demo application)",
        "valuation_date": str(DATA_DATE.date()),
        "patents": {"file": "demo_patents.csv", "ids": list(v.index[v["loan_id"] == loan_id])},
        "assumption_set": "cn-pledge-2025",
        "pledge_policy": "pledge-policy-cn",
        "risk_sharing": "guangzhou-55",
        "models": models,
        "registered_pledges": [],
        "overrides": [],
    }
    return write_text_atomic(yaml.safe_dump(application, allow_unicode=True, sort_keys=False), out_dir / "demo_application.yaml")
