"""What every valuation method receives: the patents and the inputs shared by all methods, built
once per valuation (features, scorecard, economic-life curves, the application's fields, the
registered models, the Monte Carlo scenarios).

A method declares which inputs it needs (``needs`` in the registry: e.g. ``revenue_forecast``,
``comparables``, ``rd_cost``, ``value_model``); the pipeline runs it only when they are present
and says so otherwise. Methods never receive another method's output.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


class Scenarios:
    """Monte Carlo scenarios shared by every method and patent of a valuation (common random numbers).

    ``z(name)`` is a vector of ``n_draws`` standard normals for a named risk factor, the same on
    every call: the income approach's factors (``sharing_position``, ``discount_rate``,
    ``growth``, ``economic_life``, ``revenue_level``, ``margin``) come from one seeded block, in
    that order; any other factor (``market_level``, ``model_error``, ``hazard_multiplier``) from its
    own stream seeded by the seed and the factor's name. Package totals are then per-scenario sums
    and re-running gives identical numbers.
    """

    INCOME_FACTORS = ("sharing_position", "discount_rate", "growth", "economic_life", "revenue_level", "margin")

    def __init__(self, n_draws: int, seed: int):
        if int(n_draws) != n_draws or n_draws < 1:
            raise ValueError(f"The 'n_draws' of the Monte Carlo must be a whole number >= 1. Got {n_draws!r}.")
        self.n_draws, self.seed = int(n_draws), int(seed)
        self._income = np.random.default_rng(self.seed).standard_normal((len(self.INCOME_FACTORS), self.n_draws))
        self._other: dict[str, np.ndarray] = {}

    def z(self, name: str) -> np.ndarray:
        if name in self.INCOME_FACTORS:
            return self._income[self.INCOME_FACTORS.index(name)]
        if name not in self._other:
            self._other[name] = np.random.default_rng([self.seed, zlib.crc32(name.encode())]).standard_normal(self.n_draws)
        return self._other[name]

    @property
    def provenance(self) -> dict:
        return {"monte_carlo_seed": self.seed, "monte_carlo_draws": self.n_draws}


@dataclass
class ValuationInputs:
    """The inputs of one valuation (an application, or a book), shared by every method.

    Attributes
    ----------
    valuation_date : pandas.Timestamp
    patents : pandas.DataFrame
        The PatentFrame, validated, one row per patent, ``package_id`` filled (a patent alone is
        its own package). Every per-patent table of the valuation is indexed like it.
    features : pandas.DataFrame
        The core feature matrix (``core-v1``), as of the valuation date, built once.
    scorecard : pandas.DataFrame
        ``total`` (0-100), the dimension scores, ``grade`` and ``sharing_position`` per patent (the indicator scorecard).
    scorecard_points : pandas.DataFrame
        Long: ``patent_id, indicator, points, max_points, label``.
    life : ipvalue.models.life.LifeCurves or None
        The economic-life curves (fee survival S_t, obsolescence O_t, the weights W_t of each
        year's cash flow, under any fee-lapse hazard multiplier), officers' economic-life overrides
        in them; None: the fixed horizon min(legal life, economic life) of the income assumption set.
    life_columns : pandas.DataFrame
        Per patent: ``economic_life_years`` (the period of excess returns), ``economic_life_source``,
        ``expected_in_force_years`` and what the life step reports (fee probabilities, the headline).
    scenarios : Scenarios
    revenue_forecast, schedule, financials, tax_rate, comparables, rd_cost, wacc : application fields
        (None when the application does not give them).
    overrides : tuple of Override
    value_model : RegisteredModel or None
        The registered ML value model, when the valuation uses one.
    assumption_set : str
        The income-approach assumption set's name.
    data_dir : str or None
        Public reference data.
    """

    valuation_date: pd.Timestamp
    patents: pd.DataFrame
    features: pd.DataFrame
    scorecard: pd.DataFrame
    scorecard_points: pd.DataFrame
    scenarios: Scenarios
    life: object = None
    life_columns: pd.DataFrame | None = None
    revenue_forecast: bool = True
    schedule: pd.DataFrame | None = None
    financials: pd.DataFrame | None = None
    tax_rate: float | None = None
    comparables: object = None
    rd_cost: dict | None = None
    wacc: float | None = None
    overrides: tuple = ()
    value_model: object = None
    assumption_set: str = "cn-pledge-2025"
    data_dir: str | None = None
    provenance: dict = field(default_factory=dict)

    def has(self, need: str) -> bool:
        """Whether the input ``need`` (a method's declared need) is present."""
        value = getattr(self, need, None)
        return bool(value) if isinstance(value, bool) else value is not None

    def overrides_of(self, field_name: str) -> dict:
        """``{patent_id: value}`` of the officers' overrides of ``field_name``."""
        return {o.patent_id: o.value for o in self.overrides if o.field == field_name}
