"""Relief-from-royalty / 收益分成法 DCF, vectorised over patents (and Monte Carlo draws).

    value = (1 − tax) × Σ_t  income_t × sharing_t × w_t / (1 + r)^(t − m)

* ``income_t = base × (1 + g)^t`` for t = 1, 2, … (year 0 is the base year), or a given schedule;
* ``sharing_t = s × (1 − d)^(t − 1)``: the sharing rate declines by ``d`` a year;
* ``w_t = clip(T − (t − 1), 0, 1)``: the income period ``T`` may end inside a year, whose cash flow
  then counts pro rata (a period of 7.4 years counts 40 % of year 8);
* ``m = 0`` for end-of-year discounting, ``0.5`` for mid-year.

With grown income the sum is geometric, ``x = (1 + g)(1 − d)/(1 + r)``:
``Σ = base × s/(1 − d) × (1 + r)^m × [x(1 − x^N)/(1 − x) + f·x^(N+1)]`` with ``N = ⌊T⌋``, ``f = T − N``.
"""

from __future__ import annotations

import numpy as np


def dcf_grown(base, growth, sharing, decay, discount, period, tax, mid_year: bool):
    """Value of income grown at a constant rate; every argument broadcasts (patents × draws).

    Parameters
    ----------
    base : array_like, RMB per year
        Base-year (year 0) income attributed to the patent.
    growth, sharing, decay, discount : array_like, fractions per year
        ``decay`` must be < 1 and ``discount`` > -1.
    period : array_like, years
        Income period T ≥ 0 (0 for a lapsed or expired patent).
    tax : float
    mid_year : bool

    Returns
    -------
    numpy.ndarray, RMB
    """
    shape = np.broadcast_shapes(*(np.shape(v) for v in (base, growth, sharing, decay, discount, period)))
    growth, decay, discount = np.asarray(growth, float), np.asarray(decay, float), np.asarray(discount, float)
    period = np.maximum(np.asarray(period, float), 0.0)
    x = np.array(np.broadcast_to((1.0 + growth) * (1.0 - decay) / (1.0 + discount), shape), dtype=float, ndmin=1)
    n = np.broadcast_to(np.floor(period), shape).reshape(x.shape)
    period = np.broadcast_to(period, shape).reshape(x.shape)
    frac = period - n
    # x ** n through exp(n log x): numpy's vectorised exp/log are several times faster than power.
    xn = np.exp(n * np.log(x))
    one_minus_x = 1.0 - x
    near_one = np.abs(one_minus_x) < 1e-12
    np.copyto(one_minus_x, 1.0, where=near_one)
    total = x * (1.0 - xn)
    total /= one_minus_x
    np.copyto(total, n, where=near_one)
    xn *= x
    xn *= frac
    total += xn
    scale = np.asarray(base, float) * np.asarray(sharing, float) / (1.0 - decay) * (1.0 - tax)
    if mid_year:
        scale = scale * np.sqrt(1.0 + discount)
    total *= scale
    return total.reshape(shape) if shape else float(total[0])


def _term(t: int, flow, sharing, decay, discount, weight, growth_shift, m: float):
    """Year ``t``'s present value before tax: flow × (1 + shift)^t × sharing × (1 − d)^(t − 1) × weight / (1 + r)^(t − m).
    The one place the per-year discounting is written (the schedule, survival and table paths share it)."""
    return flow * (1.0 + growth_shift) ** t * sharing * (1.0 - decay) ** (t - 1) * weight / (1.0 + discount) ** (t - m)


def dcf_schedule(income, sharing, decay, discount, period, tax, mid_year: bool, growth_shift=0.0):
    """Value of a yearly income schedule; ``income`` has years on its last axis.

    Parameters
    ----------
    income : array_like, shape (n_patents, n_years), RMB
        Income of years 1..n_years (beyond the schedule the income is 0).
    sharing, decay, discount, period : array_like, shape (n_patents,) or (n_patents, n_draws)
    growth_shift : array_like, default=0.0
        Extra growth per year applied on top of the schedule (Monte Carlo growth shocks).

    Returns
    -------
    numpy.ndarray, RMB, the broadcast shape of the arguments without the year axis
    """
    income = np.asarray(income, float)
    sharing, decay, discount = np.asarray(sharing, float), np.asarray(decay, float), np.asarray(discount, float)
    period = np.maximum(np.asarray(period, float), 0.0)
    extra_dims = max(np.ndim(sharing), np.ndim(discount), np.ndim(period), np.ndim(growth_shift)) - 1
    col = (-1,) + (1,) * max(extra_dims, 0)
    m = 0.5 if mid_year else 0.0
    total = 0.0
    for t in range(1, income.shape[-1] + 1):
        weight = np.clip(period - (t - 1), 0.0, 1.0)
        total = total + _term(t, income[:, t - 1].reshape(col), sharing, decay, discount, weight, growth_shift, m)
    return np.asarray(total) * (1.0 - tax)


