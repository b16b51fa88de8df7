"""Lending: the loan application, the bank's pledge policy and risk sharing, and the valuation
pipeline that brings the methods together into a market value, a collateral value and a loan cap,
with eligibility checks and a decision."""

from ipvalue.lending.application import OVERRIDABLE, LoanApplication, Override
from ipvalue.lending.checks import eligibility_checks
from ipvalue.lending.pipeline import ValuationResult, load_application_models, value_application, value_book
from ipvalue.lending.policy import load_pledge_policy, risk_sharing_table

__all__ = ["OVERRIDABLE", "LoanApplication", "Override", "ValuationResult", "eligibility_checks", "load_application_models",
           "load_pledge_policy", "risk_sharing_table", "value_application", "value_book"]
