"""Documented domains of input numbers and dates, checked the same way everywhere.

One table (:file:`ipvalue/assumptions/input-domains.yaml`, every bound with its source) gives the
domain of every money, rate, growth, count and date field of applications, overrides, revenue
schedules and PatentFrame columns. :func:`check_number` checks one value (applications, overrides,
the service) and :func:`check_numbers` a column (files), with the same rules and messages:

* booleans are not numbers (YAML ``true`` is not ¥1);
* text is a number only where the caller allows it (``allow_text=True``: CSV cells are text;
  an application's YAML has typed numbers, so ``"5000000"`` there is refused);
* the value must be finite (``.inf``, ``.nan``, ``"1e400"`` refused) and inside the interval;
* counts are whole numbers.

Messages follow the project's form: "The 'revenue_growth' (yearly growth of the revenue forecast)
of app.yaml must be in [-0.5, 1]. Got 50. Fix: rates are fractions: 5 % is 0.05."
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ipvalue.config import load_yaml
from ipvalue.exceptions import AssumptionError, DomainError

__all__ = ["DateDomain", "Domain", "Interval", "check_date", "check_number", "check_numbers", "date_domains", "domains"]

_CLOSED = ("both", "left", "right", "neither")


@dataclass(frozen=True)
class Interval:
    """A real interval in the spirit of scikit-learn's ``Interval``; ``None`` is unbounded."""

    low: float | None
    high: float | None
    closed: str = "both"

    def contains(self, x):
        """Elementwise membership (NaN is never inside)."""
        x = np.asarray(x, dtype="float64")
        ok = np.isfinite(x)
        if self.low is not None:
            ok &= (x >= self.low) if self.closed in ("both", "left") else (x > self.low)
        if self.high is not None:
            ok &= (x <= self.high) if self.closed in ("both", "right") else (x < self.high)
        return ok

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Domain:
    """The documented domain of one numeric field."""

    field: str
    kind: str  # money, rate, growth, years, count
    interval: Interval
    unit: str
    what: str
    fix: str
    sources: tuple[str, str]

    @property
    def whole(self) -> bool:
        return self.kind == "count"


@dataclass(frozen=True)
class DateDomain:
    """The documented range of a kind of date."""

    field: str
    low: pd.Timestamp
    high: pd.Timestamp
    what: str


@functools.cache
def _table() -> tuple[dict[str, Domain], dict[str, DateDomain]]:
    raw, origin = load_yaml("input-domains")
    fields: dict[str, Domain] = {}
    for name, spec in raw["fields"].items():
        if spec.get("closed", "both") not in _CLOSED:
            raise AssumptionError(f"{origin}: 'closed' of {name!r} must be one of {_CLOSED}. Got {spec.get('closed')!r}.")
        fields[name] = Domain(
            field=name,
            kind=spec["kind"],
            interval=Interval(float(spec["low"]["value"]), float(spec["high"]["value"]), spec.get("closed", "both")),
            unit=spec["unit"],
            what=spec["what"],
            fix=spec["fix"],
            sources=(spec["low"]["source"], spec["high"]["source"]),
        )
    dates = {
        name: DateDomain(name, pd.Timestamp(spec["low"]["value"]), pd.Timestamp(spec["high"]["value"]), spec["what"])
        for name, spec in raw["dates"].items()
    }
    return fields, dates


def domains() -> dict[str, Domain]:
    """Every documented numeric domain, by field name (a copy)."""
    return dict(_table()[0])


def date_domains() -> dict[str, DateDomain]:
    """Every documented date range, by name ('patent_date', 'valuation_date')."""
    return dict(_table()[1])


def _domain(field: str, domain: Domain | None) -> Domain:
    if domain is not None:
        return domain
    table = _table()[0]
    if field not in table:
        raise KeyError(f"No documented domain for {field!r}. Known fields: {sorted(table)}.")
    return table[field]


def _message(d: Domain, field: str, where: str, got) -> str:
    of = f" of {where}" if where else ""
    whole = " and a whole number" if d.whole else ""
    return f"The '{field}' ({d.what}, {d.unit}){of} must be in {d.interval}{whole}. Got {got!r}. Fix: {d.fix}."


