"""PatentFrame: the canonical input table of ipvalue, one row per patent.

Every loader in :mod:`ipvalue.io` ends in :func:`validate_patent_frame`, and every builder and
valuer downstream reads only the columns declared here. ``COLUMNS`` is the contract; the README
renders it as a table (``ipvalue contract`` prints it).

Conventions
-----------
* Dates are calendar dates (``datetime64``). Counts are ``float64`` holding whole numbers, so that
  a missing count is ``NaN`` and a model signature accepts them (MLflow rejects floats in
  integer columns).
* Multi-valued fields (offices, IPC codes, applicants, citation dates) are strings separated by
  ``;``, which survive CSV, Excel and Parquet alike.
* Money is in RMB (yuan), rates are fractions (0.05 = 5 %), durations in years unless the name
  says ``_days``.
* ``row`` in every problem report is the 1-based data row of the input (the header is not a
  row: row 1 is line 2 of a CSV).
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ipvalue.domains import check_numbers
from ipvalue.exceptions import ColumnError, DomainError, EmptyInputError, PatentFrameError
from ipvalue.names import FORBIDDEN_CHARS, forbidden_characters, has_invisible, normalise_id, normalise_text

logger = logging.getLogger(__name__)

PATENT_TYPES = ("invention", "utility_model", "design")
LEGAL_STATUSES = (
    "in_force",
    "pending",
    "lapsed",
    "expired",
    "invalidated",
    "withdrawn",
    "rejected",
    "unknown",
)
#: Statuses under which the right no longer exists (remaining life 0).
DEAD_STATUSES = ("lapsed", "expired", "invalidated", "withdrawn", "rejected")
APPLICANT_TYPES = ("company", "university", "research_institute", "individual", "other")
LIST_SEPARATOR = ";"
#: White space written as the characters themselves: pandas runs a regex holding them in Arrow
#: (RE2), while one with ``\\s`` falls back to Python, row by row.
BLANK_CHARS = " \t\r\n\x0b\x0c"
#: Text columns kept as written (only blanks stripped); every other text column goes through
#: :mod:`ipvalue.names` (NFKC, invisible characters removed, control / bidi characters refused).
TEXT_AS_WRITTEN = ("first_claim_text",)


@dataclass(frozen=True)
class Column:
    """One column of the PatentFrame contract.

    The range of a ``count`` / ``float`` column is its documented domain in
    :mod:`ipvalue.domains` (one table for files, applications and overrides)."""

    name: str
    kind: str  # "str", "date", "count", "float", "category", "list"
    required: bool = False
    allowed: tuple[str, ...] | None = None
    unit: str = ""
    description: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("patent_id", "str", True, description="Publication or grant number, unique per row (e.g. CN112345678B, US6699658B1)."),
    Column("jurisdiction", "str", True, unit="ISO 3166 / office code", description="Granting office: CN, US, EP, JP, KR, WO, ... (two upper-case letters)."),
    Column("patent_type", "category", True, PATENT_TYPES, description="invention (发明; US utility), utility_model (实用新型) or design (外观设计)."),
    Column("filing_date", "date", True, description="Application filing date (申请日); statutory terms run from it."),
    Column("application_number", "str", description="Application number (申请号)."),
    Column("priority_date", "date", description="Earliest priority date (优先权日); not after filing_date."),
    Column("publication_date", "date", description="First publication date (公开日); forward-citation windows start here."),
    Column("grant_date", "date", description="Grant date (授权公告日); empty for pending applications; not before filing_date."),
    Column("legal_status", "category", False, LEGAL_STATUSES, description="Status at the data date (当前法律状态); 'unknown' when not given."),
    Column("fees_paid_until", "date", description="Annual (年费) / maintenance fees are paid up to this date."),
    Column("term_adjustment_days", "count", unit="days", description="Patent term adjustment or compensation added to the statutory term."),
    Column("claims_total", "count", unit="claims", description="Number of claims (权利要求数量)."),
    Column("claims_independent", "count", unit="claims", description="Independent claims (独立权利要求数量); not more than claims_total."),
    Column("first_claim_text", "str", description="Text of the first independent claim, when available."),
    Column("family_size", "count", unit="documents", description="Simple family size (简单同族数量), counting this patent."),
    Column("family_offices", "list", unit="office codes", description="Offices of the family members, ';'-separated (e.g. 'CN;US;EP;WO')."),
    Column("forward_citations", "count", unit="citations", description="Times cited (被引证次数) as of the data date."),
    Column("forward_citation_dates", "list", unit="ISO dates", description="Dates of the citing documents, ';'-separated, for windowed counts."),
    Column("self_citations", "count", unit="citations", description="Forward citations by the same applicant; not more than forward_citations."),
    Column("backward_citations", "count", unit="citations", description="Patent references cited (引证次数)."),
    Column("npl_citations", "count", unit="citations", description="Non-patent literature cited."),
    Column("ipc_main", "str", description="Main IPC code (IPC主分类号), e.g. 'G06F 17/30' or 'G06F17/30'."),
    Column("ipc_codes", "list", description="All IPC codes (IPC分类号), ';'-separated."),
    Column("cpc_codes", "list", description="All CPC codes, ';'-separated (used where IPC is absent)."),
    Column("applicants", "list", description="Applicants / patentees (申请人 / 专利权人), ';'-separated; the first is the owner."),
    Column("applicant_type", "category", False, APPLICANT_TYPES, description="Owner type; inferred from the names when absent."),
    Column("inventor_count", "count", unit="people", description="Number of inventors (发明人数量)."),
    Column("pledge_count", "count", unit="events", description="Prior pledge registrations (质押)."),
    Column("licence_count", "count", unit="events", description="Registered licences (许可)."),
    Column("transfer_count", "count", unit="events", description="Assignments / transfers (转让)."),
    Column("litigation_count", "count", unit="events", description="Infringement suits involving the patent (诉讼)."),
    Column("invalidation_count", "count", unit="events", description="Invalidation requests (无效宣告请求)."),
    Column("package_id", "str", description="Patent package (专利包) sharing one product's income; empty = its own package."),
    Column("revenue_base_rmb", "float", unit="RMB per year", description="Base-year revenue of the product using the patent (income approach)."),
    Column("revenue_growth", "float", unit="fraction per year", description="Yearly growth of that revenue, e.g. 0.05."),
    Column("economic_life_years", "float", unit="years", description="Economic life when known (e.g. from the renewal model)."),
)

COLUMN_BY_NAME = {c.name: c for c in COLUMNS}
REQUIRED = tuple(c.name for c in COLUMNS if c.required)
PROBLEM_COLUMNS = ["row", "patent_id", "column", "value", "problem", "fix"]


@dataclass
class ValidationResult:
    """What :func:`validate_patent_frame` returns.

    Attributes
    ----------
    valid : pandas.DataFrame
        Rows that meet the contract, typed, with every contract column present. Index = 0-based
        input position.
    quarantine : pandas.DataFrame
        Rejected rows as received plus ``row`` and ``reasons`` (all problems of the row, joined).
    problems : pandas.DataFrame
        One line per problem (columns ``row, patent_id, column, value, problem, fix``).
    notes : list of str
        Repairs and observations that did not reject rows (e.g. a derived jurisdiction).
    """

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    problems: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def n_input(self) -> int:
        return len(self.valid) + len(self.quarantine)

    def report(self, max_problems: int = 50) -> str:
        """A plain-text quarantine report: counts, then each problem."""
        lines = [
            f"rows in: {self.n_input}  valid: {len(self.valid)}  quarantined: {len(self.quarantine)}",
        ]
        lines += [f"note: {n}" for n in self.notes]
        if len(self.problems):
            by_col = self.problems.groupby("column").size().sort_values(ascending=False)
            lines.append("problems by column: " + ", ".join(f"{k}={v}" for k, v in by_col.items()))
            for p in self.problems.head(max_problems).itertuples(index=False):
                lines.append(
                    f"row {p.row} ({p.patent_id}): column '{p.column}' = {p.value!r}: {p.problem}. Fix: {p.fix}"
                )
            if len(self.problems) > max_problems:
                lines.append(f"... and {len(self.problems) - max_problems} more problems")
        return "\n".join(lines)


def contract_table() -> pd.DataFrame:
    """The PatentFrame contract as a table (name, type, required, allowed, unit, description)."""
    return pd.DataFrame(
        [
            {
                "column": c.name,
                "type": c.kind,
                "required": c.required,
                "allowed": ", ".join(c.allowed) if c.allowed else "",
                "unit": c.unit,
                "description": c.description,
            }
            for c in COLUMNS
        ]
    )


def suggest(name: str, candidates) -> str:
    """' (did you mean X?)' for the closest candidate, or ''."""
    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_required_columns(columns, *, source: str = "input") -> None:
    """Raise one :class:`ColumnError` listing every missing required column, with suggestions."""
    present = list(columns)
    missing = [c for c in REQUIRED if c not in present]
    if not missing:
        return
    unknown = [c for c in present if c not in COLUMN_BY_NAME]
    parts = [f"'{m}'{suggest(m, unknown)}" for m in missing]
    raise ColumnError(
        f"{source} is missing required PatentFrame column(s): {', '.join(parts)}. "
        f"Columns found that are not in the contract: {unknown or 'none'}. "
        "Fix: rename the columns, or pass a column mapping (ipvalue.io.read_patents(..., mapping=...)); "
        "'ipvalue contract' lists the canonical names."
    )


class _Problems:
    """Collects problems as vectorised masks over the frame."""

    def __init__(self, raw: pd.DataFrame, ids: pd.Series):
        self.raw = raw
        self.ids = ids
        self.parts: list[pd.DataFrame] = []

    def add(self, mask, column: str, problem: str, fix: str, value=None) -> None:
        """Record a problem for every row where ``mask`` is true.

        ``value`` (full-length array) overrides the cell shown; by default the raw cell is shown.
        """
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        if value is None:
            value = self.raw[column] if column in self.raw else pd.Series(None, index=self.raw.index)
        shown = pd.Series(np.asarray(value, dtype=object), index=self.raw.index)[mask]
        self.parts.append(
            pd.DataFrame(
                {
                    "row": self.raw.index[mask].to_numpy() + 1,
                    "patent_id": self.ids[mask].to_numpy(),
                    "column": column,
                    "value": shown.where(shown.notna(), None).to_numpy(),
                    "problem": problem,
                    "fix": fix,
                }
            )
        )

    def table(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in PROBLEM_COLUMNS})
        return pd.concat(self.parts, ignore_index=True).sort_values(["row", "column"], kind="stable").reset_index(drop=True)


def on_unique(s: pd.Series, fn) -> pd.Series | pd.DataFrame:
    """Apply a string function to the distinct values of ``s`` only, then map back.

    Codes, statuses, IPC classes and owner names repeat across a book, so this is many times faster
    than applying ``fn`` row by row; missing values stay missing.
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    result = fn(pd.Series(uniques, dtype=s.dtype))
    taken = result.iloc[np.where(codes < 0, 0, codes)] if len(uniques) else result.reindex(range(len(s)))
    taken = taken.set_axis(s.index)
    return taken.where(pd.Series(codes >= 0, index=s.index), axis=0) if isinstance(taken, pd.DataFrame) else taken.where(codes >= 0)


