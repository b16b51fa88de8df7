"""MLflow: runs logged and registered in a temporary store, aliases only through gates, the pyfunc
loads by alias and scores raw records."""

import numpy as np
import pytest
import yaml

from ipvalue.synthetic import make_demo_portfolio
from ipvalue.training import load_experiment, run_experiment
from ipvalue.exceptions import SpecError
from ipvalue.frame import to_records

pytestmark = pytest.mark.filterwarnings("ignore")


def _value_experiment(tmp_path, name="value-test", **gates):
    spec = yaml.safe_load(open("experiments/value-demo.yaml", encoding="utf-8"))
    spec["name"] = name
    spec["data"]["n"] = 700
    spec["split"]["k"] = 3
    spec["gates"] = {"spearman_min": 0.5, "coverage_min": 0.6, "must_beat": ["claims_only"], **gates}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlflow")
    return d, f"sqlite:///{d / 'mlflow.db'}"


def test_renewal_experiment_logs_registers_and_serves_to_records(registry, university):
    import mlflow

    from ipvalue.tracking import use_tracking

    folder, uri, results = registry
    use_tracking(uri)
    result = results["renewal"]
    assert result.gates_passed and result.registration == {"registered": True, "version": 1, "alias": "champion"}
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["gates_passed"] == "True" and len(run.data.tags["training_data_hash"]) == 16
    assert run.data.tags["ipvalue.experiment_file"] == "renewal-us-university.yaml"
    assert run.data.metrics["oot_auc"] > run.data.metrics["baseline_claims_only_auc"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id)}
    assert {"calibration.png", "shap_importance.png", "feature_spec.yaml", "fee_schedule.yaml", "gates.yaml", "reference.parquet", "renewal-us-university.yaml"} <= artifacts
    assert (folder / "artifacts").is_dir()  # artifacts beside the sqlite store, not in ./mlruns

    model = mlflow.pyfunc.load_model("models:/ipvalue-renewal@champion")
    records = to_records(university.tail(20), extra_columns=["cpc_code_count", "similar_doc_count"])
    out = model.predict(records)
    assert out["patent_id"].tolist() == university["patent_id"].tail(20).tolist()
    assert out[["p_fee_1", "p_fee_2", "p_fee_3"]].stack().between(0, 1).all()
    shap_cols = [c for c in out.columns if c.startswith("shap_")]
    logit = np.log(1 - out["p_fee_2"] / out["p_fee_1"]) - np.log(out["p_fee_2"] / out["p_fee_1"])  # log-odds of lapsing at stage 2
    np.testing.assert_allclose(out[shap_cols].sum(axis=1), logit, atol=1e-6)


