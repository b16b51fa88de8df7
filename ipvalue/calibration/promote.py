"""A validator's promotion of a calibrated set: signed, audited, then installed where valuations
read the bank's sets (``$IPVALUE_CONFIG_DIR/assumptions/<name>.yaml``).

A candidate written by ``ipvalue calibrate`` is used by no valuation (the loader refuses it,
:func:`ipvalue.config.check_governance`). :func:`promote_set` makes it the bank's set, checking
in turn (each refusal says why and what to do):

1. the file is a candidate (``governance.status: candidate``) that loads through its set's loader;
2. its calibration run exists in MLflow, is a calibration, logged this very candidate (the same
   content: a number edited after the run is refused) and passed its gates, as did the
   candidate's own record of them;
3. the set in use is the version it was calibrated from (``calibrated_from``): a candidate of an
   older version is stale;
4. the promoter authenticates with an API token whose role is ``validator`` (not a name typed on
   the command line), and is not the person who ran the calibration as far as can be told: the
   run's authenticated calibrator (tag ``ipvalue.calibrated_by``) when it had one, otherwise its
   operating-system user (MLflow's ``mlflow.user``) against the promoter's;
5. the promotion is recorded in the audit store's chain (:func:`ipvalue.audit.record_set_promotion`)
   and, in the same transaction, the set is installed with its governance block filled
   (``promoted_by``, ``promoted_at``, ``reason``, the audit record); the file it replaces is kept
   under ``superseded/``. The installed set is then loaded back through the loader.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ipvalue.audit import authenticate, record_set_promotion, store_display
from ipvalue.calibration.sets import check_loads, dump
from ipvalue.config import ENV_CONFIG_DIR, load_yaml, parse_yaml, set_content_sha256, sets_checked_against
from ipvalue.exceptions import DomainError, SpecError
from ipvalue.identity import os_user as current_os_user
from ipvalue.io import write_text_atomic
from ipvalue.names import normalise_text

logger = logging.getLogger(__name__)

__all__ = ["Promotion", "SetPromotionError", "promote_set"]

#: Where the bank's sets of every kind a calibration writes are read (:func:`ipvalue.config.load_yaml`).
FOLDER = "assumptions"


class SetPromotionError(ValueError):
    """A promotion was refused: not a candidate, a run that did not pass its gates or did not log
    this candidate, a stale candidate, a promoter who is not a validator or who calibrated it."""


@dataclass(frozen=True)
class Promotion:
    """A recorded and installed promotion."""

    set_name: str
    set_version: int
    path: Path
    promoted_by: str
    promoted_at: str
    audit_seq: int
    record_hash: str
    superseded: Path | None = None

    def __str__(self) -> str:
        return (f"{self.set_name}-v{self.set_version} promoted by {self.promoted_by} at {self.promoted_at} (audit record {self.audit_seq}, "
                f"{self.record_hash[:12]}…); installed as {self.path}" + (f"; the set it replaces kept as {self.superseded}" if self.superseded else ""))


def _candidate(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"The candidate {str(path)!r} does not exist. Fix: give a YAML file from the calibration's candidates/ folder.")
    content = parse_yaml(path.read_bytes(), where=str(path))
    governance = content.get("governance") if isinstance(content, dict) else None
    if not isinstance(governance, dict) or governance.get("status") != "candidate":
        raise SetPromotionError(f"{path} is not a candidate written by ipvalue calibrate (its governance.status is "
                                f"{(governance or {}).get('status')!r}). Fix: promote a file from the calibration's candidates/ folder.")
    for key in ("calibration_run", "ledger_sha256", "calibrated_from", "gates"):
        if not governance.get(key):
            raise SetPromotionError(f"The candidate {path} has no 'governance.{key}'. Fix: promote the file as ipvalue calibrate wrote it.")
    if not isinstance(content.get("version"), int) or not content.get("name"):
        raise SetPromotionError(f"The candidate {path} needs a 'name' and a whole-number 'version'. Got {content.get('name')!r}, {content.get('version')!r}.")
    return content


def _check_run(content: dict, path: Path, tracking_uri: str | None) -> dict:
    """The calibration run's tags, after checking that it logged this candidate and passed its gates."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ipvalue.tracking import use_tracking

    governance = content["governance"]
    run_id = str(governance["calibration_run"])
    use_tracking(tracking_uri)
    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except MlflowException as exc:
        raise SetPromotionError(f"The calibration run {run_id} of {path} is not in the MLflow store {mlflow.get_tracking_uri()!r}. "
                                "Fix: use the tracking store the calibration logged to (--tracking-uri).") from exc
    tags = run.data.tags
    if tags.get("ipvalue.kind") != "calibration" or tags.get("ledger_sha256") != governance["ledger_sha256"]:
        raise SetPromotionError(f"Run {run_id} is not the calibration {path} cites (kind {tags.get('ipvalue.kind')!r}, ledger "
                                f"{str(tags.get('ledger_sha256'))[:16]}). Fix: promote a candidate as its calibration wrote it.")
    file_name = f"{content['name']}-v{content['version']}.yaml"
    try:
        logged = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"calibration/candidates/{file_name}"))
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own errors for a missing artifact
        raise SetPromotionError(f"Run {run_id} logged no candidate {file_name}. Fix: promote a file from that calibration's candidates/ folder.") from exc
    if parse_yaml(logged.read_bytes(), where=file_name) != content:
        raise SetPromotionError(f"{path} differs from the candidate {file_name} that calibration run {run_id} logged: a number was changed after the "
                                "run. Fix: promote the candidate as the calibration wrote it; to change a number, calibrate again.")
    failed = [gate for gate, passed in dict(governance["gates"]).items() if not passed]
    if tags.get("gates_passed") != "True" or failed or not governance.get("gates_passed"):
        raise SetPromotionError(f"The calibration run {run_id} of {content['name']}-v{content['version']} did not pass its gates "
                                f"(failed: {', '.join(failed) or 'see the run'}; gates_passed={tags.get('gates_passed')}). "
                                "Fix: a set is promoted only through passed gates: gather more evidence (test deals, disposals) and calibrate again.")
    return tags


