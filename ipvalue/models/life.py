"""Economic life of a patent's returns: fee survival S_t, obsolescence O_t and the DCF weights W_t.

Two different things end a patent's excess returns, and they are modelled apart:

* **fee lapse**: the right ends because an annual (年费) or maintenance fee goes unpaid. The fee
  survival ``S_t`` = P(no fee lapse by the end of year t | in force at the valuation date), from the
  renewal model's hazards (:meth:`ipvalue.models.RenewalModel.fee_lapse_events`), or the CN life
  table's level for Chinese patents without a model, or 1 for other patents without a model.
  Fees documented as paid through a date (the PatentFrame's ``fees_paid_until`` and the
  application's fee-prepayment documents) carry no lapse risk before that date;
* **obsolescence**: technology and market obsolescence of the excess return, the period of excess
  returns an appraiser calls the economic life. ``O_t = (1 − rate)^(t − 1)`` with a yearly rate per
  WIPO technology field or sector (``assumptions/economic-life.yaml``, every rate a default to
  calibrate with its source), or ``O_t = 1`` within the remaining legal life where no rate applies.

The DCF weights year t's cash flow by ``W_t = S_t × O_t × A_t``, with ``A_t = clip(L − (t − 1), 0, 1)``
the share of year t inside the remaining legal life ``L`` (0 for a right that has ended). Each
factor lies in [0, 1] and does not rise with t, so neither does ``W_t``.

The fee-lapse hazards are uncertain (the CN life table's are defaults to calibrate), so every
curve takes a hazard **multiplier** ``m`` (each hazard × m, capped at 1), vectorised over patents ×
multipliers × years: the Monte Carlo draws one multiplier per scenario
(:meth:`EconomicLifeAssumptions.hazard_multipliers`) and reads the weights from a
:class:`MultiplierGrid`; the tornado's life row uses ``m`` = 0.5 and 2.

Example
-------
>>> from ipvalue.synthetic import make_demo_portfolio
>>> patents = make_demo_portfolio(20, seed=0).patents
>>> life = economic_life(patents, "2026-06-30", years=20)    # no renewal model: the CN life table
>>> life.weights().shape, life.weights([0.5, 1.0, 2.0]).shape
((20, 20), (20, 3, 20))
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ipvalue.config import assumption_value, content_hash, load_yaml
from ipvalue.exceptions import AssumptionError, InputError
from ipvalue.features import PatentFeatureBuilder
from ipvalue.features.builders import DAYS_PER_YEAR
from ipvalue.frame import as_patent_frame

__all__ = [
    "CNLifeTable", "EconomicLifeAssumptions", "FeeLapseEvents", "LifeCurves", "MultiplierGrid",
    "cn_annual_fee_label", "documented_paid_until", "economic_life",
]

#: Years of curves by default (covers any statutory term plus term adjustments).
DEFAULT_YEARS = 30
#: The feature spec built when the caller gives no features (remaining legal life, WIPO field, sector).
LIFE_SPEC = "economic-life-v1"
SOURCE_NO_MODEL = "no renewal model: fee lapse not modelled, in force through the remaining legal life"
SOURCE_TABLE = "CN life table by patent type and age (default to calibrate); no renewal model"
SOURCE_NO_TABLE_TYPE = "no CN life table entry for this patent type: fee lapse not modelled, in force through the remaining legal life"
SOURCE_LEGAL_LIFE = "remaining legal life: no obsolescence curve applied"


# -- fee lapse ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CNLifeTable:
    """Yearly lapse hazards of Chinese patents by type and age (``ipvalue/assumptions/cn-life-table.yaml``).

    ``hazards[type]`` is an array indexed by age - 1 (age = filing anniversary 1 .. term - 1) of
    P(the fee due at that anniversary is not paid | in force).
    """

    name: str
    hazards: dict
    origin: str

    @classmethod
    def load(cls, name: str = "cn-life-table") -> "CNLifeTable":
        raw, origin = load_yaml(name)
        hazards = {}
        for ptype, entry in raw["types"].items():
            ages = {}
            for band in entry["bands"]:
                value, source = band.get("value"), str(band.get("source") or "")
                if not isinstance(value, (int, float)) or not 0 <= value < 1 or not source:
                    raise AssumptionError(f"Each band of {origin} ({ptype}) needs a 'value' in [0, 1) and a 'source'. Got {band!r}.")
                lo, hi = band["ages"]
                for a in range(int(lo), int(hi) + 1):
                    if a in ages:
                        raise AssumptionError(f"Age {a} of {ptype} appears in two bands of {origin}. Fix: make the bands disjoint.")
                    ages[a] = float(value)
            if sorted(ages) != list(range(1, max(ages) + 1)):
                raise AssumptionError(f"The ages of {ptype} in {origin} must run 1..{max(ages)} without gaps. Got {sorted(ages)}.")
            hazards[ptype] = np.array([ages[a] for a in sorted(ages)])
        return cls(raw.get("name", name), hazards, origin)

    def population_survival(self, patent_type: str) -> np.ndarray:
        """S at each filing anniversary 1 .. term-1 for the table's average patent of a type."""
        return np.cumprod(1.0 - self.hazards[patent_type])

    @property
    def max_age(self) -> int:
        return max((len(h) for h in self.hazards.values()), default=0)


