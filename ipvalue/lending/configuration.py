"""The bank's valuation configuration: which models, pledge policies, assumption sets and
risk-sharing schemes an application may name (issue F6: the caller must not pick the figures'
basis).

The service always values with a pinned configuration: its served models and the sets of its
configuration file (``ipvalue serve --config FILE``, else ``$IPVALUE_CONFIG_DIR/valuation.yaml``,
else the shipped defaults). ``ipvalue value`` applies the same rule when such a file exists (or
``--config`` names one); without one it keeps the names the application gives (a bank's own sets
in ``$IPVALUE_CONFIG_DIR`` still load by name, and every name used is in the record).

The file (YAML, bounded like every configuration file)::

    name: bank-valuation-2026
    assumption_sets: [cn-pledge-2025]            # the first is the default
    pledge_policies: [pledge-policy-cn]
    risk_sharing: [none, 5311, guangzhou-55]     # the schemes the bank lends under
    models:                                      # optional; the service's --model options win
      renewal: models:/ipvalue-renewal@champion
      value: models:/ipvalue-value@champion

An application that leaves a field out gets the first allowed name; one that names anything else
is refused, every such field at once (:class:`~ipvalue.lending.application.ApplicationFieldsError`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ipvalue.config import ENV_CONFIG_DIR, parse_yaml
from ipvalue.exceptions import AssumptionError
from ipvalue.lending.policy import load_pledge_policy, risk_sharing_schemes
from ipvalue.methods.income import IncomeAssumptions

#: The file a bank's configuration folder holds the valuation configuration in.
CONFIG_FILE_NAME = "valuation.yaml"
_FIELDS = {"assumption_sets": "assumption_set", "pledge_policies": "pledge_policy", "risk_sharing": "risk_sharing"}
#: The shipped defaults, pinned (what a service without a configuration file allows).
SHIPPED = {"assumption_sets": ("cn-pledge-2025",), "pledge_policies": ("pledge-policy-cn",)}


@dataclass(frozen=True)
class BankConfiguration:
    """What an application may name. ``None`` for a field means: not restricted (the CLI without a
    configuration file).

    Attributes
    ----------
    assumption_sets, pledge_policies, risk_sharing : tuple of str or None
        Allowed names; the first is the default for an application that names none.
    models : dict or None
        The registered models valued with, by kind (``renewal``, ``value``): an application may
        leave ``models`` out or name exactly these.
    source : str
        Where the configuration came from (recorded in each valuation's provenance).
    """

    assumption_sets: tuple[str, ...] | None = None
    pledge_policies: tuple[str, ...] | None = None
    risk_sharing: tuple[str, ...] | None = None
    models: dict | None = None
    source: str = "not restricted"

    @classmethod
    def load(cls, path: str | Path | None = None, *, pinned: bool = True) -> "BankConfiguration":
        """The configuration from ``path``, else ``$IPVALUE_CONFIG_DIR/valuation.yaml``; without
        either, the shipped defaults when ``pinned`` (a service), else not restricted (the CLI).

        Raises
        ------
        AssumptionError
            The file is unreadable or names a set that does not load (checked here, at start, so a
            bad configuration never reaches a request).
        """
        target = Path(path) if path else None
        if target is None and os.environ.get(ENV_CONFIG_DIR):
            candidate = Path(os.environ[ENV_CONFIG_DIR]) / CONFIG_FILE_NAME
            target = candidate if candidate.is_file() else None
        if target is None:
            config = cls(**SHIPPED, risk_sharing=tuple(risk_sharing_schemes()), source="shipped defaults") if pinned else cls()
            return config.checked()
        try:
            raw = parse_yaml(target.read_bytes(), where=f"valuation configuration {target}")
        except OSError as exc:
            raise AssumptionError(f"Valuation configuration {str(target)!r} cannot be read ({exc.strerror or exc}). Fix: check --config.") from None
        except ValueError as exc:
            raise AssumptionError(str(exc)) from None
        if not isinstance(raw, dict):
            raise AssumptionError(f"Valuation configuration {target} must be a mapping (assumption_sets, pledge_policies, risk_sharing, models).")
        unknown = sorted(set(raw) - {"name", *_FIELDS, "models"})
        if unknown:
            raise AssumptionError(f"Valuation configuration {target} has unknown key(s) {unknown}. Fix: use assumption_sets, pledge_policies, "
                                  "risk_sharing and models.")
        values = {}
        for key in _FIELDS:
            names = raw.get(key, SHIPPED.get(key) or risk_sharing_schemes())
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str) for n in names):
                raise AssumptionError(f"The '{key}' of valuation configuration {target} must be a list of names. Got {names!r}.")
            values[key] = tuple(names)
        models = raw.get("models")
        if models is not None and (not isinstance(models, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in models.items())):
            raise AssumptionError(f"The 'models' of valuation configuration {target} must map a kind (renewal, value) to a registry URI.")
        return cls(**values, models=models, source=f"{raw.get('name') or target.name}").checked()

    def checked(self) -> "BankConfiguration":
        """Load every named policy and check every scheme name (an error here is the bank's
        configuration, raised at start)."""
        for name in self.pledge_policies or ():
            load_pledge_policy(name)
        for name in self.assumption_sets or ():
            IncomeAssumptions.load(name)
        unknown = sorted(set(self.risk_sharing or ()) - set(risk_sharing_schemes()))
        if unknown:
            raise AssumptionError(f"The 'risk_sharing' of valuation configuration {self.source} names unknown scheme(s) {unknown}. "
                                  f"Fix: use {risk_sharing_schemes()}.")
        return self

    def with_models(self, models: dict) -> "BankConfiguration":
        """This configuration valuing with ``models`` (kind → URI): what a service serves."""
        return replace(self, models=dict(models))

    def problems(self, raw: dict, where: str = "application") -> list[dict]:
        """What in ``raw`` this configuration does not allow, as ``{field, message, fix}``."""
        out = []
        for key, field_name in _FIELDS.items():
            allowed = getattr(self, key)
            value = raw.get(field_name)
            if allowed is not None and value not in (None, "") and value not in allowed:
                out.append({"field": field_name, "message": f"The '{field_name}' of {where} must be one of {list(allowed)} (the bank's configuration). "
                                                          f"Got {value!r}.",
                            "fix": f"leave it out (default {allowed[0]}) or name one of {list(allowed)}; ask the bank's administrator to add a set"})
        named = raw.get("models")
        if self.models is not None and named not in (None, {}) and named != self.models:
            out.append({"field": "models", "message": f"The 'models' of {where} must be the models this bank values with: {self.models}. Got {named!r}.",
                        "fix": "leave 'models' out: the configured models are used"})
        return out

    def apply(self, raw: dict) -> dict:
        """``raw`` with the configured defaults filled in (call after :meth:`problems` found none)."""
        out = dict(raw)
        for key, field_name in _FIELDS.items():
            allowed = getattr(self, key)
            if allowed is not None and out.get(field_name) in (None, ""):
                out[field_name] = allowed[0] if field_name != "risk_sharing" or "none" not in allowed else "none"
        if self.models is not None:
            out["models"] = dict(self.models)
        return out
