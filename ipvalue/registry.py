"""The MLflow model registry: registered-model URIs, loading the model behind a URI, aliases
(``champion``, ``challenger``) and their history.

Models load only from the registry: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` on the
configured tracking server. A path, a ``runs:/`` URI or any other scheme is refused before MLflow
sees it, so nothing outside the registry is ever unpickled. MLflow keeps no history of alias
moves, so ipvalue records each move in the registered model's ``ipvalue.alias_history`` tag.

Loading asks the registry, every time, for the version and where its files are, and reads them
from there: on the embedded SQLite store straight from its database, without importing MLflow
(:mod:`ipvalue.registry_store`), elsewhere through one MLflow client. MLflow's own per-load
requirement check (which maps every installed distribution to its modules, about 1 s) is replaced
by a comparison of the model's pinned ``requirements.txt`` with the installed versions (a few
milliseconds), which warns on the same mismatches.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ipvalue.exceptions import ModelNotFoundError
from ipvalue.registry_store import estimator_bytes, estimator_file, read_registered_version
from ipvalue.tracking import ESTIMATOR_SHA256_TAG, point_mlflow_at

logger = logging.getLogger(__name__)

ALIASES = ("champion", "challenger")
ALIAS_HISTORY_TAG = "ipvalue.alias_history"
_URI = re.compile(r"models:/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})(?:@(?P<alias>[A-Za-z0-9_-]{1,64})|/(?P<version>[1-9][0-9]{0,8}))")


def split_model_uri(uri) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of a registry URI, exactly one of alias and version set.

    Raises
    ------
    ModelNotFoundError
        ``uri`` is not ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
    """
    match = _URI.fullmatch(uri) if isinstance(uri, str) else None
    if match is None:
        raise ModelNotFoundError(
            f"A model must be named by its registry URI, models:/NAME@ALIAS or models:/NAME/VERSION. Got {uri!r}. "
            "Fix: register the model (ipvalue train) and use e.g. models:/ipvalue-value@champion; paths and runs:/ URIs are refused."
        )
    return match["name"], match["alias"], match["version"]


def resolve_version(uri: str, *, client=None) -> tuple[str, str]:
    """``(name, version)`` behind a registry URI, the alias resolved on the tracking server.

    Parameters
    ----------
    uri : str
        ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
    client : mlflow.MlflowClient, optional
        The client to ask; default: a new one on the configured tracking URI.

    Raises
    ------
    ModelNotFoundError
        The URI is malformed, or the name, alias or version is not registered.
    """
    import mlflow
    from mlflow import MlflowClient

    name, alias, version = split_model_uri(uri)
    client = client or MlflowClient()
    try:
        if alias:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        return name, str(client.get_model_version(name, version).version)
    except mlflow.exceptions.MlflowException as exc:
        known = [m.name for m in client.search_registered_models(max_results=50)]
        hint = f"registered models: {', '.join(sorted(known)) or 'none'}"
        what = f"alias @{alias}" if alias else f"version {version}"
        raise ModelNotFoundError(f"No registered model {name!r} with {what} on {mlflow.get_tracking_uri()} ({hint}). Fix: check the URI, or train and register it (ipvalue train).") from exc


@dataclass
class RegisteredModel:
    """A registered model version, loaded: its URI, name, version, run (and the run's tags: what
    it was trained on, its gates), the fitted ipvalue estimator, and the folder of its files.

    ``pyfunc`` (the MLflow pyfunc, for serving it as MLflow does or for its input example) is
    loaded by MLflow from the same folder on first use; valuing and scoring use ``estimator``.
    ``loaded_through`` says how the registry was asked: ``"registry database"`` (read directly,
    :mod:`ipvalue.registry_store`) or ``"MLflow client"``.
    """

    uri: str
    name: str
    version: str
    run_id: str
    run_tags: dict
    estimator: object
    folder: Path
    loaded_through: str = "MLflow client"
    _pyfunc: object = field(default=None, repr=False, compare=False)

    @property
    def pyfunc(self):
        """The version's MLflow pyfunc (``mlflow.pyfunc.load_model`` on its folder, once)."""
        if self._pyfunc is None:
            import mlflow.pyfunc

            self._pyfunc = mlflow.pyfunc.load_model(str(self.folder), suppress_warnings=True)
        return self._pyfunc

    @property
    def feature_spec_hash(self) -> str:
        return self.estimator.features_.spec_.hash

    @property
    def metadata(self) -> dict:
        """What an output records about the model that made it."""
        return {"ipvalue.model_uri": self.uri, "ipvalue.model_version": self.version, "ipvalue.run_id": self.run_id,
                "ipvalue.feature_spec_hash": self.feature_spec_hash}


def load_model(uri: str, *, tracking_uri: str | None = None) -> RegisteredModel:
    """Load the registered version behind ``uri`` (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``).

    The registry is asked on every call (an alias moved by a promotion is seen at once). On a
    ``sqlite:///`` tracking store at a schema revision this module knows, the registry is read
    straight from the database and the estimator unpickled from the version's folder, without
    importing MLflow (:mod:`ipvalue.registry_store`, which also checks that the files are in the
    registry's artifact root); any other store is asked through one MLflow client and the pyfunc
    loaded from the version's files. Either way MLflow's per-load requirement check is replaced
    by :func:`requirement_mismatches` (the model's pinned requirements against the installed
    versions), each mismatch logged as a warning, and MLflow is left pointed at the store
    (:func:`ipvalue.tracking.point_mlflow_at`) for the registry calls that follow.

    Raises
    ------
    ModelNotFoundError
        The URI is not a registry URI, or names no registered version.
    ModelStorageError
        The registry places the version's files outside its artifact root, or the model's own
        paths lead out of its folder.
    """
    name, alias, version = split_model_uri(uri)
    tracking_uri = point_mlflow_at(tracking_uri)
    stored = read_registered_version(tracking_uri, name, alias=alias, version=version)
    if stored is None:
        return _load_through_mlflow(uri)
    _warn_mismatches(stored.folder, name, stored.version)
    # the file its training wrote: the digest the run recorded is checked before anything is unpickled
    estimator = pickle.loads(estimator_bytes(stored.estimator_file, stored.run_tags[ESTIMATOR_SHA256_TAG], f"models:/{name}/{stored.version}"))
    logger.debug("models:/%s/%s read from the registry database %s", name, stored.version, tracking_uri)
    return RegisteredModel(uri, name, stored.version, stored.run_id, stored.run_tags, estimator, stored.folder, "registry database")


