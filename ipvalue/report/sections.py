"""The 内部评估报告 as data: addressable sections of paragraphs, tables and charts.

A :class:`Report` holds :class:`Section` objects in reading order, addressable by id like skops's
model card (``report.add(section)``, ``report.select("methods")``). Every step of the valuation
pipeline and every valuation method builds the sections it owns; the renderers
(:mod:`ipvalue.report.render`) only lay them out, so HTML, PDF and JSON carry the same content.

Tables keep raw values (numbers stay numbers in the JSON) and say how each column reads
(``kind``: money, percent, years, number, integer, date, text), so every rendering formats them the
same way. Charts are data (series and labels in Chinese and English); the renderers draw them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: How a table column reads: ``money`` (¥, thousands separators, no decimals), ``money2`` (two
#: decimals), ``percent`` (a fraction shown as %, 2 decimals), ``percent1`` (one decimal),
#: ``percent6`` (six decimals: the 计算过程 appendix, where a reader re-derives a figure to the
#: yuan), ``rate`` (a fraction shown with 4 decimals), ``rate6`` (six decimals, the appendix),
#: ``years`` (one decimal), ``number`` (at most 2 decimals), ``multiple`` (a ratio shown as
#: "10.02 倍"), ``integer``, ``date`` (YYYY-MM-DD), ``text``, ``check`` (a boolean shown as 通过 pass
#: / 未通过 fail).
KINDS = ("money", "money2", "percent", "percent1", "percent6", "rate", "rate6", "years", "number", "multiple", "integer", "date", "text", "check")
#: The kinds read as numbers (right-aligned, never broken across lines).
NUMERIC_KINDS = ("money", "money2", "percent", "percent1", "percent6", "rate", "rate6", "years", "number", "multiple", "integer")
CHART_KINDS = ("bar", "barh", "line", "step", "hist", "tornado", "waterfall", "scatter")


@dataclass
class Column:
    """A table column: the data key, its heading in Chinese and English, how it reads, and
    optionally the group heading it sits under (``group_zh`` / ``group_en``: neighbouring columns
    with the same group share one heading above theirs)."""

    key: str
    label_zh: str
    label_en: str = ""
    kind: str = "text"
    group_zh: str = ""
    group_en: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"The 'kind' of column {self.key!r} must be one of {list(KINDS)}. Got {self.kind!r}.")


@dataclass
class Table:
    """A table of a section: ``rows`` are dicts keyed by the columns' keys (raw values)."""

    id: str
    columns: list[Column]
    rows: list[dict]
    caption_zh: str = ""
    caption_en: str = ""

    @classmethod
    def from_frame(cls, table_id: str, frame: pd.DataFrame, columns: list[Column], *, caption_zh: str = "", caption_en: str = "") -> "Table":
        """A table of the ``columns`` present in ``frame`` (values as JSON-safe Python values)."""
        present = [c for c in columns if c.key in frame.columns]
        # one list per column, then rows: no sub-frame is built (a report has some 35 small tables)
        return cls.from_columns(table_id, {c.key: frame[c.key].tolist() for c in present}, present, len(frame), caption_zh=caption_zh, caption_en=caption_en)

    @classmethod
    def from_columns(cls, table_id: str, data: dict, columns: list[Column], n_rows: int, *, caption_zh: str = "", caption_en: str = "") -> "Table":
        """A table of the ``columns`` present in ``data`` (a column's key → its ``n_rows`` values;
        values as JSON-safe Python values)."""
        present = [c for c in columns if c.key in data]
        keys = [c.key for c in present]
        cells = [[json_value(v) for v in data[key]] for key in keys]
        rows = [dict(zip(keys, values)) for values in zip(*cells)] if keys else [{} for _ in range(n_rows)]
        return cls(table_id, present, rows, caption_zh, caption_en)