def cn_annual_fee_label(patent_year: int) -> dict:
    """The CN wording of the annual fee (年费) that buys patent year ``patent_year`` (counted from the
    filing date; the fee due at filing anniversary a buys year a + 1): ``第8年年费缴纳概率`` /
    ``P(8th-year annual fee paid)``.

    >>> cn_annual_fee_label(8)["zh"], cn_annual_fee_label(8)["en"], cn_annual_fee_label(11)["en"]
    ('第8年年费缴纳概率', 'P(8th-year annual fee paid)', 'P(11th-year annual fee paid)')
    """
    k = int(patent_year)
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return {"zh": f"第{k}年年费缴纳概率", "en": f"P({k}{suffix}-year annual fee paid)"}


#: The headline of a patent with no annual fee left at risk before its term ends.
FEES_PAID_TO_TERM = {"zh": "年费已缴至保护期届满", "en": "annual fees paid to the end of the term"}


def years_after(dates, start) -> np.ndarray:
    """Whole days from ``start`` to ``dates`` in years of 365.25 days (NaN where either is missing):
    ``dates`` of shape (n,) or (n, m) (datetime64), ``start`` (n,) or one date."""
    d = np.asarray(pd.to_datetime(np.ravel(dates)).to_numpy(), dtype="datetime64[ns]").reshape(np.shape(dates)).astype("datetime64[D]")
    s = np.asarray(pd.to_datetime(pd.Series(start)).to_numpy(), dtype="datetime64[ns]").astype("datetime64[D]")
    if d.ndim == 2 and s.ndim == 1 and len(s) == d.shape[0]:
        s = s[:, None]
    elif s.size == 1:
        s = s.reshape(())
    delta = (d - s).astype("float64")  # days; NaT -> NaN
    delta[np.isnat(d - s)] = np.nan
    return delta / DAYS_PER_YEAR


def cn_annual_fee_dates(filing_dates: pd.Series, n_ages: int) -> np.ndarray:
    """(n, n_ages) datetime64[D]: the filing date's calendar anniversaries 1..n_ages, the due dates
    of the CN annual fees after the first year (the fee due at anniversary a buys patent year a + 1).

    The same calendar as :func:`ipvalue.features.builders.add_years` (29 February → 28 February in
    a common year), over patents × anniversaries at once: each anniversary is the day its year
    starts (a table of the few years involved) plus the filing date's day of the year."""
    dates = pd.Series(pd.to_datetime(filing_dates).to_numpy())
    missing = dates.isna().to_numpy()
    first = dates.dt.year.fillna(2000).to_numpy(dtype="int64")
    month = dates.dt.month.fillna(1).to_numpy(dtype="int64")[:, None]
    day = dates.dt.day.fillna(1).to_numpy(dtype="int64")[:, None]
    lo = int(first.min(initial=2000)) + 1
    years = np.arange(lo, int(first.max(initial=2000)) + n_ages + 2)
    starts = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype("int64")  # day number of 1 January
    leaps = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    at = first[:, None] + np.arange(1, n_ages + 1)[None, :] - lo
    leap = leaps[at]
    before_month = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])[month]  # days before the month, common year
    feb29 = (month == 2) & (day == 29)
    days = starts[at] + before_month + day - 1 + ((month > 2) & leap) - (feb29 & ~leap)
    out = days.astype("datetime64[D]")
    out[missing] = np.datetime64("NaT", "D")
    return out


def _multipliers(multiplier) -> tuple[np.ndarray, bool]:
    m = np.asarray(multiplier, dtype="float64")
    if m.ndim > 1 or m.size == 0 or not np.isfinite(m).all() or (m < 0).any():
        shown = m if m.size <= 6 else f"{m.size} values, e.g. {m.ravel()[:3]}"
        raise ValueError(f"The hazard 'multiplier' must be a number or a 1-D array of finite numbers >= 0. Got {shown}. "
                         "Fix: 1 for the model's hazards, 0.5 to halve them, 2 to double them.")
    return np.atleast_1d(m), m.ndim == 0


