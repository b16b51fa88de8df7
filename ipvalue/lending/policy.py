"""The bank's pledge policy (pledge rates, limits, reconciliation rule) and risk-sharing schemes,
from assumption sets (``assumptions/pledge-policy-cn.yaml``, ``assumptions/risk-sharing.yaml``)."""

from __future__ import annotations

import pandas as pd

from ipvalue.config import content_hash, load_yaml
from ipvalue.exceptions import AssumptionError


#: The regulator's ceiling for the internal-valuation route (金发〔2025〕10号: single loans of ¥10
#: million or less): a bank's policy may set a lower limit, never a higher one.
REGULATORY_INTERNAL_LIMIT_RMB = 10_000_000


def load_pledge_policy(which="pledge-policy-cn") -> tuple[dict, str]:
    """The pledge policy named ``which`` (shipped, or in the bank's configuration folder) and its hash.

    Raises
    ------
    AssumptionError
        A pledge rate outside (0, 1], an unknown reconciliation rule, or an internal-valuation
        limit above the regulator's ¥10,000,000.
    """
    raw, origin = load_yaml(which)
    name = raw.get("name", origin)
    limit = (raw.get("internal_valuation_limit_rmb") or {}).get("value")
    if limit is None or isinstance(limit, bool) or not 0 < float(limit) <= REGULATORY_INTERNAL_LIMIT_RMB:
        raise AssumptionError(f"The 'internal_valuation_limit_rmb' of pledge policy {name!r} must be in (0, {REGULATORY_INTERNAL_LIMIT_RMB:,}] "
                              f"(金发〔2025〕10号: single loans of ¥10 million or less). Got {limit!r}. Fix: a bank may lower the limit, not raise it.")
    if not isinstance((raw.get("internal_valuation_limit_rmb") or {}).get("inclusive", True), bool):
        raise AssumptionError(f"The 'internal_valuation_limit_rmb.inclusive' of pledge policy {name!r} must be true or false.")
    for ptype in ("invention", "utility_model", "design"):
        rate = raw.get("pledge_rate", {}).get(ptype, {}).get("value")
        if rate is None or not 0 < float(rate) <= 1:
            raise AssumptionError(f"The 'pledge_rate.{ptype}' of pledge policy {name!r} must be in (0, 1]. Got {rate!r}.")
    if raw.get("reconciliation", {}).get("rule") != "conservative":
        raise AssumptionError(f"The 'reconciliation.rule' of pledge policy {name!r} must be 'conservative'. Got {raw.get('reconciliation', {}).get('rule')!r}.")
    return raw, content_hash(raw)


def within_internal_limit(amount_rmb: float, policy: dict) -> bool:
    """Whether a loan of ``amount_rmb`` may take the internal-valuation route under ``policy``:
    ``amount <= limit`` when the limit is inclusive (the default: "1000 万元以下" includes ¥10,000,000
    itself under 民法典 第1259条), else ``amount < limit``."""
    limit = policy["internal_valuation_limit_rmb"]
    inclusive = limit.get("inclusive", True)
    return amount_rmb <= float(limit["value"]) if inclusive else amount_rmb < float(limit["value"])


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
