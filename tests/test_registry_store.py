"""A registered model read straight from MLflow's SQLite registry (no MLflow import): the same
version, run tags, estimator and figures as MLflow's client gives; an alias moved is seen by the
next load; another schema revision or a store that is not a SQLite file goes through MLflow's
client; files outside the registry's artifact root, or paths leading out of the model's folder,
are refused before anything is unpickled."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

import ipvalue.registry
import ipvalue.registry_store
from ipvalue.exceptions import ModelNotFoundError, ModelStorageError
from ipvalue.frame import as_patent_frame, to_records
from ipvalue.registry import load_model
from ipvalue.synthetic import make_demo_portfolio
from tests.conftest import NO_OTHER_APPLICATIONS

pytestmark = pytest.mark.filterwarnings("ignore")
MODEL = "models:/ipvalue-value@champion"


@pytest.fixture(autouse=True)
def _mlflow_pointed_back(value_registry):
    """Tests here point MLflow at copies of the store; the session's store is restored after each."""
    yield
    from ipvalue.tracking import use_tracking

    use_tracking(value_registry[1])


def _through_mlflow(monkeypatch, uri: str, model: str = MODEL):
    """``load_model`` as MLflow's client does it (the direct read declined), the direct path undone after."""
    with monkeypatch.context() as patched:
        patched.setattr(ipvalue.registry_store, "SCHEMA_REVISIONS", frozenset())
        return load_model(model, tracking_uri=uri)


def _direct_only(monkeypatch):
    def refused(uri):
        raise AssertionError(f"{uri} went through MLflow's client")

    monkeypatch.setattr(ipvalue.registry, "_load_through_mlflow", refused)


def _copy_store(folder: Path, to: Path) -> str:
    """A copy of a SQLite registry (database and artifacts) at ``to``, its locations rewritten to the
    copy; returns its tracking URI."""
    shutil.copytree(folder / "artifacts", to / "artifacts")
    shutil.copy(folder / "mlflow.db", to / "mlflow.db")
    with sqlite3.connect(to / "mlflow.db") as db:
        for table, column in (("experiments", "artifact_location"), ("model_versions", "storage_location"), ("runs", "artifact_uri"),
                              ("logged_models", "artifact_location")):
            db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (str(folder / "artifacts"), str(to / "artifacts")))
    return f"sqlite:///{to / 'mlflow.db'}"


def _storage(uri: str) -> Path:
    with sqlite3.connect(uri[len("sqlite:///"):]) as db:
        return Path(db.execute("SELECT storage_location FROM model_versions WHERE name = 'ipvalue-value' AND version = 1").fetchone()[0][len("file://"):])


def test_the_direct_read_gives_what_mlflows_client_gives(value_registry, monkeypatch):
    _, uri, _ = value_registry
    reference = _through_mlflow(monkeypatch, uri)
    _direct_only(monkeypatch)
    model = load_model(MODEL, tracking_uri=uri)
    assert (model.loaded_through, reference.loaded_through) == ("registry database", "MLflow client")
    assert (model.name, model.version, model.run_id, model.folder) == (reference.name, reference.version, reference.run_id, reference.folder)
    assert model.run_tags == reference.run_tags and model.run_tags["gates_passed"] == "True"
    assert model.metadata == reference.metadata
    records = to_records(make_demo_portfolio(60, seed=5).patents.drop(columns=["appraised_value_rmb"]))
    expected = reference.pyfunc.predict(records, params={"explain": "all"})
    assert model.pyfunc.predict(records, params={"explain": "all"}).equals(expected)  # the pyfunc, loaded by MLflow on first use
    assert model.estimator.output_frame(as_patent_frame(records)).equals(reference.estimator.output_frame(as_patent_frame(records)))
    assert type(model.estimator) is type(reference.estimator) and model.estimator is not reference.estimator  # unpickled apart