@dataclass(frozen=True)
class FeeLapseEvents:
    """The fee events after a valuation date that can end each patent's right.

    Arrays are (n_patents, n_events), each row sorted by ``times``; an empty slot has time ``inf``
    and hazard 0. Build with :meth:`build`, which keeps only what can still happen.

    Attributes
    ----------
    times : numpy.ndarray
        Years after the start date at which an unpaid fee ends the right (the due date for CN 年费,
        the end of the grace period for US maintenance fees).
    due : numpy.ndarray
        Years after the start date at which the fee falls due (what a paid-until date covers).
    hazards : numpy.ndarray
        P(the fee is not paid | the right is in force before it), in [0, 1].
    horizon : numpy.ndarray, shape (n_patents,)
        Years of legal term left after the start date.
    patent_year : numpy.ndarray
        For CN annual fees the patent year the fee buys (anniversary + 1), else NaN.
    stage : numpy.ndarray
        The fee stage of the model's schedule (1..K) the event is, 0 where none (life-table events
        carry their filing anniversary).
    source : numpy.ndarray of str, shape (n_patents,)
        Where each patent's hazards come from.
    """

    times: np.ndarray
    due: np.ndarray
    hazards: np.ndarray
    horizon: np.ndarray
    patent_year: np.ndarray
    stage: np.ndarray
    source: np.ndarray

    @classmethod
    def build(cls, *, times, due, hazards, horizon, source, patent_year=None, stage=None) -> "FeeLapseEvents":
        """Keep the events that can still happen: after the start (time > 0; a fee due earlier was
        paid, the right being in force at the start) and on or before the horizon (no fee falls due
        after the term); sort each row by time. A missing horizon is the last event's time."""
        times, due = np.asarray(times, dtype="float64"), np.asarray(due, dtype="float64")
        hazards = np.clip(np.asarray(hazards, dtype="float64"), 0.0, 1.0)
        n, m = times.shape
        horizon = np.asarray(horizon, dtype="float64").reshape(n)
        finite_max = np.where(np.isfinite(times), times, -np.inf).max(axis=1, initial=-np.inf)
        horizon = np.maximum(np.where(np.isnan(horizon), finite_max, horizon), 0.0)
        live = np.isfinite(times) & (times > 0) & (times <= horizon[:, None])
        patent_year = np.full((n, m), np.nan) if patent_year is None else np.asarray(patent_year, dtype="float64")
        stage = np.zeros((n, m)) if stage is None else np.asarray(stage, dtype="float64")
        order = np.argsort(np.where(live, times, np.inf), axis=1, kind="stable")
        take = lambda a, fill: np.take_along_axis(np.where(live, a, fill), order, axis=1)  # noqa: E731
        return cls(
            times=take(times, np.inf), due=take(np.nan_to_num(due, nan=np.inf), np.inf), hazards=take(np.nan_to_num(hazards), 0.0),
            horizon=horizon, patent_year=take(patent_year, np.nan), stage=take(stage, 0.0),
            source=np.broadcast_to(np.asarray(source, dtype=object), (n,)).copy(),
        )

    @classmethod
    def none(cls, horizon, source) -> "FeeLapseEvents":
        """No fee event: the right stays in force through its horizon."""
        n = len(np.atleast_1d(horizon))
        empty = np.empty((n, 0))
        return cls.build(times=empty, due=empty, hazards=empty, horizon=horizon, source=source)

    def __len__(self) -> int:
        return len(self.horizon)

    def take(self, rows) -> "FeeLapseEvents":
        """The events of some patents (a boolean mask or positions)."""
        return FeeLapseEvents(*(getattr(self, f)[rows] for f in ("times", "due", "hazards", "horizon", "patent_year", "stage", "source")))

    @staticmethod
    def combine(parts: list[tuple[np.ndarray, "FeeLapseEvents"]], n: int) -> "FeeLapseEvents":
        """One event table from parts covering disjoint rows (``(mask, events)``), padded to the widest."""
        width = max((p.times.shape[1] for _, p in parts), default=0)
        out = {"times": np.full((n, width), np.inf), "due": np.full((n, width), np.inf), "hazards": np.zeros((n, width)),
               "patent_year": np.full((n, width), np.nan), "stage": np.zeros((n, width))}
        horizon, source = np.zeros(n), np.empty(n, dtype=object)
        for rows, part in parts:
            k = part.times.shape[1]
            for name, arr in out.items():
                arr[rows, :k] = getattr(part, name)
            horizon[rows], source[rows] = part.horizon, part.source
        return FeeLapseEvents(horizon=horizon, source=source, **out)

    def prepaid(self, paid_until_years) -> "FeeLapseEvents":
        """No lapse risk for a fee falling due before the patent's documented paid-until date
        (years after the start, NaN = no information): such a fee is paid. A fee due on the date
        itself is the next one to pay, still at risk."""
        p = np.asarray(paid_until_years, dtype="float64").reshape(len(self))
        covered = self.due < np.where(np.isnan(p), -np.inf, p)[:, None]
        return replace(self, hazards=np.where(covered, 0.0, self.hazards))

    def within(self, horizon) -> "FeeLapseEvents":
        """The events up to a shorter horizon (e.g. the remaining legal life, 0 for a right that has ended)."""
        h = np.minimum(self.horizon, np.maximum(np.asarray(horizon, dtype="float64"), 0.0))
        return FeeLapseEvents.build(times=self.times, due=self.due, hazards=self.hazards, horizon=h, source=self.source,
                                    patent_year=self.patent_year, stage=self.stage)

    def survival(self, years: int, multiplier=1.0) -> np.ndarray:
        """Fee survival at the end of years 1..``years`` after the start: the product of (1 − m × h)
        over the events at or before t, every hazard multiplied by ``m`` and capped at 1.

        Returns
        -------
        numpy.ndarray, shape (n, years) for one multiplier, (n, n_multipliers, years) for a 1-D array.
        """
        m, scalar = _multipliers(multiplier)
        n, k = self.hazards.shape
        t = np.arange(1, int(years) + 1, dtype="float64")
        log_keep = np.log1p(-np.minimum(self.hazards[:, None, :] * m[None, :, None], 1.0 - 1e-12))
        cum = np.concatenate([np.zeros((n, len(m), 1)), np.cumsum(log_keep, axis=2)], axis=2)  # (n, M, k + 1)
        passed = (self.times[:, :, None] <= t[None, None, :]).sum(axis=1)  # events by the end of year t (rows are sorted)
        s = np.exp(np.take_along_axis(cum, np.broadcast_to(passed[:, None, :], (n, len(m), len(t))), axis=2))
        return s[:, 0, :] if scalar else s

    def expected_life(self, multiplier=1.0) -> np.ndarray:
        """The exact mean time in force after the start within the horizon, the area under the step
        survival curve: Σ_k S_(k−1) h_k t_k + S_K × horizon. Shape (n,) or (n, n_multipliers)."""
        m, scalar = _multipliers(multiplier)
        h = np.minimum(self.hazards[:, None, :] * m[None, :, None], 1.0)
        t = np.where(np.isfinite(self.times), self.times, 0.0)[:, None, :]
        keep = np.cumprod(1.0 - h, axis=2)
        before = np.concatenate([np.ones(h.shape[:2] + (1,)), keep[:, :, :-1]], axis=2)
        last = keep[:, :, -1] if h.shape[2] else np.ones(h.shape[:2])
        life = (before * h * t).sum(axis=2) + last * self.horizon[:, None]
        return life[:, 0] if scalar else life

    def next_at_risk(self) -> tuple[np.ndarray, np.ndarray]:
        """Column of each patent's first event with a lapse risk (hazard > 0), and whether it has one."""
        risky = self.hazards > 0
        return risky.argmax(axis=1) if risky.shape[1] else np.zeros(len(self), dtype=int), risky.any(axis=1)


