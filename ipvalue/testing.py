"""Checks every valuation method must pass, shipped with the package (like scikit-learn's
``check_estimator`` / ``parametrize_with_checks``): a bank that adds a method runs them on it.

- :func:`check_valuer`: the estimator contract: ``fit`` returns the valuer; ``predict`` gives RMB
  indexed like the frame, finite and non-negative where known; ``predict_interval`` gives ordered
  ``low_rmb <= p50_rmb <= high_rmb`` for any coverage, wider for a wider coverage, and refuses a
  coverage outside (0, 1); ``provenance`` and ``value_type`` are stated; the input is not mutated;
  the same input gives the same output.
- :func:`check_method_result`: what :meth:`assess` returns for the pipeline: a
  :class:`~ipvalue.methods.base.MethodResult` indexed like the patents, with offers in the
  documented roles, draws on the shared scenarios, value types for its money columns, and report
  sections with their own ids.

Each raises ``AssertionError`` naming the broken rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue.methods.base import INTERVAL_COLUMNS, ROLES, VALUE_TYPES, MethodResult, Valuer
from ipvalue.report.sections import Section


def check_valuer(valuer, frame: pd.DataFrame, *, fit_frame=None, fit_y=None, name: str = "") -> None:
    """Run the estimator contract's checks on ``valuer`` (see the module docstring).

    Parameters
    ----------
    valuer : a valuation method's valuer, unfitted
    frame : pandas.DataFrame
        The rows it values (what ``predict`` takes).
    fit_frame, fit_y : optional
        What ``fit`` takes (``None`` for methods that learn nothing from data).
    name : str
        Used in messages.
    """
    who = name or type(valuer).__name__
    assert valuer.value_type in VALUE_TYPES, f"{who}: value_type {valuer.value_type!r} is not one of {list(VALUE_TYPES)}"
    before = frame.copy()
    assert valuer.fit(fit_frame, fit_y) is valuer, f"{who}: fit must return the valuer"
    assert isinstance(valuer, Valuer), f"{who}: does not expose fit, predict, predict_interval, provenance and value_type"
    values = valuer.predict(frame)
    assert isinstance(values, pd.Series) and values.index.equals(frame.index), f"{who}: predict must return a Series indexed like the frame"
    known = values.dropna()
    assert len(known) and np.isfinite(known).all() and (known >= 0).all(), f"{who}: known values must be finite RMB >= 0"
    for coverage in (0.5, 0.8, 0.9):
        interval = valuer.predict_interval(frame, coverage=coverage)
        assert tuple(interval.columns) == INTERVAL_COLUMNS and interval.index.equals(frame.index), f"{who}: predict_interval's columns are {INTERVAL_COLUMNS}"
        ok = interval.dropna()
        assert ((ok["low_rmb"] <= ok["p50_rmb"] + 1e-6) & (ok["p50_rmb"] <= ok["high_rmb"] + 1e-6)).all(), f"{who}: an interval must be ordered"
    wide, narrow = valuer.predict_interval(frame, coverage=0.95), valuer.predict_interval(frame, coverage=0.5)
    both = wide.notna().all(axis=1) & narrow.notna().all(axis=1)
    assert (wide.loc[both, "low_rmb"] <= narrow.loc[both, "low_rmb"] + 1e-6).all(), f"{who}: a wider coverage must never narrow the interval"
    try:
        valuer.predict_interval(frame, coverage=1.5)
    except ValueError as exc:
        assert "coverage" in str(exc), f"{who}: the error for a bad coverage must name it"
    else:
        raise AssertionError(f"{who}: a coverage of 1.5 must be refused")
    assert isinstance(valuer.provenance, dict) and valuer.provenance, f"{who}: provenance must say where its numbers came from"
    pd.testing.assert_frame_equal(frame, before, obj=f"{who}: the input must not be mutated")
    pd.testing.assert_series_equal(valuer.predict(frame), values, obj=f"{who}: the same input must give the same output")


def check_method_result(result, patents: pd.DataFrame, *, n_draws: int | None = None) -> MethodResult:
    """Check what a method's ``assess`` returned for ``patents`` (see the module docstring)."""
    assert isinstance(result, MethodResult), f"assess must return a MethodResult. Got {type(result).__name__}"
    who = result.method
    for table in ("values", "offers", "columns"):
        assert getattr(result, table).index.equals(patents.index), f"{who}: {table} must be indexed like the patents"
    assert result.offers["role"].isin(ROLES).all(), f"{who}: offer roles must be in {ROLES}"
    candidates = result.offers["role"].isin(["primary", "cross_check", "floor"])
    offered = result.offers.loc[candidates, "market_value_rmb"]
    assert offered.notna().all() and (offered >= 0).all(), f"{who}: every candidate, cross-check or floor offers a market value in RMB >= 0"
    assert result.offers["rank"].notna().all(), f"{who}: every offer has a rank"
    if result.draws is not None:
        assert result.draws.shape[0] == len(patents), f"{who}: draws need one row per patent"
        if n_draws is not None:
            assert result.draws.shape[1] == n_draws, f"{who}: draws must be on the valuation's {n_draws} shared scenarios"
        assert np.isfinite(result.draws).all() and (result.draws >= 0).all(), f"{who}: draws must be finite RMB >= 0"
    money = [c for c in (*result.values.columns, *result.offers.columns) if str(c).endswith("_rmb")]
    missing = [c for c in money if c not in result.value_types]
    assert not missing, f"{who}: money columns {missing} have no value type"
    ids = [s.id for s in result.sections]
    assert all(isinstance(s, Section) for s in result.sections) and len(ids) == len(set(ids)), f"{who}: sections must be Sections with their own ids"
    assert isinstance(result.provenance, dict), f"{who}: provenance must be a dict"
    return result
