"""Promotion: ``champion`` moves only to a version whose run passed its gates, signed by a
validator with a reason; both become tags of the version and lines of the alias history."""

from __future__ import annotations

import pandas as pd

from ipvalue.registry import ALIASES, move_alias, resolve_version


class PromotionError(ValueError):
    """A promotion was refused (gates not passed, or no validator / reason)."""


def promote(model_uri: str, *, validator: str, reason: str, alias: str = "champion") -> dict:
    """Move ``alias`` (default champion) to a registered version, only when the experiment's
    gates passed for its run and a validator and a reason are given; both are stored as tags on
    the version and in the alias history (and so in the model card)."""
    from mlflow import MlflowClient

    if not str(validator or "").strip():
        raise PromotionError("Promotion needs the validator's name. Fix: the independent validator approving the model signs it (on the command line, with their API token).")
    if not str(reason or "").strip():
        raise PromotionError("Promotion needs a reason (--reason). Fix: state why the model is approved, e.g. the validation report's conclusion.")
    if alias not in ALIASES:  # checked before anything is written: a refused promotion leaves no tag on the version
        raise PromotionError(f"The alias of a promotion must be one of {list(ALIASES)}. Got {str(alias)[:40]!r}.")
    client = MlflowClient()
    name, version = resolve_version(model_uri)
    mv = client.get_model_version(name, version)
    gates = client.get_run(mv.run_id).data.tags.get("gates_passed")
    if gates != "True":
        raise PromotionError(f"Version {version} of {name} did not pass its validation gates (gates_passed={gates}). Fix: retrain until the experiment's gates pass.")
    for key, value in {"validated_by": validator.strip(), "validation_reason": reason.strip(), f"promoted_to_{alias}_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}.items():
        client.set_model_version_tag(name, version, key, value)
    previous = move_alias(name, alias, version, by=validator.strip(), reason=reason.strip())
    return {"model": name, "version": version, "alias": alias, "previous_version": previous}