def documented_paid_until(frame: pd.DataFrame, paid_until=None) -> pd.Series:
    """Each patent's fees documented as paid through: the later of the PatentFrame's
    ``fees_paid_until`` (年费缴至) and ``paid_until`` (e.g. the application's fee-prepayment
    documents), NaT where neither says.

    Parameters
    ----------
    frame : PatentFrame, shape (n_patents, ...)
    paid_until : pandas.Series or array-like of date-like, optional
        A Series is matched on ``frame``'s index (every row needs an entry); an array-like must
        have one entry per row. NaT / empty = no information.

    Returns
    -------
    pandas.Series of datetime64, indexed like ``frame``, named ``fees_paid_until``.
    """
    own = pd.to_datetime(frame["fees_paid_until"], errors="coerce") if "fees_paid_until" in frame else pd.Series(pd.NaT, index=frame.index)
    if paid_until is None:
        return own.astype("datetime64[ns]").rename("fees_paid_until")
    if isinstance(paid_until, pd.Series):
        absent = ~frame.index.isin(paid_until.index)
        if absent.any():
            row = frame.index[absent][0]
            raise InputError(f"The 'paid_until' dates must be indexed like the patents: no entry for row {row!r} ({frame.at[row, 'patent_id']}). "
                             "Fix: give one date per patent (NaT when no fee payment is documented).")
        if paid_until.index.has_duplicates:
            raise InputError("The 'paid_until' dates have a repeated index. Fix: one date per patent, indexed like the patents.")
        raw = paid_until.reindex(frame.index)
    else:
        values = list(paid_until) if not isinstance(paid_until, (str, bytes)) else [paid_until]
        if len(values) != len(frame):
            raise InputError(f"The 'paid_until' dates must have one entry per patent ({len(frame)}). Got {len(values)}. "
                             "Fix: align them with the patents (NaT when no fee payment is documented).")
        raw = pd.Series(values, index=frame.index, dtype=object)
    if pd.api.types.is_datetime64_dtype(raw.dtype):  # dates already (NaT: none): nothing to parse
        parsed = raw
    else:
        blank = raw.isna() | raw.astype("str").str.strip().isin(["", "NaT", "nan", "None"])
        parsed = pd.to_datetime(raw.where(~blank), errors="coerce")
        bad = parsed.isna() & ~blank
        if bad.any():
            row = bad.idxmax()
            raise InputError(f"The 'paid_until' of row {row!r} ({frame.at[row, 'patent_id']}) is not a date. Got {raw[row]!r}. "
                             "Fix: YYYY-MM-DD, or empty when no fee payment is documented.")
    a, b = own.to_numpy().astype("datetime64[ns]"), parsed.to_numpy().astype("datetime64[ns]")
    later = np.where(np.isnat(a), b, np.where(np.isnat(b), a, np.maximum(a, b)))  # the later date, NaT where neither says
    return pd.Series(later, index=frame.index, name="fees_paid_until")


def cn_life_table_events(frame: pd.DataFrame, valuation_date, horizon: np.ndarray, table: CNLifeTable) -> FeeLapseEvents:
    """Fee events of patents on the CN life table's level alone (no renewal model): the annual fee
    due at each filing anniversary after the valuation date, hazard = the table's for the patent's
    type and age; types the table lacks have no events (and say so)."""
    n_ages = table.max_age
    due = years_after(cn_annual_fee_dates(frame["filing_date"], n_ages), pd.Timestamp(valuation_date))
    hazards = np.zeros((len(frame), n_ages))
    ptype = frame["patent_type"].astype("str").to_numpy()
    known = np.zeros(len(frame), dtype=bool)
    for t, h in table.hazards.items():  # a loop over the three patent types, not patents
        rows = ptype == t
        hazards[rows, : len(h)] = h
        known |= rows
    return FeeLapseEvents.build(times=due, due=due, hazards=hazards, horizon=horizon, source=np.where(known, SOURCE_TABLE, SOURCE_NO_TABLE_TYPE),
                                patent_year=np.broadcast_to(np.arange(2, n_ages + 2, dtype=float), due.shape), stage=np.broadcast_to(np.arange(1, n_ages + 1, dtype=float), due.shape))


