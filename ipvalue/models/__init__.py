"""Valuation models: the renewal (maintenance-fee) hazard model and baselines as challengers."""

from ipvalue.models.baselines import ClaimsOnlyRule, CompositeIndex, LogisticBaseline
from ipvalue.models.renewal import FeeSchedule, RenewalModel

__all__ = ["ClaimsOnlyRule", "CompositeIndex", "FeeSchedule", "LogisticBaseline", "RenewalModel"]