def check_number(field: str, value, *, where: str = "", allow_text: bool = False, domain: Domain | None = None) -> float:
    """Check one value against the documented domain of ``field`` and return it as a float.

    Parameters
    ----------
    field : str
        A field of :func:`domains` (e.g. ``'revenue_growth'``, ``'requested_amount_rmb'``).
    value : object
        The value as received (YAML / JSON scalar).
    where : str, default=""
        Where it came from, for the message (``'overrides[2] of app.yaml'``).
    allow_text : bool, default=False
        Accept text that parses as a number (CSV cells). Applications and overrides are typed:
        leave it False there.
    domain : Domain, optional
        Use this domain instead of the table's (a field name still names it in messages).

    Returns
    -------
    float

    Raises
    ------
    DomainError
        Booleans, text (unless allowed), non-finite values, values outside the interval, and
        fractions in a count; the message names the field, the value and the fix.

    Examples
    --------
    >>> check_number("revenue_growth", 0.05)
    0.05
    """
    d = _domain(field, domain)
    if isinstance(value, (bool, np.bool_)):
        raise DomainError(_message(d, field, where, value) + " A boolean is not a number.")
    if isinstance(value, str) and allow_text:
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            raise DomainError(_message(d, field, where, value) + " It is not a number.") from None
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        raise DomainError(_message(d, field, where, value) + f" A {type(value).__name__} is not a number.")
    if not math.isfinite(number) or not d.interval.contains(number) or (d.whole and number != round(number)):
        raise DomainError(_message(d, field, where, value))
    return number


def check_numbers(values: pd.Series, field: str, *, domain: Domain | None = None) -> tuple[pd.Series, list[tuple[pd.Series, str, str]]]:
    """Vectorised :func:`check_number` for a column of text or numbers (files).

    Parameters
    ----------
    values : pandas.Series
        Cells as read (text or numeric); missing cells stay missing and are not problems.
    field : str
        A field of :func:`domains`.

    Returns
    -------
    numbers : pandas.Series of float64
        The parsed values; invalid ones are NaN.
    problems : list of (mask, problem, fix)
        One entry per kind of problem (not a number, not finite, outside the domain, not whole),
        each mask true where a cell has it and no earlier problem.
    """
    d = _domain(field, domain)
    missing = values.isna()
    if pd.api.types.is_bool_dtype(values.dtype):
        num = pd.Series(np.nan, index=values.index)
        not_number = ~missing
    else:
        num = pd.to_numeric(values, errors="coerce").astype("float64")
        not_number = num.isna() & ~missing
    finite = np.isfinite(num.to_numpy())
    not_finite = num.notna() & ~pd.Series(finite, index=values.index)
    inside = pd.Series(d.interval.contains(num.to_numpy()), index=values.index)
    candidate = num.notna() & ~not_finite & ~inside
    low, high = d.interval.low, d.interval.high
    below = candidate & (num <= low if low is not None else False)
    above = candidate & ~below
    fraction = num.notna() & ~not_finite & inside & (num != np.round(num)) if d.whole else pd.Series(False, index=values.index)
    fix = f"{field} ({d.unit}) must be in {d.interval}: {d.fix}"
    low_text = f"below the minimum {low:g}" if d.interval.closed in ("both", "left") else f"not above {low:g}"
    high_text = f"above the maximum {high:g}" if d.interval.closed in ("both", "right") else f"not below {high:g}"
    problems = [
        (not_number, "not a number", f"write {field} as a plain number"),
        (not_finite, "not a finite number (inf, nan or too large)", fix),
        (below, low_text, fix),
        (above, high_text, fix),
        (fraction, "not a whole number", f"{field} counts whole items"),
    ]
    invalid = not_number | not_finite | below | above | fraction
    return num.where(~invalid), [(m, p, f) for m, p, f in problems if m.any()]


def check_date(field: str, value, *, where: str = "", kind: str = "valuation_date") -> pd.Timestamp:
    """Check one date (a ``datetime.date`` or ``YYYY-MM-DD`` text) against its documented range.

    Parameters
    ----------
    field : str
        The field's name, for the message.
    kind : {'valuation_date', 'patent_date'}, default='valuation_date'

    Raises
    ------
    DomainError
        Not a date in ISO form, or outside the range.
    """
    d = _table()[1][kind]
    of = f" of {where}" if where else ""
    if isinstance(value, (bool, np.bool_, numbers.Number)):
        raise DomainError(f"The '{field}'{of} must be a date written YYYY-MM-DD. Got {value!r}. Fix: write e.g. 2026-03-15.")
    text = str(value).strip()
    try:
        ts = pd.Timestamp(text) if len(text) == 10 and text[4] == "-" and text[7] == "-" else None
    except ValueError:
        ts = None
    if ts is None or pd.isna(ts):
        raise DomainError(f"The '{field}'{of} must be a date written YYYY-MM-DD. Got {value!r}. Fix: write e.g. 2026-03-15.")
    if not d.low <= ts <= d.high:
        raise DomainError(
            f"The '{field}' ({d.what}){of} must be between {d.low.date()} and {d.high.date()}. Got {value!r}. Fix: check the year."
        )
    return ts