# -- obsolescence and the uncertainty of the fee-lapse level ------------------------------------


@dataclass(frozen=True)
class EconomicLifeAssumptions:
    """A validated economic-life assumption set (``ipvalue/assumptions/economic-life.yaml``): the
    obsolescence rates by WIPO field and sector, and the uncertainty of the fee-lapse hazards.

    Attributes
    ----------
    default : tuple (rate or None, source)
    sectors : dict of str to (rate or None, source)
    fields : dict of int to (rate or None, source)
        A rate None means no obsolescence curve (the remaining legal life).
    hazard_multiplier_sd : float
        Standard deviation of ln(m), the Monte Carlo's hazard multiplier.
    tornado_multipliers : tuple of float
        (low, high) multipliers of the tornado's life row.
    grid_points, exact_max_cells : int
        Numerical settings of :class:`MultiplierGrid`.
    """

    name: str
    version: int
    default: tuple
    sectors: dict
    fields: dict
    hazard_multiplier_sd: float
    tornado_multipliers: tuple
    grid_points: int
    exact_max_cells: int
    sources: dict
    origin: str = ""
    hash: str = ""

    @classmethod
    def load(cls, which: "str | dict | EconomicLifeAssumptions" = "economic-life") -> "EconomicLifeAssumptions":
        """Load a packaged set by name (or the bank's, ``$IPVALUE_CONFIG_DIR/assumptions/``), a
        YAML path, or a parsed dict; every rate is checked and needs a source."""
        if isinstance(which, EconomicLifeAssumptions):
            return which
        raw, origin = (which, "dict") if isinstance(which, dict) else load_yaml(which)
        name = raw.get("name", origin)
        obs = raw.get("obsolescence")
        if not isinstance(obs, dict) or "default" not in obs:
            raise AssumptionError(f"Assumption set {name!r} needs 'obsolescence.default' (a rate or null, with a source). Fix: add it.")

        def curve(node, where: str) -> tuple:
            if not isinstance(node, dict) or "rate" not in node or not str(node.get("source") or "").strip():
                raise AssumptionError(f"The '{where}' of assumption set {name!r} needs a 'rate' (a fraction a year, or null for the legal life) "
                                      f"and a 'source'. Got {node!r}.")
            rate = node["rate"]
            if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1):
                raise AssumptionError(f"The '{where}.rate' of assumption set {name!r} must be in [0, 1) or null. Got {rate!r}. "
                                      "Fix: a yearly obsolescence rate as a fraction (0.15 = 15 % a year).")
            return (None if rate is None else float(rate), str(node["source"]).strip())

        sectors = {str(k): curve(v, f"obsolescence.sectors.{k}") for k, v in (obs.get("sectors") or {}).items()}
        fields = {}
        for k, v in (obs.get("fields") or {}).items():
            if isinstance(k, bool) or not str(k).isdigit() or not 1 <= int(k) <= 35:
                raise AssumptionError(f"The obsolescence field {k!r} of assumption set {name!r} must be a WIPO technology field 1..35.")
            fields[int(k)] = curve(v, f"obsolescence.fields.{k}")
        low = assumption_value(raw, "fee_lapse_uncertainty.tornado_low", 0.0, 1.0, lo_open=True)
        high = assumption_value(raw, "fee_lapse_uncertainty.tornado_high", 1.0, 20.0)
        nodes = raw.get("fee_lapse_uncertainty") or {}
        sources = {k: str(nodes[k].get("source", "")) if isinstance(nodes.get(k), dict) else "" for k in ("hazard_multiplier_sd", "tornado_low", "tornado_high")}
        return cls(
            name=str(name), version=int(raw.get("version", 0)), default=curve(obs["default"], "obsolescence.default"), sectors=sectors, fields=fields,
            hazard_multiplier_sd=assumption_value(raw, "fee_lapse_uncertainty.hazard_multiplier_sd", 0.0, 2.0),
            tornado_multipliers=(low, high),
            grid_points=int(assumption_value(raw, "fee_lapse_uncertainty.grid_points", 2, 1000)),
            exact_max_cells=int(assumption_value(raw, "fee_lapse_uncertainty.exact_max_cells", 0, 1e9)),
            sources=sources, origin=origin, hash=content_hash(raw),
        )

    def obsolescence_rates(self, tech_field, tech_sector) -> tuple[np.ndarray, np.ndarray]:
        """Each patent's yearly obsolescence rate (NaN = none, the remaining legal life) and its
        source: the field's, else the sector's, else the default."""
        field = pd.to_numeric(pd.Series(np.asarray(tech_field, dtype=object)), errors="coerce")
        sector = pd.Series(np.asarray(tech_sector, dtype=object)).astype("object")
        rate = np.full(len(field), self.default[0] if self.default[0] is not None else np.nan, dtype="float64")
        source = np.full(len(field), self.default[1], dtype=object)
        for table, key in ((self.sectors, sector), (self.fields, field)):  # the more specific level last, so it wins
            hit = key.isin(list(table)).to_numpy()
            entries = [table[k] for k in key.to_numpy()[hit]]
            rate[hit] = [np.nan if r is None else r for r, _ in entries]
            source[hit] = [s for _, s in entries]
        none = np.isnan(rate)
        source[none] = [f"{SOURCE_LEGAL_LIFE} ({s})" for s in source[none]]
        return rate, source

    def hazard_multipliers(self, z) -> np.ndarray:
        """The Monte Carlo's hazard multiplier of each scenario from standard normal draws ``z``:
        exp(sd × z) (log-normal, median 1)."""
        return np.exp(self.hazard_multiplier_sd * np.asarray(z, dtype="float64"))

    @property
    def provenance(self) -> dict:
        return {"economic_life_set": f"{self.name}-v{self.version}", "economic_life_set_hash": self.hash}