def _blank(s: pd.Series) -> pd.Series:
    """True where a cell is missing or only white space."""
    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.isna()  # typed columns (Parquet) have no white space to strip
    return s.isna() | s.astype("str").str.strip().eq("")


def _clean_str(s: pd.Series) -> pd.Series:
    """Strings stripped of white space; blanks become missing."""
    return s.astype("str").str.strip().where(~_blank(s))


def validate_patent_frame(
    frame: pd.DataFrame,
    *,
    strict: bool = False,
    source: str = "input",
    date_format: str | None = None,
) -> ValidationResult:
    """Check a table against the PatentFrame contract and split it into valid and quarantined rows.

    Parameters
    ----------
    frame : pandas.DataFrame, shape (n_patents, n_columns)
        Columns already named as in :data:`COLUMNS` (loaders map source headers first).
    strict : bool, default=False
        Raise :class:`~ipvalue.exceptions.PatentFrameError` on the first invalid row instead of
        quarantining.
    source : str, default="input"
        Name used in messages (a file path, say).
    date_format : str, optional
        The file's format for day/month dates, e.g. ``'%d/%m/%Y'`` (the CLI's ``--date-format``).
        Without it, dates such as 05/03/2020 that read both ways are refused; see :func:`parse_dates`.

    Returns
    -------
    ValidationResult
        ``len(valid) + len(quarantine) == len(frame)`` always holds: no row is dropped silently.

    Examples
    --------
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"patent_id": ["CN1", "CN2"], "jurisdiction": ["CN", "CN"],
    ...                     "patent_type": ["invention", "plant"],
    ...                     "filing_date": ["2020-01-01", "2020-01-01"]})
    >>> res = validate_patent_frame(raw)
    >>> len(res.valid), len(res.quarantine)
    (1, 1)
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"validate_patent_frame expects a pandas DataFrame. Got {type(frame).__name__}.")
    if len(frame) == 0:
        raise EmptyInputError(f"{source} has no data rows. Fix: check the file, sheet name or filter that produced it.")
    check_required_columns(frame.columns, source=source)

    raw = frame.reset_index(drop=True)
    refuse_lone_surrogates(raw, source=source)
    ids = on_unique(raw["patent_id"].where(~_blank(raw["patent_id"])), normalise_id)
    problems = _Problems(raw, ids)
    notes: list[str] = []
    out = pd.DataFrame(index=raw.index)

    for col in COLUMNS:
        if col.name not in raw.columns:
            out[col.name] = _empty_column(col, len(raw))
            continue
        s = raw[col.name]
        blank = _blank(s)
        if col.required:
            problems.add(blank, col.name, "required value is missing", f"give a {col.name} for every patent")
        if col.kind in ("str", "list") and col.name in TEXT_AS_WRITTEN:
            out[col.name] = _clean_str(s)
        elif col.kind in ("str", "list"):
            text = s.astype("str").where(~blank)
            forbidden = on_unique(text, forbidden_characters).fillna(False).astype(bool)
            problems.add(
                forbidden, col.name, "holds a control or bidirectional-control character (e.g. NUL, U+202E)",
                "remove the hidden character from the source system's export (ipvalue.names explains the policy)",
            )
            invisible = on_unique(text, has_invisible).fillna(False).astype(bool)
            if invisible.any():
                notes.append(f"{int(invisible.sum())} {col.name} value(s) had invisible characters (zero-width space, BOM) removed")
            out[col.name] = ids if col.name == "patent_id" else on_unique(text, normalise_text)
        elif col.kind == "date":
            parsed, date_problems, date_notes = parse_dates(s.where(~blank), col.name, date_format=date_format)
            for mask, problem, fix in date_problems:
                problems.add(mask, col.name, problem, fix)
            notes += date_notes
            out[col.name] = parsed
        elif col.kind in ("count", "float"):
            num, checks = check_numbers(s.where(~blank), col.name)
            for mask, problem, fix in checks:
                problems.add(mask, col.name, problem, fix)
            # Relational checks below only see values that passed their own column's checks.
            out[col.name] = num
        elif col.kind == "category":
            norm = on_unique(s, lambda u: u.astype("str").str.strip().str.lower().str.replace(f"[{BLANK_CHARS}-]+", "_", regex=True)).where(~blank)
            bad = norm.notna() & ~norm.isin(col.allowed)
            problems.add(bad, col.name, "unknown value", f"use one of {', '.join(col.allowed)} (or map it in the column mapping's 'values')")
            norm = norm.where(~bad)
            out[col.name] = norm.fillna("unknown") if col.name == "legal_status" else norm

    out["jurisdiction"] = out["jurisdiction"].str.upper()
    j = out["jurisdiction"]
    problems.add(j.notna() & ~j.str.fullmatch(r"[A-Z]{2}").fillna(False).astype(bool), "jurisdiction", "not a two-letter office code", "use CN, US, EP, JP, KR, WO, ...")

    fd, gd, pd_ = out["filing_date"], out["grant_date"], out["priority_date"]
    problems.add((gd < fd).fillna(False), "grant_date", "grant date is before the filing date", "check both dates; grant_date must be on or after filing_date")
    problems.add((pd_ > fd).fillna(False), "priority_date", "priority date is after the filing date", "priority_date must be on or before filing_date")
    problems.add((out["publication_date"] < fd).fillna(False), "publication_date", "publication date is before the filing date", "publication_date must be on or after filing_date")
    problems.add(
        (out["claims_independent"] > out["claims_total"]).fillna(False),
        "claims_independent",
        "more independent claims than claims in total",
        "claims_independent must be <= claims_total",
    )
    problems.add(
        (out["self_citations"] > out["forward_citations"]).fillna(False),
        "self_citations",
        "more self-citations than forward citations",
        "self_citations must be <= forward_citations",
    )
    us_utility_model = (out["patent_type"] == "utility_model") & (out["jurisdiction"] == "US")
    problems.add(us_utility_model.fillna(False), "patent_type", "the US grants no utility models", "a US 'utility patent' is an invention: use patent_type=invention")

    dup = ids.notna() & ids.duplicated(keep=False)
    if dup.any():
        problems.add(dup, "patent_id", "duplicated id", "keep one row per patent", value=_duplicate_rows(ids[dup]).reindex(raw.index).fillna("").to_numpy())

    table = problems.table()
    bad_rows = np.zeros(len(raw), dtype=bool)
    if len(table):
        bad_rows[table["row"].to_numpy(dtype=int) - 1] = True
    if strict and bad_rows.any():
        res = ValidationResult(out[~bad_rows], raw[bad_rows], table, notes)
        raise PatentFrameError(f"{source}: {int(bad_rows.sum())} of {len(raw)} rows break the PatentFrame contract.\n{res.report(20)}", table)

    reasons = table.assign(text=table["column"] + ": " + table["problem"]).groupby("row")["text"].agg("; ".join)
    quarantine = raw[bad_rows].copy()
    quarantine.insert(0, "row", quarantine.index + 1)
    quarantine.insert(1, "reasons", reasons.reindex(quarantine["row"]).to_numpy())
    valid = out[~bad_rows]
    if bad_rows.any():
        logger.warning("%s: %d of %d rows quarantined", source, int(bad_rows.sum()), len(raw))
    assert len(valid) + len(quarantine) == len(raw)
    return ValidationResult(valid=valid, quarantine=quarantine, problems=table, notes=notes)


#: Row numbers a duplicated id's message lists before giving the count: the message of each copy
#: is one short string, so a file of n copies of one id needs memory linear in n (F2: every copy
#: listing every row grew as n², 5 GB for 20,000 rows).
DUPLICATE_ROWS_SHOWN = 5


def _duplicate_rows(dup_ids: pd.Series) -> pd.Series:
    """For each row of a duplicated id: 'rows 1, 3' or 'rows 1, 2, 3, 4, 5 and 19,995 more
    (20,000 rows)', one string per distinct id shared by its rows."""
    rows = pd.Series(dup_ids.index.to_numpy() + 1, index=dup_ids.index)
    key = dup_ids.to_numpy()
    shown = rows[rows.groupby(key).cumcount().to_numpy() < DUPLICATE_ROWS_SHOWN]
    listed = shown.astype(str).groupby(key[rows.index.get_indexer(shown.index)]).agg(", ".join)
    counts = rows.groupby(key).size()
    more = counts - DUPLICATE_ROWS_SHOWN
    text = ("rows " + listed).where(more <= 0, "rows " + listed + " and " + more.map("{:,}".format) + " more (" + counts.map("{:,}".format) + " rows)")
    return pd.Series(text.reindex(key).to_numpy(), index=dup_ids.index)


