"""Income-approach assumption sets (YAML with a source for every number), validated on load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ipvalue.config import assumption_value, content_hash, load_set
from ipvalue.exceptions import AssumptionError

PREMIUMS = ("technology_premium", "market_premium", "funding_premium", "management_premium")


@dataclass(frozen=True)
class IncomeAssumptions:
    """A validated assumption set. Rates are fractions, lives in years, money in RMB.

    Load with :meth:`load` (a packaged name such as 'cn-pledge-2025', or a YAML path); the
    ``hash`` of the parsed content is recorded with every result.
    """

    name: str
    version: int
    tax_rate: float
    risk_free: float
    premiums: dict[str, float]
    profit_split: tuple[float, float]
    profit_margin_by_sector: dict[str, float]
    decay_per_year: float
    mid_year: bool
    default_growth: float
    package_allocation: str
    economic_life_years: float
    mc_draws: int
    mc_seed: int
    mc_sd: dict[str, float]
    sensitivity: dict[str, float]
    position_mapping: tuple[float, float] = (0.0, 1.0)
    reconciliation_rank: dict = field(default_factory=lambda: {"with_statements": 2.0, "forecast_only": 4.0})
    margin_flag_factor: float = 2.0
    revenue_flag_factor: float = 1.5
    origin: str = ""
    raw: dict = field(default_factory=dict, repr=False)
    hash: str = ""

    @property
    def discount_rate(self) -> float:
        """Build-up discount rate: risk-free plus the four premiums."""
        return self.risk_free + sum(self.premiums.values())

    @classmethod
    def load(cls, which: "str | Path | dict | IncomeAssumptions" = "cn-pledge-2025") -> "IncomeAssumptions":
        if isinstance(which, IncomeAssumptions):
            return which
        s = load_set(which)
        return cls.from_dict(s.raw, s.origin)

    @classmethod
    def from_dict(cls, raw: dict, origin: str = "dict") -> "IncomeAssumptions":
        name = raw.get("name", origin)

        def get(path: str, lo: float, hi: float, *, lo_open=False, hi_open=False) -> float:
            return assumption_value(raw, path, lo, hi, lo_open=lo_open, hi_open=hi_open)

        premiums = {p: get(f"discount_rate.{p}", 0.0, 0.5) for p in PREMIUMS}
        risk_free = get("discount_rate.risk_free", -0.02, 0.2)
        total = risk_free + sum(premiums.values())
        if not 0 < total < 1:
            raise AssumptionError(f"The build-up discount rate of assumption set {name!r} must be in (0, 1). Got {total:g} (risk-free {risk_free:g} + premiums).")
        low = get("sharing_rate.profit_split.low", 0.0, 1.0, lo_open=True)
        high = get("sharing_rate.profit_split.high", 0.0, 1.0, lo_open=True)
        if low > high:
            raise AssumptionError(
                f"The 'sharing_rate.profit_split' of assumption set {name!r} has low {low:g} above high {high:g}. Fix: low must be <= high."
            )
        margins_raw = (raw.get("sharing_rate") or {}).get("profit_margin_by_sector") or {}
        margins = {sector: get(f"sharing_rate.profit_margin_by_sector.{sector}", 0.0, 1.0, lo_open=True) for sector in margins_raw}
        if "default" not in margins:
            raise AssumptionError(f"Assumption set {name!r} needs 'sharing_rate.profit_margin_by_sector.default' for unknown sectors.")
        income = raw.get("income") or {}
        discounting = income.get("discounting", "end_year")
        if discounting not in ("end_year", "mid_year"):
            raise AssumptionError(f"The 'income.discounting' of assumption set {name!r} must be 'end_year' or 'mid_year'. Got {discounting!r}.")
        allocation = income.get("package_allocation", "equal")
        if allocation not in ("equal", "score"):
            raise AssumptionError(f"The 'income.package_allocation' of assumption set {name!r} must be 'equal' or 'score'. Got {allocation!r}.")
        draws = get("monte_carlo.draws", 1, 1_000_000)
        sd = {k: get(f"monte_carlo.{k}", 0.0, 50.0) for k in ("sharing_position_sd", "discount_rate_sd", "growth_sd", "economic_life_sd_years", "revenue_level_sd", "margin_sd")}
        sens = {k: get(f"sensitivity.{k}", 0.0, 50.0) for k in ("sharing_position", "discount_rate", "growth", "economic_life_years", "decay_per_year", "revenue_level", "operating_margin", "tax_rate")}
        return cls(
            name=name,
            version=int(raw.get("version", 0)),
            tax_rate=get("tax_rate", 0.0, 1.0, hi_open=True),
            risk_free=risk_free,
            premiums=premiums,
            profit_split=(low, high),
            profit_margin_by_sector=margins,
            decay_per_year=get("sharing_rate.decay_per_year", 0.0, 1.0, hi_open=True),
            mid_year=discounting == "mid_year",
            default_growth=get("income.default_growth", -0.99, 5.0),
            package_allocation=allocation,
            economic_life_years=get("economic_life.default_years", 0.0, 50.0, lo_open=True),
            mc_draws=int(draws),
            mc_seed=int(get("monte_carlo.seed", 0, 2**32 - 1)),
            mc_sd=sd,
            sensitivity=sens,
            position_mapping=((get("sharing_rate.position_mapping.intercept", -1.0, 1.0), get("sharing_rate.position_mapping.slope", 0.0, 5.0))
                              if (raw.get("sharing_rate") or {}).get("position_mapping") else (0.0, 1.0)),
            reconciliation_rank={"with_statements": get("reconciliation.rank_with_statements", 0.0, 100.0),
                                 "forecast_only": get("reconciliation.rank_forecast_only", 0.0, 100.0)},
            margin_flag_factor=get("financials_check.margin_flag_factor", 1.0, 100.0),
            revenue_flag_factor=get("financials_check.revenue_flag_factor", 1.0, 100.0),
            origin=origin,
            raw=raw,
            hash=content_hash(raw),
        )

    @property
    def provenance(self) -> dict:
        return {"assumption_set": f"{self.name}-v{self.version}", "assumption_set_hash": self.hash, "assumption_origin": self.origin}
