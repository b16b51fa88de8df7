"""What a package's patents can earn: the profit a buyer could attribute to them, shared by the
market approach's profit-capacity test and the cost approach's economic obsolescence.

    attributable profit per year = the product's base revenue × its operating margin × the top of
                                   the income approach's profit split

The operating margin is the mean of the borrower's latest (up to) three years of statements where
given, else the industry benchmark (``industry-margins``); the profit split, tax rate and
discount rate are the income approach's assumption set's. These are configuration and
application inputs, not another method's output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue.config import assumption_value, load_yaml
from ipvalue.methods.income.assumptions import IncomeAssumptions


def package_margin(frame: pd.DataFrame, financials: pd.DataFrame | None) -> pd.Series:
    """Operating margin per package: the borrower's latest three years' mean, else the benchmark."""
    raw, _ = load_yaml("industry-margins")
    default = assumption_value(raw, "benchmarks.default", 0.0, 1.0, lo_open=True)
    packages = pd.Index(frame["package_id"].unique(), name="package_id")
    margin = pd.Series(default, index=packages)
    if financials is not None and len(financials):
        fin = financials.assign(year=pd.to_numeric(financials["year"], errors="coerce"),
                                operating_margin=pd.to_numeric(financials["operating_margin"], errors="coerce"))
        latest = fin.sort_values("year").groupby("package_id").tail(3).groupby("package_id")["operating_margin"].mean()
        margin.update(latest)
    return margin


def package_attributable_profit(frame: pd.DataFrame, *, financials: pd.DataFrame | None, assumption_set: str) -> pd.Series:
    """Per package, RMB per year before tax: base revenue × operating margin (≥ 0) × the top of
    the profit split. NaN where the package has no base revenue (a yearly schedule's first year is
    used when the frame's base is missing is not attempted: the caller says so)."""
    split_high = IncomeAssumptions.load(assumption_set).profit_split[1]
    revenue = frame.groupby("package_id")["revenue_base_rmb"].first()
    return revenue * package_margin(frame, financials).reindex(revenue.index).clip(lower=0.0) * split_high


def earning_capacity(frame: pd.DataFrame, periods_years, *, financials: pd.DataFrame | None, assumption_set: str) -> pd.Series:
    """Per patent, RMB: the present value of its equal share of the package's attributable profit
    after the standard tax, over ``periods_years`` (its remaining economic life), at the income
    approach's discount rate, end-of-year, no growth: what the patent can earn at most."""
    a = IncomeAssumptions.load(assumption_set)
    period = np.maximum(np.asarray(periods_years, float), 0.0)
    live = pd.Series(period > 0, index=frame.index)
    share = live / live.groupby(frame["package_id"]).transform("sum").replace(0, np.nan)
    profit = frame["package_id"].map(package_attributable_profit(frame, financials=financials, assumption_set=assumption_set))
    r = a.discount_rate
    n = np.floor(period)
    annuity = (1 - (1 + r) ** -n) / r + (period - n) * (1 + r) ** -(n + 1)
    return (share.fillna(0.0) * profit * (1 - a.tax_rate) * annuity).rename("earning_capacity_rmb")
