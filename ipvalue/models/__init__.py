"""Valuation models: the renewal (maintenance-fee) hazard model, the value regressor and the
baselines they are compared with.

Each class is imported from its module on first use (``from ipvalue.models import X``): a
registered model being unpickled imports only its own module (``ipvalue.models.value`` does not
bring the baselines' scikit-learn pipelines along).
"""

from importlib import import_module

_MODULES = {"ClaimsOnlyRule": "baselines", "CompositeIndex": "baselines", "LogisticBaseline": "baselines",
            "FeeSchedule": "renewal", "RenewalModel": "renewal", "ValueRegressor": "value"}

__all__ = ["ClaimsOnlyRule", "CompositeIndex", "FeeSchedule", "LogisticBaseline", "RenewalModel", "ValueRegressor"]


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(import_module(f"ipvalue.models.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
