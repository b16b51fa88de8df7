"""Numeric and date domains: one table, one check for applications, overrides and files."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvalue.config import load_yaml
from ipvalue.domains import Interval, check_date, check_number, check_numbers, date_domains, domains
from ipvalue.exceptions import DomainError
from ipvalue.frame import COLUMNS, validate_patent_frame


def test_every_bound_has_a_source_and_every_numeric_frame_column_a_domain():
    raw, _ = load_yaml("input-domains")
    for name, spec in raw["fields"].items():
        assert spec["low"]["source"] and spec["high"]["source"], name
    numeric = {c.name for c in COLUMNS if c.kind in ("count", "float")}
    assert numeric <= set(domains())
    assert date_domains()["valuation_date"].low == pd.Timestamp("1985-04-01")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # issue 15 finding 4, each seen passing before
        ("revenue_growth", 50, r"The 'revenue_growth' .* of app.yaml must be in \[-0.5, 1\]. Got 50. Fix: rates are fractions: 5 % is 0.05."),
        ("sharing_rate", 25, r"must be in \(0, 0.5\]. Got 25. Fix: rates are fractions: 25 % is 0.25"),
        ("internal_value_rmb", math.inf, r"Got inf"),
        ("internal_value_rmb", math.nan, r"Got nan"),
        ("revenue_base_rmb", -30_000_000, r"must be in \[0, 1e\+11\]. Got -30000000"),
        ("revenue_rmb", 1e30, r"Got 1e\+30"),
        ("requested_amount_rmb", True, r"Got True. .*A boolean is not a number"),
        ("requested_amount_rmb", "5000000", r"A str is not a number"),
        ("requested_amount_rmb", 0, r"must be in \(0, 1e\+09\]"),
        ("year", 1.5, r"and a whole number. Got 1.5"),
    ],
)
def test_values_outside_their_domain_are_refused_with_field_value_and_fix(field, value, message):
    with pytest.raises(DomainError, match=message):
        check_number(field, value, where="app.yaml")


def test_values_inside_their_domain_come_back_as_floats():
    assert check_number("revenue_growth", 0.05) == 0.05
    assert check_number("sharing_rate", np.float32(0.25)) == pytest.approx(0.25)
    assert check_number("requested_amount_rmb", 10_000_000) == 10_000_000.0
    assert check_number("claims_total", " 12 ", allow_text=True) == 12.0
    assert check_number("revenue_base_rmb", "1,000,000", allow_text=True) == 1_000_000.0


def test_text_that_is_not_a_number_is_refused_even_where_text_is_allowed():
    with pytest.raises(DomainError, match="It is not a number"):
        check_number("claims_total", "twelve", allow_text=True)


def test_interval_membership_and_text():
    i = Interval(0, 0.5, "right")
    assert i.contains([0, 0.1, 0.5, 0.6, np.inf, np.nan]).tolist() == [False, True, True, False, False, False]
    assert str(i) == "(0, 0.5]"
    assert str(Interval(None, 1)) == "(-inf, 1]"


def test_column_check_names_each_problem():
    num, problems = check_numbers(pd.Series(["1", "inf", "1e308", "2.5", None, "x", "-1"]), "claims_total")
    assert num.tolist()[0] == 1.0 and num.iloc[1:].isna().all()
    found = {p: m[m].index.tolist() for m, p, _ in problems}
    assert found == {
        "not a number": [5],
        "not a finite number (inf, nan or too large)": [1],
        "below the minimum 0": [6],
        "above the maximum 5000": [2],
        "not a whole number": [3],
    }


def test_frame_quarantines_infinite_and_huge_counts_and_revenue_with_the_column_named():
    # issue 15 finding 4: counts "inf" / "1e308" and revenue "inf" passed validation.
    raw = pd.DataFrame(
        {
            "patent_id": ["CN1", "CN2", "CN3", "CN4"],
            "jurisdiction": ["CN"] * 4,
            "patent_type": ["invention"] * 4,
            "filing_date": ["2020-01-01"] * 4,
            "forward_citations": ["inf", "1e308", "3", "3"],
            "revenue_base_rmb": ["1000000", "1000000", "inf", "1000000"],
        }
    )
    res = validate_patent_frame(raw)
    assert res.valid["patent_id"].tolist() == ["CN4"]
    assert res.problems[["row", "column"]].values.tolist() == [[1, "forward_citations"], [2, "forward_citations"], [3, "revenue_base_rmb"]]


def test_dates_are_iso_and_in_range():
    assert check_date("valuation_date", "2026-03-15") == pd.Timestamp("2026-03-15")
    with pytest.raises(DomainError, match=r"must be a date written YYYY-MM-DD. Got '03/05/2026'"):
        check_date("valuation_date", "03/05/2026")
    with pytest.raises(DomainError, match=r"must be between 1985-04-01 and 2100-12-31. Got '1900-01-01'"):
        check_date("valuation_date", "1900-01-01")
    with pytest.raises(DomainError, match="Got 20260315"):
        check_date("valuation_date", 20260315)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.text(max_size=12), st.none()))
def test_check_number_returns_a_finite_in_domain_float_or_raises_domain_error(value):
    d = domains()["revenue_growth"]
    try:
        got = check_number("revenue_growth", value, allow_text=True)
    except DomainError:
        return
    assert math.isfinite(got) and d.interval.contains(got)
