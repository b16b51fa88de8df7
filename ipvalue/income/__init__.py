"""Income approach (收益分成法 / relief-from-royalty DCF) with Monte Carlo uncertainty."""

from ipvalue.income.assumptions import IncomeAssumptions
from ipvalue.income.dcf import dcf_grown, dcf_schedule, dcf_survival
from ipvalue.income.valuer import IncomeApproachValuer

__all__ = ["IncomeApproachValuer", "IncomeAssumptions", "dcf_grown", "dcf_schedule", "dcf_survival"]
