"""The model registry: loading a registered version by URI only, with at most one MLflow client (none where the registry is read directly) and without
MLflow's per-load requirement scan; the pinned requirements compared with the installed versions."""

import logging
from importlib.metadata import version

import pytest

from ipvalue.exceptions import ModelNotFoundError
from ipvalue.registry import load_model, requirement_mismatches

pytestmark = pytest.mark.filterwarnings("ignore")
MODEL = "models:/ipvalue-value@champion"


def test_requirement_mismatches_name_each_unmet_pin_and_skip_other_lines(tmp_path):
    (tmp_path / "requirements.txt").write_text(
        f"# pinned when the model was logged\nnumpy=={version('numpy')}\npandas==0.0.1\nno-such-package-for-ipvalue==1.0\n"
        "-r other.txt\nonly-on-python-2==1.0; python_version < '3'\n\n", encoding="utf-8")
    assert requirement_mismatches(tmp_path) == [f"pandas==0.0.1, installed {version('pandas')}", "no-such-package-for-ipvalue==1.0, installed none"]
    assert requirement_mismatches(tmp_path / "no-model-here") == []


@pytest.mark.parametrize("uri", ["runs:/abc/model", "/tmp/model", "models:/ipvalue-value", "file:///tmp/m"])
def test_only_registry_uris_load(uri):
    with pytest.raises(ModelNotFoundError, match="A model must be named by its registry URI"):
        load_model(uri)


@pytest.mark.parametrize("direct", [True, False], ids=["read directly", "through MLflow's client"])
def test_a_load_asks_at_most_one_client_skips_mlflows_scan_and_gives_what_mlflow_gives(value_registry, monkeypatch, caplog, direct):
    import mlflow
    import mlflow.pyfunc
    import mlflow.tracking.client

    import ipvalue.registry_store

    _, uri, _ = value_registry
    if not direct:  # a store the registry is not read from directly (another schema revision, a server)
        monkeypatch.setattr(ipvalue.registry_store, "SCHEMA_REVISIONS", frozenset())
    clients = []
    opened = mlflow.tracking.client.MlflowClient.__init__

    def counted(self, *args, **kwargs):
        clients.append(self)
        opened(self, *args, **kwargs)

    def scan(*args, **kwargs):
        raise AssertionError("MLflow's requirement scan ran")

    monkeypatch.setattr(mlflow.tracking.client.MlflowClient, "__init__", counted)
    monkeypatch.setattr(mlflow.pyfunc, "warn_dependency_requirement_mismatches", scan)
    with caplog.at_level(logging.DEBUG, logger="ipvalue.registry"):
        model = load_model(MODEL, tracking_uri=uri)
    assert len(clients) == (0 if direct else 1)
    assert "models:/ipvalue-value/1: MLflow's requirement check skipped" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # this environment is the one the model was logged in
    monkeypatch.undo()

    reference = mlflow.pyfunc.load_model(f"models:/ipvalue-value/{model.version}")  # MLflow's own path, scan included
    assert (model.name, model.version, model.run_id) == ("ipvalue-value", "1", reference.metadata.run_id)
    assert model.run_tags == mlflow.MlflowClient().get_run(model.run_id).data.tags
    example = reference.input_example
    assert model.pyfunc.predict(example, params={"explain": "none"}).equals(reference.predict(example, params={"explain": "none"}))


def test_a_pin_the_environment_does_not_meet_is_a_warning(value_registry, monkeypatch, caplog):
    import ipvalue.registry

    monkeypatch.setattr(ipvalue.registry, "requirement_mismatches", lambda folder: ["numpy==1.0.0, installed 2.4.6"])
    with caplog.at_level(logging.WARNING, logger="ipvalue.registry"):
        load_model(MODEL, tracking_uri=value_registry[1])
    assert "models:/ipvalue-value/1 was logged with numpy==1.0.0, installed 2.4.6" in caplog.text
