"""Pool analytics and monitoring alerts for a scored collateral book (IP-ABS originators,
collateral managers).

:func:`pool_summary` gives the tables an ABS offering circular shows (DOMAIN.md: balance, counts,
top-5 borrower and top-3 industry concentration, type, value and grade distributions);
:func:`monitoring_alerts` flags each pledged patent whose right ended, whose life ends before
its loan, whose fee falls due, or whose value dropped since the last scoring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue.exceptions import InputError
from ipvalue.features import PatentFeatureBuilder
from ipvalue.frame import DEAD_STATUSES
from ipvalue.lending.reconcile import collateral_status
from ipvalue.methods.income.scorecard import IndicatorScorecard

VALUE_BANDS_RMB = [0, 5e5, 1e6, 5e6, 1e7, np.inf]
VALUE_BAND_LABELS = ["<50万", "50-100万", "100-500万", "500-1000万", "≥1000万"]


def _book_view(book: pd.DataFrame, scored: pd.DataFrame, value_column: str, valuation_date) -> pd.DataFrame:
    if value_column not in scored.columns:
        raise InputError(f"The scored file has no column {value_column!r}. Fix: pass value_column= one of {list(scored.columns)}.")
    features = PatentFeatureBuilder(valuation_date=valuation_date).fit_transform(book)
    view = pd.DataFrame({
        "patent_id": book["patent_id"].to_numpy(),
        "patent_type": book["patent_type"].to_numpy(),
        "borrower": (book["borrower"] if "borrower" in book else book["applicants"].str.split(";").str[0]).to_numpy(),
        "industry": features["tech_sector"].astype(object).fillna("unknown").to_numpy(),
        "grade": IndicatorScorecard().fit().score(features)["grade"].to_numpy(),
        "collateral_status": collateral_status(book, features).to_numpy(),
    })
    view = view.merge(scored[["patent_id", value_column]].rename(columns={value_column: "value_rmb"}), on="patent_id", how="left")
    # lapsed, expired, invalidated and pending rights are no collateral: worth 0 in the pool, whatever the model said
    view.loc[view["value_rmb"].notna() & view["collateral_status"].ne("in_force"), "value_rmb"] = 0.0
    return view


def _share_table(view: pd.DataFrame, by: str, total: float) -> pd.DataFrame:
    t = view.groupby(by, dropna=False).agg(patents=("patent_id", "size"), value_rmb=("value_rmb", "sum")).sort_values("value_rmb", ascending=False)
    return t.assign(share_of_value=t["value_rmb"] / total if total else np.nan).reset_index()


def pool_summary(book: pd.DataFrame, scored: pd.DataFrame, *, value_column: str = "value_p50_rmb", valuation_date=None) -> dict:
    """Offering-circular tables of a scored book.

    Parameters
    ----------
    book : PatentFrame (plus an optional ``borrower`` column; else the first applicant)
    scored : pandas.DataFrame
        Output of ``ipvalue score`` (``patent_id`` and ``value_column``).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``overview``, ``by_patent_type``, ``top_borrowers`` (5), ``top_industries`` (3, WIPO
        sectors), ``value_bands``, ``grades``. Patents of the book without a score are counted in
        the overview (``unscored_patents``), never dropped silently.
    """
    view = _book_view(book, scored, value_column, valuation_date)
    valued = view[view["value_rmb"].notna()]
    total = float(valued["value_rmb"].sum())
    borrowers = _share_table(valued, "borrower", total)
    industries = _share_table(valued, "industry", total)
    overview = pd.DataFrame([{
        "patents": len(view), "scored_patents": len(valued), "unscored_patents": int(view["value_rmb"].isna().sum()),
        "not_in_force_patents_at_zero": int(view["collateral_status"].ne("in_force").sum()),
        "borrowers": valued["borrower"].nunique(), "total_value_rmb": total, "average_value_rmb": float(valued["value_rmb"].mean()),
        "median_value_rmb": float(valued["value_rmb"].median()), "max_value_rmb": float(valued["value_rmb"].max()),
        "top5_borrower_share": float(borrowers["share_of_value"].head(5).sum()), "top3_industry_share": float(industries["share_of_value"].head(3).sum()),
    }])
    bands = pd.cut(valued["value_rmb"], VALUE_BANDS_RMB, labels=VALUE_BAND_LABELS, right=False)
    value_bands = valued.groupby(bands, observed=False).agg(patents=("patent_id", "size"), value_rmb=("value_rmb", "sum")).reset_index(names="value_band")
    return {
        "overview": overview,
        "by_patent_type": _share_table(valued, "patent_type", total),
        "top_borrowers": borrowers.head(5),
        "top_industries": industries.head(3),
        "value_bands": value_bands,
        "grades": _share_table(valued, "grade", total).sort_values("grade").reset_index(drop=True),
    }


def monitoring_alerts(
    book: pd.DataFrame,
    *,
    as_of,
    scored: pd.DataFrame | None = None,
    previous: pd.DataFrame | None = None,
    value_column: str = "value_p50_rmb",
    fee_due_days: int = 60,
    value_drop: float = 0.2,
) -> pd.DataFrame:
    """Alerts for each pledged patent, as of a date.

    ``status``: the right ended (dead status, lapse by unpaid fees, or term over);
    ``life_before_loan_end``: the statutory expiry falls before the book's ``loan_end_date``;
    ``fee_overdue`` / ``fee_due``: fees paid only to a past date, or to within ``fee_due_days``;
    ``value_drop``: the value fell by more than ``value_drop`` since the ``previous`` scoring.

    Returns
    -------
    pandas.DataFrame: ``patent_id, alert, severity, detail`` (one row per alert).
    """
    as_of = pd.Timestamp(as_of)
    built = PatentFeatureBuilder(valuation_date=as_of).fit(book).build(book)
    life, expiry = built.matrix, built.extras["expiry_date"]
    ids = book["patent_id"]
    parts = []

    def add(mask, alert, severity, detail):
        mask = pd.Series(mask, index=book.index).fillna(False).astype(bool)
        if mask.any():
            parts.append(pd.DataFrame({"patent_id": ids[mask].to_numpy(), "alert": alert, "severity": severity, "detail": pd.Series(detail, index=book.index)[mask].to_numpy()}))

    ended = book["legal_status"].isin(DEAD_STATUSES) | (life["is_lapsed"] == 1) | (life["is_expired"] == 1)
    add(ended, "status", "high", "right ended: status " + book["legal_status"].astype(str) + ", expiry " + expiry.dt.strftime("%Y-%m-%d").fillna("?"))
    if "loan_end_date" in book:
        loan_end = pd.to_datetime(book["loan_end_date"], errors="coerce")
        add(~ended & (expiry < loan_end), "life_before_loan_end", "high", "expiry " + expiry.dt.strftime("%Y-%m-%d") + " before loan end " + loan_end.dt.strftime("%Y-%m-%d"))
    paid = book["fees_paid_until"]
    add(~ended & (paid < as_of), "fee_overdue", "high", "fees paid only until " + paid.dt.strftime("%Y-%m-%d"))
    days = (paid - as_of).dt.days
    add(~ended & days.between(0, fee_due_days), "fee_due", "medium", "fees paid until " + paid.dt.strftime("%Y-%m-%d") + " (" + days.astype("Int64").astype(str) + " days)")
    if scored is not None and previous is not None:
        now = book[["patent_id"]].merge(scored[["patent_id", value_column]], on="patent_id", how="left")[value_column].to_numpy()
        before = book[["patent_id"]].merge(previous[["patent_id", value_column]], on="patent_id", how="left")[value_column].to_numpy()
        change = (now - before) / before
        add(change < -value_drop, "value_drop", "medium", [f"value {b:,.0f} -> {n:,.0f} RMB ({c:+.0%})" for n, b, c in zip(now, before, change)])
    columns = ["patent_id", "alert", "severity", "detail"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