@pytest.mark.slow
def test_gates_block_a_failing_model_and_passing_ones_become_challenger(store, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    _, uri = store
    passing = run_experiment(_value_experiment(tmp_path), tracking_uri=uri)
    assert passing.registration["alias"] == "champion"
    failing = run_experiment(_value_experiment(tmp_path, "value-test-strict", spearman_min=0.999), tracking_uri=uri)
    assert not failing.gates_passed and failing.registration["registered"] is False
    assert mlflow.get_run(failing.run_id).data.tags["gates_passed"] == "False"
    client = MlflowClient()
    assert [str(v.version) for v in client.search_model_versions("name='ipvalue-value'")] == ["1"]
    second = run_experiment(_value_experiment(tmp_path, "value-test-again"), tracking_uri=uri)
    assert second.registration == {"registered": True, "version": 2, "alias": "challenger"}
    assert str(client.get_model_version_by_alias("ipvalue-value", "champion").version) == "1"

    demo = make_demo_portfolio(30, seed=5).patents
    served = mlflow.pyfunc.load_model("models:/ipvalue-value@challenger").predict(to_records(demo.drop(columns=["appraised_value_rmb"])))
    assert len(served) == 30
    assert (served["value_p10_rmb"] <= served["value_p90_rmb"]).all()


def test_bad_experiment_files_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "mlflow_experiment": "x", "registered_model": "x", "data": {}, "model": {"kind": "forest"}, "split": {}, "gates": {}}))
    with pytest.raises(SpecError, match=r"'model.kind' .* must be one of \['renewal', 'value'\]. Got 'forest'"):
        load_experiment(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_experiment(tmp_path / "none.yaml")


# --- the pilot ledger's prices and appraisals as the value model's labels ---------------------------

def _ledger_experiment(tmp_path, ledger, labels="real_prices", name="value-ledger-test"):
    spec = yaml.safe_load(open("experiments/value-ledger-synthetic.yaml", encoding="utf-8"))
    spec["name"] = name
    spec["data"].update(ledger=str(ledger), labels=labels)
    spec["split"]["k"] = 3
    spec["gates"] = {"spearman_min": 0.2, "coverage_min": 0.6, "must_beat": ["claims_only"]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def test_a_ledger_labels_its_patents_with_prices_or_appraisals(tmp_path):
    from ipvalue.calibration import PilotTruth, make_pilot_ledger, write_ledger
    from ipvalue.training import load_data

    tables = make_pilot_ledger(PilotTruth(n_loans=200), seed=1)
    write_ledger(tables, tmp_path / "ledger")
    prices = load_data(load_experiment(_ledger_experiment(tmp_path, "ledger")), None)
    assert set(prices["label_basis"]) == {"price of a one-patent package", "package price split by itemised appraisals"}
    assert (prices["data_origin"] == "synthetic: real_prices of a synthetic pilot ledger").all() and (prices["price_rmb"] > 0).all()
    one = prices[prices["label_basis"] == "price of a one-patent package"].iloc[0]
    deals = tables["deals"][tables["deals"]["loan_id"] == one["package_id"]]
    assert one["price_rmb"] == pytest.approx(deals["price_rmb"].median())  # a one-patent package's transfer price, whole
    split = prices[prices["label_basis"] == "package price split by itemised appraisals"]
    package = split["package_id"].iloc[0]
    assert split.loc[split["package_id"] == package, "price_rmb"].sum() == pytest.approx(
        tables["deals"].loc[tables["deals"]["loan_id"] == package, "price_rmb"].median())  # the shares add up to the package's price
    appraisals = load_data(load_experiment(_ledger_experiment(tmp_path, "ledger", labels="appraisals")), None)
    assert (appraisals["label_basis"] == "itemised appraisal").all() and len(appraisals) == tables["patents"]["appraised_value_rmb"].notna().sum()
    with pytest.raises(SpecError, match=r"a pilot ledger needs 'data.labels' \(one of \['real_prices', 'appraisals'\]\)"):
        spec = load_experiment(_ledger_experiment(tmp_path, "ledger"))
        spec["data"]["labels"] = "prices"
        load_data(spec, None)


def test_a_banks_ledger_trains_a_value_model_that_reconciliation_takes_as_market_value_evidence(store, tmp_path):
    """The synthetic ledger's rows as a bank's own (data_origin not synthetic): the run's provenance
    says real_prices, and the ML method offers the model as a market-value candidate (a synthetic
    ledger's rows say synthetic, above, and so does its run's tag: information only)."""
    import mlflow

    from ipvalue.calibration import PilotTruth, make_pilot_ledger, write_ledger
    from ipvalue.methods.ml import ValueModelMethod, label_source
    from ipvalue.registry import load_model

    _, uri = store
    tables = make_pilot_ledger(PilotTruth(n_loans=300), seed=2)
    write_ledger({name: frame.assign(data_origin="bank core-banking export 2026-06") for name, frame in tables.items()}, tmp_path / "bank")
    run = run_experiment(_ledger_experiment(tmp_path, "bank", name="value-ledger-bank"), tracking_uri=uri)
    assert mlflow.MlflowClient(uri).get_run(run.run_id).data.tags["data_origin"] == "real_prices"
    assert run.registration["registered"], run.summary()
    model = load_model(f"models:/ipvalue-value-ledger/{run.registration['version']}", tracking_uri=uri)
    method = ValueModelMethod(model).fit()
    assert label_source(model) == "real_prices" and method.label_source_ in method.real_label_sources_
    assert label_source(type("Synthetic", (), {"run_tags": {"data_origin": "synthetic: real_prices of a synthetic pilot ledger"}})()) == "synthetic"