# -- the curves --------------------------------------------------------------------------------


@dataclass
class LifeCurves:
    """Per patent and year t = 1..T after the valuation date: fee survival, obsolescence and the
    DCF weights, with the summary figures and their sources (see :func:`economic_life`).

    Attributes
    ----------
    index : pandas.Index
        The patents' row labels (as in the frame valued).
    patent_id : numpy.ndarray
    valuation_date : pandas.Timestamp
    years : int
        T.
    events : FeeLapseEvents
        Fee events within the remaining legal life, prepaid fees without risk.
    legal_life : numpy.ndarray, shape (n,)
        Remaining legal life L in years (0 for a right that has ended).
    fees_paid_until : pandas.Series
        The documented paid-until date used (NaT = none).
    obsolescence_rate : numpy.ndarray, shape (n,)
        Yearly rate (NaN = none: the remaining legal life).
    obsolescence_source : numpy.ndarray of str
    assumptions : EconomicLifeAssumptions
    """

    index: pd.Index
    patent_id: np.ndarray
    valuation_date: pd.Timestamp
    years: int
    events: FeeLapseEvents
    legal_life: np.ndarray
    fees_paid_until: pd.Series
    obsolescence_rate: np.ndarray
    obsolescence_source: np.ndarray
    assumptions: EconomicLifeAssumptions

    def __len__(self) -> int:
        return len(self.legal_life)

    @property
    def share_in_term(self) -> np.ndarray:
        """A_t = clip(L − (t − 1), 0, 1): the share of year t inside the remaining legal life, (n, T)."""
        t = np.arange(self.years, dtype="float64")
        return np.clip(self.legal_life[:, None] - t[None, :], 0.0, 1.0)

    @property
    def obsolescence(self) -> np.ndarray:
        """O_t = (1 − rate)^(t − 1), 1 where no rate applies, (n, T)."""
        t = np.arange(self.years, dtype="float64")
        keep = 1.0 - np.nan_to_num(self.obsolescence_rate, nan=0.0)
        return keep[:, None] ** t[None, :]

    def survival(self, multiplier=1.0) -> np.ndarray:
        """S_t, fee survival at the end of year t: (n, T), or (n, M, T) for M multipliers."""
        return self.events.survival(self.years, multiplier)

    def weights(self, multiplier=1.0) -> np.ndarray:
        """W_t = S_t × O_t × A_t, the weight of year t's cash flow: (n, T), or (n, M, T) for M multipliers."""
        s = self.survival(multiplier)
        fixed = self.obsolescence * self.share_in_term
        return s * (fixed if s.ndim == 2 else fixed[:, None, :])

    def expected_in_force_years(self, multiplier=1.0) -> np.ndarray:
        """The expected period in force within the remaining legal life, the area under the step
        fee-survival curve (exact, not by whole years): (n,) or (n, M)."""
        return self.events.expected_life(multiplier)

    @property
    def economic_life_years(self) -> np.ndarray:
        """The period of excess returns: the area under O within the remaining legal life,
        Σ_t O_t × A_t (years of full excess return); the remaining legal life where no rate applies."""
        return (self.obsolescence * self.share_in_term).sum(axis=1)

    def table(self, multiplier=1.0) -> pd.DataFrame:
        """Wide table indexed like the patents: ``s_1..s_T``, ``o_1..o_T``, ``w_1..w_T``."""
        t = range(1, self.years + 1)
        parts = [(self.survival(multiplier), "s"), (self.obsolescence, "o"), (self.weights(multiplier), "w")]
        return pd.concat([pd.DataFrame(a, index=self.index, columns=[f"{p}_{k}" for k in t]) for a, p in parts], axis=1)

    def yearly(self, multiplier=1.0) -> pd.DataFrame:
        """Long table, one row per patent and year (for the report's calculation appendix):
        ``patent_id, year, share_in_term, fee_survival, obsolescence, weight``."""
        n, t = len(self), self.years
        return pd.DataFrame({
            "patent_id": np.repeat(self.patent_id, t), "year": np.tile(np.arange(1, t + 1), n),
            "share_in_term": self.share_in_term.ravel(), "fee_survival": self.survival(multiplier).ravel(),
            "obsolescence": self.obsolescence.ravel(), "weight": self.weights(multiplier).ravel(),
        })

    def summary(self) -> pd.DataFrame:
        """One row per patent, indexed like the patents: ``patent_id``, ``remaining_legal_life_years``,
        ``fees_paid_until``, ``expected_in_force_years`` and ``fee_survival_source``,
        ``obsolescence_rate`` and ``obsolescence_source``, ``economic_life_years`` (years) and
        ``economic_life_source``."""
        no_rate = np.isnan(self.obsolescence_rate)
        return pd.DataFrame({
            "patent_id": self.patent_id,
            "remaining_legal_life_years": self.legal_life,
            "fees_paid_until": self.fees_paid_until.to_numpy(),
            "expected_in_force_years": self.expected_in_force_years(),
            "fee_survival_source": self.events.source,
            "obsolescence_rate": self.obsolescence_rate,
            "obsolescence_source": self.obsolescence_source,
            "economic_life_years": self.economic_life_years,
            "economic_life_source": np.where(no_rate, SOURCE_LEGAL_LIFE, "area under the obsolescence curve within the remaining legal life"),
        }, index=self.index)

    def grid(self, multipliers) -> "MultiplierGrid":
        """The weights under one hazard multiplier per Monte Carlo scenario (:class:`MultiplierGrid`)."""
        return MultiplierGrid(self, multipliers)

    @property
    def provenance(self) -> dict:
        return {**self.assumptions.provenance, "economic_life_valuation_date": self.valuation_date.date().isoformat(), "economic_life_years_of_curves": self.years}


