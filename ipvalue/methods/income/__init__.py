"""The income approach (收益分成法 / relief-from-royalty DCF) with Monte Carlo uncertainty: the
valuer, its DCF, its assumption sets and the indicator scorecard that positions the sharing rate.
Registered as the valuation method ``income`` (needs the borrower's revenue forecast)."""

from ipvalue.methods.income.assumptions import IncomeAssumptions
from ipvalue.methods.income.dcf import dcf_grown, dcf_schedule, dcf_survival, yearly_table
from ipvalue.methods.income.scorecard import IndicatorScorecard
from ipvalue.methods.income.valuer import IncomeApproachValuer
from ipvalue.methods.registry import register_method


@register_method("income", label_zh="收益法", label_en="income approach", needs=("revenue_forecast",), order=0)
def income_method(inputs) -> IncomeApproachValuer:
    """The income approach of a valuation: the application's assumption set, as of its date."""
    return IncomeApproachValuer(inputs.assumption_set, valuation_date=inputs.valuation_date, data_dir=inputs.data_dir)


__all__ = ["IncomeApproachValuer", "IncomeAssumptions", "IndicatorScorecard", "dcf_grown", "dcf_schedule", "dcf_survival", "income_method", "yearly_table"]
