"""The pilot ledger: a bank's own history of patent-pledge loans, read with the PatentFrame's
discipline (every bad row quarantined with row, column, value, problem and fix; rows in = valid +
quarantined, table by table).

A ledger is a folder of CSV files (``loans.csv``, ``cash_flows.csv``, ``deals.csv``,
``overrides.csv``, ``patents.csv``; UTF-8 or GB18030) or one Excel workbook with sheets of those
names. ``loans`` is required, the others optional. Every row says where it comes from
(``data_origin``: the bank's system, an audit-store export, ``synthetic`` ...). Money in RMB
(yuan), rates and shares as fractions, dates ``YYYY-MM-DD``.

``loans``: one row per pledge loan (the package of patents is the pledge unit)
====================================  ========  ==================================================
column                                required  meaning / domain
====================================  ========  ==================================================
``loan_id``                           yes       unique id of the loan
``branch``, ``officer``               yes       who originated it (overrides are analysed by them)
``valuation_id``                      no        the internal valuation's id (audit store), unique
``valuation_date``                    yes       origination: the valuation's date
``patent_type``                       yes       main type of the package: ``invention``,
                                                ``utility_model``, ``design`` (its pledge rate)
``n_patents``                         no        patents in the package, ≥ 1
``term_years``                        yes       loan term, (0, 10]
``loan_amount_rmb``                   yes       amount lent, > 0
``value_in_use_rmb``                  no        income approach on the borrower's revenue
``market_value_rmb``                  yes       market value at origination (P50), > 0
``market_value_p10_rmb``, ``_p90_``   no        its Monte Carlo P10 / P90 (P10 ≤ P50 ≤ P90)
``market_value_basis``                no        ``market_approach``, ``income_market_participant``
                                                (default), ``income_value_in_use``, ``cost_approach``
                                                or ``value_model`` (only the income bases are
                                                recomputed from the cash flows)
``collateral_value_rmb``              no        disposal view at the policy quantile (≤ market value)
``loan_cap_rmb``                      no        the cap the valuation gave
``risk_sharing``                      yes       scheme of ``risk-sharing.yaml`` (``none``: the bank
                                                bears the loss)
``bank_share``                        no        the bank's share of a loss; must match the scheme's
``income_value_rmb``,                 no        the methods' central values at origination (the
``market_approach_rmb``,                        reconciliation's inputs; at least two for the
``cost_value_rmb``, ``ml_value_rmb``            disagreement factor)
``score``                             no        the package's scorecard total, 0-100 (the patents'
                                                scores weighted by their share of the cash flows)
``sharing_position``                  no        position in the sharing range used, [0, 1]
                                                (default: score / 100)
``risk_free_rate``, ``discount_rate`` no        the rates used (default: the set in use's)
``appraised_value_rmb``,              no        an external appraisal made in parallel, its
``appraiser``, ``appraisal_date``               appraiser (required with a value) and date
``outcome``                           yes       ``repaid``, ``defaulted`` or ``open``
``default_date``                      default   required when defaulted, on or after origination
``exposure_at_default_rmb``           no        principal outstanding at default (≤ the loan;
                                                missing: the whole loan)
``realised_price_rmb``                no        gross price of the disposal (0: nothing realised)
``disposal_costs_rmb``                no        appraisal, auction and legal costs of the disposal
``disposal_date``                     no        when the cash came in (with the price; on or after
                                                the default)
``buyer_type``                        no        ``company``, ``university``, ``research_institute``,
                                                ``individual``, ``fund``, ``other``
``assumption_set``, ``disposal_set``,  no        versions of the sets used (e.g. ``disposal-cn-v1``)
``pledge_policy``
``data_origin``                       yes       where the row comes from
====================================  ========  ==================================================

``cash_flows``: the market-value income approach of each loan, recomputable for any sharing
position ``p`` and discount rate ``r``: ``V(p, r) = Σ_t [low_t + p (high_t − low_t)] / (1 + r)^t``
====================================  ========  ==================================================
``loan_id``                           yes       a loan of ``loans``
``year``                              yes       the discounting period t, (0, 50] (1, 2, ... end of
                                                year; 0.5, 1.5, ... mid-year)
``cash_flow_low_rmb``                 yes       after-tax, survival-weighted royalty cash flow at
                                                the bottom of the sharing range, undiscounted
``cash_flow_high_rmb``                yes       the same at the top of the range (≥ low)
``data_origin``                       yes
====================================  ========  ==================================================
One row per loan and period; when one row of a loan is quarantined, all its rows are (a partial
table would give a wrong value).

``deals``: the bank's licence and transfer deals, in the comparable-transactions schema of the
market approach (``transaction_id``, ``date``, ``kind``, ``price_rmb``, ``patent_type``,
``ipc_main``, ``remaining_life_years``, ``licence_years``, ``score``, ``source``) plus ``loan_id``
(optional: the ledger package the deal is of) and ``data_origin``. The same rows feed the market
approach's comparables.

``overrides``: the officers' manual overrides (as the audit store keeps them): ``valuation_id`` or
``loan_id`` (one of them, naming a loan), ``officer``, ``branch`` (default: the loan's), ``date``,
``field``, ``model_value``, ``override_value`` (required), ``patent_id``, ``reason`` (optional),
``data_origin``.

``patents`` (optional): PatentFrame rows of the pledged patents plus ``loan_id`` and
``appraised_value_rmb`` where an appraisal itemises each patent: the patent list a register export
is joined to, and labels for the value model.

Rows that refer to a loan that is missing or quarantined are quarantined too.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.config import load_yaml
from ipvalue.domains import check_numbers, date_domains, domains
from ipvalue.exceptions import ColumnError, ComparablesError, EmptyInputError, InputFileError
from ipvalue.frame import PATENT_TYPES, on_unique, parse_dates, validate_patent_frame
from ipvalue.io import read_table
from ipvalue.methods.market import load_comparables
from ipvalue.names import normalise_id

logger = logging.getLogger(__name__)

__all__ = ["LEDGER_TABLES", "Ledger", "LedgerColumn", "SCHEMA", "load_ledger", "write_ledger"]

LEDGER_TABLES = ("loans", "cash_flows", "deals", "overrides", "patents")
OUTCOMES = ("repaid", "defaulted", "open")
MARKET_VALUE_BASES = ("market_approach", "income_market_participant", "income_value_in_use", "cost_approach", "value_model")
BUYER_TYPES = ("company", "university", "research_institute", "individual", "fund", "other")
METHOD_COLUMNS = ("income_value_rmb", "market_approach_rmb", "cost_value_rmb", "ml_value_rmb")
PROBLEM_COLUMNS = ["table", "row", "id", "column", "value", "problem", "fix"]


@dataclass(frozen=True)
class LedgerColumn:
    """One column of a ledger table: ``kind`` is ``str``, ``date``, ``number`` (checked against the
    documented domain ``domain`` of ``input-domains.yaml``) or ``category`` (``allowed``)."""

    name: str
    kind: str
    required: bool = False
    domain: str = ""
    allowed: tuple[str, ...] = ()


def _risk_sharing_schemes() -> tuple[str, ...]:
    return tuple(load_yaml("risk-sharing")[0]["schemes"])


def _c(name, kind="str", required=False, domain="", allowed=()):
    return LedgerColumn(name, kind, required, domain, tuple(allowed))


SCHEMA: dict[str, tuple[LedgerColumn, ...]] = {
    "loans": (
        _c("loan_id", required=True), _c("branch", required=True), _c("officer", required=True), _c("valuation_id"),
        _c("valuation_date", "date", True), _c("patent_type", "category", True, allowed=PATENT_TYPES),
        _c("n_patents", "number", domain="ledger_count"), _c("term_years", "number", True, "term_years"),
        _c("loan_amount_rmb", "number", True, "ledger_loan_amount_rmb"), _c("value_in_use_rmb", "number", domain="ledger_amount_rmb"),
        _c("market_value_rmb", "number", True, "ledger_amount_rmb"), _c("market_value_p10_rmb", "number", domain="ledger_amount_rmb"),
        _c("market_value_p90_rmb", "number", domain="ledger_amount_rmb"), _c("market_value_basis", "category", allowed=MARKET_VALUE_BASES),
        _c("collateral_value_rmb", "number", domain="ledger_amount_rmb"), _c("loan_cap_rmb", "number", domain="ledger_amount_rmb"),
        _c("risk_sharing", "category", True, allowed=("<risk-sharing schemes>",)), _c("bank_share", "number", domain="ledger_share"),
        *(_c(m, "number", domain="ledger_amount_rmb") for m in METHOD_COLUMNS),
        _c("score", "number", domain="ledger_score"), _c("sharing_position", "number", domain="ledger_share"),
        _c("risk_free_rate", "number", domain="ledger_rate"), _c("discount_rate", "number", domain="ledger_rate"),
        _c("appraised_value_rmb", "number", domain="ledger_amount_rmb"), _c("appraiser"), _c("appraisal_date", "date"),
        _c("outcome", "category", True, allowed=OUTCOMES), _c("default_date", "date"),
        _c("exposure_at_default_rmb", "number", domain="ledger_amount_rmb"), _c("realised_price_rmb", "number", domain="ledger_amount_rmb"),
        _c("disposal_costs_rmb", "number", domain="ledger_amount_rmb"), _c("disposal_date", "date"),
        _c("buyer_type", "category", allowed=BUYER_TYPES), _c("assumption_set"), _c("disposal_set"), _c("pledge_policy"),
        _c("data_origin", required=True),
    ),
    "cash_flows": (
        _c("loan_id", required=True), _c("year", "number", True, "ledger_cash_flow_year"),
        _c("cash_flow_low_rmb", "number", True, "ledger_cash_flow_rmb"), _c("cash_flow_high_rmb", "number", True, "ledger_cash_flow_rmb"),
        _c("data_origin", required=True),
    ),
    "overrides": (
        _c("valuation_id"), _c("loan_id"), _c("officer", required=True), _c("branch"), _c("date", "date", True),
        _c("field", required=True), _c("model_value", "number", True, "ledger_override_value"),
        _c("override_value", "number", True, "ledger_override_value"), _c("patent_id"), _c("reason"), _c("data_origin", required=True),
    ),
}
#: Columns the deals table adds to the comparable-transactions schema (``ipvalue/methods/market.py``).
DEAL_COLUMNS = ("loan_id", "data_origin")
ID_COLUMN = {"loans": "loan_id", "cash_flows": "loan_id", "deals": "transaction_id", "overrides": "valuation_id", "patents": "patent_id"}


@dataclass
class Ledger:
    """A validated pilot ledger (see the module docstring for the schema).

    Attributes
    ----------
    loans, cash_flows, deals, overrides, patents : pandas.DataFrame
        The valid rows, typed (dates as ``datetime64``, numbers as ``float64``); ``deals`` in the
        form :func:`ipvalue.methods.market.load_comparables` returns plus ``loan_id`` and ``data_origin``.
    problems : pandas.DataFrame
        One line per problem: ``table, row, id, column, value, problem, fix`` (``row`` is the
        1-based data row of that table, the header not counted).
    quarantine : dict of str to pandas.DataFrame
        Per table, the rejected rows as received, with ``row`` and ``reasons``.
    n_rows : dict of str to int
        Rows read per table: ``n_rows[t] == len(valid t) + len(quarantine[t])``.
    as_of : pandas.Timestamp
        The ledger's date: outcomes and disposals not seen by then are open (given, or the latest
        date in the ledger).
    hash : str
        SHA-256 of the files read (names and bytes), cited by every set calibrated from it.
    source : str
    notes : list of str
    """

    loans: pd.DataFrame
    cash_flows: pd.DataFrame
    deals: pd.DataFrame
    overrides: pd.DataFrame
    patents: pd.DataFrame
    problems: pd.DataFrame
    quarantine: dict
    n_rows: dict
    as_of: pd.Timestamp
    hash: str
    source: str = ""
    notes: list = field(default_factory=list)

    @property
    def data_origin(self) -> str:
        """``synthetic`` when every loan says so, else the origins found, joined."""
        origins = sorted(set(self.loans["data_origin"].dropna().astype(str)))
        return "synthetic" if origins and all(o.startswith("synthetic") for o in origins) else "; ".join(origins)

    def report(self, max_problems: int = 30) -> str:
        """Rows in, valid and quarantined per table, then the problems (row, column, value, fix)."""
        lines = [f"试点台账 pilot ledger {self.source} (as of {self.as_of.date()}, sha256 {self.hash[:16]})"]
        for t in LEDGER_TABLES:
            if self.n_rows.get(t):
                lines.append(f"  {t}: 读入 rows in {self.n_rows[t]:,}  有效 valid {len(getattr(self, t)):,}  隔离 quarantined {len(self.quarantine.get(t, [])):,}")
        lines += [f"  note: {n}" for n in self.notes]
        for p in self.problems.head(max_problems).itertuples(index=False):
            lines.append(f"  {p.table} row {p.row} ({p.id}): column '{p.column}' = {p.value!r}: {p.problem}. Fix: {p.fix}")
        if len(self.problems) > max_problems:
            lines.append(f"  ... and {len(self.problems) - max_problems} more problems")
        return "\n".join(lines)

    def subset(self, loan_ids) -> "Ledger":
        """The ledger of some loans only (their cash flows, deals, overrides and patents; deals
        without a loan are kept when dated on or before the last of these loans' valuation dates)."""
        keep = set(loan_ids)
        loans = self.loans[self.loans["loan_id"].isin(keep)]
        last = loans["valuation_date"].max()
        deals = self.deals[self.deals["loan_id"].isin(keep) | (self.deals["loan_id"].isna() & (self.deals["date"] <= last))]
        return Ledger(loans, self.cash_flows[self.cash_flows["loan_id"].isin(keep)], deals, self.overrides[self.overrides["loan_id"].isin(keep)],
                      self.patents[self.patents["loan_id"].isin(keep)] if "loan_id" in self.patents else self.patents,
                      self.problems.iloc[0:0], {}, {}, self.as_of, self.hash, self.source, [])


class _Problems:
    """Problems of one table, collected as vectorised masks."""

    def __init__(self, table: str, raw: pd.DataFrame, ids: pd.Series):
        self.table, self.raw, self.ids, self.parts = table, raw, ids, []

    def add(self, mask, column: str, problem: str, fix: str, value=None) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        if value is not None:  # a value other than the cell (e.g. the rows of a duplicate)
            shown = pd.Series(np.asarray(value, dtype=object), index=self.raw.index)
        elif column in self.raw:
            shown = self.raw[column].astype(object)
        else:
            shown = pd.Series(None, index=self.raw.index, dtype=object)
        shown = shown[mask]
        self.parts.append(pd.DataFrame({
            "table": self.table, "row": self.raw.index[mask].to_numpy() + 1, "id": self.ids[mask].to_numpy(), "column": column,
            "value": shown.where(shown.notna(), None).to_numpy(), "problem": problem, "fix": fix,
        }))

    def table_(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in PROBLEM_COLUMNS})
        return pd.concat(self.parts, ignore_index=True)


