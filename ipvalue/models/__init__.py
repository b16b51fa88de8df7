"""Valuation models: the renewal (maintenance-fee) hazard model, the value regressor and the
baselines they are compared with."""

from ipvalue.models.baselines import ClaimsOnlyRule, CompositeIndex, LogisticBaseline
from ipvalue.models.renewal import FeeSchedule, RenewalModel
from ipvalue.models.value import ValueRegressor

__all__ = ["ClaimsOnlyRule", "CompositeIndex", "FeeSchedule", "LogisticBaseline", "RenewalModel", "ValueRegressor"]
