"""MLflow tracking: the embedded tracking store, experiment and run helpers, and the pyfunc model
that takes raw PatentFrame records. The registry (URIs, aliases, loading) is :mod:`ipvalue.registry`."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd

from ipvalue.frame import COLUMNS, as_patent_frame

logger = logging.getLogger(__name__)

def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the embedded ``sqlite:///mlflow/mlflow.db`` under the working directory."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    store = Path.cwd() / "mlflow"
    store.mkdir(exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def use_tracking(uri: str | None = None) -> str:
    """Point MLflow (tracking and registry) at ``uri`` or the default; returns the URI."""
    import mlflow

    uri = uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def point_mlflow_at(uri: str | None = None) -> str:
    """What :func:`use_tracking` does, without importing MLflow when it is not imported yet: then
    only ``$MLFLOW_TRACKING_URI`` and ``$MLFLOW_REGISTRY_URI`` are set (MLflow's own setters set
    them too), which MLflow reads when it is imported later. Returns the URI. For a process that
    may not need MLflow at all (a model read straight from the registry database)."""
    import sys

    uri = uri or default_tracking_uri()
    if "mlflow" in sys.modules:
        return use_tracking(uri)
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
    return uri


def prepare_tracking_store(uri: str | None = None) -> str:
    """Create (and migrate) the tracking store behind ``uri`` now: before several processes open it
    at once, e.g. the workers of ``ipvalue serve``."""
    import mlflow

    uri = use_tracking(uri)
    mlflow.MlflowClient().search_registered_models(max_results=1)
    return uri


def local_artifact_root(database: Path) -> Path:
    """Where a local SQLite store keeps its artifacts: ``artifacts/`` beside the database, except
    when the database's folder is called ``mlflow`` (the embedded default ``mlflow/mlflow.db``).
    Such a folder must hold no Python file, since a ``mlflow`` folder with Python files could
    shadow the real package, and every logged model carries its code as ``.py`` files (models
    from code). Its artifacts go to ``mlartifacts/`` beside it, the name ``mlflow server`` gives
    its own artifact root."""
    folder = database.resolve().parent
    return folder.parent / "mlartifacts" if folder.name == "mlflow" else folder / "artifacts"


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it with its artifacts at :func:`local_artifact_root` for a
    local SQLite store (a server decides for itself)."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        location = local_artifact_root(Path(uri[len("sqlite:///"):])).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def frame_hash(frame: pd.DataFrame) -> str:
    """Content hash of a data frame (values and column names): identifies the training data."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:16]


def git_commit() -> str:
    """The commit of the source tree (with '+dirty' when it has changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def patent_input_schema(passthrough=()):
    """The model signature's input: the PatentFrame contract, required columns required, every
    other column optional; dates and lists as strings, counts and amounts as doubles."""
    from mlflow.types.schema import ColSpec, Schema

    specs = [ColSpec("double" if c.kind in ("count", "float") else "string", c.name, required=c.required) for c in COLUMNS]
    specs += [ColSpec("double", name, required=False) for name in passthrough]
    return Schema(specs)


# The models-from-code entry MLflow stores with every logged model and runs when it loads one: the
# pyfunc is defined by this script and the code it imports (ipvalue, shipped in the model's code/
# folder), never by a CloudPickle of live objects.
MODEL_CODE = """\
import mlflow
from ipvalue.tracking import patent_pyfunc_class