@dataclass
class Chart:
    """A chart as data: ``kind`` (one of :data:`CHART_KINDS`), axis labels and series.

    ``series`` is a list of ``{"name_zh", "name_en", "x": [...], "y": [...]}`` (for ``scatter``: a
    model's figures ``y`` against observed ones ``x``, drawn on log scales with the line of
    equality; for ``hist`` only
    ``values``; for ``tornado`` ``labels``, ``low``, ``high`` and ``base``; for ``waterfall``
    ``labels`` and ``values``); ``markers`` are vertical reference lines ``{"x", "label_zh",
    "label_en"}`` (e.g. the quantile a cap is read at).
    """

    id: str
    kind: str
    title_zh: str
    title_en: str
    x_label_zh: str = ""
    x_label_en: str = ""
    y_label_zh: str = ""
    y_label_en: str = ""
    series: list[dict] = field(default_factory=list)
    markers: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in CHART_KINDS:
            raise ValueError(f"The 'kind' of chart {self.id!r} must be one of {list(CHART_KINDS)}. Got {self.kind!r}.")


@dataclass
class Section:
    """One addressable section: Chinese and English title, paragraphs (zh, en), tables, charts."""

    id: str
    title_zh: str
    title_en: str
    paragraphs: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    level: int = 2
    #: ``body`` (the report's main text) or ``appendix`` (the 计算过程 appendix: every figure a
    #: reader needs to re-derive the conclusion).
    part: str = "body"

    def text(self, zh: str, en: str) -> "Section":
        self.paragraphs.append((zh, en))
        return self

    def table(self, table_id: str, frame: pd.DataFrame | dict, columns: list[Column], **captions) -> "Section":
        """Add a table of the ``columns`` present in ``frame``: a DataFrame, or a dict of a column's
        key → its values (lists of one length)."""
        if isinstance(frame, dict):
            n_rows = len(next(iter(frame.values()), []))
            self.tables.append(Table.from_columns(table_id, frame, columns, n_rows, **captions))
        else:
            self.tables.append(Table.from_frame(table_id, frame, columns, **captions))
        return self

    def chart(self, chart: Chart) -> "Section":
        self.charts.append(chart)
        return self

    def to_dict(self) -> dict:
        return {
            "id": self.id, "title_zh": self.title_zh, "title_en": self.title_en, "level": self.level, "part": self.part,
            "paragraphs": [list(p) for p in self.paragraphs],
            "tables": [{"id": t.id, "caption_zh": t.caption_zh, "caption_en": t.caption_en,
                        "columns": [c.__dict__ for c in t.columns], "rows": t.rows} for t in self.tables],
            "charts": [c.__dict__ for c in self.charts],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Section":
        return cls(
            id=d["id"], title_zh=d["title_zh"], title_en=d["title_en"], level=int(d.get("level", 2)), part=d.get("part", "body"),
            paragraphs=[tuple(p) for p in d.get("paragraphs", [])],
            tables=[Table(t["id"], [Column(**c) for c in t["columns"]], t["rows"], t.get("caption_zh", ""), t.get("caption_en", "")) for t in d.get("tables", [])],
            charts=[Chart(**c) for c in d.get("charts", [])],
        )


class Report:
    """Sections in reading order, addressable by id (the skops ``Card.add`` / ``select`` shape)."""

    def __init__(self, title_zh: str = "", title_en: str = "", sections: list[Section] | None = None, meta: dict | None = None):
        self.title_zh, self.title_en = title_zh, title_en
        self.sections: list[Section] = []
        self.meta = dict(meta or {})
        for s in sections or []:
            self.add(s)

    def add(self, *sections: Section) -> "Report":
        """Append sections (an id may appear once)."""
        for s in sections:
            if any(x.id == s.id for x in self.sections):
                raise ValueError(f"The report already has a section {s.id!r}. Fix: give each section its own id.")
            self.sections.append(s)
        return self

    def select(self, section_id: str) -> Section:
        """The section with ``section_id`` (a KeyError naming the ids there are otherwise)."""
        for s in self.sections:
            if s.id == section_id:
                return s
        raise KeyError(f"No section {section_id!r}. The report has {self.ids}.")

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.sections]

    def to_dict(self) -> dict:
        return {"title_zh": self.title_zh, "title_en": self.title_en, "meta": self.meta, "sections": [s.to_dict() for s in self.sections]}

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        return cls(d.get("title_zh", ""), d.get("title_en", ""), [Section.from_dict(s) for s in d.get("sections", [])], d.get("meta"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def json_value(v):
    """A table cell as a JSON-safe Python value: NaN / NaT → None, numpy scalars → Python, timestamps → ISO dates."""
    if v is None:
        return None
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(v) else pd.Timestamp(v).date().isoformat()
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if v is pd.NA or v is pd.NaT:
        return None
    return v
