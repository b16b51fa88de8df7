"""Feature builders: pure, vectorised functions from a PatentFrame to feature columns.

Each ``build_<group>(frame, ctx)`` returns a DataFrame indexed like ``frame`` and reads nothing
dated after ``ctx.valuation_date``. ``ctx`` (:class:`BuildContext`) carries the valuation date and
the reference tables (statutory terms, market sizes, IPC concordance).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ipvalue.frame import DEAD_STATUSES, LIST_SEPARATOR, on_unique

DAYS_PER_YEAR = 365.25
TRIADIC = ("US", "EP", "JP")
_IPC_RE = r"^\s*([A-H]\d{2}[A-Z])\s*(\d{1,4})?\s*(?:/\s*(\d+))?"
_SUBCLASS = re.compile(r"^([A-H]\d{2}[A-Z])")


@dataclass
class BuildContext:
    """What every builder may read besides the frame."""

    valuation_date: pd.Timestamp
    terms: dict
    market_size: dict
    concordance: pd.DataFrame | None = None  # field_nr, sector, field_name, ipc_prefix
    sector_prefixes: dict = field(default_factory=dict)  # coarse fallback, prefix -> sector
    industry_map: pd.DataFrame | None = None  # ipc_prefix, industry_code, industry_name
    owner_book: pd.DataFrame | None = None  # checked owner book (ipvalue.features.owners)
    owner_leave_out: str = "fold"  # what a book patent leaves out of its own owner statistics (owners.LEAVE_OUT)
    params: dict = field(default_factory=dict)  # the spec's parameters per builder group


def _years_of(delta: np.ndarray) -> np.ndarray:
    """Years of 365.25 days in a timedelta64 array (NaN where missing), from pandas' total seconds."""
    return pd.TimedeltaIndex(delta).total_seconds().to_numpy() / (DAYS_PER_YEAR * 86400.0)


def first_item(s: pd.Series) -> pd.Series:
    """The first item of ';'-lists (stays a string column even when every cell is missing)."""
    return s.astype("str").str.replace("(?s);.*", "", regex=True).str.strip().where(s.notna())  # runs in Arrow (RE2)


