"""The bank's pledge policy (pledge rates, limits, reconciliation rule) and risk-sharing schemes,
from assumption sets (``assumptions/pledge-policy-cn.yaml``, ``assumptions/risk-sharing.yaml``)."""

from __future__ import annotations

import pandas as pd

from ipvalue.config import content_hash, load_yaml
from ipvalue.exceptions import AssumptionError


def load_pledge_policy(which="pledge-policy-cn") -> tuple[dict, str]:
    raw, origin = load_yaml(which)
    name = raw.get("name", origin)
    for ptype in ("invention", "utility_model", "design"):
        rate = raw.get("pledge_rate", {}).get(ptype, {}).get("value")
        if rate is None or not 0 < float(rate) <= 1:
            raise AssumptionError(f"The 'pledge_rate.{ptype}' of pledge policy {name!r} must be in (0, 1]. Got {rate!r}.")
    if raw.get("reconciliation", {}).get("rule") != "conservative":
        raise AssumptionError(f"The 'reconciliation.rule' of pledge policy {name!r} must be 'conservative'. Got {raw.get('reconciliation', {}).get('rule')!r}.")
    return raw, content_hash(raw)


def risk_sharing_table(scheme: str, loss_rmb: float) -> tuple[pd.DataFrame, dict]:
    """Each party's share of a principal loss under ``scheme`` (``assumptions/risk-sharing.yaml``)."""
    raw, _ = load_yaml("risk-sharing")
    schemes = raw["schemes"]
    if scheme not in schemes:
        raise AssumptionError(f"Unknown risk-sharing scheme {scheme!r}. Fix: use one of {sorted(schemes)}.")
    s = schemes[scheme]
    shares = pd.Series(s["shares"], dtype=float)
    if abs(shares.sum() - 1) > 1e-9:
        raise AssumptionError(f"The shares of risk-sharing scheme {scheme!r} must sum to 1. Got {shares.sum():g}.")
    bank_party = s.get("bank_party", "bank")
    table = pd.DataFrame({"party": shares.index, "share": shares.to_numpy(), "loss_rmb": shares.to_numpy() * loss_rmb})
    table["is_bank"] = table["party"] == bank_party
    return table, {"scheme": scheme, "label": s["label"], "bank_share": float(shares[bank_party]), "hash": content_hash(s)}