class MultiplierGrid:
    """W_t under one hazard multiplier per scenario, built once for a Monte Carlo.

    Small books are exact: the weights of every draw, (n, D, T), when n × D × T is at most the
    set's ``exact_max_cells``. Larger books are evaluated at ``grid_points`` multipliers evenly
    spaced in ln(m) between the smallest and largest draw (kept in float32), and each draw's
    weights are interpolated linearly in ln(m) between its two neighbours: the cost is then two
    gathers per patent, draw and year, against the grid's n × G × T exact curves. Interpolated
    weights stay in [0, 1] and non-increasing in t (a convex combination of two such curves).
    ``benchmarks/life.py`` measures the cost and the error.

    Parameters
    ----------
    curves : LifeCurves
    multipliers : array-like, shape (n_draws,)
        One multiplier per scenario (> 0 for the grid).

    Attributes
    ----------
    mode : {'exact', 'grid'}
    multipliers : numpy.ndarray, shape (n_draws,)
    grid_multipliers : numpy.ndarray or None
    """

    def __init__(self, curves: LifeCurves, multipliers):
        m, _ = _multipliers(multipliers)
        self.multipliers = m
        self.years = curves.years
        a = curves.assumptions
        if len(curves) * len(m) * curves.years <= a.exact_max_cells:
            self.mode, self.grid_multipliers = "exact", None
            self._w = curves.weights(m)  # (n, D, T)
            return
        if (m <= 0).any():
            raise ValueError("The hazard multipliers of a grid must be > 0 (interpolated in ln m). Got a multiplier of 0. Fix: draw log-normal multipliers.")
        self.mode = "grid"
        lo, hi = float(m.min()), float(m.max())
        self.grid_multipliers = np.geomspace(lo, hi, a.grid_points) if hi > lo else np.array([lo])
        # (n, T, G) in float32: W lies in [0, 1], so its rounding (6e-8) is far below the interpolation's error, and the
        # reads that dominate a Monte Carlo move half the bytes
        self._w = np.ascontiguousarray(curves.weights(self.grid_multipliers).transpose(0, 2, 1), dtype="float32")
        g = len(self.grid_multipliers)
        position = np.interp(np.log(m), np.log(self.grid_multipliers), np.arange(g, dtype="float64")) if g > 1 else np.zeros(len(m))
        self._lo = np.minimum(np.floor(position).astype(np.intp), max(g - 2, 0))
        self._hi = np.minimum(self._lo + 1, g - 1)
        self._frac = (position - self._lo).astype("float32")
        self._keep = (1.0 - self._frac).astype("float32")

    def weights_at(self, year: int, rows=slice(None), *, out: np.ndarray | None = None) -> np.ndarray:
        """W of year ``year`` (1..T) for each patent of ``rows`` and each draw: (n_rows, n_draws),
        float64 when exact, float32 on the grid (a product with float64 arrays is float64).
        ``out``: an array of that shape and dtype to write into (a Monte Carlo's loop over years
        then allocates nothing for the weights)."""
        if not 1 <= int(year) <= self.years:
            raise ValueError(f"The 'year' must be in 1..{self.years}. Got {year!r}.")
        if self.mode == "exact":
            w = self._w[rows, :, int(year) - 1]
            if out is None:
                return w
            out[...] = w
            return out
        w = self._w[rows, int(year) - 1, :]
        out = np.take(w, self._lo, axis=1, out=out)
        out *= self._keep
        upper = np.take(w, self._hi, axis=1)
        upper *= self._frac
        out += upper
        return out

    def weights(self, rows=slice(None)) -> np.ndarray:
        """W of every year for the patents of ``rows`` and every draw: (n_rows, n_draws, T)."""
        return np.stack([self.weights_at(t, rows) for t in range(1, self.years + 1)], axis=2)


def _life_features(frame: pd.DataFrame, valuation_date, features: pd.DataFrame | None, data_dir) -> pd.DataFrame:
    need = ("remaining_life_years", "tech_field", "tech_sector")
    if features is None:
        return PatentFeatureBuilder(LIFE_SPEC, valuation_date=valuation_date, data_dir=data_dir).fit_transform(frame)
    missing = [c for c in need if c not in features.columns]
    if missing:
        raise InputError(f"The 'features' given to economic_life lack {missing}. Fix: pass a feature matrix built as of the valuation "
                         f"date with {list(need)} (core-v1 has them), or none to build them.")
    absent = ~frame.index.isin(features.index)
    if absent.any():
        row = frame.index[absent][0]
        raise InputError(f"The 'features' given to economic_life have no row for index {row!r} ({frame.at[row, 'patent_id']}). Fix: index them like the patents.")
    return features.loc[frame.index, list(need)]