def _list_items(s: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """';'-lists → each item's row position and the items, trimmed, blanks dropped (in Arrow)."""
    lists = pc.split_pattern(pa.array(s.astype("str"), from_pandas=True), LIST_SEPARATOR)
    items = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    keep = pc.fill_null(pc.not_equal(items, ""), False)
    return pc.list_parent_indices(lists).filter(keep).to_numpy(), items.filter(keep)


# --- claims ----------------------------------------------------------------------------------


def count_words(text: pd.Series) -> pd.Series:
    """Words in a claim: Latin words and numbers, plus each CJK character (Chinese has no spaces)."""
    counts = text.astype("str").str.count("[A-Za-z0-9]+|[\u4e00-\u9fff]")  # real characters, so it runs in Arrow
    return counts.where(text.notna()).astype("float64")


def build_claims(frame: pd.DataFrame, ctx: BuildContext) -> pd.DataFrame:
    total, independent = frame["claims_total"], frame["claims_independent"]
    return pd.DataFrame(
        {
            "claims_total": total,
            "claims_independent": independent,
            "claims_dependent_ratio": ((total - independent) / total).where(total > 0),
            "first_claim_words": count_words(frame["first_claim_text"]),
        },
        index=frame.index,
    )


# --- family ----------------------------------------------------------------------------------


def build_family(frame: pd.DataFrame, ctx: BuildContext) -> pd.DataFrame:
    """Family size, offices (own office included), PCT and triadic flags, market coverage."""
    n = len(frame)
    listed = frame["family_offices"]
    rows, items = _list_items(listed)
    # each patent's offices, its own first, each once (kept in this order: the coverage sums in it)
    row = np.concatenate([np.arange(n), rows])
    office = np.concatenate([frame["jurisdiction"].to_numpy(dtype=object), pc.utf8_upper(items).to_numpy(zero_copy_only=False)])
    code, offices = pd.factorize(office)  # a missing office is -1, and one office
    kept = np.sort(np.unique(row * (len(offices) + 1) + code + 1, return_index=True)[1])
    row, code, office = row[kept], code[kept], office[kept]
    default = ctx.market_size.get("default", 0.0)
    share = pd.Series(offices, dtype=object).map(ctx.market_size.get("gni_share", {})).fillna(default).astype("float64").to_numpy()
    weight = np.append(share, float(default))[code]
    flag = lambda name: np.bincount(row[office == name], minlength=n).astype("float64")  # noqa: E731  0 or 1: each office once
    # Without an office list a family larger than one is only partly known: say unknown.
    family_size = frame["family_size"].to_numpy(dtype="float64")
    unknown = listed.isna().to_numpy() & (np.where(np.isnan(family_size), 1.0, family_size) > 1)
    coverage = pd.Series(weight).groupby(row).sum().to_numpy()  # every patent has its own office; pandas' (compensated) sum
    return pd.DataFrame(
        {
            "family_size": family_size,
            "family_offices_count": np.where(unknown, np.nan, np.bincount(row, minlength=n).astype("float64")),
            "is_pct": flag("WO"),
            "is_triadic": flag("US") * flag("EP") * flag("JP"),
            "market_coverage": np.where(unknown, np.nan, np.minimum(coverage, 1.0)),
        },
        index=frame.index,
    )


# --- citations -------------------------------------------------------------------------------


def build_citations(frame: pd.DataFrame, ctx: BuildContext) -> pd.DataFrame:
    """Forward citations up to the valuation date and within 3 / 5 years of publication.

    With ``forward_citation_dates`` the counts use only citations dated on or before the
    valuation date. Without dates, ``fwd_cits`` is the recorded total (as of the data date) and the
    windowed counts are missing, except for patents never cited (0).
    """
    vd = ctx.valuation_date
    n = len(frame)
    start = frame["publication_date"].fillna(frame["grant_date"]).fillna(frame["filing_date"])
    rows, items = _list_items(frame["forward_citation_dates"])
    dates = pd.to_datetime(pd.Series(pd.array(items, dtype="str")), format="%Y-%m-%d", errors="coerce")
    known = (dates <= vd).to_numpy()  # cited by the valuation date
    age = _years_of(dates.to_numpy() - start.to_numpy()[rows])
    has_dates = frame["forward_citation_dates"].notna().to_numpy()
    forward = frame["forward_citations"].to_numpy(dtype="float64")
    self_citations = frame["self_citations"].to_numpy(dtype="float64")

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(rows[known & mask], minlength=n).astype("float64")

    windowed = lambda years: np.where(has_dates, count(age <= years), np.where(forward == 0, 0.0, np.nan))  # noqa: E731
    return pd.DataFrame(
        {
            "fwd_cits": np.where(has_dates, count(True), forward),
            "fwd_cits_3y": windowed(3.0),
            "fwd_cits_5y": windowed(5.0),
            "bwd_cits": frame["backward_citations"].to_numpy(),
            "npl_cits": frame["npl_citations"].to_numpy(),
            "self_citation_share": np.where(forward > 0, self_citations / np.where(forward > 0, forward, 1.0), np.nan),
        },
        index=frame.index,
    )


# --- remaining legal life --------------------------------------------------------------------


def add_years(dates: pd.Series, years) -> pd.Series:
    """Calendar addition of whole years (29 February → 28 February in a common year)."""
    years = np.broadcast_to(np.asarray(years, dtype="float64"), (len(dates),))
    when = pd.to_datetime(dates).to_numpy()
    ok = ~np.isnat(when) & np.isfinite(years)
    day = np.where(ok, when, np.datetime64(0, "s")).astype("datetime64[D]")
    months = day.astype("datetime64[M]")  # calendar months since 1970-01 (the dates' own, floored)
    y = np.where(ok, months.astype("int64") // 12 + 1970 + np.nan_to_num(years), 2000).astype(int)
    m = months.astype("int64") % 12 + 1
    d = (day - months.astype("datetime64[D]")).astype("int64") + 1
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    d = np.where((m == 2) & (d == 29) & ~leap, 28, d)
    out = ((y - 1970) * 12 + (m - 1)).astype("datetime64[M]").astype("datetime64[D]") + (d - 1).astype("timedelta64[D]")
    return pd.Series(np.where(ok, out, np.datetime64("NaT")).astype("datetime64[s]"), index=dates.index)


def statutory_rule(frame: pd.DataFrame, terms: dict) -> pd.DataFrame:
    """The term rule of each patent: ``years`` and ``from`` ('filing' or 'grant')."""
    # numpy masks: a handful of rules over a few columns, cheap on a 3-patent application and a 10k book alike
    n = len(frame)
    years = np.full(n, np.nan)
    start = np.full(n, "filing", dtype=object)
    jurisdiction = frame["jurisdiction"].to_numpy(dtype=object, na_value=None)
    patent_type = frame["patent_type"].to_numpy(dtype=object, na_value=None)
    filing = frame["filing_date"]
    offices = terms["offices"]
    named = [o for o in offices if o != "default"]
    for office in [*offices.keys()]:
        in_office = jurisdiction == office if office != "default" else ~np.isin(jurisdiction, named)
        for ptype, rules in offices[office].items():
            rules = rules if isinstance(rules, list) else [rules]
            for rule in rules:  # later regimes override earlier ones from their start date
                mask = in_office & (patent_type == ptype)
                if rule.get("filed_from"):
                    mask &= (filing >= pd.Timestamp(rule["filed_from"])).to_numpy()
                years[mask] = float(rule["years"])
                start[mask] = rule["from"]
    # A type the office does not grant (e.g. a US utility model) takes the default rule.
    default = offices["default"]
    for ptype, rules in default.items():
        rule = (rules if isinstance(rules, list) else [rules])[-1]
        mask = np.isnan(years) & (patent_type == ptype)
        years[mask], start[mask] = float(rule["years"]), rule["from"]
    return pd.DataFrame({"years": years, "from": pd.Series(start, index=frame.index, dtype=object)}, index=frame.index)


def statutory_term(frame: pd.DataFrame, terms: dict, valuation_date) -> tuple[pd.Series, pd.Series]:
    """Each patent's statutory expiry date and term in years (``statutory-terms.yaml`` plus
    ``term_adjustment_days``). Grant-based terms of patents not granted by ``valuation_date`` run
    from filing (a lower bound)."""
    rule = statutory_rule(frame, terms)
    granted = frame["grant_date"].notna() & (frame["grant_date"] <= pd.Timestamp(valuation_date))
    start = frame["filing_date"].where(rule["from"].eq("filing") | ~granted, frame["grant_date"])
    adjustment_days = frame["term_adjustment_days"].fillna(0.0) if "term_adjustment_days" in frame else pd.Series(0.0, index=frame.index)
    expiry = add_years(start, rule["years"]) + pd.to_timedelta(adjustment_days, unit="D")
    return expiry, rule["years"] + adjustment_days / DAYS_PER_YEAR


def build_life(frame: pd.DataFrame, ctx: BuildContext) -> pd.DataFrame:
    """Statutory expiry, lapse, remaining life, age and grant lag at the valuation date.

    Terms come from ``ctx.terms`` (``ipvalue/assumptions/statutory-terms.yaml``). A patent whose
    status is dead (lapsed, invalidated, withdrawn, rejected), whose fees are unpaid beyond the
    grace period, or whose term is over has ``remaining_life_years = 0`` and a flag. Grant-based
    terms of patents not yet granted run from filing (a lower bound).
    """
    vd = ctx.valuation_date
    when = vd.to_datetime64()
    expiry, term = statutory_term(frame, ctx.terms, vd)
    expiry, term = expiry.to_numpy(), term.to_numpy(dtype="float64")
    filing, grant, paid = (frame[c].to_numpy() for c in ("filing_date", "grant_date", "fees_paid_until"))
    granted = grant <= when  # a missing date compares False
    grace = np.timedelta64(int(ctx.terms.get("fee_grace_days", 0)), "D")
    fees_overdue = granted & (paid + grace < when)
    status = frame["legal_status"]
    lapsed = status.isin([s for s in DEAD_STATUSES if s != "expired"]).to_numpy() | fees_overdue
    expired = (expiry <= when) | status.eq("expired").to_numpy()
    # clipped as Series.clip does: a missing value stays missing, a missing bound does not clip
    to_expiry = _years_of(expiry - when)
    to_expiry = np.where(np.isnan(to_expiry) | (to_expiry >= 0.0), to_expiry, 0.0)
    remaining = np.where(np.isnan(to_expiry) | (to_expiry <= np.where(np.isnan(term), np.inf, term)), to_expiry, term)
    age = _years_of(when - filing)
    year = filing.astype("datetime64[Y]").astype("int64") + 1970
    return pd.DataFrame(
        {
            "statutory_term_years": term,
            "remaining_life_years": np.where(lapsed | expired, 0.0, remaining),
            "age_years": np.where(np.isnan(age) | (age >= 0.0), age, 0.0),
            "grant_lag_years": np.where(granted, _years_of(grant - filing), np.nan),
            "is_granted": granted.astype("float64"),
            "is_lapsed": lapsed.astype("float64"),
            "is_expired": expired.astype("float64"),
            "filing_year": np.where(np.isnat(filing), np.nan, year),
            "expiry_date": expiry,
        },
        index=frame.index,
    )


# --- industry --------------------------------------------------------------------------------


def normalise_ipc(codes: pd.Series) -> pd.Series:
    """IPC/CPC codes in the padded form of the WIPO concordance: subclass + main group
    right-aligned in 4 characters + '/' + subgroup ('G06F 16/30' → 'G06F  16/30'). Codes with a
    subclass only stay 4 characters; unparseable codes become missing. Full-width codes
    (Ｇ０６Ｆ１７／３０) are folded by NFKC first."""
    parts = codes.astype("str").str.normalize("NFKC").str.upper().str.extract(_IPC_RE)
    main = parts[1].str.rjust(4).where(parts[1].notna(), "")
    sub = ("/" + parts[2]).where(parts[2].notna(), "")
    return (parts[0] + main + sub).where(parts[0].notna())


def longest_prefix_match(codes: pd.Series, prefixes: pd.Series, values: pd.DataFrame) -> pd.DataFrame:
    """For each code, the row of ``values`` whose prefix is the longest one the code starts with
    (the first such row where a prefix repeats); object columns, missing where no prefix matches."""
    rows = np.full(len(codes), -1)  # the matched row of ``values`` per code
    prefix_length = prefixes.str.len().to_numpy()
    code_length = codes.str.len().to_numpy()
    for length in sorted(pd.unique(prefix_length), reverse=True):
        at_length = np.flatnonzero(prefix_length == length)
        level = pd.Index(prefixes.to_numpy()[at_length])
        first = ~level.duplicated()
        level, at_length = level[first], at_length[first]
        keys = codes.str[:length].where((rows < 0) & (code_length >= length)).to_numpy()
        position = level.get_indexer(keys)
        hit = position >= 0
        rows[hit] = at_length[position[hit]]
    table = np.full((len(codes), values.shape[1]), np.nan, dtype=object)
    found = rows >= 0
    table[found] = values.to_numpy()[rows[found]]
    return pd.DataFrame(table, index=codes.index, columns=values.columns, dtype=object)


def build_industry(frame: pd.DataFrame, ctx: BuildContext) -> pd.DataFrame:
    """Technology field and sector (WIPO, longest matching IPC pattern), section, patent scope."""
    main_raw = frame["ipc_main"]
    for fallback in ("ipc_codes", "cpc_codes"):
        missing = main_raw.isna()
        if missing.any():  # the first listed code of the patents without a main code
            main_raw = main_raw.fillna(first_item(frame.loc[missing, fallback]))
    main = on_unique(main_raw, normalise_ipc)
    section = main_raw.astype("str").str.strip().str[0].str.upper().where(main_raw.notna())
    section = section.where(section.isin(list("ABCDEFGH")))
    if ctx.concordance is not None:
        match = longest_prefix_match(main, ctx.concordance["ipc_prefix"], ctx.concordance[["field_nr", "sector"]])
        field_nr, sector = match["field_nr"].astype("float64"), match["sector"]
    else:
        field_nr = pd.Series(np.nan, index=frame.index)
        prefixes = pd.Series(list(ctx.sector_prefixes))
        compact = main_raw.astype("str").str.replace(" ", "").where(main_raw.notna())
        sector = longest_prefix_match(compact, prefixes, pd.DataFrame({"sector": list(ctx.sector_prefixes.values())}))["sector"]
    rows, codes = _list_items(frame["ipc_codes"].fillna(frame["ipc_main"]).fillna(frame["cpc_codes"]))
    code, distinct = pd.factorize(pc.utf8_upper(codes).to_numpy(zero_copy_only=False))
    of_distinct = np.array([m.group(1) if (m := _SUBCLASS.search(c)) else None for c in distinct], dtype=object)  # read once per code
    subclass, subclasses = pd.factorize(of_distinct[code])  # unreadable: -1
    read, width = subclass >= 0, len(subclasses) + 1
    pairs = np.unique(rows[read] * width + subclass[read])  # each patent's distinct subclasses
    count = np.bincount(pairs // width, minlength=len(frame)).astype("float64")
    scope = np.where(count > 0, count, np.nan)  # none readable: unknown
    out = pd.DataFrame(
        {"tech_field": field_nr, "tech_sector": sector.astype(object), "ipc_section": section.astype(object), "patent_scope": scope},
        index=frame.index,
    )
    if ctx.industry_map is not None:
        hit = longest_prefix_match(main, ctx.industry_map["ipc_prefix"], ctx.industry_map[["industry_code", "industry_name"]])
        out["industry_code"], out["industry_name"] = hit["industry_code"], hit["industry_name"]
    return out


# --- legal and market events -----------------------------------------------------------------

# RE2 syntax (run in Arrow): no look-behind, so "学院 not after 科" is written (?:^|[^科])学院.
_OWNER_PATTERNS = [
    # A university's own technology-transfer vehicle ("University of X Research Foundation, Inc.")
    # behaves like the university; in Chinese names the legal form (有限公司) decides.
    ("university", r"University|Universit[éäà]|Hochschule|Institute of Technology|Polytechnic"),
    ("company", r"公司|集团|企业|厂$|株式会社|\bCo\b|\bCo\.|Company|\bCorp|\bInc\b|\bInc\.|\bLtd|\bLLC\b|GmbH|\bAG\b|S\.A\.|B\.V\.|Limited|Holdings|Technologies|\bplc\b"),
    ("university", r"大学|(?:^|[^科])学院|College"),
    ("research_institute", r"研究院|研究所|研究中心|科学院|实验室|Institute|Academy|Laborator|Research Cent|Fraunhofer|CNRS"),
    ("other", r"协会|学会|联合会|委员会|医院|政府|中心$|局$|Association|Society|Foundation|Hospital|Council|Government|Ministry"),
]
_PERSON_PATTERN = "^(?:[\u4e00-\u9fff·]{2,4}|[A-Za-z.'\\-]+(?:,?[ \t]+[A-Za-z.'\\-]+){0,3})$"


def _matches(text: pa.Array, pattern: str, *, ignore_case: bool = True) -> np.ndarray:
    """Regex search of each cell of an Arrow string array (RE2); missing cells do not match."""
    return pc.fill_null(pc.match_substring_regex(text, pattern, ignore_case=ignore_case), False).to_numpy(zero_copy_only=False)


def infer_applicant_type(applicants: pd.Series) -> pd.Series:
    """Owner type from the first applicant's name, Chinese or English.

    Order of tests: Latin university words (University, ...), company words (公司, Ltd, Inc, ...),
    Chinese university words (大学, 学院),
    research-institute words (研究院, Institute, ...), other organisations (协会, 医院, Foundation,
    ...); a name with none of them is an individual
    when it looks like a person (2-4 Chinese characters, or up to four Latin words), else 'other'.
    """
    first = first_item(applicants)
    text = pa.array(first.astype("str"), from_pandas=True)
    out = np.full(len(first), None, dtype=object)
    unset = np.ones(len(first), dtype=bool)
    for label, pattern in [*_OWNER_PATTERNS, ("individual", _PERSON_PATTERN)]:
        hit = unset & _matches(text, pattern, ignore_case=label != "individual")
        out[hit] = label
        unset &= ~hit
    out[unset & first.notna().to_numpy()] = "other"
    return pd.Series(out, index=applicants.index, dtype=object)


def build_events(frame: pd.DataFrame, ctx: BuildContext) -> pd.DataFrame:
    counts = ["pledge_count", "licence_count", "transfer_count", "litigation_count", "invalidation_count", "inventor_count"]
    applicant_type = frame["applicant_type"].astype(object)
    unknown = applicant_type.isna()
    if unknown.any():  # inferred from the first applicant's name where not given
        applicant_type = applicant_type.fillna(on_unique(frame["applicants"][unknown], infer_applicant_type))
    text = {"patent_type": frame["patent_type"].astype(object), "applicant_type": applicant_type}  # object columns, not str
    return pd.DataFrame({**{c: frame[c].to_numpy() for c in counts}, **text}, index=frame.index)


def event_counts(events: pd.DataFrame, valuation_date, *, patent_ids=None) -> pd.DataFrame:
    """Count dated events (``patent_id, event, date``) on or before the valuation date.

    Returns one row per patent with ``<event>_count`` columns (e.g. ``litigation_count``), ready to
    fill the PatentFrame's event columns. Events dated after the valuation date are not counted.
    """
    vd = pd.Timestamp(valuation_date)
    known = events[pd.to_datetime(events["date"]) <= vd]
    table = known.groupby(["patent_id", "event"]).size().unstack("event", fill_value=0).astype("float64")
    table.columns = [f"{c}_count" for c in table.columns]
    if patent_ids is not None:
        table = table.reindex(pd.Index(patent_ids, name="patent_id"), fill_value=0.0)
    return table


# --- economics (income-approach inputs as model features) -----------------------------------


def build_economics(frame: pd.DataFrame, ctx: BuildContext) -> pd.DataFrame:
    """The product revenue forecast as features: log(1 + base revenue) and its growth."""
    return pd.DataFrame(
        {"log_revenue_rmb": np.log1p(frame["revenue_base_rmb"]), "revenue_growth": frame["revenue_growth"]},
        index=frame.index,
    )


BUILDERS = {
    "claims": build_claims,
    "family": build_family,
    "citations": build_citations,
    "life": build_life,
    "industry": build_industry,
    "events": build_events,
    "economics": build_economics,
}

#: What each builder reads of its :class:`BuildContext` besides the frame's columns: two feature
#: sets whose frames and these fields agree get the same columns from the group, so a valuation
#: builds them once (:func:`ipvalue.features.transformer.shared_feature_groups`). A test runs each
#: builder on a context that records what is read.
READS = {
    "claims": (),
    "family": ("market_size",),
    "citations": ("valuation_date",),
    "life": ("valuation_date", "terms"),
    "industry": ("concordance", "sector_prefixes", "industry_map"),
    "events": (),
    "economics": (),
}
