"""Lending: the loan application, the bank's pledge policy and risk sharing, the eligibility
checks and the valuation that brings the methods together into an internal value, pledge value
and loan cap."""

from ipvalue.lending.application import OVERRIDABLE, LoanApplication, Override
from ipvalue.lending.checks import eligibility_checks
from ipvalue.lending.policy import load_pledge_policy, risk_sharing_table
from ipvalue.lending.valuation import ValuationResult, load_application_models, value_application

__all__ = ["OVERRIDABLE", "LoanApplication", "Override", "ValuationResult", "eligibility_checks", "load_application_models",
           "load_pledge_policy", "risk_sharing_table", "value_application"]
