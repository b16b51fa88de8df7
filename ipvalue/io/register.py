"""CNIPA legal-status event exports (法律状态 / 事件代码): load, join to a PatentFrame, derive the
register facts the pledge checks read.

A bank receives a patent's legal-status history from CNIPA (or a commercial database mirroring
it) as CSV or Excel with Chinese headers, one row per event::

    申请号, 法律状态公告日, 法律状态, 法律状态信息, 事件代码
    202010123456.7, 2023-05-12, 专利权质押合同登记的生效, 登记号：Y2023980001234 ..., PE01

:func:`read_register` reads such a file (UTF-8 or GBK / GB18030, CSV or Excel, through
:func:`ipvalue.io.read_table`) and checks every row; :func:`register_status` joins the events to a
PatentFrame by application number (申请号, normalised: ``CN``/``ZL`` prefixes, dots and blanks
removed) and derives, as of a date, one row per patent:

``register_events``, ``register_status`` (``in_force`` / ``lapsed`` from the last CF01 / RR01,
else missing), ``register_status_date``, ``active_pledges``, ``preservation_in_force``,
``active_licences``, ``exclusive_licences``, ``sole_licences``, ``ordinary_licences``,
``licence_types``, ``restorations``, ``invalidation_events``, ``transfers``, ``last_transfer_on``,
``register_fees_paid_until`` (from a 年费缴至 column when the export has one), ``unknown_codes``.

Registrations (pledges, licences, preservations) are matched by their contract / registration
number (登记号, 备案号) when the event text gives one: a registration is active when it was opened
and not closed by a later event. A close without a number closes one of the unnumbered
registrations of that kind (and, when only numbered ones are open, reduces the count while their
licence types stay listed: the conservative reading). The code table is package data
(``ipvalue/mappings/cnipa-events.yaml``, each code with meaning and source); a code not in it is
kept and reported (:attr:`RegisterEvents.unknown`), never dropped.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.config import content_hash, load_yaml
from ipvalue.exceptions import InputFileError
from ipvalue.frame import refuse_lone_surrogates
from ipvalue.io.tables import ReadLimits, read_table
from ipvalue.names import normalise_text

logger = logging.getLogger(__name__)

#: Source headers (after removing blanks) of each canonical event column; the first present wins.
HEADERS = {
    "application_number": ("申请号", "专利申请号", "application_number", "application_no"),
    "event_date": ("法律状态公告日", "法律状态生效日", "公告日", "事件日期", "event_date", "date"),
    "code": ("事件代码", "法律状态代码", "代码", "event_code", "code"),
    "status_text": ("法律状态", "法律状态名称", "status", "legal_status"),
    "info": ("法律状态信息", "法律状态详情", "详细信息", "info", "details"),
    "fees_paid_until": ("年费缴至", "年费缴费截止日", "fees_paid_until"),
}
REQUIRED = ("application_number", "event_date")
CODE_PATTERN = re.compile(r"\b([A-Z]{2}\d{2})\b")
NUMBER_PATTERN = re.compile(r"(?:合同备案号|合同登记号|备案号|登记号|登记编号)\s*[:：]?\s*([A-Za-z0-9-]{4,})")
#: Licence types named in the event text (专利实施许可合同备案办法: 独占 / 排他 / 普通).
LICENCE_TYPES = (("独占", "exclusive"), ("排他", "sole"), ("普通", "ordinary"))
KINDS = ("pledge", "licence", "preservation")
#: Order of events on one day: opens before changes before closes, so a registration opened and
#: released the same day is closed.
_ORDER = {"open": 0, "change": 1, "close": 2}


def normalise_application_number(values: pd.Series) -> pd.Series:
    """申请号 compared without ``CN`` / ``ZL`` prefixes, dots, blanks or case: ``CN202010123456.7``,
    ``ZL 202010123456.7`` and ``2020101234567`` are the same application."""
    text = values.astype("string").map(lambda v: normalise_text(v) if isinstance(v, str) else v).astype("string")
    return text.str.upper().str.replace(r"[\s.．]", "", regex=True).str.replace(r"^(CN|ZL)+", "", regex=True)


def load_code_table(which: str = "cnipa-events") -> tuple[pd.DataFrame, str]:
    """The event-code table (``mappings/<which>.yaml``, or the bank's copy) and its name-version-hash.

    Returns a frame indexed by code with ``meaning_zh``, ``meaning_en``, ``source``, ``checked``,
    ``status``, ``kind``, ``action``, ``transfer``, ``restoration``, ``invalidation``.
    """
    raw, origin = load_yaml(which, folder="mappings")
    rows = []
    for code, spec in (raw.get("codes") or {}).items():
        if not isinstance(spec, dict) or not spec.get("meaning_zh") or not spec.get("source"):
            raise InputFileError(f"Code {code!r} of event-code table {origin} needs 'meaning_zh' and 'source'. Fix: document every code.")
        effect = spec.get("effect") or {}
        kind = next((k for k in KINDS if k in effect), None)
        if kind is not None and effect[kind] not in _ORDER:
            raise InputFileError(f"Code {code!r} of {origin}: effect {kind}: {effect[kind]!r} must be one of {list(_ORDER)}.")
        if effect.get("status") not in (None, "in_force", "lapsed"):
            raise InputFileError(f"Code {code!r} of {origin}: effect status {effect['status']!r} must be in_force or lapsed.")
        rows.append({"code": str(code).upper(), "meaning_zh": spec["meaning_zh"], "meaning_en": spec.get("meaning_en", ""),
                     "source": spec["source"], "checked": bool(spec.get("checked", False)), "status": effect.get("status"),
                     "kind": kind, "action": effect.get(kind) if kind else None, "transfer": bool(effect.get("transfer")),
                     "restoration": bool(effect.get("restoration")), "invalidation": bool(effect.get("invalidation"))})
    table = pd.DataFrame(rows).set_index("code")
    return table, f"{raw.get('name', which)}-v{raw.get('version', '?')}-{content_hash(raw)}"


@dataclass
class RegisterEvents:
    """A register export, read and checked.

    Attributes
    ----------
    events : pandas.DataFrame
        One row per event: ``row`` (1-based data row of the file), ``application_number``
        (normalised), ``event_date``, ``code``, ``status_text``, ``info``, ``fees_paid_until``,
        ``known``, ``meaning_zh``, ``meaning_en``.
    unknown : pandas.DataFrame
        The rows whose code is not in the code table (kept in ``events`` too).
    code_table : str
        Name, version and hash of the code table used.
    notes : list of str
        E.g. the encoding the file was decoded with.
    """

    events: pd.DataFrame
    unknown: pd.DataFrame
    code_table: str
    notes: list[str] = field(default_factory=list)


def parse_register(raw: pd.DataFrame, *, source: str = "register export", codes: str = "cnipa-events") -> RegisterEvents:
    """Check and type a raw register table (text cells, Chinese or English headers).

    Raises
    ------
    InputFileError
        A required column is missing, or a row has no application number or an unreadable date
        (the message names the row, the column, the value and the fix).
    PatentFrameError
        A text cell holds a lone surrogate (not Unicode text), naming its row and column.
    """
    refuse_lone_surrogates(raw, source=source)
    table, table_id = load_code_table(codes)
    headers = {re.sub(r"\s", "", str(c)): c for c in raw.columns}
    picked = {}
    for target, names in HEADERS.items():
        found = next((headers[n] for n in names if n in headers), None)
        if found is not None:
            picked[target] = raw[found]
    missing = [c for c in REQUIRED if c not in picked]
    if missing:
        raise InputFileError(f"{source} has no column for {missing} (headers: {list(raw.columns)}). "
                             f"Fix: export 申请号 and 法律状态公告日 (accepted headers: {[HEADERS[c] for c in missing]}).")
    if "code" not in picked and "status_text" not in picked:
        raise InputFileError(f"{source} has neither an event-code column (事件代码) nor a status column (法律状态). Fix: export one of them.")
    n = len(raw)
    empty = pd.Series([pd.NA] * n, index=raw.index, dtype="string")
    ev = pd.DataFrame({"row": np.arange(1, n + 1), "application_number": normalise_application_number(picked["application_number"])})
    for col in ("status_text", "info"):
        ev[col] = picked.get(col, empty).astype("string").str.strip()

    def bad(col, mask, what, fix):
        r = ev.loc[mask].iloc[0]
        value = picked[col].loc[mask].iloc[0]
        raise InputFileError(f"{source}, row {r['row']}, column {col!r}: {what} {value!r} ({int(mask.sum())} such row(s)). Fix: {fix}")

    if ev["application_number"].isna().any() or (ev["application_number"] == "").any():
        bad("application_number", ev["application_number"].isna() | (ev["application_number"] == ""), "no application number", "every event needs its 申请号.")
    for col in ("event_date", "fees_paid_until"):
        if col not in picked:
            ev[col] = pd.NaT
            continue
        text = picked[col].astype("string").str.strip().str.replace(r"[./年月]", "-", regex=True).str.replace("日", "", regex=False)
        dates = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        given = text.notna() & (text != "")
        if (given & dates.isna()).any() or (col == "event_date" and (~given).any()):
            bad(col, (given & dates.isna()) | ((~given) if col == "event_date" else False), "unreadable or missing date", "write dates as YYYY-MM-DD (or YYYY.MM.DD, YYYY年MM月DD日).")
        ev[col] = dates
    # The code: the code column, else a code written inside the status text, else the status text's meaning.
    code = picked["code"].astype("string").str.strip().str.upper() if "code" in picked else empty.copy()
    from_text = ev["status_text"].str.extract(CODE_PATTERN, expand=False)
    code = code.where(code.notna() & (code != ""), from_text)
    by_meaning = pd.Series(table.index, index=table["meaning_zh"]).to_dict()
    code = code.where(code.notna(), ev["status_text"].map(by_meaning))
    ev["code"] = code.fillna("").astype(str)
    ev["known"] = ev["code"].isin(table.index)
    ev = ev.join(table[["meaning_zh", "meaning_en"]], on="code")
    unknown = ev.loc[~ev["known"], ["row", "application_number", "event_date", "code", "status_text", "info"]]
    if len(unknown):
        logger.warning("%s: %d event(s) with codes not in the code table %s: %s", source, len(unknown), table_id, sorted(set(unknown["code"])))
    return RegisterEvents(events=ev, unknown=unknown.reset_index(drop=True), code_table=table_id)


def read_register(path: str | Path, *, encoding: str | None = None, sheet_name=0, codes: str = "cnipa-events",
                  limits: ReadLimits | None = None) -> RegisterEvents:
    """Read a CNIPA legal-status event export (CSV / Excel; UTF-8, else GBK / GB18030).

    Parameters
    ----------
    path : str or Path
        The export file.
    encoding : str, optional
        CSV encoding; UTF-8 then GB18030 (a superset of GBK) are tried when omitted.
    sheet_name : int or str, default=0
        Excel sheet.
    codes : str, default="cnipa-events"
        The event-code table (package data, or the bank's copy in ``$IPVALUE_CONFIG_DIR/mappings``).
    limits : ReadLimits, optional
        Rows, cells and decompressed bytes of the file (default
        :data:`ipvalue.io.tables.DEFAULT_LIMITS`).

    Raises
    ------
    InputFileError
        An unknown ``encoding`` (naming it and the fix), an unreadable or oversized file, a
        missing column, a row without an application number or with an unreadable date.
    """
    raw, notes = read_table(path, encoding=encoding, sheet_name=sheet_name, limits=limits)
    result = parse_register(raw, source=str(Path(path).name), codes=codes)
    result.notes.extend(notes)
    return result


def _active(ev: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Open registrations of ``kind`` per application: count and the licence types of the open ones."""
    k = ev[ev["kind"] == kind]
    cols = ["application_number", "active", "exclusive", "sole", "ordinary", "types"]
    if k.empty:
        return pd.DataFrame(columns=cols).set_index("application_number")
    k = k.assign(sign=k["action"].map({"open": 1, "close": -1, "change": 0}), numbered=k["number"].notna())
    numbered = k[k["numbered"]].groupby(["application_number", "number"])["sign"].sum().clip(lower=0)
    numbered_open = numbered[numbered > 0].reset_index()[["application_number", "number"]]
    unnumbered = k[~k["numbered"]].groupby("application_number")["sign"].sum()
    count = numbered.groupby(level=0).sum().reindex(k["application_number"].unique(), fill_value=0).add(unnumbered, fill_value=0).clip(lower=0)
    # licence types: the open events of the numbered registrations still open, and the latest
    # unnumbered opens (as many as remain open)
    opens = k[k["action"] == "open"]
    typed_numbered = opens.merge(numbered_open, on=["application_number", "number"])
    un = opens[~opens["numbered"]].sort_values(["event_date", "row"], ascending=False)
    remaining = un["application_number"].map(unnumbered.to_dict()).astype(float).fillna(0.0).to_numpy()
    un = un[un.groupby("application_number").cumcount().to_numpy() < remaining]
    open_types = pd.concat([typed_numbered, un])
    out = pd.DataFrame({"active": count.astype(int)})
    for t in ("exclusive", "sole", "ordinary"):
        out[t] = open_types[open_types["licence_type"] == t].groupby("application_number").size().reindex(out.index, fill_value=0)
    out["types"] = open_types.groupby("application_number")["licence_type"].agg(lambda s: ";".join(sorted(set(s)))).reindex(out.index).fillna("")
    out.index.name = "application_number"
    return out


def register_status(register: RegisterEvents | pd.DataFrame, patents: pd.DataFrame, *, as_of, codes: str = "cnipa-events") -> pd.DataFrame:
    """The register facts of each patent as of ``as_of`` (events after it are ignored).

    Parameters
    ----------
    register : RegisterEvents or its ``events`` frame
    patents : pandas.DataFrame
        A PatentFrame with ``application_number`` (申请号).
    as_of : date-like
        The valuation date.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``patents``: ``in_register`` and the columns listed in the module docstring.
        A patent with no event has ``register_events`` 0 and ``in_register`` False.
    """
    table, _ = load_code_table(codes)
    ev = register.events if isinstance(register, RegisterEvents) else register
    ev = ev[ev["event_date"] <= pd.Timestamp(as_of)].join(table[["status", "kind", "action", "transfer", "restoration", "invalidation"]], on="code")
    ev = ev.assign(number=ev["info"].str.extract(NUMBER_PATTERN, expand=False), licence_type="unspecified", order=ev["action"].map(_ORDER).fillna(1))
    for word, name in reversed(LICENCE_TYPES):
        ev.loc[ev["info"].str.contains(word, na=False), "licence_type"] = name
    ev = ev.sort_values(["application_number", "event_date", "order", "row"])
    for col in ("transfer", "restoration", "invalidation"):
        ev[col] = ev[col].fillna(False).astype(bool)
    g = ev.groupby("application_number")
    facts = pd.DataFrame({"register_events": g.size()})
    status = ev[ev["status"].notna()].groupby("application_number").last()
    facts["register_status"] = status["status"]
    facts["register_status_date"] = status["event_date"]
    facts["restorations"] = g["restoration"].sum()
    facts["invalidation_events"] = g["invalidation"].sum()
    facts["transfers"] = g["transfer"].sum()
    facts["last_transfer_on"] = ev[ev["transfer"]].groupby("application_number")["event_date"].max()
    facts["register_fees_paid_until"] = g["fees_paid_until"].max()
    facts["unknown_codes"] = ev[~ev["known"]].groupby("application_number")["code"].agg(lambda s: ";".join(sorted(set(s)) or ["(blank)"]))
    pledges, licences, preservations = (_active(ev, k) for k in KINDS)
    facts["active_pledges"] = pledges["active"]
    facts["preservation_in_force"] = preservations["active"] > 0
    facts["active_licences"] = licences["active"]
    for t in ("exclusive", "sole", "ordinary"):
        facts[f"{t}_licences"] = licences[t]
    facts["licence_types"] = licences["types"]
    key = normalise_application_number(patents["application_number"]) if "application_number" in patents else pd.Series(pd.NA, index=patents.index)
    out = facts.reindex(key.to_numpy()).set_axis(patents.index)
    out.insert(0, "in_register", key.isin(facts.index).to_numpy())
    counts = ["register_events", "restorations", "invalidation_events", "transfers", "active_pledges", "active_licences",
              "exclusive_licences", "sole_licences", "ordinary_licences"]
    out[counts] = out[counts].fillna(0).astype(int)
    out["preservation_in_force"] = out["preservation_in_force"].fillna(False).astype(bool)
    out["licence_types"] = out["licence_types"].fillna("")
    out["unknown_codes"] = out["unknown_codes"].fillna("")
    return out


def unmatched_events(register: RegisterEvents, patents: pd.DataFrame) -> pd.DataFrame:
    """Events whose application number matches no patent of ``patents`` (reported, not dropped)."""
    keys = set(normalise_application_number(patents["application_number"]).dropna()) if "application_number" in patents else set()
    return register.events[~register.events["application_number"].isin(keys)]