def _load_through_mlflow(uri: str) -> RegisteredModel:
    """:func:`load_model` through MLflow's client (a server, PostgreSQL, another schema revision)."""
    import mlflow
    import mlflow.artifacts

    client = mlflow.MlflowClient()
    name, version = resolve_version(uri, client=client)
    # the files of the version the registry resolved, downloaded once (read in place from a local store)
    local = mlflow.artifacts.download_artifacts(artifact_uri=client.get_model_version_download_uri(name, version))
    _warn_mismatches(local, name, version)
    run_id = client.get_model_version(name, version).run_id or ""
    tags = dict(client.get_run(run_id).data.tags) if run_id else {}
    pickled = estimator_file(Path(local), f"models:/{name}/{version}")
    if pickled is not None and tags.get(ESTIMATOR_SHA256_TAG):  # its training recorded the file's digest: checked before MLflow unpickles it
        estimator_bytes(pickled, tags[ESTIMATOR_SHA256_TAG], f"models:/{name}/{version}")
    pyfunc = mlflow.pyfunc.load_model(local, suppress_warnings=True)
    return RegisteredModel(uri, name, version, run_id, tags, pyfunc.unwrap_python_model().model, Path(local), "MLflow client", pyfunc)


def _warn_mismatches(folder, name: str, version: str) -> None:
    for mismatch in requirement_mismatches(folder):
        logger.warning("models:/%s/%s was logged with %s", name, version, mismatch)
    logger.debug("models:/%s/%s: MLflow's requirement check skipped (pinned requirements compared instead)", name, version)


def requirement_mismatches(model_dir: str | Path) -> list[str]:
    """The requirements in a model folder's ``requirements.txt`` that the running environment does
    not satisfy, each as ``"<requirement>, installed <version or 'none'>"``.

    What MLflow checks on every load, read from the pins instead of from a map of every installed
    distribution's modules: milliseconds instead of about a second. Lines that are not plain
    requirements (``-r``, URLs) are skipped, and said so at debug level.

    Parameters
    ----------
    model_dir : str or Path
        A logged model's folder (holding ``MLmodel`` and ``requirements.txt``).

    Returns
    -------
    list of str
        Empty when every requirement is met, or when the model has no ``requirements.txt``.

    Examples
    --------
    >>> requirement_mismatches("/no/such/model")
    []
    """
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    path = Path(model_dir) / "requirements.txt"
    if not path.is_file():
        return []
    mismatches = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            logger.debug("%s: %r is not a plain requirement; not checked", path, line)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            installed = None
        if installed is None or not requirement.specifier.contains(installed, prereleases=True):
            mismatches.append(f"{requirement}, installed {installed or 'none'}")
    return mismatches


def load_champion(name: str, *, tracking_uri: str | None = None) -> RegisteredModel | None:
    """The ``champion`` of a registered model, or None when it has none."""
    try:
        return load_model(f"models:/{name}@champion", tracking_uri=tracking_uri)
    except ModelNotFoundError:
        return None


def alias_history(name: str) -> list[dict]:
    """Every alias move recorded on the registered model (tag ``ipvalue.alias_history``)."""
    from mlflow import MlflowClient

    tags = MlflowClient().get_registered_model(name).tags
    return json.loads(tags.get(ALIAS_HISTORY_TAG, "[]"))


def current_version(name: str, alias: str) -> str | None:
    """The version holding ``alias`` now, or None."""
    import mlflow
    from mlflow import MlflowClient

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def move_alias(name: str, alias: str, version: str, *, by: str, reason: str) -> str | None:
    """Point ``alias`` at ``version`` and append the move to the model's history tag; returns the
    version that held the alias before (or None)."""
    from mlflow import MlflowClient

    previous = current_version(name, alias)
    client = MlflowClient()
    client.set_registered_model_alias(name, alias, str(version))
    history = alias_history(name)
    history.append({"alias": alias, "version": str(version), "previous_version": previous, "by": by, "reason": reason,
                    "at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")})
    client.set_registered_model_tag(name, ALIAS_HISTORY_TAG, json.dumps(history, ensure_ascii=False))
    return previous


def register_and_alias(model_uri: str, name: str, *, gates_passed: bool, description: str = "") -> dict:
    """Register a logged model as a new version of ``name``, only when its gates passed.

    The first passing version becomes ``champion``; later passing versions become ``challenger``
    (promotion to champion is a governance decision: :func:`ipvalue.governance.promote`).
    """
    import mlflow
    from mlflow import MlflowClient

    if not gates_passed:
        return {"registered": False, "version": None, "alias": None}
    version = mlflow.register_model(model_uri, name)
    if description:
        MlflowClient().update_model_version(name, version.version, description=description)
    alias = "challenger" if current_version(name, "champion") else "champion"
    move_alias(name, alias, str(version.version), by="ipvalue train", reason="experiment gates passed")
    return {"registered": True, "version": int(version.version), "alias": alias}