def _set_in_use(name: str, config_dir: Path) -> tuple[dict | None, str]:
    """The set of this name valuations read now: the bank's (``config_dir``), else the shipped one."""
    bank = config_dir / FOLDER / f"{name}.yaml"
    if bank.is_file():
        return load_yaml(bank)
    shipped = resources.files("ipvalue") / FOLDER / f"{name}.yaml"
    if shipped.is_file():
        return parse_yaml(shipped.read_bytes(), where=f"package:{FOLDER}/{name}.yaml", package_data=True), f"package:{FOLDER}/{name}.yaml"
    return None, ""


def promote_set(candidate, *, reason: str, token: str, store=None, key_file=None, checkpoint_file=None, config_dir=None,
                tracking_uri: str | None = None, os_user: str | None = None) -> Promotion:
    """Promote a candidate set (see the module notes): check it, record the promotion in the audit
    store's chain and install the set where valuations read the bank's sets.

    Parameters
    ----------
    candidate : str or Path
        The candidate YAML ``ipvalue calibrate`` wrote (``candidates/<name>-v<N>.yaml``).
    reason : str
        Why the validator approves it (recorded; required).
    token : str
        The validator's API token (``ipvalue users add NAME --role validator``).
    store : str or Path, optional
        The audit store the bank's valuations are recorded in (default ``$IPVALUE_AUDIT_DB`` or
        ``audit/ipvalue-audit.db``): valuations check the promotion against it.
    key_file, checkpoint_file : str or Path, optional
        The audit key and checkpoint file (default ``$IPVALUE_AUDIT_KEY_FILE`` and beside it).
    config_dir : str or Path, optional
        The bank's configuration folder (default ``$IPVALUE_CONFIG_DIR``).
    tracking_uri : str, optional
        The MLflow store of the calibration run.
    os_user : str, optional
        The operating-system user promoting (default: the one running this process).

    Returns
    -------
    Promotion

    Raises
    ------
    SetPromotionError
        Any check of the module notes fails.
    SpecError
        No configuration folder, or the installed set does not load back.
    """
    path = Path(candidate)
    content = _candidate(path)
    name, version, governance = str(content["name"]), int(content["version"]), content["governance"]
    label = f"{name}-v{version}"
    if not str(reason or "").strip():
        raise SetPromotionError(f"Promoting {label} needs a reason (--reason). Fix: state why the set is approved, e.g. the back-test's conclusion.")
    target = config_dir or os.environ.get(ENV_CONFIG_DIR)
    if not target:
        raise SpecError(f"Promoting {label} installs it in the bank's configuration folder, and none is given. Fix: set ${ENV_CONFIG_DIR} "
                        "(or --config-dir) to the folder valuations read the bank's sets from.")
    config_dir = Path(target)
    try:
        check_loads(content)
    except (SpecError, ValueError) as exc:
        raise SetPromotionError(f"The candidate {path} does not load as a set of its kind: {exc}") from exc
    tags = _check_run(content, path, tracking_uri)

    current, origin = _set_in_use(name, config_dir)
    in_use = f"{name}-v{current.get('version')}" if current else "none"
    if in_use != governance["calibrated_from"]:
        raise SetPromotionError(f"{label} was calibrated from {governance['calibrated_from']}, but the set in use is {in_use} ({origin or 'none installed'}): "
                                "the candidate is stale. Fix: calibrate again against the set in use.")

    who = authenticate(token, store, key_file=key_file)
    if who is None:
        raise SetPromotionError(f"The API token is not valid for the audit store {store_display(store)!r} (unknown or revoked). "
                                "Fix: the validator uses their own token (ipvalue users add NAME --role validator).")
    if who.role != "validator":
        raise SetPromotionError(f"User {who.name!r} has role {who.role!r}; promoting a calibrated set needs role validator "
                                "(an independent validator approves what the calibration changed).")
    calibrated_by = tags.get("ipvalue.calibrated_by") or governance.get("calibrated_by")
    promoter_os = os_user if os_user is not None else current_os_user()
    if calibrated_by and normalise_text(calibrated_by) == normalise_text(who.name):
        raise SetPromotionError(f"{label} was calibrated by {calibrated_by}, who may not also promote it (the validator is independent of the "
                                "calibration). Fix: another validator promotes it.")
    if not calibrated_by and tags.get("mlflow.user") and normalise_text(tags["mlflow.user"]) == normalise_text(promoter_os):
        raise SetPromotionError(f"The calibration run {governance['calibration_run']} was run by operating-system user {tags['mlflow.user']!r} without "
                                f"an API token, and {who.name} promotes as the same user: ipvalue cannot tell them apart. Fix: the validator promotes "
                                "from their own account, or the calibration is run again with the analyst's token ($IPVALUE_TOKEN).")

    destination = config_dir / FOLDER / f"{name}.yaml"
    superseded = config_dir / FOLDER / "superseded" / f"{name}-v{current.get('version')}.yaml" if destination.is_file() else None

    def install(row: dict) -> None:
        if superseded is not None and not superseded.exists():
            write_text_atomic(destination.read_text(encoding="utf-8"), superseded)
        promoted = {**content, "governance": {
            **governance, "status": "promoted", "calibrated_by": calibrated_by, "promoted_by": row["promoted_by"], "promoted_at": row["promoted_at"],
            "reason": row["reason"], "audit_record": {"store": store_display(store), "seq": row["seq"], "record_hash": row["record_hash"]},
        }}
        header = (f"# PROMOTED set: calibrated by ipvalue calibrate (run {governance['calibration_run']}), promoted by {row['promoted_by']} at "
                  f"{row['promoted_at']};\n# recorded in the audit store as record {row['seq']}. Valuations use it only while the store records "
                  "that promotion with these numbers.\n")
        write_text_atomic(header + dump(promoted), destination)

    try:
        row = record_set_promotion({
            "set_name": name, "set_version": version, "folder": FOLDER, "content_sha256": set_content_sha256(content),
            "calibrated_from": governance["calibrated_from"], "calibration_run": governance["calibration_run"], "ledger_sha256": governance["ledger_sha256"],
            "gates": governance["gates"], "calibrated_by": calibrated_by, "reason": reason,
        }, token, store, key_file=key_file, checkpoint_file=checkpoint_file, while_recording=install)
    except DomainError as exc:  # refused inside the chain lock: a token revoked meanwhile, the version promoted meanwhile
        raise SetPromotionError(str(exc)) from exc
    with sets_checked_against(store):
        load_yaml(destination)  # the loader accepts it against the store (raises SpecError otherwise)
    logger.info("promoted %s (audit record %s) into %s", label, row["seq"], destination)
    return Promotion(name, version, destination, row["promoted_by"], row["promoted_at"], int(row["seq"]), row["record_hash"], superseded)