def refuse_lone_surrogates(frame: pd.DataFrame, *, source: str = "input") -> None:
    """Raise :class:`~ipvalue.exceptions.PatentFrameError` when a text cell holds a lone surrogate.

    A lone surrogate (U+D800-U+DFFF without its pair; a JSON ``"\\ud800"`` escape, say) is not
    Unicode text: it cannot be written as UTF-8, hashed for the audit trail or sent as JSON, so
    the table is refused (not quarantined: the quarantine could not be written either). Typed
    columns and pandas' text dtype cannot hold one; object columns (records, Excel cells) are
    checked with one UTF-8 encoding per column, and cell by cell only when that fails.

    Raises
    ------
    PatentFrameError
        Naming the row (1-based), the column, the code point and the fix; ``problems`` lists
        every such cell.
    """
    found = []
    for column in frame.columns:
        s = frame[column]
        if s.dtype != object:
            continue
        strings = [v for v in s.array if type(v) is str]
        try:
            "".join(strings).encode("utf-8")
            continue
        except UnicodeEncodeError:
            pass
        for position, value in enumerate(s.array):
            if isinstance(value, str) and (bad := _lone_surrogate(value)) is not None:
                found.append({"row": position + 1, "patent_id": None, "column": str(column), "value": value.encode("utf-8", "backslashreplace").decode("utf-8"),
                              "problem": f"holds a lone surrogate U+{ord(value[bad]):04X} at character {bad + 1}, which is not Unicode text",
                              "fix": _SURROGATE_FIX})
    if found:
        first = found[0]
        problems = pd.DataFrame(found, columns=PROBLEM_COLUMNS)
        raise PatentFrameError(f"{source}, row {first['row']}, column {first['column']!r}: {first['problem']} ({len(found)} such cell(s)). "
                               f"Fix: {first['fix']}.", problems)