mlflow.models.set_model(patent_pyfunc_class()())
"""
ESTIMATOR_ARTIFACT = "estimator"
#: Run tag holding the SHA-256 of the estimator pickle logged in the run: a model is unpickled
#: without MLflow only when its file still has the digest its training recorded.
ESTIMATOR_SHA256_TAG = "ipvalue.estimator_sha256"


def patent_pyfunc_class():
    """The ``mlflow.pyfunc.PythonModel`` subclass every ipvalue model is logged as (defined lazily:
    mlflow is imported only when needed)."""
    import mlflow.pyfunc

    class PatentModelPyfunc(mlflow.pyfunc.PythonModel):
        """Raw PatentFrame records in (dates as ISO strings, as in a CSV export); the model's
        ``output_frame`` out, with ``patent_id`` first. Features are built inside from the
        fitted spec, so a scorer needs nothing but the model URI.

        Logged from code: ``load_context`` loads the fitted estimator from the model's
        ``estimator`` artifact (an MLflow scikit-learn model in pickle format, loaded only as
        part of a registered model, see :mod:`ipvalue.registry`).
        """

        def __init__(self, model=None):
            self.model = model

        def load_context(self, context):
            import mlflow.sklearn

            if self.model is None:
                self.model = mlflow.sklearn.load_model(context.artifacts[ESTIMATOR_ARTIFACT])

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            """``params={"explain": "all" | "top<N>" | "none"}`` chooses the explanation columns."""
            frame = as_patent_frame(model_input, passthrough=self.model.features_.spec_.passthrough, source="model input")
            explain = (params or {}).get("explain", "all")
            return pd.concat([frame[["patent_id"]], self.model.output_frame(frame, explain=explain)], axis=1).reset_index(drop=True)

    return PatentModelPyfunc


def package_code_path() -> Path:
    """The folder of the ``ipvalue`` package in use: logged as the model's code."""
    return Path(__file__).resolve().parent


def model_requirements() -> list[str]:
    """What a model needs installed to load and score, pinned to the versions in use: ipvalue's
    own run-time dependencies (its code travels inside the model, so ipvalue itself is not one)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    try:
        declared = [Requirement(r) for r in requires("ipvalue") or []]
    except PackageNotFoundError:  # a checkout on the path, not installed: its pyproject.toml says
        import tomllib

        pyproject = package_code_path().parent / "pyproject.toml"
        if not pyproject.is_file():
            raise RuntimeError("ipvalue is neither installed nor a checkout, so its dependencies are unknown. Fix: pip install the ipvalue wheel.") from None
        declared = [Requirement(r) for r in tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]]
    names = [r.name for r in declared if r.marker is None or r.marker.evaluate({"extra": ""})]
    return [f"{name}=={_version(name)}" for name in dict.fromkeys(names)]


def log_patent_model(model, example: pd.DataFrame, *, name: str = "model"):
    """Log a fitted ipvalue model (RenewalModel, ValueRegressor) as a pyfunc that takes raw
    records, in the active run.

    The model carries its own code and installable requirements: the pyfunc is logged from code
    (:data:`MODEL_CODE`), the ``ipvalue`` package goes into the model's ``code/`` folder, the
    fitted estimator into its ``estimator`` artifact (MLflow's scikit-learn format, ``pickle``
    serialization), and ``requirements.txt`` pins ipvalue's dependencies, all on PyPI. A clean
    environment with those requirements and the model URI can score; no checkout, no ipvalue
    install.
    """
    import tempfile

    import mlflow.sklearn
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec
    from mlflow.types.utils import _infer_schema

    import mlflow

    output = patent_pyfunc_class()(model).predict(None, example)
    signature = ModelSignature(
        inputs=patent_input_schema(model.features_.spec_.passthrough),
        outputs=_infer_schema(output),
        params=ParamSchema([ParamSpec("explain", "string", "all")]),
    )
    requirements = model_requirements()
    with tempfile.TemporaryDirectory(prefix="ipvalue-model-") as tmp:
        code = Path(tmp) / "ipvalue_model.py"
        code.write_text(MODEL_CODE, encoding="utf-8")
        estimator = Path(tmp) / ESTIMATOR_ARTIFACT
        mlflow.sklearn.save_model(model, str(estimator), serialization_format="pickle", pip_requirements=requirements)
        mlflow.set_tag(ESTIMATOR_SHA256_TAG, hashlib.sha256((estimator / "model.pkl").read_bytes()).hexdigest())
        package = Path(tmp) / "code" / "ipvalue"
        shutil.copytree(package_code_path(), package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(code),
            artifacts={ESTIMATOR_ARTIFACT: str(estimator)},
            code_paths=[str(package)],
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
        )


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)
