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
    for field_name, spec in (raw.get("override_review") or {}).items():
        increase = (spec or {}).get("max_increase", {}).get("value") if isinstance(spec, dict) else None
        if field_name not in OVERRIDE_REVIEW_FIELDS or isinstance(increase, bool) or not isinstance(increase, (int, float)) or not 0 <= increase <= 10:
            raise AssumptionError(f"The 'override_review.{field_name}.max_increase' of pledge policy {name!r} must be a fraction in [0, 10] for one of "
                                  f"{list(OVERRIDE_REVIEW_FIELDS)}. Got {increase!r}.")
    if raw.get("reconciliation", {}).get("rule") != "conservative":
        raise AssumptionError(f"The 'reconciliation.rule' of pledge policy {name!r} must be 'conservative'. Got {raw.get('reconciliation', {}).get('rule')!r}.")
    return raw, content_hash(raw)


#: Fields whose override may need review (the overridable fields of an application).
OVERRIDE_REVIEW_FIELDS = ("internal_value_rmb", "economic_life_years", "sharing_rate")


def material_overrides(overrides: pd.DataFrame, policy: dict) -> pd.Series:
    """Which overrides are material: they raise a figure beyond the policy's threshold
    (``override_review.<field>.max_increase``: override > model × (1 + max_increase), or a model
    value that is missing or 0), so a reviewer must sign the valuation off (审贷分离). Lowering a
    figure is never material (the conservative side). A policy without ``override_review``
    treats every raising override as material.

    Parameters
    ----------
    overrides : pandas.DataFrame
        ``field``, ``model_value``, ``override_value`` (one row per override).
    policy : dict
        The pledge policy (:func:`load_pledge_policy`).

    Returns
    -------
    pandas.Series of bool, aligned with ``overrides``.
    """
    if len(overrides) == 0:
        return pd.Series(False, index=overrides.index, dtype=bool)
    rules = policy.get("override_review") or {}
    increase = overrides["field"].map(lambda f: float(((rules.get(f) or {}).get("max_increase") or {}).get("value", 0.0))).astype(float)
    model = pd.to_numeric(overrides["model_value"], errors="coerce")
    value = pd.to_numeric(overrides["override_value"], errors="coerce")
    no_model = model.isna() | (model <= 0)
    return ((no_model & (value > 0)) | (~no_model & (value > model * (1 + increase)))).astype(bool)


def risk_sharing_schemes() -> list[str]:
    """The names of the risk-sharing schemes (``assumptions/risk-sharing.yaml``, or the bank's)."""
    raw, _ = load_yaml("risk-sharing")
    return sorted(raw["schemes"])


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