def _lone_surrogate(text: str) -> int | None:
    """The position of the first lone surrogate in ``text``, or None."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return exc.start


#: Control characters (not tab, CR, LF) and bidirectional controls: refused in applications and requests.
_FORBIDDEN_TEXT = re.compile("[" + re.escape(FORBIDDEN_CHARS) + "]")
_SURROGATE_FIX = "send the text as UTF-8; a JSON \\uD800-\\uDFFF escape must be one half of a surrogate pair"


def check_unicode_text(value, field: str):
    """``value`` as it is, unless it is a string holding a lone surrogate, a control character (other
    than tab, CR and LF) or a bidirectional control (U+202A-U+202E, U+2066-U+2069): then a
    :class:`~ipvalue.exceptions.DomainError` naming ``field``, the code point, its position and the fix.

    Examples
    --------
    >>> check_unicode_text("某某科技有限公司", "borrower")
    '某某科技有限公司'
    """
    if isinstance(value, str) and (bad := _lone_surrogate(value)) is not None:
        raise DomainError(f"The {field!r} holds a lone surrogate U+{ord(value[bad]):04X} at character {bad + 1}, which is not Unicode text. "
                          f"Fix: {_SURROGATE_FIX}.")
    if isinstance(value, str) and (hidden := _FORBIDDEN_TEXT.search(value)) is not None:
        raise DomainError(f"The {field!r} holds a control or bidirectional-control character U+{ord(hidden.group()):04X} at character "
                          f"{hidden.start() + 1} (it can hide or reorder what a reader sees). Fix: remove it; type the text again or copy it "
                          "from its source document.")
    return value


def check_unicode_tree(data, where: str = "request"):
    """Check every string (keys included) of a parsed JSON / YAML document with
    :func:`check_unicode_text` (lone surrogates, control and bidirectional-control characters).

    One call at the entry of an application or a request, before any field is hashed, normalised
    or written. Iterative (a deep document cannot exhaust the stack).

    Raises
    ------
    DomainError
        Naming the path of the first bad string, e.g. ``'application.patents.records[3].applicants'``.

    Examples
    --------
    >>> check_unicode_tree({"borrower": "某某", "patents": {"records": [{"applicants": "x"}]}}, "application")
    {'borrower': '某某', 'patents': {'records': [{'applicants': 'x'}]}}
    """
    stack = [(data, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            check_unicode_text(node, path)
        elif isinstance(node, dict):
            for key in node:
                check_unicode_text(key, f"{path} (a key)")
            stack.extend((value, f"{path}.{key}") for key, value in reversed(node.items()))
        elif isinstance(node, (list, tuple)):
            stack.extend((node[i], f"{path}[{i}]") for i in reversed(range(len(node))))
    return data


def frame_from_records(records: list, *, source: str = "records") -> pd.DataFrame:
    """PatentFrame records (JSON objects, as a loan system sends them) as a raw table of object
    cells for :func:`validate_patent_frame`: values kept as sent (pandas would otherwise infer
    types and fail on a lone surrogate before any check), a lone surrogate refused naming its
    record (``row``) and field.

    Raises
    ------
    TypeError
        ``records`` is not a list of mappings.
    PatentFrameError
        A text value holds a lone surrogate.
    """
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise TypeError(f"The {source} must be a list of patent records (JSON objects). Got {type(records).__name__}.")
    frame = pd.DataFrame(records, dtype=object)
    refuse_lone_surrogates(frame, source=source)
    return frame


#: Excel's day zero (serial 1 = 1900-01-01, with Excel's 1900 leap-year bug absorbed for serials > 60).
EXCEL_EPOCH = pd.Timestamp("1899-12-30")
#: Serials read as Excel dates: 10000 (1927-05-18) to 99999 (2173-10-14); other integers are refused.
EXCEL_SERIAL_RANGE = (10_000, 99_999)
_DMY = r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$"
_CJK_DATE = r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?$"


def parse_dates(values: pd.Series, column: str = "date", *, date_format: str | None = None):
    """Read a date column the way real exports write it, refusing what cannot be read safely.

    * date types (Parquet dates, Excel date cells) are used as they are;
    * Excel serial numbers (a number cell, or 5-digit text, in ``EXCEL_SERIAL_RANGE``) are days
      since 1899-12-30: 44013 is 2020-07-01;
    * an integer-typed column (Parquet int days, say) is refused: days since 1970 and Excel
      serials cannot be told apart;
    * ``2020年3月15日`` and ISO ``2020-03-15`` / ``2020/3/15`` are read;
    * ``dd/mm/yyyy`` vs ``mm/dd/yyyy``: read when one part is above 12 (15/03/2020), refused when
      both are 12 or less and differ (05/03/2020) unless ``date_format`` declares the file's
      order (e.g. ``'%d/%m/%Y'``).

    Parameters
    ----------
    values : pandas.Series
        Missing cells stay missing and are not problems.
    column : str
        Column name for messages.
    date_format : str, optional
        A ``strptime`` format applied to every text cell that is not ISO or 年月日.

    Returns
    -------
    dates : pandas.Series of datetime64[s]
    problems : list of (mask, problem, fix)
    notes : list of str
    """
    missing = values.isna()
    problems: list = []
    notes: list[str] = []
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.dt.tz_localize(None).astype("datetime64[s]") if values.dt.tz is not None else values.astype("datetime64[s]"), problems, notes
    empty = pd.Series(pd.NaT, index=values.index, dtype="datetime64[s]")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        problems.append((~missing, "an integer-typed date column cannot be read safely (days since 1970 and Excel serials look alike)",
                         f"export {column} as text YYYY-MM-DD or as a date type"))
        return empty, problems, notes
    obj = values.astype(object)
    if values.dtype == object:  # Excel cells: date, number and text mixed (text columns skip this)
        kinds = on_unique(obj.map(type), lambda u: u.map(lambda t: "stamp" if hasattr(t, "isoformat") else "number" if issubclass(t, (int, float, np.integer, np.floating)) and not issubclass(t, (bool, np.bool_)) else "text"))
        is_stamp, is_number = kinds.eq("stamp") & ~missing, kinds.eq("number") & ~missing
    else:
        is_stamp = is_number = pd.Series(False, index=values.index)
    text = obj.where(~is_stamp & ~is_number & ~missing).astype("str").str.strip().where(~is_stamp & ~is_number & ~missing)
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if is_stamp.any():
        result[is_stamp] = pd.to_datetime(obj[is_stamp].astype(str), errors="coerce", format="mixed")
    serial_text = text.str.fullmatch(r"\d{5}").fillna(False).astype(bool)
    serial = pd.Series(np.nan, index=values.index)
    serial[is_number] = pd.to_numeric(obj[is_number], errors="coerce")
    serial[serial_text] = pd.to_numeric(text[serial_text])
    has_serial = serial.notna()
    in_range = has_serial & serial.between(*EXCEL_SERIAL_RANGE) & (serial == np.round(serial))
    result[in_range] = EXCEL_EPOCH + pd.to_timedelta(serial[in_range], unit="D")
    if in_range.any():
        notes.append(f"{int(in_range.sum())} {column} value(s) read as Excel serial numbers (days since 1899-12-30)")
    problems.append((has_serial & ~in_range, "a number that is not an Excel date serial", f"write {column} as YYYY-MM-DD"))
    text = text.where(~serial_text)
    cjk = text.str.extract(_CJK_DATE)
    is_cjk = cjk[0].notna()
    text = text.where(~is_cjk, cjk[0] + "-" + cjk[1].str.zfill(2) + "-" + cjk[2].str.zfill(2))
    dmy = text.str.extract(_DMY)
    is_dmy = dmy[0].notna()
    if date_format is not None:
        declared = text.notna() & ~text.str.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}").fillna(False).astype(bool)
        result[declared] = pd.to_datetime(text[declared], errors="coerce", format=date_format)
        rest = text.notna() & ~declared
    else:
        a, b = pd.to_numeric(dmy[0]), pd.to_numeric(dmy[1])
        ambiguous = is_dmy & (a <= 12) & (b <= 12) & (a != b)
        problems.append((ambiguous, "day and month can be read both ways",
                         f"declare the file's date order (date_format='%d/%m/%Y' or '%m/%d/%Y'; --date-format) or write {column} as YYYY-MM-DD"))
        day_first = is_dmy & ~ambiguous & ((a > 12) | (a == b))
        month_first = is_dmy & ~ambiguous & ~day_first
        result[day_first] = pd.to_datetime(text[day_first], errors="coerce", format="%d/%m/%Y" if text[day_first].str.contains("/").all() else "mixed", dayfirst=True)
        result[month_first] = pd.to_datetime(text[month_first], errors="coerce", format="mixed", dayfirst=False)
        rest = text.notna() & ~is_dmy
        text = text.where(~ambiguous)
    if rest.any():
        result[rest] = pd.to_datetime(text[rest], errors="coerce", format="mixed")
    claimed = missing | has_serial
    for mask, _, _ in problems:
        claimed |= mask
    problems.append((result.isna() & ~claimed, "not a date", "write dates as YYYY-MM-DD"))
    return result.astype("datetime64[s]"), [(m, p, f) for m, p, f in problems if m.any()], notes


def _empty_column(col: Column, n: int) -> pd.Series:
    if col.kind == "date":
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[s]")
    if col.kind in ("count", "float"):
        return pd.Series(np.nan, index=range(n), dtype="float64")
    if col.name == "legal_status":
        return pd.Series("unknown", index=range(n), dtype="str")
    return pd.Series(None, index=range(n), dtype="str")



def as_patent_frame(X, *, passthrough=(), source: str = "input") -> pd.DataFrame:
    """``X`` as a PatentFrame: returned as it is when it already has every contract column with
    typed dates (a frame that went through :func:`validate_patent_frame`), else validated
    strictly. The ``passthrough`` source columns (numeric, outside the contract) are carried
    along, missing where absent.

    Raises
    ------
    TypeError
        ``X`` is not a pandas DataFrame.
    PatentFrameError
        A row breaks the contract (strict validation).
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"The {source} must be a PatentFrame (pandas DataFrame). Got {type(X).__name__}.")
    if all(c.name in X.columns for c in COLUMNS) and str(X["filing_date"].dtype).startswith("datetime64"):
        frame = X
    else:
        frame = validate_patent_frame(X, strict=True, source=source).valid.set_axis(X.index)
    extra = {c: pd.to_numeric(X[c], errors="coerce") if c in X.columns else np.nan for c in passthrough}
    return frame.assign(**extra) if extra else frame


def to_records(frame: pd.DataFrame, extra_columns=()) -> pd.DataFrame:
    """PatentFrame rows as a loan system or a CSV export sends them: contract columns (plus
    ``extra_columns``) only, dates as ISO strings, counts as floats, empty columns left out. The
    inverse of :func:`validate_patent_frame` (what a registered model's ``predict`` takes)."""
    out = frame[[c for c in frame.columns if c in COLUMN_BY_NAME or c in extra_columns]].copy()
    for c in out.columns:
        if str(out[c].dtype).startswith("datetime64"):
            out[c] = out[c].dt.strftime("%Y-%m-%d").astype(object).where(out[c].notna(), None)
        elif str(out[c].dtype) == "str":
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out[[c for c in out.columns if out[c].notna().any()]]
