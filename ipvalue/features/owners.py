"""Owner history: how an owner has treated its other patents, from a reference book.

The strongest public signal of whether the next annual / maintenance fee is paid is the owner's
own record (maintenance behaviour): in China the CNIPA register shows every patent
of an owner that ended 未缴年费专利权终止 (CF01), and a bank holds this for its borrowers.

The **owner book** is a table of the owners' patents with their outcomes, one row per patent
(:data:`OWNER_BOOK_COLUMNS`): the training data itself, or a bank's export of its borrowers'
portfolios. Features are computed as of the valuation date (book patents dated after it are left
out; only lapses on or before it count) and, for a patent that is itself in the book, **out of
fold**: the book is split into ``folds`` parts by a hash of the patent id, and a patent's owner
statistics (and the population rate they are smoothed towards) use only the other parts, so no
patent ever sees its own outcome. Patents not in the book (new applications, a later test period)
see the whole book.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue.exceptions import ColumnError
from ipvalue.features.builders import first_item
from ipvalue.frame import on_unique
from ipvalue.names import name_key

OWNER_BOOK_COLUMNS = ("owner", "patent_id", "start_date", "lapse_date", "pledge_count", "licence_count", "transfer_count")
"""Columns of an owner book: ``owner`` (name as registered; normalised here), ``patent_id``,
``start_date`` (grant date, else filing date: when the patent joined the owner's portfolio),
``lapse_date`` (date the right ended for unpaid fees, 未缴年费专利权终止; empty when it did not),
and the pledge / licence / transfer counts (empty when unknown)."""

OWNER_FEATURES = ("owner_portfolio_size", "owner_lapse_share", "owner_pledged_share", "owner_licensed_share", "owner_transferred_share")

# Legal-form words written in more than one way; the first form is kept.


def normalise_owner_name(names: pd.Series) -> pd.Series:
    """A matching key for owner names: :func:`ipvalue.names.name_key` (the one normaliser every
    name comparison uses) of the first of ';'-listed owners.

    Steps: NFKC (全角 → 半角, so （ ） and ( ) agree), invisible characters removed, case folded, a
    leading English "the" dropped, 有限责任公司 → 有限公司 and English legal forms shortened
    (Corporation → corp, Company → co, Limited → ltd, Incorporated → inc), then every space and
    punctuation mark removed. Blank names become missing.

    Parameters
    ----------
    names : pandas.Series of str

    Returns
    -------
    pandas.Series of str, indexed like ``names``

    Examples
    --------
    >>> normalise_owner_name(pd.Series(["北京某某科技有限责任公司（中国）", "The Regents of the University of California"])).tolist()
    ['北京某某科技有限公司(中国)', 'regentsoftheuniversityofcalifornia']
    """

    return on_unique(first_item(names), name_key)


def owner_book_from_frame(frame: pd.DataFrame, lapse_date: pd.Series) -> pd.DataFrame:
    """An owner book from a PatentFrame and each patent's lapse date (NaT when it did not lapse).

    Owners are the first of ``applicants``; the start date is the grant date, else the filing date.
    """
    return pd.DataFrame(
        {
            "owner": frame["applicants"],
            "patent_id": frame["patent_id"],
            "start_date": frame["grant_date"].fillna(frame["filing_date"]),
            "lapse_date": pd.to_datetime(lapse_date).reindex(frame.index) if isinstance(lapse_date, pd.Series) else pd.to_datetime(lapse_date),
            "pledge_count": frame["pledge_count"],
            "licence_count": frame["licence_count"],
            "transfer_count": frame["transfer_count"],
        },
        index=frame.index,
    ).reset_index(drop=True)


def check_owner_book(book: pd.DataFrame) -> pd.DataFrame:
    """The book with typed columns; raises :class:`ColumnError` naming the missing columns."""
    missing = [c for c in ("owner", "patent_id", "start_date", "lapse_date") if c not in book.columns]
    if missing:
        raise ColumnError(
            f"The owner book lacks column(s) {missing}. Got {list(book.columns)}. Fix: give one row per patent with "
            f"{list(OWNER_BOOK_COLUMNS)} (counts may be empty)."
        )
    out = pd.DataFrame({
        "owner_key": normalise_owner_name(book["owner"]),
        "patent_id": book["patent_id"].astype("str"),
        "start_date": pd.to_datetime(book["start_date"], errors="coerce"),
        "lapse_date": pd.to_datetime(book["lapse_date"], errors="coerce"),
    })
    for c in ("pledge_count", "licence_count", "transfer_count"):
        out[c] = pd.to_numeric(book[c], errors="coerce") if c in book.columns else np.nan
    bad = out["start_date"].isna() & book["start_date"].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ColumnError(f"The owner book's 'start_date' is not a date at row {i}: {book['start_date'].iloc[i]!r}. Fix: use YYYY-MM-DD.")
    return out.drop_duplicates("patent_id", keep="last").reset_index(drop=True)


def patent_fold(patent_ids: pd.Series, folds: int) -> np.ndarray:
    """The out-of-fold part (0..folds-1) of each patent, from a stable hash of its id."""
    return (pd.util.hash_array(patent_ids.astype("str").to_numpy(dtype=object)) % np.uint64(folds)).astype(np.int64)


LEAVE_OUT = ("fold", "self")
"""How a patent that is itself in the owner book is kept out of its own statistics: ``fold``
(training: its whole out-of-fold part is left out, so no label leaks through a sibling's fold) or
``self`` (a valuation: only the patent itself is left out, every other patent of its owner counts)."""


#: The per-patent counts an owner's record sums (each flag with its count of known values).
COUNTS = ["n", "lapsed", "pledged", "pledged_n", "licensed", "licensed_n", "transferred", "transferred_n"]


class LayeredOwnerBook:
    """A checked owner book as a fixed ``base`` (a model's book: summed once per valuation date and
    kept, :func:`owner_history`) with a few checked rows on ``top`` that win for the patents they
    list: the same book as :meth:`frame`, without concatenating and summing the base at each
    valuation. Neither part may be changed afterwards."""

    def __init__(self, base: pd.DataFrame, top: pd.DataFrame):
        self.base, self.top = base, top

    def frame(self) -> pd.DataFrame:
        """The book as one checked table (top rows last, winning for their patents)."""
        return pd.concat([self.base, self.top], ignore_index=True).drop_duplicates("patent_id", keep="last").reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.base) + len(self.top) - int((_base_ids(self.base).get_indexer(self.top["patent_id"].astype("str")) >= 0).sum())


def _counts(book: pd.DataFrame, vd: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The book's rows known at ``vd``, their :data:`COUNTS` (an array of 0 / 1, one column per
    count) and their owner keys."""
    book = book[book["start_date"].isna() | (book["start_date"] <= vd)]
    counts = {"n": np.ones(len(book)), "lapsed": (book["lapse_date"] <= vd).to_numpy(dtype="float64")}
    for flag, column in (("pledged", "pledge_count"), ("licensed", "licence_count"), ("transferred", "transfer_count")):
        value = book[column].to_numpy(dtype="float64", na_value=np.nan)
        counts[flag] = (value > 0).astype("float64")
        counts[f"{flag}_n"] = (~np.isnan(value)).astype("float64")  # a known count per flag: unknown counts stay out of the denominator
    return book, np.column_stack([counts[c] for c in COUNTS]).reshape(len(book), len(COUNTS)), book["owner_key"].to_numpy(dtype=object)


#: Per process: a base book's patent index (by object), and its rows and sums as of a date; each
#: entry keeps its book alive, so an id is not reused while the entry exists.
_BASE_IDS: dict = {}
_BASE_SUMS: dict = {}
_KEPT = 8


def _remembered(cache: dict, key, book: pd.DataFrame, make):
    if key not in cache:
        while len(cache) >= _KEPT:
            cache.pop(next(iter(cache)))
        cache[key] = (book, make())
    return cache[key][1]


def _base_ids(base: pd.DataFrame) -> pd.Index:
    return _remembered(_BASE_IDS, id(base), base, lambda: pd.Index(base["patent_id"].astype("str").to_numpy(dtype=object)))


def _base_sums(base: pd.DataFrame, vd: pd.Timestamp) -> dict:
    """The base book as of ``vd``: its rows' ids, counts, owners, and the sums over named owners
    (in total and per owner). Counts are 0 / 1, so the sums are whole numbers, exact in any order."""

    def make():
        book, values, owners = _counts(base, vd)
        owned = pd.notna(owners)
        return {"ids": pd.Index(book["patent_id"].astype("str").to_numpy(dtype=object)), "values": values,
                "owners": owners, "owned": owned, "total": values[owned].sum(axis=0),
                "by_owner": pd.DataFrame(values[owned], columns=COUNTS).assign(owner_key=owners[owned]).groupby("owner_key")[COUNTS].sum()}

    return _remembered(_BASE_SUMS, (id(base), vd), base, make)


def _per_key(owners: np.ndarray, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Sums of ``values`` rows by owner, for each of ``keys`` (a missing key sums nothing)."""
    return (owners[None, :] == keys[:, None]).astype("float64") @ values if len(owners) else np.zeros((len(keys), len(COUNTS)))


def _taken(values: np.ndarray, rows: np.ndarray, fill):
    """``values[rows]``, ``fill`` where a row is -1 (also when ``values`` is empty)."""
    if not len(values):
        return np.full((len(rows),) + values.shape[1:], fill, dtype=values.dtype)
    got = values[rows.clip(min=0)]
    return np.where((rows >= 0).reshape((-1,) + (1,) * (values.ndim - 1)), got, fill)


def owner_history(
    frame: pd.DataFrame, book: pd.DataFrame | LayeredOwnerBook, valuation_date, *, prior_strength: float = 10.0, folds: int = 5,
    leave_out: str = "fold"
) -> pd.DataFrame:
    """Owner-history features of each patent of ``frame`` against the ``book``, as of a date.

    Parameters
    ----------
    frame : PatentFrame, shape (n_patents, ...)
    book : pandas.DataFrame or LayeredOwnerBook
        The owner book (:data:`OWNER_BOOK_COLUMNS`), raw or checked, or a checked base with rows on top.
    valuation_date : date-like
        Book patents starting after it are left out; lapses after it do not count.
    prior_strength : float, default=10
        Pseudo-patents at the population rate added to each owner's record (default to calibrate).
    folds : int, default=5
        Out-of-fold parts for patents that are in the book.
    leave_out : {'fold', 'self'}, default='fold'
        What a patent that is in the book leaves out of its own statistics (:data:`LEAVE_OUT`):
        its out-of-fold part (training) or only itself (a valuation, where no outcome is learnt).

    Returns
    -------
    pandas.DataFrame, indexed like ``frame``, columns :data:`OWNER_FEATURES`:
    ``owner_portfolio_size`` (the owner's other book patents, count), ``owner_lapse_share``
    (share lapsed for unpaid fees, smoothed towards the population rate), and the shares with
    at least one pledge / licence / transfer (smoothed the same way; missing when the book has
    no counts). Every feature is missing for a patent without a named owner.
    """
    if leave_out not in LEAVE_OUT:
        raise ValueError(f"The 'leave_out' of owner_history must be one of {list(LEAVE_OUT)}. Got {leave_out!r}.")
    vd = pd.Timestamp(valuation_date)
    keys = normalise_owner_name(frame["applicants"])
    ids = frame["patent_id"].astype("str").to_numpy(dtype=object)
    if isinstance(book, LayeredOwnerBook) and leave_out == "self":
        total, owner_tot, row_values, row_owners, row_owned, in_book = _layered_counts(book, vd, keys.to_numpy(dtype=object), ids)
    else:
        if isinstance(book, LayeredOwnerBook):
            book = book.frame()
        if not {"owner_key"} <= set(book.columns):
            book = check_owner_book(book)
        book, values, owners = _counts(book, vd)
        stats = pd.DataFrame(values, columns=COUNTS).assign(owner_key=owners)
        if leave_out == "fold":  # a valuation ('self') needs no folds: hashing a large book's ids is skipped
            stats["fold"] = patent_fold(book["patent_id"], folds)
        owned = stats["owner_key"].notna().to_numpy()
        # the frame's patents looked up in the book (checked: one row per patent) by an index, not isin over the book
        row = pd.Index(book["patent_id"].astype("str").to_numpy(dtype=object)).get_indexer(ids)
        in_book = row >= 0
        book_values, book_owners = stats[COUNTS].to_numpy(), stats["owner_key"].to_numpy(dtype=object)
        row_values, row_owners, row_owned = _taken(book_values, row, 0.0), _taken(book_owners, row, None), _taken(owned, row, False)
        stats = stats[owned]
        total = stats[COUNTS].sum().to_numpy()
        mine = stats[stats["owner_key"].isin(keys.dropna().unique())]  # only the frame's owners are summed
        owner_tot = mine.groupby("owner_key")[COUNTS].sum().reindex(keys.to_numpy()).fillna(0.0).to_numpy()
    own_counts = owner_tot[:, 0]
    if leave_out == "fold":
        own_fold = np.where(in_book, patent_fold(pd.Series(ids), folds), -1).astype(np.int64)
        by_owner_fold = mine.groupby(["owner_key", "fold"])[COUNTS].sum()
        by_fold = stats.groupby("fold")[COUNTS].sum().reindex(range(folds), fill_value=0.0)
        pair = pd.MultiIndex.from_arrays([keys.to_numpy(), own_fold])
        owner_fold = by_owner_fold.reindex(pair).fillna(0.0).to_numpy()
        seen = owner_tot - owner_fold  # out of fold: the owner's record without this patent's part
        pop = total[None, :] - np.where(in_book[:, None], by_fold.reindex(own_fold.clip(min=0)).to_numpy(), 0.0)
        others = own_counts - in_book.astype("float64") * (keys.notna().to_numpy())
    else:  # leave only the patent itself out: its own row of the book (as of the date), where the book has it and names its owner
        kept = in_book & row_owned
        own = np.where(kept[:, None], row_values, 0.0)
        owner_of = np.where(kept, row_owners, None)
        same_owner = (owner_of == keys.to_numpy(dtype=object))[:, None] & kept[:, None]
        seen = owner_tot - own * same_owner
        pop = total[None, :] - own
        others = own_counts - own[:, 0] * same_owner[:, 0]
    idx = {c: i for i, c in enumerate(COUNTS)}

    def smoothed(flag: str, n: str) -> np.ndarray:
        rate = pop[:, idx[flag]] / np.where(pop[:, idx[n]] > 0, pop[:, idx[n]], np.nan)
        return (seen[:, idx[flag]] + prior_strength * rate) / (seen[:, idx[n]] + prior_strength)

    out = pd.DataFrame(
        {
            "owner_portfolio_size": others,
            "owner_lapse_share": smoothed("lapsed", "n"),
            "owner_pledged_share": smoothed("pledged", "pledged_n"),
            "owner_licensed_share": smoothed("licensed", "licensed_n"),
            "owner_transferred_share": smoothed("transferred", "transferred_n"),
        },
        index=frame.index,
    )
    return out.where(keys.notna(), axis=0)


def _layered_counts(book: LayeredOwnerBook, vd: pd.Timestamp, keys: np.ndarray, ids: np.ndarray) -> tuple:
    """:func:`owner_history`'s sums and each patent's own row of a :class:`LayeredOwnerBook`: the
    base's sums as of ``vd`` (kept), less the base rows the top replaces, plus the top's rows."""
    base = _base_sums(book.base, vd)
    top, top_values, top_owners = _counts(book.top, vd)
    top_owned = pd.notna(top_owners)
    replaced = base["ids"].get_indexer(book.top["patent_id"].astype("str").to_numpy(dtype=object))  # whatever the top row's date
    replaced = replaced[replaced >= 0]
    gone = replaced[base["owned"][replaced]]
    total = base["total"] - base["values"][gone].sum(axis=0) + top_values[top_owned].sum(axis=0)
    owner_tot = (base["by_owner"].reindex(keys).fillna(0.0).to_numpy() - _per_key(base["owners"][gone], base["values"][gone], keys)
                 + _per_key(top_owners[top_owned], top_values[top_owned], keys))
    listed = pd.Index(book.top["patent_id"].astype("str").to_numpy(dtype=object)).get_indexer(ids) >= 0
    top_row = pd.Index(top["patent_id"].astype("str").to_numpy(dtype=object)).get_indexer(ids)
    base_row = np.where(listed, -1, base["ids"].get_indexer(ids))
    in_top = top_row >= 0

    def own(top_part, base_part, fill):
        return np.where(in_top.reshape((-1,) + (1,) * (top_part.ndim - 1)), _taken(top_part, top_row, fill), _taken(base_part, base_row, fill))

    return (total, owner_tot, own(top_values, base["values"], 0.0), own(top_owners, base["owners"], None),
            own(top_owned, base["owned"], False), in_top | (base_row >= 0))


def build_owners(frame: pd.DataFrame, ctx) -> pd.DataFrame:
    """The ``owners`` builder group: :func:`owner_history` against ``ctx.owner_book`` (missing
    everywhere without a book), leaving out what ``ctx.owner_leave_out`` says. Spec parameters
    ``builders: {owners: {prior_strength, folds}}``."""
    if ctx.owner_book is None:
        return pd.DataFrame(np.nan, index=frame.index, columns=list(OWNER_FEATURES))
    params = (ctx.params or {}).get("owners", {})
    return owner_history(
        frame, ctx.owner_book, ctx.valuation_date,
        prior_strength=float(params.get("prior_strength", 10.0)), folds=int(params.get("folds", 5)), leave_out=ctx.owner_leave_out,
    )