def test_a_valuation_with_models_read_directly_equals_one_with_mlflows(registry, make_application, monkeypatch):
    from ipvalue.lending import LoanApplication, value_application

    _, uri, _ = registry
    raw = make_application(models={"renewal": "models:/ipvalue-renewal@champion", "value": "models:/ipvalue-value@champion"})
    app = LoanApplication.from_dict(raw)
    by_mlflow = {kind: _through_mlflow(monkeypatch, uri, model) for kind, model in app.models.items()}
    _direct_only(monkeypatch)
    direct = {kind: load_model(model, tracking_uri=uri) for kind, model in app.models.items()}
    assert {k: (m.version, m.run_id) for k, m in direct.items()} == {k: (m.version, m.run_id) for k, m in by_mlflow.items()}
    a = value_application(app, models=direct, user="tester", applications=NO_OTHER_APPLICATIONS)
    b = value_application(app, models=by_mlflow, user="tester", applications=NO_OTHER_APPLICATIONS)
    assert a.summary == b.summary
    pd.testing.assert_frame_equal(a.patents, b.patents)
    pd.testing.assert_frame_equal(a.reasons, b.reasons)


def test_a_command_reads_the_registry_without_importing_mlflow(value_registry):
    _, uri, _ = value_registry
    code = textwrap.dedent(f"""
        import os, sys
        from ipvalue.registry import load_model
        model = load_model({MODEL!r}, tracking_uri={uri!r})
        assert "mlflow" not in sys.modules, "mlflow imported"
        assert os.environ["MLFLOW_TRACKING_URI"] == os.environ["MLFLOW_REGISTRY_URI"] == {uri!r}  # MLflow, imported later, is pointed at the store
        print(model.version, type(model.estimator).__name__)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "ValueRegressor"]


def test_an_alias_moved_by_a_promotion_is_seen_by_the_next_load(value_registry, tmp_path, monkeypatch):
    import mlflow

    from ipvalue.registry import move_alias
    from ipvalue.tracking import use_tracking

    folder, uri, _ = value_registry
    copy = _copy_store(folder, tmp_path)
    _direct_only(monkeypatch)
    assert load_model(MODEL, tracking_uri=copy).version == "1"
    use_tracking(copy)
    client = mlflow.MlflowClient()
    first = client.get_model_version("ipvalue-value", "1")
    client.create_model_version("ipvalue-value", first.source, run_id=first.run_id)  # version 2: the same files, registered again
    assert load_model(MODEL, tracking_uri=copy).version == "1"  # registered, not promoted
    move_alias("ipvalue-value", "champion", "2", by="王验证", reason="test")
    assert load_model(MODEL, tracking_uri=copy).version == "2"
    move_alias("ipvalue-value", "champion", "1", by="王验证", reason="test: back")
    assert load_model(MODEL, tracking_uri=copy).version == "1"
    assert load_model("models:/ipvalue-value/2", tracking_uri=copy).version == "2"


def test_a_schema_revision_not_checked_goes_through_mlflow(value_registry, tmp_path, monkeypatch, caplog):
    import logging

    folder, uri, _ = value_registry
    used = []
    through = ipvalue.registry._load_through_mlflow
    monkeypatch.setattr(ipvalue.registry, "_load_through_mlflow", lambda model: used.append(model) or through(model))
    caplog.set_level(logging.DEBUG, logger="ipvalue.registry_store")
    with monkeypatch.context() as patched:
        patched.setattr(ipvalue.registry_store, "SCHEMA_REVISIONS", frozenset({"0123456789ab"}))
        assert load_model(MODEL, tracking_uri=uri).version == "1"
    assert "is not one this reader was checked against" in caplog.text and used == [MODEL]
    with monkeypatch.context() as patched:
        patched.setattr(ipvalue.registry_store, "installed_schema_head", lambda: "0123456789ab")  # MLflow upgraded, the database not
        assert load_model(MODEL, tracking_uri=uri).version == "1"
    assert "is not the installed MLflow's head" in caplog.text and used == [MODEL, MODEL]
    assert load_model(MODEL, tracking_uri=uri).version == "1" and used == [MODEL, MODEL]  # read directly again
    # a database at a revision MLflow does not know: not read directly, and MLflow's client refuses it
    copy = _copy_store(folder, tmp_path)
    with sqlite3.connect(copy[len("sqlite:///"):]) as db:
        db.execute("UPDATE alembic_version SET version_num = '0123456789ab'")
    with pytest.raises(Exception, match="0123456789ab"):
        load_model(MODEL, tracking_uri=copy)
    assert used == [MODEL, MODEL, MODEL]


def test_a_store_that_is_not_a_sqlite_file_goes_through_mlflow(value_registry, tmp_path, monkeypatch):
    """MLflow's file store (any non-SQLite URI: a server, PostgreSQL): the same model, via MLflow's client."""
    import mlflow

    from ipvalue.tracking import use_tracking

    _, uri, _ = value_registry
    direct = load_model(MODEL, tracking_uri=uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    use_tracking(store)
    with mlflow.start_run() as run:
        mlflow.set_tag("origin", "file store")
    files = Path(tmp_path / "model")
    shutil.copytree(direct.folder, files)
    described = yaml.safe_load((files / "MLmodel").read_text(encoding="utf-8"))
    (files / "MLmodel").write_text(yaml.safe_dump({**described, "run_id": run.info.run_id}), encoding="utf-8")
    client = mlflow.MlflowClient()
    client.create_registered_model("ipvalue-value")
    client.create_model_version("ipvalue-value", files.as_uri(), run_id=run.info.run_id)
    client.set_registered_model_alias("ipvalue-value", "champion", "1")
    used = []
    through = ipvalue.registry._load_through_mlflow
    monkeypatch.setattr(ipvalue.registry, "_load_through_mlflow", lambda model: used.append(model) or through(model))
    model = load_model(MODEL, tracking_uri=store)
    assert used == [MODEL] and model.loaded_through == "MLflow client"
    assert model.run_tags["origin"] == "file store" and model.run_id == run.info.run_id
    records = to_records(make_demo_portfolio(30, seed=2).patents.drop(columns=["appraised_value_rmb"]))
    assert model.pyfunc.predict(records, params={"explain": "none"}).equals(direct.pyfunc.predict(records, params={"explain": "none"}))


def test_files_outside_the_artifact_root_are_refused(value_registry, tmp_path):
    folder, _, _ = value_registry
    copy = _copy_store(folder, tmp_path / "store")
    storage = _storage(copy)
    outside = tmp_path / "elsewhere" / "artifacts"
    shutil.copytree(storage, outside)
    database = copy[len("sqlite:///"):]

    def place(location: str) -> None:
        with sqlite3.connect(database) as db:
            db.execute("UPDATE model_versions SET storage_location = ? WHERE name = 'ipvalue-value'", (location,))

    place(outside.as_uri())
    with pytest.raises(ModelStorageError, match="outside the artifact root of its experiment"):
        load_model(MODEL, tracking_uri=copy)
    place(f"file://{tmp_path / 'store' / 'artifacts'}/../../elsewhere/artifacts")  # a path that climbs out of the root
    with pytest.raises(ModelStorageError, match="outside the artifact root"):
        load_model(MODEL, tracking_uri=copy)
    link = tmp_path / "store" / "artifacts" / "linked"
    link.symlink_to(outside, target_is_directory=True)  # a link inside the root to files outside it
    place(link.as_uri())
    with pytest.raises(ModelStorageError, match="outside the artifact root"):
        load_model(MODEL, tracking_uri=copy)
    place((tmp_path / "store" / "artifacts").as_uri())  # the root itself is no version's folder
    with pytest.raises(ModelStorageError, match="outside the artifact root"):
        load_model(MODEL, tracking_uri=copy)
    place(storage.as_uri())
    assert load_model(MODEL, tracking_uri=copy).version == "1"


def test_paths_inside_the_model_that_lead_out_of_its_folder_are_refused(value_registry, tmp_path):
    folder, _, _ = value_registry
    copy = _copy_store(folder, tmp_path / "store")
    storage = _storage(copy)
    described = yaml.safe_load((storage / "MLmodel").read_text(encoding="utf-8"))
    estimator = storage / described["flavors"]["python_function"]["artifacts"]["estimator"]["path"]
    shutil.copytree(estimator, tmp_path / "planted")

    def tamper(path: Path, change) -> None:
        text = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(text)
        path.write_text(yaml.safe_dump(text), encoding="utf-8")

    original = (storage / "MLmodel").read_text(encoding="utf-8")
    tamper(storage / "MLmodel", lambda t: t["flavors"]["python_function"]["artifacts"]["estimator"].update(path="../../../../planted"))
    with pytest.raises(ModelStorageError, match="estimator folder of models:/ipvalue-value/1 must stay inside the model's folder"):
        load_model(MODEL, tracking_uri=copy)
    (storage / "MLmodel").write_text(original, encoding="utf-8")
    tamper(estimator / "MLmodel", lambda t: t["flavors"]["sklearn"].update(pickled_model="../../../../../planted/model.pkl"))
    with pytest.raises(ModelStorageError, match="estimator file of models:/ipvalue-value/1 must stay inside"):
        load_model(MODEL, tracking_uri=copy)
    tamper(estimator / "MLmodel", lambda t: t["flavors"]["sklearn"].update(pickled_model="model.pkl"))
    (estimator / "model.pkl").unlink()
    with pytest.raises(ModelStorageError, match="estimator file of models:/ipvalue-value/1 is missing"):
        load_model(MODEL, tracking_uri=copy)



def test_an_estimator_file_changed_after_training_is_refused_before_it_is_unpickled(value_registry, tmp_path, monkeypatch):
    """The training run records the pickle's SHA-256; a file with another digest is not unpickled,
    read directly or through MLflow's client."""
    import pickle

    folder, _, _ = value_registry
    copy = _copy_store(folder, tmp_path / "store")
    pickled = ipvalue.registry_store.estimator_file(_storage(copy), MODEL)
    pickled.write_bytes(pickle.dumps({"planted": True}))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("a changed estimator file was unpickled"))
    with pytest.raises(ModelStorageError, match=r"estimator file of models:/ipvalue-value/1 .* has SHA-256 .* not the .* its training run recorded"):
        load_model(MODEL, tracking_uri=copy)
    with pytest.raises(ModelStorageError, match="its training run recorded; refused before it is unpickled"):
        _through_mlflow(monkeypatch, copy)


