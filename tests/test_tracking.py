"""MLflow logging: a registered model carries its code and installable requirements. It loads by
URI in a fresh virtual environment holding only its own requirements.txt (no ipvalue, no
checkout), scores raw records, and serves them over HTTP with ``mlflow models serve``."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
import yaml

from ipvalue.frame import to_records
from ipvalue.synthetic import make_demo_portfolio
from ipvalue.tracking import model_requirements

pytestmark = pytest.mark.filterwarnings("ignore")
MODEL = "models:/ipvalue-value@champion"


@pytest.fixture(scope="module")
def registered(value_registry):
    """(tracking uri, the model's local folder, raw records, what the model gives in this process)."""
    import mlflow

    from ipvalue.registry import load_model

    _, uri, _ = value_registry
    model = load_model(MODEL, tracking_uri=uri)
    records = to_records(make_demo_portfolio(25, seed=11).patents.drop(columns=["appraised_value_rmb"]))
    expected = model.pyfunc.predict(records, params={"explain": "none"})
    folder = mlflow.artifacts.download_artifacts(f"models:/ipvalue-value/{model.version}")
    return uri, folder, records, expected


def test_the_model_is_logged_from_code_with_ipvalue_inside_and_no_cloudpickle(registered, value_registry):
    from ipvalue.registry import load_model

    uri, folder, _, _ = registered
    meta = yaml.safe_load(open(os.path.join(folder, "MLmodel"), encoding="utf-8"))["flavors"]["python_function"]
    assert meta["loader_module"] == "mlflow.pyfunc.loaders.code_model" and meta["code"] == "code"
    assert not os.path.exists(os.path.join(folder, "python_model.pkl"))
    assert os.path.isfile(os.path.join(folder, "code", "ipvalue", "features", "spec.py"))
    assert not list(__import__("pathlib").Path(folder, "code").rglob("__pycache__"))
    requirements = open(os.path.join(folder, "requirements.txt"), encoding="utf-8").read().split()
    assert requirements == model_requirements() and not any(r.startswith("ipvalue") for r in requirements)
    assert {"mlflow", "lightgbm", "pandas", "scikit-learn", "shap"} <= {r.split("==")[0] for r in requirements}
    # the registry still reaches the fitted estimator inside the pyfunc
    assert type(load_model(MODEL, tracking_uri=uri).estimator).__name__ == "ValueRegressor"


def test_model_requirements_pin_ipvalue_dependencies_to_installed_versions():
    from importlib.metadata import version

    pins = dict(r.split("==") for r in model_requirements())
    assert pins["numpy"] == version("numpy") and pins["mlflow"] == version("mlflow")
    assert "pytest" not in pins and "pyspark" not in pins  # extras are not run-time needs


SCORE_BY_URI = """
import importlib.util, json, sys
import mlflow, pandas as pd
assert importlib.util.find_spec("ipvalue") is None, "ipvalue must come from the model, not the environment"
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
out = model.predict(pd.read_json(sys.argv[3], orient="records", dtype=False), params={"explain": "none"})
import ipvalue
print(json.dumps({"ipvalue": ipvalue.__file__, "out": json.loads(out.to_json(orient="records"))}))
"""


@pytest.mark.slow
@pytest.mark.venv
def test_a_fresh_environment_with_only_the_model_requirements_loads_it_by_uri_and_scores(registered, model_venv, tmp_path):
    uri, _, records, expected = registered
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "records.json").write_text(records.to_json(orient="records"), encoding="utf-8")
    done = subprocess.run([str(model_venv), "-c", SCORE_BY_URI, uri, MODEL, "records.json"], cwd=empty, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "/code/ipvalue/" in result["ipvalue"]  # the model's own copy of the code
    got = pd.DataFrame(result["out"])
    assert got["patent_id"].tolist() == expected["patent_id"].tolist()
    for col in ("value_p10_rmb", "value_p50_rmb", "value_p90_rmb"):
        np.testing.assert_allclose(got[col].to_numpy(float), expected[col].to_numpy(float), rtol=1e-9)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.venv
def test_mlflow_models_serve_scores_raw_records_over_http_on_loopback(registered, model_venv, tmp_path):
    uri, _, records, expected = registered
    port = _free_port()
    mlflow_cli = model_venv.parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", MODEL, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=tmp_path, start_new_session=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": "", "PATH": f"{model_venv.parent}:{os.environ['PATH']}",
             "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"},
        stdout=open(tmp_path / "serve.log", "wb"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
                time.sleep(1)
        body = json.dumps({"dataframe_records": json.loads(records.to_json(orient="records")), "params": {"explain": "none"}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(), headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=120).read())
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker: the session this test started
            server.wait(timeout=60)
    got = pd.DataFrame(answer["predictions"])
    assert got["patent_id"].tolist() == expected["patent_id"].tolist()
    np.testing.assert_allclose(got["value_p50_rmb"].to_numpy(float), expected["value_p50_rmb"].to_numpy(float), rtol=1e-9)


def test_the_embedded_store_keeps_its_artifacts_outside_the_mlflow_folder(tmp_path):
    """A folder named ``mlflow`` must hold no Python file (it could shadow the package), and logged
    models carry their code as .py files: the default store's artifacts go to ``mlartifacts``."""
    import mlflow

    from ipvalue.tracking import ensure_experiment, local_artifact_root, use_tracking

    assert local_artifact_root(tmp_path / "mlflow" / "mlflow.db") == (tmp_path / "mlartifacts").resolve()
    assert local_artifact_root(tmp_path / "store" / "mlflow.db") == (tmp_path / "store" / "artifacts").resolve()
    (tmp_path / "mlflow").mkdir()
    use_tracking(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    experiment = mlflow.get_experiment(ensure_experiment("where-artifacts-go"))
    assert experiment.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()
