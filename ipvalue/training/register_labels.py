"""Renewal labels from a bank's CNIPA legal-status export: how many 年费 each granted patent paid.

``ipvalue train`` on an experiment with ``data.loader: cnipa_register`` reads the bank's patent
list (a PatentFrame file with 申请号) and its legal-status export (:func:`ipvalue.io.read_register`)
and labels each patent with ``fees_paid``: the number of fee stages of the experiment's
filing-anchored schedule (``cn-annual``: the filing anniversaries) it paid. The rules:

* The right's status is the last status event on or before ``exported_on``: CF01 未缴年费专利权终止
  (lapsed) or RR01 专利权的恢复 (in force again). A patent with no CF01, or whose CF01 was
  followed by RR01, paid every fee that fell due (the renewal model censors the stages after
  ``observed_until``).
* A lapsed patent's right ended on the 终止日期 that the CF01 announcement states: the due date
  of the unpaid fee, a filing anniversary. The unpaid fee is the anniversary nearest to it; a
  终止日期 more than 45 days from every anniversary is refused (the export and the filing date
  disagree). When the announcement states no 终止日期, the unpaid fee is the last one whose
  6-month late period (``grace_days``) ended on or before the announcement date: an assumption
  that holds while CNIPA announces within a year after the late period, counted apart in
  ``label_basis``.
* A patent whose right may have ended another way (an invalidation event, or an event the code
  table does not know whose text says 终止 / 无效 / 放弃 / 撤销) is left out: its later fees are
  not observed, and a global observation date cannot censor it (``fees_paid`` missing,
  ``label_basis`` "other ending: left out").
* A patent with no event at all in the export paid every fee due ("no events in the export",
  counted apart: a high count suggests a partial export or mistyped 申请号).
* A termination dated before the grant, or on or after the statutory expiry, is an error naming
  the export row: the export and the patent list disagree.

The stages between ``observed_until`` and ``exported_on`` are left censored by the model: a fee
unpaid in that window may not be announced yet (the late period, the notice and the gazette take
months), so ``observed_until`` must leave that lag before ``exported_on``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ipvalue.exceptions import InputFileError
from ipvalue.io.register import RegisterEvents, load_code_table, normalise_application_number
from ipvalue.models.renewal import FeeSchedule

TERMINATION_DATE = re.compile(r"终止日(?:期)?\s*[:：]?\s*(\d{4})\s*[-./年]\s*(\d{1,2})\s*[-./月]\s*(\d{1,2})")
#: Days by which a stated 终止日期 may precede the computed due date of the unpaid fee.
TOLERANCE_DAYS = 45
LABEL_BASES = ("no termination", "no events in the export", "restored", "termination date stated",
               "termination date from the announcement", "other ending: left out")
#: Words in an unknown event's text that may mean the right ended another way than for fees.
OTHER_ENDING = "终止|无效|放弃|撤销"


def termination_dates(info: pd.Series) -> pd.Series:
    """The 终止日期 stated in CF01 event texts (NaT where none is stated)."""
    parts = info.astype("string").str.extract(TERMINATION_DATE)
    text = parts[0] + "-" + parts[1].str.zfill(2) + "-" + parts[2].str.zfill(2)
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")


def fees_paid_from_register(patents: pd.DataFrame, register: RegisterEvents, schedule: FeeSchedule, *, exported_on, expiry=None) -> pd.DataFrame:
    """Each patent's renewal label from the register export.

    Parameters
    ----------
    patents : PatentFrame with ``application_number``, ``filing_date`` and ``grant_date``.
    register : RegisterEvents (:func:`ipvalue.io.read_register`).
    schedule : FeeSchedule anchored at filing (``cn-annual``).
    exported_on : date-like
        The export's date: later events are ignored.
    expiry : pandas.Series, optional
        Statutory expiry per patent, to check that no termination falls after it.

    Returns
    -------
    pandas.DataFrame indexed like ``patents``: ``fees_paid`` (0 .. number of stages; missing for
    a patent left out), ``label_basis`` (one of :data:`LABEL_BASES`), ``pledge_count``,
    ``licence_count``, ``transfer_count`` (registrations and transfers in the export up to
    ``exported_on``).

    Raises
    ------
    InputFileError
        The schedule is not filing-anchored, a patent has no application number, or a termination
        contradicts the patent's grant date or term (the message names the export row).
    """
    if schedule.anchor != "filing":
        raise InputFileError(f"A register export labels annual fees counted from the filing date. Got fee schedule {schedule.name!r} "
                             f"(anchored at {schedule.anchor}). Fix: use 'cn-annual' in the experiment's model.fee_schedule.")
    key = normalise_application_number(patents["application_number"]) if "application_number" in patents else pd.Series(pd.NA, index=patents.index)
    if "application_number" not in patents:
        raise InputFileError("The patent list has no column 'application_number' (申请号). Fix: add it, so each patent joins its register history.")
    if key.isna().any() or (key == "").any():
        first = patents.index[(key.isna() | (key == "")).to_numpy()][0]
        raise InputFileError(f"Patent list, patent {patents.loc[first, 'patent_id']}, column 'application_number': empty. "
                             "Fix: give every patent its 申请号 so it joins the register export.")
    repeated = key.duplicated(keep=False)
    if repeated.any():
        rows = patents.index[repeated.to_numpy()][:4].tolist()
        raise InputFileError(f"Patent list, patents {patents.loc[rows, 'patent_id'].tolist()}, column 'application_number': {key[repeated].iloc[0]!r} appears {int(repeated.sum())} times "
                             "(compared without CN/ZL prefixes, dots and blanks). Fix: one row per application, so each joins one register history.")
    table, _ = load_code_table()
    ev = register.events[register.events["event_date"] <= pd.Timestamp(exported_on)]
    ev = ev.join(table[["status", "kind", "action", "transfer", "invalidation"]], on="code")
    other = ev["invalidation"].fillna(False).astype(bool) | (~ev["known"] & (ev["status_text"].str.contains(OTHER_ENDING, na=False)
                                                                             | ev["info"].str.contains(OTHER_ENDING, na=False)))
    other_ending = key.isin(set(ev.loc[other, "application_number"])).to_numpy()
    no_events = ~key.isin(set(ev["application_number"])).to_numpy()
    status = ev[ev["status"].notna()].sort_values(["application_number", "event_date", "row"]).groupby("application_number").last()
    last = status.reindex(key.to_numpy()).set_axis(patents.index)
    ever_lapsed = key.isin(set(ev.loc[ev["status"] == "lapsed", "application_number"])).to_numpy()
    lapsed = last["status"].eq("lapsed").to_numpy()

    due = schedule.due_dates(patents)
    grace = pd.Timedelta(days=schedule.grace_days)
    stated = termination_dates(last["info"])
    unreadable = lapsed & last["info"].astype("string").str.contains("终止日", na=False).to_numpy() & stated.isna().to_numpy()
    if unreadable.any():
        i = patents.index[unreadable][0]
        raise InputFileError(f"Register export row {int(last.loc[i, 'row'])} (申请号 {key[i]}), column 'info' (法律状态信息): the 终止日期 in "
                             f"{last.loc[i, 'info']!r} is not a date. Fix: write it as YYYY.MM.DD (or YYYY-MM-DD, YYYY年MM月DD日), or remove it "
                             "to date the lapse from the announcement.")
    announced = last["event_date"]
    with_date = lapsed & stated.notna().to_numpy()
    paid = np.full(len(patents), float(schedule.n_stages))
    gap = np.abs((due - stated.to_numpy()[:, None]).astype("timedelta64[D]").astype("float64"))  # days to each anniversary (NaN: NaT)
    nearest = np.argmin(np.where(np.isnan(gap), np.inf, gap), axis=1)
    far = with_date & ~(np.take_along_axis(np.nan_to_num(gap, nan=np.inf), nearest[:, None], axis=1)[:, 0] <= TOLERANCE_DAYS)
    if far.any():
        i = patents.index[far][0]
        raise InputFileError(
            f"Register export row {int(last.loc[i, 'row'])} (申请号 {key[i]}), column 'info' (法律状态信息): 终止日期 {stated[i]:%Y-%m-%d} is more "
            f"than {TOLERANCE_DAYS} days from every filing anniversary of {patents.loc[i, 'patent_id']} (filed "
            f"{patents.loc[i, 'filing_date']:%Y-%m-%d}), where an unpaid annual fee ends the right; {int(far.sum())} such patent(s). "
            "Fix: check the filing date against the register, or drop the patent from the training data."
        )
    late_over = ((due + grace.to_timedelta64()) <= announced.to_numpy()[:, None]).sum(axis=1)
    paid = np.where(with_date, nearest, np.where(lapsed, np.maximum(late_over - 1, 0), paid)).astype(float)
    stage = np.clip(paid.astype(int), 0, schedule.n_stages - 1)
    lapse_date = pd.Series(np.where(lapsed, due[np.arange(len(patents)), stage], np.datetime64("NaT")), index=patents.index)
    lapse_date = stated.where(with_date, lapse_date)  # the stated 终止日期 where there is one

    bad = lapsed & (patents["grant_date"].isna() | (lapse_date <= patents["grant_date"])).to_numpy()
    if expiry is not None:
        bad |= lapsed & (lapse_date >= pd.to_datetime(expiry)).to_numpy()
    if bad.any():
        i = patents.index[bad][0]
        granted_on = "none (pending)" if pd.isna(patents.loc[i, "grant_date"]) else f"{patents.loc[i, 'grant_date']:%Y-%m-%d}"
        raise InputFileError(
            f"Register export row {int(last.loc[i, 'row'])} (申请号 {key[i]}): the right of {patents.loc[i, 'patent_id']} ended "
            f"{lapse_date[i]:%Y-%m-%d} for unpaid fees, outside its granted term (grant {granted_on}, "
            f"filed {patents.loc[i, 'filing_date']:%Y-%m-%d}); {int(bad.sum())} such patent(s). Fix: check the patent list's dates "
            "against the register, or drop the patent from the training data."
        )
    basis = np.select(
        [other_ending, no_events, ~lapsed & ever_lapsed, ~lapsed, with_date],
        [LABEL_BASES[5], LABEL_BASES[1], LABEL_BASES[2], LABEL_BASES[0], LABEL_BASES[3]], default=LABEL_BASES[4],
    )
    paid = np.where(other_ending, np.nan, paid)
    counts = pd.DataFrame({
        "pledge_count": ev[(ev["kind"] == "pledge") & (ev["action"] == "open")].groupby("application_number").size(),
        "licence_count": ev[(ev["kind"] == "licence") & (ev["action"] == "open")].groupby("application_number").size(),
        "transfer_count": ev[ev["transfer"].fillna(False).astype(bool)].groupby("application_number").size(),
    }).reindex(key.to_numpy()).fillna(0.0).set_axis(patents.index)
    return pd.DataFrame({"fees_paid": paid, "label_basis": basis}, index=patents.index).join(counts)