def _blank(s: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.isna()
    return s.isna() | s.astype("str").str.strip().eq("")


def _typed(table: str, raw: pd.DataFrame, columns: tuple[LedgerColumn, ...], problems: _Problems) -> pd.DataFrame:
    """Each schema column typed and checked against its domain; problems recorded."""
    out = pd.DataFrame(index=raw.index)
    number_domains, dates = domains(), date_domains()["valuation_date"]
    schemes = _risk_sharing_schemes()
    for col in columns:
        if col.name not in raw.columns:
            out[col.name] = pd.Series(pd.NaT if col.kind == "date" else np.nan if col.kind == "number" else None, index=raw.index,
                                      dtype="datetime64[s]" if col.kind == "date" else "float64" if col.kind == "number" else object)
            continue
        s = raw[col.name]
        blank = _blank(s)
        if col.required:
            problems.add(blank, col.name, "required value is missing", f"give a {col.name} on every {table} row")
        if col.kind == "str":
            text = s.astype("str").str.strip().where(~blank)
            out[col.name] = on_unique(text, normalise_id) if col.name.endswith("_id") else text
        elif col.kind == "date":
            parsed, date_problems, _ = parse_dates(s.where(~blank), col.name)
            for mask, problem, fix in date_problems:
                problems.add(mask, col.name, problem, fix)
            outside = parsed.notna() & ((parsed < dates.low) | (parsed > dates.high))
            problems.add(outside, col.name, f"outside {dates.low.date()} to {dates.high.date()}", "check the year")
            out[col.name] = parsed.where(~outside)
        elif col.kind == "number":
            num, checks = check_numbers(s.where(~blank), col.name, domain=number_domains[col.domain])
            for mask, problem, fix in checks:
                problems.add(mask, col.name, problem, fix)
            out[col.name] = num
        else:
            allowed = schemes if col.name == "risk_sharing" else col.allowed
            norm = s.astype("str").str.strip().where(~blank)
            norm = norm.where(norm.isin(allowed), norm.str.lower().str.replace(r"[\s-]+", "_", regex=True))
            bad = norm.notna() & ~norm.isin(allowed)
            problems.add(bad, col.name, "unknown value", f"use one of {', '.join(allowed)}")
            out[col.name] = norm.where(~bad)
    return out


def _check_loans(out: pd.DataFrame, problems: _Problems) -> None:
    """Relations between the columns of a loan."""
    mv, p10, p90 = out["market_value_rmb"], out["market_value_p10_rmb"], out["market_value_p90_rmb"]
    problems.add((mv <= 0).fillna(False), "market_value_rmb", "the market value must be above 0", "give the valuation's market value (P50) in yuan")
    problems.add((p10 > mv).fillna(False), "market_value_p10_rmb", "P10 above the market value (P50)", "P10 ≤ P50 ≤ P90")
    problems.add((p90 < mv).fillna(False), "market_value_p90_rmb", "P90 below the market value (P50)", "P10 ≤ P50 ≤ P90")
    problems.add((out["collateral_value_rmb"] > mv).fillna(False), "collateral_value_rmb", "collateral value above the market value",
                 "the disposal view is at most the market value: check the columns")
    problems.add((out["exposure_at_default_rmb"] > out["loan_amount_rmb"]).fillna(False), "exposure_at_default_rmb",
                 "exposure at default above the loan amount", "give the principal outstanding at default")
    defaulted = out["outcome"] == "defaulted"
    problems.add(defaulted & out["default_date"].isna(), "default_date", "a defaulted loan needs its default date", "give default_date")
    problems.add(~defaulted & out["outcome"].notna() & out["default_date"].notna(), "default_date", "a default date on a loan that did not default",
                 "set outcome to defaulted, or clear default_date")
    problems.add((out["default_date"] < out["valuation_date"]).fillna(False), "default_date", "default before the valuation date", "check both dates")
    disposal = out[["realised_price_rmb", "disposal_date", "disposal_costs_rmb"]].notna().any(axis=1)
    problems.add(disposal & ~defaulted & out["outcome"].notna(), "realised_price_rmb", "a disposal on a loan that did not default",
                 "set outcome to defaulted with its default_date, or clear the disposal columns")
    problems.add(out["realised_price_rmb"].notna() != out["disposal_date"].notna(), "disposal_date", "a disposal needs both its realised price and its date",
                 "give realised_price_rmb and disposal_date together (costs optional)")
    problems.add(out["disposal_costs_rmb"].notna() & out["realised_price_rmb"].isna(), "disposal_costs_rmb", "disposal costs without a realised price",
                 "give the disposal's realised_price_rmb (0 when nothing was realised) and disposal_date")
    problems.add((out["disposal_date"] < out["default_date"]).fillna(False), "disposal_date", "disposal before the default", "check both dates")
    problems.add(out["appraised_value_rmb"].notna() & out["appraiser"].isna(), "appraiser", "an appraisal needs its appraiser",
                 "name the appraiser (its bias is estimated per appraiser)")
    shares = {name: spec for name, spec in load_yaml("risk-sharing")[0]["schemes"].items()}
    scheme_share = out["risk_sharing"].map(lambda s: float(shares[s]["shares"][shares[s].get("bank_party", "bank")]) if s in shares else np.nan)
    mismatch = out["bank_share"].notna() & scheme_share.notna() & ((out["bank_share"] - scheme_share).abs() > 1e-9)
    problems.add(mismatch, "bank_share", "does not match the risk-sharing scheme's bank share", "correct bank_share or risk_sharing",
                 value=out["bank_share"].astype(object).to_numpy())
    out["bank_share"] = out["bank_share"].fillna(scheme_share)
    out["market_value_basis"] = out["market_value_basis"].fillna("income_market_participant")


def _duplicates(ids: pd.Series, problems: _Problems, column: str, what: str) -> None:
    dup = ids.notna() & ids.duplicated(keep=False)
    if dup.any():
        rows = ids[dup].groupby(ids[dup]).transform(lambda g: ", ".join(str(i + 1) for i in g.index))
        problems.add(dup, column, f"duplicated {what}", f"keep one row per {what}", value=("rows " + rows).reindex(ids.index).fillna("").to_numpy())


def _read(source: Path, table: str) -> tuple[pd.DataFrame | None, bytes]:
    """The raw table (text cells) and the bytes that identify it; ``None`` when absent."""
    if source.is_dir():
        for suffix in (".csv", ".xlsx", ".parquet"):
            path = source / f"{table}{suffix}"
            if path.is_file():
                frame, _ = read_table(path)
                return frame, path.read_bytes()
        return None, b""
    try:
        frame, _ = read_table(source, sheet_name=table)
    except InputFileError as exc:
        if "Worksheet" in str(exc) or "not found" in str(exc):
            return None, b""
        raise
    return frame.dropna(how="all"), b""


def _finish(table: str, raw: pd.DataFrame, out: pd.DataFrame, problems: _Problems, valid_store: dict, quarantine: dict, all_problems: list) -> None:
    table_problems = problems.table_()
    bad = np.zeros(len(raw), dtype=bool)
    if len(table_problems):
        bad[table_problems["row"].to_numpy(dtype=int) - 1] = True
    reasons = table_problems.assign(text=table_problems["column"] + ": " + table_problems["problem"]).groupby("row")["text"].agg("; ".join)
    q = raw[bad].copy()
    q.insert(0, "row", q.index + 1)
    q.insert(1, "reasons", reasons.reindex(q["row"]).to_numpy())
    quarantine[table] = q
    valid_store[table] = out[~bad]
    all_problems.append(table_problems)
    assert len(valid_store[table]) + len(q) == len(raw)


def _link(frame: pd.DataFrame, problems: _Problems, loans_valid: pd.DataFrame, loan_rows: dict, quarantined_loans: set, *, required: bool) -> None:
    """Rows must name a valid loan: missing loan_id (when required), unknown, or quarantined."""
    lid = frame["loan_id"]
    if required:
        problems.add(lid.isna(), "loan_id", "required value is missing", "name the loan of every row")
    unknown = lid.notna() & ~lid.isin(loans_valid["loan_id"]) & ~lid.isin(quarantined_loans)
    problems.add(unknown, "loan_id", "no loan of this id in the loans table", "add the loan, or correct the id")
    gone = lid.notna() & lid.isin(quarantined_loans)
    problems.add(gone, "loan_id", "its loan is quarantined", "fix the loan's row (see the loans problems), then reload",
                 value=lid.map(lambda i: f"{i} (loans row {loan_rows.get(i, '?')})").to_numpy())


def load_ledger(source: "str | Path", *, as_of=None) -> Ledger:
    """Read and validate a pilot ledger (schema in the module docstring).

    Parameters
    ----------
    source : str or Path
        A folder of ``<table>.csv`` (or ``.xlsx`` / ``.parquet``) files, or an Excel workbook with a
        sheet per table.
    as_of : date-like, optional
        The ledger's date (outcomes not seen by then are open). Default: the latest date in it.

    Returns
    -------
    Ledger
        Valid rows, the quarantine and the problems; ``rows in = valid + quarantined`` per table.

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist.
    ColumnError
        A table lacks a required column (the message lists them).
    EmptyInputError
        No loans table, or one without rows.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"The pilot ledger {str(source)!r} does not exist. Fix: give a folder of loans.csv, cash_flows.csv, ... or an .xlsx workbook.")
    digest = hashlib.sha256()
    if source.is_file():
        digest.update(source.read_bytes())
    raws: dict[str, pd.DataFrame] = {}
    for table in LEDGER_TABLES:
        raw, data = _read(source, table)
        digest.update(table.encode() + b"\0" + data)
        if raw is not None and len(raw):
            raws[table] = raw.rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
    if "loans" not in raws:
        raise EmptyInputError(f"The pilot ledger {source} has no loans table (loans.csv or a 'loans' sheet) with rows. Fix: export the loans first.")
    for table, columns in SCHEMA.items():
        if table in raws:
            missing = [c.name for c in columns if c.required and c.name not in raws[table].columns]
            if missing:
                raise ColumnError(f"The '{table}' table of the pilot ledger {source} lacks required column(s) {missing}. "
                                  "Fix: add them (the schema is in ipvalue.calibration.ledger, and 'ipvalue calibrate --help').")
    valid: dict[str, pd.DataFrame] = {}
    quarantine: dict[str, pd.DataFrame] = {}
    all_problems: list[pd.DataFrame] = []

    raw = raws["loans"]
    ids = raw["loan_id"].astype("str").str.strip().where(~_blank(raw["loan_id"]))
    problems = _Problems("loans", raw, ids)
    loans = _typed("loans", raw, SCHEMA["loans"], problems)
    _check_loans(loans, problems)
    _duplicates(loans["loan_id"], problems, "loan_id", "loan")
    _duplicates(loans["valuation_id"], problems, "valuation_id", "valuation")
    _finish("loans", raw, loans, problems, valid, quarantine, all_problems)
    loan_rows = {lid: r for lid, r in zip(loans["loan_id"], raw.index + 1)}
    quarantined_loans = set(loans.loc[quarantine["loans"].index, "loan_id"].dropna())

    if "cash_flows" in raws:
        raw = raws["cash_flows"]
        problems = _Problems("cash_flows", raw, raw["loan_id"].astype("str"))
        flows = _typed("cash_flows", raw, SCHEMA["cash_flows"], problems)
        _link(flows, problems, valid["loans"], loan_rows, quarantined_loans, required=True)
        problems.add((flows["cash_flow_high_rmb"] < flows["cash_flow_low_rmb"]).fillna(False), "cash_flow_high_rmb",
                     "the top of the sharing range gives less than its bottom", "cash_flow_high_rmb ≥ cash_flow_low_rmb")
        key = flows["loan_id"] + "|" + flows["year"].astype(str)
        _duplicates(key.where(flows["loan_id"].notna() & flows["year"].notna()), problems, "year", "loan and period")
        first = problems.table_()
        if len(first):  # a loan with a bad period has no usable table: quarantine its other rows too
            bad_rows = first["row"].to_numpy(dtype=int) - 1
            bad_loans = set(flows["loan_id"].iloc[bad_rows].dropna())
            sibling = flows["loan_id"].isin(bad_loans) & ~np.isin(np.arange(len(flows)), bad_rows)
            problems.add(sibling, "loan_id", "another cash-flow row of this loan is quarantined", "fix that row: a loan's table is used whole or not at all")
        _finish("cash_flows", raw, flows, problems, valid, quarantine, all_problems)

    if "deals" in raws:
        raw = raws["deals"].copy()
        for c in DEAL_COLUMNS:
            if c not in raw.columns:
                raw[c] = None
        ids = raw["transaction_id"].astype("str") if "transaction_id" in raw else pd.Series("", index=raw.index)
        problems = _Problems("deals", raw, ids)
        as_of_deals = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp("2100-12-31")
        deals = _comparables(raw, problems, as_of_deals)
        extra = pd.DataFrame({"loan_id": raw["loan_id"].astype("str").str.strip().where(~_blank(raw["loan_id"])).pipe(on_unique, normalise_id),
                              "data_origin": raw["data_origin"].astype("str").str.strip().where(~_blank(raw["data_origin"]))}, index=raw.index)
        problems.add(extra["data_origin"].isna(), "data_origin", "required value is missing", "give a data_origin on every deals row")
        _link(extra, problems, valid["loans"], loan_rows, quarantined_loans, required=False)
        _finish("deals", raw, pd.concat([deals, extra], axis=1), problems, valid, quarantine, all_problems)

    if "overrides" in raws:
        raw = raws["overrides"]
        problems = _Problems("overrides", raw, raw["valuation_id"].astype("str") if "valuation_id" in raw else raw.get("loan_id", pd.Series("", index=raw.index)).astype("str"))
        over = _typed("overrides", raw, SCHEMA["overrides"], problems)
        by_valuation = valid["loans"].dropna(subset=["valuation_id"]).set_index("valuation_id")["loan_id"]
        over["loan_id"] = over["loan_id"].fillna(over["valuation_id"].map(by_valuation))
        problems.add(over["loan_id"].isna() & over["valuation_id"].isna(), "valuation_id", "names no valuation or loan", "give valuation_id or loan_id")
        unknown_valuation = over["loan_id"].isna() & over["valuation_id"].notna()
        problems.add(unknown_valuation, "valuation_id", "no loan with this valuation_id", "correct the id, or give loan_id")
        _link(over.assign(loan_id=over["loan_id"].where(~unknown_valuation)), problems, valid["loans"], loan_rows, quarantined_loans, required=False)
        over["branch"] = over["branch"].fillna(over["loan_id"].map(valid["loans"].set_index("loan_id")["branch"]))
        _finish("overrides", raw, over, problems, valid, quarantine, all_problems)

    if "patents" in raws:
        raw = raws["patents"]
        problems = _Problems("patents", raw, raw["patent_id"].astype("str") if "patent_id" in raw else pd.Series("", index=raw.index))
        result = validate_patent_frame(raw.drop(columns=[c for c in ("loan_id", "appraised_value_rmb", "data_origin") if c in raw]), source=f"{source} patents")
        for p in result.problems.itertuples(index=False):
            mask = np.zeros(len(raw), dtype=bool)
            mask[int(p.row) - 1] = True
            problems.add(mask, p.column, p.problem, p.fix, value=np.full(len(raw), p.value, dtype=object))
        patents = result.valid.reindex(raw.index)
        patents["loan_id"] = raw["loan_id"].astype("str").str.strip().where(~_blank(raw["loan_id"])).pipe(on_unique, normalise_id) if "loan_id" in raw else None
        appraised, checks = check_numbers(raw["appraised_value_rmb"] if "appraised_value_rmb" in raw else pd.Series(np.nan, index=raw.index),
                                          "appraised_value_rmb", domain=domains()["ledger_amount_rmb"])
        for mask, problem, fix in checks:
            problems.add(mask, "appraised_value_rmb", problem, fix)
        patents["appraised_value_rmb"] = appraised
        patents["data_origin"] = raw["data_origin"] if "data_origin" in raw else None
        problems.add(_blank(patents["data_origin"].astype(object)), "data_origin", "required value is missing", "give a data_origin on every patents row")
        _link(patents, problems, valid["loans"], loan_rows, quarantined_loans, required=True)
        _finish("patents", raw, patents, problems, valid, quarantine, all_problems)

    dates = [valid["loans"][c].max() for c in ("valuation_date", "default_date", "disposal_date", "appraisal_date")]
    if "deals" in valid:
        dates.append(valid["deals"]["date"].max())
    latest = max((d for d in dates if pd.notna(d)), default=pd.NaT)  # none when every loan is quarantined
    ledger_date = pd.Timestamp(as_of).normalize() if as_of is not None else pd.Timestamp(latest).normalize() if pd.notna(latest) else pd.Timestamp.now().normalize()
    problems_table = pd.concat(all_problems, ignore_index=True)
    problems_table = (problems_table.assign(order=problems_table["table"].map(LEDGER_TABLES.index)).sort_values(["order", "row", "column"], kind="stable")
                      .drop(columns="order").reset_index(drop=True))
    notes = []
    if as_of is not None and pd.notna(latest) and latest > ledger_date:
        notes.append(f"dates after the ledger date {ledger_date.date()} are in the ledger (latest {pd.Timestamp(latest).date()}): check --as-of")
    n_rows = {t: len(r) for t, r in raws.items()}
    ledger = Ledger(
        loans=valid["loans"].reset_index(drop=True),
        cash_flows=valid.get("cash_flows", _empty("cash_flows")).reset_index(drop=True),
        deals=valid.get("deals", _empty("deals")).reset_index(drop=True),
        overrides=valid.get("overrides", _empty("overrides")).reset_index(drop=True),
        patents=valid.get("patents", pd.DataFrame({"loan_id": pd.Series(dtype=object)})).reset_index(drop=True),
        problems=problems_table, quarantine=quarantine, n_rows=n_rows, as_of=ledger_date, hash=digest.hexdigest(), source=str(source), notes=notes,
    )
    if len(problems_table):
        logger.warning("pilot ledger %s: %d problem(s) in %d row(s) quarantined", source, len(problems_table), sum(len(q) for q in quarantine.values()))
    return ledger


def _comparables(raw: pd.DataFrame, problems: _Problems, as_of: pd.Timestamp) -> pd.DataFrame:
    """The deals through the market approach's own validation (:func:`ipvalue.methods.market.load_comparables`),
    each refused row recorded; the typed comparables of the others, on ``raw``'s index."""
    columns = [c for c in raw.columns if c not in DEAL_COLUMNS]
    try:
        typed = load_comparables(raw[columns], valuation_date=as_of)
        typed.index = raw.index
        return typed
    except ComparablesError as exc:
        if isinstance(exc, ColumnError):
            raise ColumnError(f"The 'deals' table of the pilot ledger: {exc}") from None
        table = exc.problems
    for p in table.itertuples(index=False):
        mask = raw.index == p.row
        problems.add(mask, p.column, p.problem, p.fix, value=np.full(len(raw), p.value, dtype=object))
    good = ~raw.index.isin(table["row"].unique())
    typed = load_comparables(raw.loc[good, columns], valuation_date=as_of) if good.any() else _empty("deals").drop(columns=list(DEAL_COLUMNS))
    typed.index = raw.index[good]
    return typed.reindex(raw.index)


def _empty(table: str) -> pd.DataFrame:
    if table == "deals":
        return pd.DataFrame({c: pd.Series(dtype="datetime64[s]" if c == "date" else float if c in ("price_rmb", "remaining_life_years", "licence_years", "score") else object)
                             for c in ("transaction_id", "date", "kind", "price_rmb", "patent_type", "ipc_subclass", "ipc_section", "remaining_life_years",
                                       "licence_years", "score", "source", *DEAL_COLUMNS)})
    return pd.DataFrame({c.name: pd.Series(dtype="datetime64[s]" if c.kind == "date" else "float64" if c.kind == "number" else object) for c in SCHEMA[table]})


def write_ledger(tables: dict, path: "str | Path") -> Path:
    """Write ledger tables (``{name: DataFrame}``) as a folder of CSV files, or as one ``.xlsx``
    workbook with a sheet per table; dates as ``YYYY-MM-DD``."""
    from ipvalue.io import write_atomic

    path = Path(path)
    clean = {}
    for name, frame in tables.items():
        out = frame.copy()
        for c in out.columns:
            if pd.api.types.is_datetime64_any_dtype(out[c].dtype):
                out[c] = out[c].dt.strftime("%Y-%m-%d").astype(object).where(out[c].notna(), None)
        clean[name] = out
    if path.suffix.lower() == ".xlsx":
        path.parent.mkdir(parents=True, exist_ok=True)
        with pd.ExcelWriter(path) as writer:
            for name, frame in clean.items():
                frame.to_excel(writer, sheet_name=name, index=False)
        return path
    path.mkdir(parents=True, exist_ok=True)
    for name, frame in clean.items():
        write_atomic(frame, path / f"{name}.csv")
    return path
