"""Pool analytics and monitoring alerts for a scored collateral book (IP-ABS originators,
collateral managers).

:func:`pool_summary` gives the tables an ABS offering circular shows (e.g. 高新投知识产权2期: balance, counts,
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


# --- what an analyst reads: Chinese first, English beside it; numbers formatted ------------------

#: Title of each table (sheet name of pool.xlsx, heading when printed).
TABLE_TITLES = {
    "overview": "概览 Overview",
    "by_patent_type": "按专利类型 By patent type",
    "top_borrowers": "前五大借款人 Top 5 borrowers",
    "top_industries": "前三大技术部门 Top 3 sectors",
    "value_bands": "价值区间 Value bands",
    "grades": "评级分布 Grades",
    "alerts": "监控预警 Alerts",
}
#: Column headings, Chinese with English beside them.
COLUMN_LABELS = {
    "patents": "专利数 Patents", "value_rmb": "价值（元） Value (RMB)", "share_of_value": "价值占比 Share of value",
    "patent_type": "专利类型 Patent type", "borrower": "借款人 Borrower", "industry": "技术部门 Technology sector",
    "value_band": "价值区间 Value band", "grade": "评级 Grade", "patent_id": "专利号 Patent",
    "alert": "预警 Alert", "severity": "级别 Severity", "detail": "说明 Detail",
    "metric": "指标 Metric", "value": "数值 Value",
}
#: The overview's figures, in order, with their labels.
OVERVIEW_LABELS = {
    "patents": "专利数 Patents in the book", "scored_patents": "已评分专利 Scored patents",
    "unscored_patents": "未评分专利 Patents without a score",
    "not_in_force_patents_at_zero": "非有效专利（计为0） Rights not in force, counted at 0",
    "borrowers": "借款人数 Borrowers", "total_value_rmb": "总价值（元） Total value (RMB)",
    "average_value_rmb": "平均价值（元） Average value (RMB)", "median_value_rmb": "价值中位数（元） Median value (RMB)",
    "max_value_rmb": "最大价值（元） Largest value (RMB)", "top5_borrower_share": "前五大借款人集中度 Top-5 borrower share",
    "top3_industry_share": "前三大技术部门集中度 Top-3 sector share",
}
#: Values shown in Chinese with the English key beside them.
VALUE_LABELS = {
    "patent_type": {"invention": "发明 invention", "utility_model": "实用新型 utility model", "design": "外观设计 design"},
    "industry": {"Electrical engineering": "电气工程 Electrical engineering", "Instruments": "仪器 Instruments", "Chemistry": "化学 Chemistry",
                 "Mechanical engineering": "机械工程 Mechanical engineering", "Other fields": "其他领域 Other fields", "unknown": "未知 unknown"},
    "alert": {"status": "权利终止 right ended", "life_before_loan_end": "保护期早于贷款到期 expires before the loan ends",
              "fee_overdue": "年费逾期 fee overdue", "fee_due": "年费将到期 fee falls due", "value_drop": "价值下降 value drop"},
    "severity": {"high": "高 high", "medium": "中 medium", "low": "低 low"},
}


def _kind(column: str) -> str:
    if column.endswith("_rmb"):
        return "money"
    if column.startswith("share") or column.endswith("_share"):
        return "share"
    if column in ("patents", "scored_patents", "unscored_patents", "not_in_force_patents_at_zero", "borrowers"):
        return "count"
    return "text"


def readable_tables(tables: dict, alerts: pd.DataFrame | None = None) -> dict:
    """The pool tables (and alerts) as an analyst reads them: enum values in Chinese with the
    English beside them, the overview as rows of (metric, value), typed numbers kept. Keys are
    :data:`TABLE_TITLES`' keys."""
    out = {}
    for name, table in {**tables, **({"alerts": alerts} if alerts is not None else {})}.items():
        table = table.copy()
        if name == "overview":
            row = table.iloc[0]
            table = pd.DataFrame({"metric": [OVERVIEW_LABELS.get(k, k) for k in row.index], "value": row.to_numpy(dtype=object), "kind": [_kind(k) for k in row.index]})
        for col, labels in VALUE_LABELS.items():
            if col in table:
                table[col] = table[col].map(lambda v, labels=labels: labels.get(v, v))
        out[name] = table
    return out


def _formatted(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if kind == "money":
        return f"{value:,.0f}"
    if kind == "share":
        return f"{value:.1%}"
    if kind == "count":
        return f"{int(value):,d}"
    return str(value)


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """A readable table (see :func:`readable_tables`) as text: money with thousands separators,
    shares as percentages, counts as whole numbers, never scientific notation; missing as "—"."""
    if "kind" in table:  # the overview: one kind per row
        values = [_formatted(v, k) for v, k in zip(table["value"], table["kind"])]
        return pd.DataFrame({COLUMN_LABELS["metric"]: table["metric"], COLUMN_LABELS["value"]: values})
    out = pd.DataFrame({COLUMN_LABELS.get(c, c): [_formatted(v, _kind(c)) for v in table[c]] for c in table.columns})
    return out


def write_pool_workbook(readable: dict, path, *, notes: list[tuple[str, str]]):
    """``pool.xlsx``: one sheet per table (typed cells, money with thousands separators, shares as
    percentages, Chinese headings with English beside them, frozen header row) and a sheet "说明
    About" with ``notes`` (the as-of date, the book, what was left out)."""
    from ipvalue.io.spreadsheets import COUNT, MONEY, PERCENT, write_xlsx_atomic

    number_format = {"money": MONEY, "share": PERCENT, "count": COUNT}
    sheets = {}
    for name, table in readable.items():
        if "kind" in table:  # the overview: one figure per row, each with its own number format
            formats = {"value": [number_format.get(k) for k in table["kind"]]}
            sheets[TABLE_TITLES[name]] = (table[["metric", "value"]], {c: COLUMN_LABELS[c] for c in ("metric", "value")}, formats)
            continue
        formats = {c: number_format[_kind(c)] for c in table.columns if _kind(c) in number_format}
        sheets[TABLE_TITLES.get(name, name)] = (table, {c: COLUMN_LABELS.get(c, c) for c in table.columns}, formats)
    return write_xlsx_atomic(sheets, path, notes=notes, properties={"title": "资产池分析 Pool analytics", "subject": "ipvalue pool"})
