"""Disposal view: from a market value to the collateral value (抵质押价值) a lender can realise.

After default the lender sells or licenses the pledged right: it sells at a forced-sale discount,
pays appraisal and disposal fees, and waits to be paid. Per draw of the market value ``V``::

    collateral = max(0, V × (1 − forced_sale_discount − disposal_cost_rate)) / (1 + holding_rate) ** time_to_dispose_years

Every number comes from an assumption set (``disposal-cn`` by default, ``ipvalue/assumptions/``)
with its source; a bank calibrates them from its own recoveries. Applied to the Monte Carlo draws
of the market value, the loan cap is read at a stated quantile (``cap_quantile``, P10 by default),
never from the point value. Because the discount, cost rate and holding rate are non-negative and
the discount plus cost is at most 1, the collateral value lies in ``[0, V]`` for every draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.config import assumption_value, load_set
from ipvalue.exceptions import AssumptionError

__all__ = ["DisposalAssumptions", "collateral_value", "disposal_view", "package_disposal_view"]


@dataclass(frozen=True)
class DisposalAssumptions:
    """A validated disposal assumption set (rates are fractions, time in years)."""

    name: str
    version: int
    forced_sale_discount: float
    disposal_cost_rate: float
    time_to_dispose_years: float
    holding_rate: float
    cap_quantile: float
    origin: str = ""
    hash: str = ""

    @classmethod
    def load(cls, which: "str | Path | dict | DisposalAssumptions" = "disposal-cn") -> "DisposalAssumptions":
        """Load a packaged set by name, a YAML path, or a parsed dict."""
        if isinstance(which, DisposalAssumptions):
            return which
        s = load_set(which)
        raw, origin = s.raw, s.origin
        discount = assumption_value(raw, "forced_sale_discount", 0.0, 1.0)
        cost = assumption_value(raw, "disposal_cost_rate", 0.0, 1.0)
        if discount + cost > 1.0:
            raise AssumptionError(
                f"The 'forced_sale_discount' ({discount:g}) plus 'disposal_cost_rate' ({cost:g}) of assumption set "
                f"{raw.get('name', origin)!r} exceed 1. Fix: together they are a share of the market value, at most 1."
            )
        return cls(
            name=str(raw.get("name", origin)),
            version=int(raw.get("version", 0)),
            forced_sale_discount=discount,
            disposal_cost_rate=cost,
            time_to_dispose_years=assumption_value(raw, "time_to_dispose_years", 0.0, 10.0),
            holding_rate=assumption_value(raw, "holding_rate", 0.0, 1.0),
            cap_quantile=assumption_value(raw, "cap_quantile", 0.0, 0.5, lo_open=True),
            origin=origin,
            hash=s.hash,
        )

    @property
    def realisation_factor(self) -> float:
        """Collateral value per RMB of market value: (1 − discount − cost) / (1 + holding)^time."""
        return (1.0 - self.forced_sale_discount - self.disposal_cost_rate) / (1.0 + self.holding_rate) ** self.time_to_dispose_years

    @property
    def provenance(self) -> dict:
        return {"disposal_assumption_set": f"{self.name}-v{self.version}", "disposal_assumption_set_hash": self.hash}


def _money(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"The '{name}' must be finite RMB amounts >= 0. Got {float(arr[pos])!r} at position {pos}. Fix: pass market values in RMB.")
    return arr


def collateral_value(market_value_rmb, assumptions="disposal-cn") -> np.ndarray:
    """Collateral value in RMB of each market value (any shape: patents, packages, draws).

    Parameters
    ----------
    market_value_rmb : array_like of float, RMB, >= 0
        Market values (a point per patent, or Monte Carlo draws).
    assumptions : str, Path, dict or DisposalAssumptions, default="disposal-cn"

    Returns
    -------
    numpy.ndarray, RMB, the shape of ``market_value_rmb``; value type ``collateral_value``.
    """
    a = DisposalAssumptions.load(assumptions)
    return _money(market_value_rmb, "market_value_rmb") * a.realisation_factor


def disposal_view(market_draws_rmb, *, index=None, quantile: float | None = None, assumptions="disposal-cn") -> pd.DataFrame:
    """The disposal view of each unit (patent or package) from its market-value draws.

    Parameters
    ----------
    market_draws_rmb : array_like, shape (n_units, n_draws) or (n_draws,), RMB
        Monte Carlo draws of the market value (a 1-D array is one unit, e.g. a package's summed
        scenario values).
    index : sequence, optional
        Labels of the units (patent or package ids); default 0..n_units-1.
    quantile : float in (0, 0.5], optional
        Quantile the cap is read at; default the set's ``cap_quantile`` (P10).
    assumptions : str, Path, dict or DisposalAssumptions, default="disposal-cn"

    Returns
    -------
    pandas.DataFrame, one row per unit
        ``market_value_p50_rmb`` (market_value), ``collateral_value_p50_rmb`` and
        ``collateral_value_q_rmb`` (collateral_value, at ``quantile``), ``loan_cap_rmb`` (=
        ``collateral_value_q_rmb``: the most a loan secured by the unit should be), ``quantile``,
        ``realisation_factor``, and the assumption set's name and hash.

    Examples
    --------
    >>> disposal_view([[100.0, 200.0, 300.0]], quantile=0.5)["collateral_value_q_rmb"].round(2).tolist()
    [67.27]
    """
    a = DisposalAssumptions.load(assumptions)
    q = a.cap_quantile if quantile is None else float(quantile)
    if not 0 < q <= 0.5:
        raise ValueError(f"The 'quantile' of the disposal view must be in (0, 0.5], e.g. 0.1 for P10. Got {quantile!r}.")
    draws = _money(market_draws_rmb, "market_draws_rmb")
    draws = draws[None, :] if draws.ndim == 1 else draws
    if draws.ndim != 2 or draws.shape[1] == 0:
        raise ValueError(f"The 'market_draws_rmb' must have shape (n_units, n_draws) with n_draws >= 1. Got shape {np.shape(market_draws_rmb)}.")
    collateral = draws * a.realisation_factor
    out = pd.DataFrame({
        "market_value_p50_rmb": np.median(draws, axis=1),
        "collateral_value_p50_rmb": np.median(collateral, axis=1),
        "collateral_value_q_rmb": np.quantile(collateral, q, axis=1),
    }, index=index)
    out["loan_cap_rmb"] = out["collateral_value_q_rmb"]
    out["quantile"] = q
    out["realisation_factor"] = a.realisation_factor
    for key, value in a.provenance.items():
        out[key] = value
    out.attrs["value_types"] = {
        "market_value_p50_rmb": "market_value", "collateral_value_p50_rmb": "collateral_value",
        "collateral_value_q_rmb": "collateral_value", "loan_cap_rmb": "collateral_value",
    }
    return out


def package_disposal_view(market_draws_rmb, package_id, *, patent_id=None, quantile: float | None = None, assumptions="disposal-cn"):
    """The package is the pledge unit: disposal view per package, with each patent's allocation.

    The draws of a package's patents are summed scenario by scenario (the Monte Carlo's common
    random numbers make that the package's distribution), then :func:`disposal_view` applies.
    Each patent's allocation of the package's figures is its share of the package's median
    market value (for reporting only; the cap belongs to the package).

    Parameters
    ----------
    market_draws_rmb : array_like, shape (n_patents, n_draws), RMB
    package_id : sequence, shape (n_patents,)
    patent_id : sequence, shape (n_patents,), optional
    quantile, assumptions : see :func:`disposal_view`

    Returns
    -------
    packages : pandas.DataFrame, indexed by package_id (see :func:`disposal_view`)
    allocation : pandas.DataFrame, one row per patent: ``patent_id``, ``package_id``,
        ``allocation_share``, ``market_value_p50_rmb``, ``collateral_value_q_rmb``, ``loan_cap_rmb``
        (the package figures × the share)
    """
    draws = _money(market_draws_rmb, "market_draws_rmb")
    if draws.ndim != 2 or len(draws) != len(package_id):
        raise ValueError(f"'market_draws_rmb' must have one row per patent ({len(package_id)}). Got shape {draws.shape}.")
    codes, labels = pd.factorize(pd.Series(package_id), sort=True)
    if (codes < 0).any():
        raise ValueError("'package_id' must be given for every patent (a patent alone is its own package). Fix: fill missing ids with the patent id.")
    summed = np.zeros((len(labels), draws.shape[1]))
    np.add.at(summed, codes, draws)
    packages = disposal_view(summed, index=pd.Index(labels, name="package_id"), quantile=quantile, assumptions=assumptions)
    patent_p50 = np.median(draws, axis=1)
    totals = np.bincount(codes, weights=patent_p50, minlength=len(labels))
    counts = np.bincount(codes, minlength=len(labels))
    share = np.where(totals[codes] > 0, patent_p50 / np.where(totals[codes] > 0, totals[codes], 1.0), 1.0 / counts[codes])
    allocation = pd.DataFrame({
        "patent_id": patent_id if patent_id is not None else np.arange(len(codes)),
        "package_id": labels[codes], "allocation_share": share,
    })
    for col in ("market_value_p50_rmb", "collateral_value_q_rmb", "loan_cap_rmb"):
        allocation[col] = packages[col].to_numpy()[codes] * share
    allocation.attrs["value_types"] = packages.attrs["value_types"]
    return packages, allocation
