"""Loaders for the public reference data (``../shared/data`` layout, or the full public files).

Each loader takes ``data_dir`` (default: :func:`default_data_dir`) so users can point it at the
complete public releases with the same folder layout.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.frame import validate_patent_frame

logger = logging.getLogger(__name__)

ENV_DATA_DIR = "IPVALUE_DATA_DIR"
OECD_FILE = "oecd-quality-cohorts/201902_OECD_PATENT_QUALITY_EPO_INDIC_COHORT.txt"
IPC_FILE = "ipc-technology-fields/ipc_technology.csv"
UNIVERSITY_DIR = "uspto-university-maintenance"
OCE_DIR = "uspto-oce-samples"


def default_data_dir() -> Path:
    """Where the public data lives: ``$IPVALUE_DATA_DIR``, else ``../shared/data`` from the
    working directory, else ``../shared/data`` beside the source checkout.

    Raises
    ------
    FileNotFoundError
        When none exists; the message says how to point ipvalue at the data.
    """
    candidates = []
    if os.environ.get(ENV_DATA_DIR):
        candidates.append(Path(os.environ[ENV_DATA_DIR]))
    candidates += [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"No public data folder found (looked in {', '.join(str(c) for c in candidates)}). "
        f"Fix: set {ENV_DATA_DIR} or pass data_dir= to the loader."
    )


def _dir(data_dir) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def load_university_maintenance(data_dir: str | Path | None = None, *, return_quarantine: bool = False):
    """US university patents granted 2004-2007 with the maintenance fees actually paid.

    Joins ``features.csv`` to the dates in ``patent_lists/`` and returns a validated PatentFrame
    (jurisdiction US, type invention) with extra columns:

    ``fees_paid``
        The label: USPTO maintenance fees paid, 0-3 (fees fall due 3.5, 7.5, 11.5 years after grant).
    ``cpc_section``
        First CPC section letter (A-H); the source has no full IPC/CPC codes.
    ``cpc_code_count``, ``similar_doc_count``
        ``num_applications`` (CPC leaf codes, not family size) and ``num_similar_doc``.

    Rows that break the contract (the shared sample has one: a priority date after its filing
    date) are left out with a logged warning; ``return_quarantine=True`` returns them too.

    Returns
    -------
    frame : pandas.DataFrame, shape (9632, n_contract_columns + 4) for the shared sample
    quarantine : pandas.DataFrame
        Only with ``return_quarantine=True``: the rejected rows with ``row`` and ``reasons``.
    """
    root = _dir(data_dir) / UNIVERSITY_DIR
    feats = pd.read_csv(root / "features.csv", dtype={"id": str})
    lists = pd.concat(
        [pd.read_csv(p, skiprows=1, dtype=str) for p in sorted((root / "patent_lists").glob("*.csv"))],
        ignore_index=True,
    ).drop_duplicates("id")
    joined = feats.merge(lists, on="id", how="left", validate="one_to_one")
    missing_dates = joined["grant date"].isna()
    if missing_dates.any():
        logger.warning("%d university patents have no dates in patent_lists/ and are quarantined", int(missing_dates.sum()))
    sections = np.array(list("ABCDEFGH"))
    dummies = joined[list("BCDEFGH")].to_numpy()
    section = np.where(dummies.any(axis=1), sections[1:][dummies.argmax(axis=1)], "A")
    frame = pd.DataFrame(
        {
            "patent_id": joined["id"],
            "jurisdiction": "US",
            "patent_type": "invention",
            "filing_date": joined["filing/creation date"],
            "priority_date": joined["priority date"],
            "publication_date": joined["publication date"],
            "grant_date": joined["grant date"],
            "legal_status": "unknown",
            "claims_total": joined["num_claims"],
            "backward_citations": joined["num_patent_citations"],
            "npl_citations": joined["num_nonpatent_citations"],
            "ipc_main": section,
            "applicants": joined["assignee"],
            "inventor_count": joined["num_authors"],
        }
    )
    result = validate_patent_frame(frame, source=str(root))
    out = result.valid.copy()
    keep = out.index
    out["fees_paid"] = joined["payment_times"].astype("int64").to_numpy()[keep]
    out["cpc_section"] = section[keep]
    out["cpc_code_count"] = joined["num_applications"].astype("float64").to_numpy()[keep]
    out["similar_doc_count"] = joined["num_similar_doc"].astype("float64").to_numpy()[keep]
    out = out.reset_index(drop=True)
    return (out, result.quarantine) if return_quarantine else out


def load_oecd_cohorts(data_dir: str | Path | None = None) -> pd.DataFrame:
    """OECD Patent Quality Indicators cohort table: one row per filing year × tech field × variable.

    Returns
    -------
    pandas.DataFrame
        Columns ``filing_year, tech_field, variable, patents, mean, std_dev, min, p1, p10, p25,
        p50, p75, p90, p99, max`` (23,340 rows in the February 2019 edition).
    """
    return _read_oecd(_dir(data_dir).resolve()).copy()


@functools.lru_cache(maxsize=4)
def _read_oecd(root: Path) -> pd.DataFrame:
    table = pd.read_csv(root / OECD_FILE, sep="|")
    table = table.rename(columns={"filing": "filing_year"})
    table["variable"] = table["variable"].astype(str).str.strip('"')
    return table.drop(columns=["kurtosis", "skewness"])


def load_ipc_concordance(data_dir: str | Path | None = None) -> pd.DataFrame:
    """WIPO IPC → 35 technology fields concordance (Schmoch 2008).

    Returns
    -------
    pandas.DataFrame
        ``field_nr`` (1-35), ``sector``, ``field_name``, ``ipc_prefix`` (the LIKE pattern without
        ``%``, in the padded IPC form: subclass + main group right-aligned in 4 characters).
    """
    return _read_concordance(_dir(data_dir).resolve()).copy()


@functools.lru_cache(maxsize=4)
def _read_concordance(root: Path) -> pd.DataFrame:
    table = pd.read_csv(root / IPC_FILE, dtype={"ipc": str})
    table["ipc_prefix"] = table.pop("ipc").str.rstrip("%")
    return table


def load_oce_claims(data_dir: str | Path | None = None) -> pd.DataFrame:
    """Claim statistics from the USPTO Patent Claims Research Dataset (document + claim files).

    Returns
    -------
    pandas.DataFrame
        One row per patent: ``patent_id`` ('US' + number), ``claims_total``,
        ``claims_independent``, ``first_claim_word_count`` (words of the lowest-numbered
        independent claim), ``independent_claim_words_min``.
    """
    root = _dir(data_dir) / OCE_DIR
    docs = pd.read_csv(root / "patent_document_stats_sample.csv", dtype={"pat_no": str})
    claims = pd.read_csv(root / "patent_claims_stats_sample.csv", dtype={"pat_no": str})
    independent = claims[claims["ind_flg"] == 1].sort_values(["pat_no", "claim_no"])
    first = independent.drop_duplicates("pat_no").set_index("pat_no")["word_ct"]
    out = pd.DataFrame(
        {
            "patent_id": "US" + docs["pat_no"].str.lstrip("0"),
            "claims_total": (docs["pat_clm_ct"] + docs["pat_dep_clm_ct"]).astype("float64"),
            "claims_independent": docs["pat_clm_ct"].astype("float64"),
            "first_claim_word_count": docs["pat_no"].map(first).astype("float64"),
            "independent_claim_words_min": docs["pat_wrd_min"].astype("float64"),
        }
    )
    return out


def load_oce_litigation(data_dir: str | Path | None = None) -> pd.DataFrame:
    """Litigation events from the USPTO Patent Litigation Docket Reports (case-patent rows).

    Returns
    -------
    pandas.DataFrame
        An events table, one row per case and patent: ``patent_id`` ('US' + number), ``event``
        ('litigation'), ``date`` (case filing date), ``case_number``, ``date_closed``. Count it as
        of a valuation date with :func:`ipvalue.features.builders.event_counts`.
    """
    root = _dir(data_dir) / OCE_DIR
    pats = pd.read_csv(root / "patents_sample.csv", dtype={"patent": str, "case_row_id": str})
    cases = pd.read_csv(root / "cases_sample.csv", dtype={"case_row_id": str})
    pats = pats[pats["patent_doc_type"].eq("Patent") & pats["patent"].notna()]
    events = pats.merge(cases[["case_row_id", "date_closed"]], on="case_row_id", how="left")
    return pd.DataFrame(
        {
            "patent_id": "US" + events["patent"].str.lstrip("0"),
            "event": "litigation",
            "date": pd.to_datetime(events["date_filed"], errors="coerce"),
            "case_number": events["case_number"],
            "date_closed": pd.to_datetime(events["date_closed"], errors="coerce"),
        }
    ).drop_duplicates(["patent_id", "case_number"], ignore_index=True)
