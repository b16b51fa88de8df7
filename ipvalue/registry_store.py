"""A registered model version read straight from MLflow's SQLite tracking database, without
importing MLflow (about 2 s of imports and store set-up saved on every command that loads a model).

The registry stays the authority: every load asks the database, in one read transaction, which
version the alias names now, where that version's files are, and the tags of its run; nothing is
cached between loads, so an alias moved by a promotion is seen by the next load. The direct read
is used only where it gives exactly what MLflow's client would:

- the tracking URI is a ``sqlite:///`` file that exists (read-only, never created here);
- its schema revision (``alembic_version``) is one whose tables were checked for this module
  (:data:`SCHEMA_REVISIONS`) and is the head of the installed MLflow (MLflow refuses a database
  at another revision, and so does this module, by leaving it to MLflow);
- MLflow's workspaces are off (the registry is then the single ``default`` workspace);
- the version is registered and ready, its files are in a local folder and its estimator is in
  MLflow's scikit-learn format with ``pickle`` serialization (what ``ipvalue train`` logs).

Otherwise :func:`read_registered_version` returns None with the reason logged, and
:func:`ipvalue.registry.load_model` asks MLflow's client (a server URI, PostgreSQL, another
revision, an unknown name, which MLflow then reports as before).

The files must be where the registry keeps them: the version's storage location must resolve
(symbolic links followed) inside the artifact root of its run's experiment, and every file read
(``MLmodel``, the estimator's folder, its pickle) inside that folder; anything else is refused
with :class:`~ipvalue.exceptions.ModelStorageError` before a byte is unpickled. The pickle read
is the one MLflow wrote for the registered version, the file ``mlflow.sklearn.load_model`` opens
when the pyfunc loads it, so there is no new deserialisation surface.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import quote, unquote, urlparse
from urllib.request import url2pathname

from ipvalue.config import parse_yaml
from ipvalue.exceptions import ModelStorageError
from ipvalue.tracking import ESTIMATOR_ARTIFACT, ESTIMATOR_SHA256_TAG

logger = logging.getLogger(__name__)

#: MLflow schema revisions whose ``model_versions``, ``registered_model_aliases``, ``runs``,
#: ``tags`` and ``experiments`` tables were checked against the queries below (MLflow 3.17).
SCHEMA_REVISIONS = frozenset({"dc11669786a5"})
DEFAULT_WORKSPACE = "default"  # the one workspace of a registry without MLflow's workspaces
DELETED_STAGE = "Deleted_Internal"  # a version MLflow deleted but keeps (not loadable)


@dataclass(frozen=True)
class StoredVersion:
    """A registered version as the registry describes it now, its files checked to be in its folder.

    Attributes
    ----------
    name, version : str
        The registered model and the version the URI resolved to.
    run_id : str
        The run that logged it (the ``run_id`` its ``MLmodel`` records, as MLflow's pyfunc reports).
    run_tags : dict
        Every tag of that run.
    folder : Path
        The version's files (the pyfunc model folder), inside the experiment's artifact root.
    estimator_file : Path
        The pickled estimator inside ``folder`` (MLflow's scikit-learn format).
    """

    name: str
    version: str
    run_id: str
    run_tags: dict
    folder: Path
    estimator_file: Path


def sqlite_database(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (relative to the working directory
    for three slashes, absolute for four, as SQLAlchemy reads it), or None for any other URI.

    Examples
    --------
    >>> sqlite_database("sqlite:////srv/mlflow/mlflow.db")
    PosixPath('/srv/mlflow/mlflow.db')
    >>> sqlite_database("sqlite:///mlflow/mlflow.db")
    PosixPath('mlflow/mlflow.db')
    >>> sqlite_database("http://mlflow.bank.internal:5000") is None
    True
    """
    if not tracking_uri.startswith("sqlite:///") or "?" in tracking_uri:
        return None
    path = tracking_uri[len("sqlite:///"):]
    return Path(path) if path and path != ":memory:" else None


def installed_schema_head() -> str | None:
    """The alembic head revision of the installed MLflow, read from its migration scripts (not
    imported), or None when it cannot be told (MLflow missing, several heads)."""
    spec = find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return None
    scripts = Path(next(iter(spec.submodule_search_locations))) / "store" / "db_migrations" / "versions"
    revisions, parents = set(), set()
    for script in scripts.glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revision = re.search(r"^revision\s*=\s*['\"]([0-9a-f]+)['\"]", text, re.M)
        down = re.search(r"^down_revision\s*=\s*(.+)$", text, re.M)
        if revision:
            revisions.add(revision[1])
        if down:
            parents.update(re.findall(r"['\"]([0-9a-f]+)['\"]", down[1]))
    heads = revisions - parents
    return next(iter(heads)) if len(heads) == 1 else None


def read_registered_version(tracking_uri: str, name: str, *, alias: str | None = None, version: str | None = None) -> StoredVersion | None:
    """The version behind ``name@alias`` or ``name/version``, read from a SQLite tracking database.

    Parameters
    ----------
    tracking_uri : str
        The MLflow tracking (and registry) URI.
    name : str
        The registered model.
    alias, version : str, optional
        Exactly one: the alias to resolve now, or the version number.

    Returns
    -------
    StoredVersion or None
        None when the direct read does not apply (see the module's notes); the reason is logged
        at debug level and the caller asks MLflow's client instead.

    Raises
    ------
    ModelStorageError
        The registry places the version's files outside its experiment's artifact root, or a path
        inside the model leads out of its folder, or a file the model names is missing.
    """
    def unavailable(reason: str) -> None:
        logger.debug("registry read through MLflow's client for %s: %s", tracking_uri, reason)
        return None

    database = sqlite_database(tracking_uri)
    if database is None:
        return unavailable("not a sqlite:/// file URI")
    if not database.is_file():
        return unavailable(f"no database at {database}")
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() in ("true", "1"):
        return unavailable("MLflow workspaces are enabled")
    if os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() not in ("true", "1"):
        return unavailable("MLFLOW_ALLOW_PICKLE_DESERIALIZATION forbids unpickling (MLflow says so itself)")
    try:
        found = _read_rows(database, name, alias, version)
    except sqlite3.Error as exc:  # not an MLflow database (no such table), locked, corrupt: MLflow's client says what
        return unavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(found, str):
        return unavailable(found)
    version, location, run_id, tags, artifact_root = found
    folder, root = local_path(location), local_path(artifact_root)
    if folder is None or root is None:
        return unavailable(f"the files of version {version} of {name!r} are not in a local folder ({location})")
    return _checked_files(name, version, run_id, tags, folder, root, location)


def _read_rows(database: Path, name: str, alias: str | None, version: str | None):
    """``(version, storage location, run id, run tags, artifact root)`` from one read-only snapshot
    of the database, or the reason (a text) why the direct read does not apply."""
    connection = sqlite3.connect(f"file:{quote(str(database.resolve()))}?mode=ro", uri=True)
    try:
        connection.execute("BEGIN")  # one snapshot: the alias, the version and its run read together
        row = _one(connection, "SELECT version_num FROM alembic_version")
        if row is None or row[0] not in SCHEMA_REVISIONS:
            return f"schema revision {row[0] if row else None} is not one this reader was checked against"
        if row[0] != installed_schema_head():
            return f"schema revision {row[0]} is not the installed MLflow's head"
        if alias is not None:
            found = _one(connection, "SELECT version FROM registered_model_aliases WHERE workspace = ? AND name = ? AND alias = ?", DEFAULT_WORKSPACE, name, alias)
            if found is None:
                return f"no alias @{alias} of {name!r}"
            version = str(found[0])
        found = _one(connection, "SELECT storage_location, source, run_id, status FROM model_versions "
                                 "WHERE workspace = ? AND name = ? AND version = ? AND current_stage != ?",
                     DEFAULT_WORKSPACE, name, int(version), DELETED_STAGE)
        if found is None:
            return f"no version {version} of {name!r}"
        location, source, run_id, status = found
        if status != "READY":
            return f"version {version} of {name!r} is {status}"
        if not run_id:
            return f"version {version} of {name!r} names no run"
        experiment = _one(connection, "SELECT e.artifact_location FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id WHERE r.run_uuid = ?", run_id)
        if experiment is None:
            return f"the run {run_id} of version {version} is not in the store"
        tags = dict(connection.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
        return str(version), location or source, run_id, tags, experiment[0]
    finally:
        connection.close()


def local_path(uri: str | None) -> Path | None:
    """The local path of a ``file:`` URI or an absolute path, or None (another scheme, e.g. ``s3:``)."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(url2pathname(unquote(parsed.path)))
    if parsed.scheme == "" and Path(uri).is_absolute():
        return Path(uri)
    return None


def _one(connection: sqlite3.Connection, sql: str, *parameters):
    return connection.execute(sql, parameters).fetchone()


def _inside(folder: Path, relative: str, what: str, model: str) -> Path:
    """``folder / relative``, resolved, refused unless it exists inside ``folder``."""
    if not isinstance(relative, str) or not relative:
        raise ModelStorageError(f"The {what} of {model} must be a path inside the model's folder. Got {relative!r}. "
                                "Fix: register the model again with ipvalue train; a model's files are never edited by hand.")
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder):
        raise ModelStorageError(f"The {what} of {model} must stay inside the model's folder {folder}. Got {relative!r} (leading to {path}); refused before "
                                "anything is loaded. Fix: register the model again with ipvalue train and have the registry's files checked for tampering.")
    if not path.exists():
        raise ModelStorageError(f"The {what} of {model} is missing: {path}. Fix: restore the registry's artifact store from its backup, or register the model again.")
    return path


def _checked_files(name: str, version: str, run_id: str, tags: dict, folder: Path, root: Path, location: str) -> StoredVersion | None:
    model = f"models:/{name}/{version}"
    root = root.resolve()
    resolved = folder.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ModelStorageError(f"The registry places the files of {model} at {location}, outside the artifact root of its experiment ({root}); "
                                "refused before anything is loaded. Fix: a version's storage location is written by MLflow when the model is "
                                "registered; have the registry database checked for tampering, or register the model again with ipvalue train.")
    if not resolved.is_dir():
        raise ModelStorageError(f"The files of {model} are missing: {resolved}. Fix: restore the registry's artifact store from its backup, or register the model again.")
    described = _description(_inside(resolved, "MLmodel", "description (MLmodel)", model))
    pickled = estimator_file(resolved, model, described)
    if pickled is None:
        return None
    if described.get("run_id") not in (None, run_id):
        logger.debug("%s: its MLmodel names run %s, the registry run %s; read through MLflow's client", model, described.get("run_id"), run_id)
        return None
    if not tags.get(ESTIMATOR_SHA256_TAG):
        logger.debug("%s: its run recorded no digest of the estimator file; read through MLflow's client", model)
        return None
    return StoredVersion(name, str(version), run_id, tags, resolved, pickled)


def estimator_file(folder: Path, model: str, described: dict | None = None) -> Path | None:
    """The pickled ipvalue estimator inside a logged model's ``folder`` (its ``MLmodel`` says where:
    the pyfunc's ``estimator`` artifact, MLflow's scikit-learn format), every path kept inside the
    folder; None for a model that is not an ipvalue estimator pickled by MLflow.

    Raises
    ------
    ModelStorageError
        A path in the model's descriptions leads out of its folder, or a file is missing.
    """
    folder = Path(folder).resolve()
    described = _description(_inside(folder, "MLmodel", "description (MLmodel)", model)) if described is None else described
    artifact = (((described.get("flavors") or {}).get("python_function") or {}).get("artifacts") or {}).get(ESTIMATOR_ARTIFACT) or {}
    if "path" not in artifact:
        logger.debug("%s has no %r artifact: not an ipvalue model; read through MLflow's client", model, ESTIMATOR_ARTIFACT)
        return None
    estimator = _inside(folder, artifact["path"], "estimator folder", model)
    flavor = (_description(_inside(estimator, "MLmodel", "estimator's description (MLmodel)", model)).get("flavors") or {}).get("sklearn") or {}
    if flavor.get("serialization_format") != "pickle" or flavor.get("code"):
        logger.debug("%s: estimator serialized as %r (code %r); read through MLflow's client", model, flavor.get("serialization_format"), flavor.get("code"))
        return None
    return _inside(estimator, flavor.get("pickled_model"), "estimator file", model)


def _description(path: Path) -> dict:
    """An ``MLmodel`` file, parsed as plain bounded YAML (:func:`ipvalue.config.parse_yaml`: no tags, no aliases bomb)."""
    found = parse_yaml(path.read_bytes(), where=str(path))
    return found if isinstance(found, dict) else {}


def estimator_bytes(path: Path, recorded: str, model: str) -> bytes:
    """An estimator file, read once, if its SHA-256 is the one its training run ``recorded``
    (the run tag ``ipvalue.estimator_sha256``): what is unpickled is the file ipvalue wrote.

    Raises
    ------
    ModelStorageError
        The file's digest differs from the recorded one (changed after training).
    """
    import hashlib

    content = Path(path).read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != recorded:
        raise ModelStorageError(f"The estimator file of {model} ({path}) has SHA-256 {digest[:16]}..., not the {str(recorded)[:16]}... its training "
                                "run recorded; refused before it is unpickled. Fix: restore the registry's artifact store from its backup, "
                                "or register the model again with ipvalue train.")
    return content