def economic_life(X: pd.DataFrame, valuation_date, *, years: int = DEFAULT_YEARS, renewal=None, paid_until=None,
                  features: pd.DataFrame | None = None, obsolescence: bool = True, assumptions="economic-life",
                  life_table: str = "cn-life-table", owner_book: pd.DataFrame | None = None, data_dir=None) -> LifeCurves:
    """The economic-life curves of each patent at a valuation date: S_t, O_t, W_t and their summary.

    Parameters
    ----------
    X : PatentFrame, shape (n_patents, ...)
    valuation_date : date-like
    years : int, default=30
        T, the years of curves (cover the longest remaining legal life).
    renewal : RenewalModel or RenewalOutputs, optional
        A fitted renewal model (its :meth:`~ipvalue.models.RenewalModel.fee_lapse_events` at the
        valuation date, features as of that date), or the outputs of its ``valuation_outputs`` for
        the same patents and date (no second feature build). Without it: the CN life table's
        level for Chinese patents, no fee lapse for the others (the source says so).
    paid_until : pandas.Series or array-like of dates, optional
        Fees documented as paid through (e.g. the application's fee-prepayment documents), aligned
        with ``X``; combined with ``X['fees_paid_until']`` (the later wins; NaT = no information).
    features : pandas.DataFrame, optional
        Features of ``X`` as of the valuation date with ``remaining_life_years``, ``tech_field``
        and ``tech_sector`` (e.g. the income approach's core-v1 matrix); built when absent.
    obsolescence : bool, default=True
        False: no obsolescence curve for any patent (O_t = 1: the remaining legal life), the
        source says so.
    assumptions : str, dict or EconomicLifeAssumptions, default="economic-life"
    life_table : str, default="cn-life-table"
        The CN life table used without a renewal model (a model carries its own).
    owner_book : pandas.DataFrame, optional
        The owners' patents with their lapse dates (a bank's export), passed to the renewal model.
    data_dir : str or Path, optional
        The public reference data (IPC concordance) for the WIPO fields.

    Returns
    -------
    LifeCurves
    """
    if int(years) != years or years < 1:
        raise ValueError(f"The 'years' of economic_life must be a whole number >= 1. Got {years!r}.")
    when = pd.to_datetime(valuation_date, errors="coerce") if valuation_date is not None else pd.NaT
    if pd.isna(when):
        raise ValueError(f"The 'valuation_date' of economic_life must be a date (YYYY-MM-DD). Got {valuation_date!r}.")
    vd = pd.Timestamp(when).normalize()
    a = EconomicLifeAssumptions.load(assumptions)
    frame = as_patent_frame(X, source="economic_life input")
    built = _life_features(frame, vd, features, data_dir)
    legal = built["remaining_life_years"].to_numpy(dtype="float64")
    legal = np.where(np.isnan(legal), 0.0, legal)
    paid = documented_paid_until(frame, paid_until)
    if renewal is None:
        cn = frame["jurisdiction"].astype("str").eq("CN").to_numpy()
        parts = [(~cn, FeeLapseEvents.none(legal[~cn], SOURCE_NO_MODEL))]
        if cn.any():
            parts.append((cn, cn_life_table_events(frame[cn], vd, legal[cn], CNLifeTable.load(life_table))))
        events = FeeLapseEvents.combine(parts, len(frame))
    elif hasattr(renewal, "fee_lapse_events"):
        events = renewal.fee_lapse_events(frame, vd, paid_until=paid, owner_book=owner_book)
    elif isinstance(getattr(renewal, "events", None), FeeLapseEvents):
        if pd.Timestamp(renewal.valuation_date).normalize() != vd or not renewal.survival.index.equals(frame.index):
            raise ValueError(f"The renewal outputs given to economic_life are for {pd.Timestamp(renewal.valuation_date).date()} and {len(renewal.survival)} "
                             f"patents; the curves are asked for {vd.date()} and {len(frame)}. Fix: pass valuation_outputs of the same patents and date.")
        events = renewal.events
    else:
        raise TypeError(f"The 'renewal' of economic_life must be a fitted RenewalModel or its valuation_outputs. Got {type(renewal).__name__}.")
    events = events.prepaid(years_after(paid.to_numpy(), vd)).within(legal)
    if obsolescence:
        rate, source = a.obsolescence_rates(built["tech_field"].to_numpy(dtype=object), built["tech_sector"].to_numpy(dtype=object))
    else:
        rate, source = np.full(len(frame), np.nan), np.full(len(frame), f"{SOURCE_LEGAL_LIFE} (obsolescence switched off)", dtype=object)
    return LifeCurves(index=frame.index, patent_id=frame["patent_id"].astype("str").to_numpy(), valuation_date=vd, years=int(years), events=events,
                      legal_life=legal, fees_paid_until=paid, obsolescence_rate=rate, obsolescence_source=source, assumptions=a)