def dcf_survival(income, sharing, decay, discount, survival, remaining, tax, mid_year: bool, growth_shift=0.0, n_years: int | None = None):
    """Expected value over lapse outcomes: cash flows weighted by the yearly weights.

        value = (1 − tax) × Σ_t  W_t × w_t × income_t × (1 + shift)^t × sharing × (1 − d)^(t − 1) / (1 + r)^(t − m)

    with ``w_t = clip(remaining − (t − 1), 0, 1)`` (the remaining legal life, pro rata in its last
    year) and ``W_t`` the weight of year t (the probability that the right is still in force at
    the end of year t, times the share of excess returns left). Years beyond the table count 0.

    Parameters
    ----------
    income : array_like, shape (n_patents, n_years), RMB
        Income of years 1..n_years.
    sharing, decay, discount, tax : array_like, shape (n_patents,) or (n_patents, n_draws)
    survival : array_like, shape (n_patents, n_years_table) or (n_patents, n_draws, n_years_table), in [0, 1], or callable
        The yearly weights W_t (per scenario when 3-D); or ``f(t) -> (n_patents, n_draws)``, the
        weights of year t (1-based) per scenario, for ``t`` up to ``n_years`` (a Monte Carlo whose
        weights are interpolated year by year, :class:`ipvalue.models.life.MultiplierGrid`).
    remaining : array_like, shape (n_patents,), years
    mid_year : bool
    growth_shift : array_like, default=0.0
        Extra growth per year on top of the income (Monte Carlo growth shocks).
    n_years : int, optional
        The years of a callable ``survival``.

    Returns
    -------
    numpy.ndarray, RMB, the broadcast shape of ``sharing, decay, discount, tax``
    """
    income = np.asarray(income, float)
    per_year = survival if callable(survival) else None
    survival = None if per_year is not None else np.asarray(survival, float)
    sharing, decay, discount = np.asarray(sharing, float), np.asarray(decay, float), np.asarray(discount, float)
    remaining = np.maximum(np.asarray(remaining, float), 0.0)
    extra_dims = max(np.ndim(sharing), np.ndim(discount), np.ndim(decay), np.ndim(tax), np.ndim(growth_shift),
                     2 if per_year is not None else survival.ndim - 1) - 1
    col = (-1,) + (1,) * max(extra_dims, 0)
    m = 0.5 if mid_year else 0.0
    total = 0.0
    for t in range(1, min(income.shape[-1], n_years if per_year is not None else survival.shape[-1]) + 1):
        s_t = per_year(t) if per_year is not None else survival[..., t - 1]
        weight = (s_t.reshape(col) if s_t.ndim == 1 else s_t) * np.clip(remaining - (t - 1), 0.0, 1.0).reshape(col)
        total = total + _term(t, income[:, t - 1].reshape(col), sharing, decay, discount, weight, growth_shift, m)
    return np.asarray(total * (1.0 - np.asarray(tax, float)), dtype=float)


def yearly_table(income, sharing, decay, discount, weights, tax, mid_year: bool) -> dict:
    """The year-by-year terms of a point valuation (the report's 计算过程), from the same
    discounting as :func:`dcf_survival` (their present values sum to its value).

    Parameters
    ----------
    income : array_like, shape (n_patents, n_years), RMB
    sharing, decay, discount, tax : array_like, shape (n_patents,)
    weights : array_like, shape (n_patents, n_years)
        The weight of each year: survival × obsolescence × the share of the year inside the period.
    mid_year : bool

    Returns
    -------
    dict of numpy.ndarray, each shape (n_patents, n_years): ``sharing_rate`` (after the yearly
    decline), ``discount_factor`` 1 / (1 + r)^(t − m), ``cash_flow_rmb`` (income × sharing ×
    weight × (1 − tax), undiscounted) and ``present_value_rmb``.
    """
    income, weights = np.asarray(income, float), np.asarray(weights, float)
    n, years = income.shape
    col = (-1, 1)
    t = np.arange(1, years + 1)[None, :]
    m = 0.5 if mid_year else 0.0
    sharing_t = np.asarray(sharing, float).reshape(col) * (1.0 - np.asarray(decay, float).reshape(col)) ** (t - 1)
    factor = (1.0 + np.asarray(discount, float).reshape(col)) ** -(t - m)
    after_tax = 1.0 - np.asarray(tax, float).reshape(col)
    present = np.column_stack([_term(k, income[:, k - 1], np.asarray(sharing, float), np.asarray(decay, float), np.asarray(discount, float),
                                     weights[:, k - 1], 0.0, m) for k in range(1, years + 1)]).reshape(n, years) * after_tax if years else np.zeros((n, 0))
    return {"sharing_rate": np.broadcast_to(sharing_t, (n, years)), "discount_factor": np.broadcast_to(factor, (n, years)),
            "cash_flow_rmb": income * sharing_t * weights * after_tax, "present_value_rmb": present}
