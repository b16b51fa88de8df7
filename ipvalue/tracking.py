"""MLflow tracking: the embedded tracking store, experiment and run helpers, and the pyfunc model
that takes raw PatentFrame records. The registry (URIs, aliases, loading) is :mod:`ipvalue.registry`."""

from __future__ import annotations

import hashlib
import logging
import os
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


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it with artifacts under ``mlflow/artifacts`` for a local store."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
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


def _pyfunc_class():
    import mlflow.pyfunc

    class PatentModelPyfunc(mlflow.pyfunc.PythonModel):
        """Raw PatentFrame records in (dates as ISO strings, as in a CSV export); the model's
        ``output_frame`` out, with ``patent_id`` first. Features are built inside from the
        fitted spec, so a scorer needs nothing but the model URI."""

        def __init__(self, model):
            self.model = model

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
            """``params={"explain": "all" | "top<N>" | "none"}`` chooses the explanation columns."""
            frame = as_patent_frame(model_input, passthrough=self.model.features_.spec_.passthrough, source="model input")
            explain = (params or {}).get("explain", "all")
            return pd.concat([frame[["patent_id"]], self.model.output_frame(frame, explain=explain)], axis=1).reset_index(drop=True)

    return PatentModelPyfunc


def log_patent_model(model, example: pd.DataFrame, *, name: str = "model"):
    """Log a fitted ipvalue model (RenewalModel, ValueRegressor) as a pyfunc that takes raw
    records, in the active run.

    The model's requirements pin ipvalue and its stack: a scorer needs ``pip install ipvalue`` and
    the model URI, not this repository (the feature spec and reference tables are in the model).
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec
    from mlflow.types.utils import _infer_schema

    python_model = _pyfunc_class()(model)
    output = python_model.predict(None, example)
    signature = ModelSignature(
        inputs=patent_input_schema(model.features_.spec_.passthrough),
        outputs=_infer_schema(output),
        params=ParamSchema([ParamSpec("explain", "string", "all")]),
    )
    requirements = [f"{pkg}=={_version(pkg)}" for pkg in ("ipvalue", "mlflow", "lightgbm", "pandas", "numpy", "scikit-learn", "pyarrow", "pyyaml", "scipy")]
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=python_model,
        signature=signature,
        input_example=example,
        pip_requirements=requirements,
    )


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)