def test_a_model_whose_run_recorded_no_digest_goes_through_mlflow(value_registry, tmp_path):
    from ipvalue.tracking import ESTIMATOR_SHA256_TAG

    folder, _, _ = value_registry
    copy = _copy_store(folder, tmp_path / "store")
    with sqlite3.connect(copy[len("sqlite:///"):]) as db:
        assert db.execute("DELETE FROM tags WHERE key = ?", (ESTIMATOR_SHA256_TAG,)).rowcount >= 1  # every run of the store
    model = load_model(MODEL, tracking_uri=copy)
    assert model.loaded_through == "MLflow client" and ESTIMATOR_SHA256_TAG not in model.run_tags

@pytest.mark.parametrize("uri, path", [("sqlite:////srv/m.db", "/srv/m.db"), ("sqlite:///m.db", "m.db"), ("sqlite://", None), ("sqlite:///:memory:", None),
                                       ("sqlite:///m.db?mode=ro", None), ("sqlite+pysqlite:///m.db", None), ("postgresql://h/db", None),
                                       ("http://127.0.0.1:5000", None), ("databricks", None)])
def test_only_a_plain_sqlite_file_uri_is_read_directly(uri, path):
    found = ipvalue.registry_store.sqlite_database(uri)
    assert (str(found) if found else None) == path


def test_a_sqlite_file_that_is_not_an_mlflow_store_goes_through_mlflow(tmp_path, monkeypatch):
    """An empty database (no MLflow tables) is not read directly: MLflow's client sets it up and
    says the model is not registered, as before."""
    database = tmp_path / "new.db"
    sqlite3.connect(database).close()
    used = []
    through = ipvalue.registry._load_through_mlflow
    monkeypatch.setattr(ipvalue.registry, "_load_through_mlflow", lambda model: used.append(model) or through(model))
    with pytest.raises(ModelNotFoundError, match="No registered model 'ipvalue-value' with alias @champion"):
        load_model(MODEL, tracking_uri=f"sqlite:///{database}")
    assert used == [MODEL]
