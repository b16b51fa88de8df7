"""Rendering the 内部评估报告: self-contained bilingual HTML (charts embedded), PDF (printed from
that HTML by :mod:`ipvalue.report.printing`: headless Chromium, else WeasyPrint) and JSON, all from
the same :class:`~ipvalue.report.sections.Report`.

The renderers only lay sections out: each table column says how it reads (money with thousands
separators, percentages, years, dates), each chart is data drawn here with Chinese and English
labels (:mod:`ipvalue.report.figures`). A recorded valuation carries its report in its JSON, so
HTML and PDF can be rendered again from the record alone (the service re-renders a report lost
to a crash).

Tables are laid out with fixed column widths computed here from what each column holds
(:func:`column_widths`): numbers, dates and identifiers never break across lines, words never
break inside, and WeasyPrint does not measure every cell of every table again (its automatic
table layout was most of the PDF's time).
"""

from __future__ import annotations

import logging
import math
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ipvalue.report.printing import prints_pdf, render_pdf
from ipvalue.report.sections import NUMERIC_KINDS, Report
from ipvalue.report.textwidth import is_identifier, longest_token_em, text_em

logger = logging.getLogger(__name__)

#: Width of the printed text block (A4, 12 mm margins: 186 mm) in em of the tables' print font
#: (7.5 pt) and of the dense tables' (6.5 pt); the HTML on screen scales the same percentages.
PRINT_WIDTH_EM = {"normal": 186 / (7.5 * 25.4 / 72), "dense": 186 / (6.5 * 25.4 / 72)}
#: Horizontal padding and border of a cell, in em.
CELL_PAD_EM = 0.9
#: A text column is never narrower than this (em), unless everything in it is shorter.
TEXT_MIN_EM = 5.0
#: The widest a column's preferred width counts (em): longer text wraps.
TEXT_MAX_EM = 30.0
#: The width a column of numbers would like for its heading (em): about two lines of it.
NUMERIC_HEAD_EM = 6.0


def format_cell(value, kind: str) -> str:
    """A table cell as a reader sees it (see :data:`ipvalue.report.sections.KINDS`)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind == "check" or isinstance(value, bool):
        return ("通过 pass" if value else "未通过 fail") if kind == "check" else ("是 yes" if value else "否 no")
    if kind == "date":
        return str(value)[:10]
    if kind == "text" or isinstance(value, str):
        return str(value)
    v = float(value)
    if kind == "money":
        return f"¥{v:,.0f}"
    if kind == "money2":
        return f"¥{v:,.2f}"
    if kind == "percent":
        return f"{100 * v:.2f}%"
    if kind == "percent1":
        return f"{100 * v:.1f}%"
    if kind == "percent6":
        return f"{100 * v:.6f}%"
    if kind == "rate":
        return f"{v:.4f}"
    if kind == "rate6":
        return f"{v:.6f}"
    if kind == "years":
        return f"{v:.1f}"
    if kind == "multiple":
        return f"{v:,.2f} 倍"
    if kind == "integer":
        return f"{v:,.0f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != round(v) else f"{v:.0f}"


# --- column widths ------------------------------------------------------------------------------


def column_widths(columns: list[dict], cells: list[list[str]]) -> tuple[list[float], bool]:
    """Widths of a table's columns in percent of the table, and whether the table must be set
    in the dense (smaller) print size to fit the page.

    Each column has a minimum (its widest unbreakable content: a number, a date, an identifier,
    an English word; at least :data:`TEXT_MIN_EM` for text) and a preferred width (its longest
    content on one line, capped at :data:`TEXT_MAX_EM`). Columns get their preferred widths when
    these fit the printed page; otherwise their minimum plus a share of the room left in
    proportion to what they would like more. ``cells`` are the formatted cells, one list per
    column.
    """
    minimum, preferred = [], []
    for column, values in zip(columns, cells):
        zh, en = column.get("label_zh", ""), column.get("label_en", "")
        head_min = max(longest_token_em(zh), 0.85 * longest_token_em(en), min(text_em(zh), 3.0))
        head_pref = max(text_em(zh), 0.85 * text_em(en))
        numeric = column.get("kind", "text") in NUMERIC_KINDS or column.get("kind") == "date"
        lo = hi = 0.0
        for text in values:
            width = text_em(text)
            if numeric or is_identifier(text):
                lo = max(lo, width)
            else:
                lo = max(lo, longest_token_em(text), min(width, TEXT_MIN_EM))
            hi = max(hi, min(width, TEXT_MAX_EM))
        minimum.append(max(head_min, lo) + CELL_PAD_EM)
        # a number's column would like its heading on two lines at most; a text column its longest cell on one line
        preferred.append(max(min(head_pref, NUMERIC_HEAD_EM) if numeric else head_pref, hi, lo) + CELL_PAD_EM)
    for density in ("normal", "dense"):
        room = PRINT_WIDTH_EM[density]
        if sum(preferred) <= room:
            widths = preferred
            break
        if sum(minimum) <= room:
            extra = [p - m for p, m in zip(preferred, minimum)]
            spare = room - sum(minimum)
            widths = [m + spare * e / sum(extra) for m, e in zip(minimum, extra)] if sum(extra) > 0 else minimum
            break
    else:
        widths = minimum
        logger.warning("A table of %d columns is wider than the printed page even in the dense size: %.0f em.", len(columns), sum(minimum))
    total = sum(widths) or 1.0
    return [round(100 * w / total, 2) for w in widths], density == "dense"


def layout_table(table: dict) -> dict:
    """A table ready for the template: its header rows (with column groups), its formatted cells,
    the widths of its columns and its CSS classes."""
    columns = table["columns"]
    rows = table["rows"]
    body = [[format_cell(row.get(c["key"]), c.get("kind", "text")) for c in columns] for row in rows]
    widths, dense = column_widths(columns, [[r[j] for r in body] for j in range(len(columns))]) if columns else ([], False)
    groups = []
    if any(c.get("group_zh") for c in columns):
        for c in columns:
            key = (c.get("group_zh", ""), c.get("group_en", ""))
            if groups and groups[-1]["key"] == key and key[0]:
                groups[-1]["span"] += 1
            else:
                groups.append({"key": key, "zh": key[0], "en": key[1], "span": 1})
    cell_class = []
    for c in columns:
        kind = c.get("kind", "text")
        cell_class.append("num" if kind in NUMERIC_KINDS else "nw" if kind in ("date", "check") else "")
    classes = ["dense"] if dense else []
    if len(rows) <= 12:
        classes.append("keep")  # a short table is never split across pages
    return {**table, "body": [[_cell(text, cls) for text, cls in zip(r, cell_class)] for r in body], "widths": widths, "groups": groups,
            "classes": " ".join(classes)}


def _cell(text: str, cls: str) -> tuple:
    """(content, CSS class) of a body cell: numbers, dates and identifiers on one line."""
    if cls:
        return text, cls
    if is_identifier(text):
        return text, "nw"
    return keep_identifiers_whole(text), ""


_BREAKABLE_IDENTIFIER = re.compile(r"[A-Za-z0-9¥][A-Za-z0-9._:/@#+,-]*[-/][A-Za-z0-9._:/@#+,-]*[A-Za-z0-9]")


def keep_identifiers_whole(text: str):
    """A text cell as HTML in which each identifier with a hyphen or a slash ('SYN-PJBG-2026-002',
    'industry-margins-v1', a date) is kept on one line: a line may break after a hyphen, and a
    reference split there reads as two. Other text wraps as usual."""
    from markupsafe import Markup, escape

    if not _BREAKABLE_IDENTIFIER.search(text):
        return text
    escaped = str(escape(text))
    return Markup(_BREAKABLE_IDENTIFIER.sub(lambda m: f'<span class="nw">{m.group(0)}</span>', escaped))


# --- HTML and PDF -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    return env.from_string((resources.files("ipvalue") / "report" / "report.html.j2").read_text(encoding="utf-8"))


def render_html(report) -> str:
    """The report (a :class:`Report`, its dict, or a recorded result's JSON dict with ``report``)
    as one self-contained HTML string (no external files or network)."""
    from ipvalue.report.drawing import draw_charts

    data = _report_dict(report)
    charts = [c for sec in data["sections"] for c in sec.get("charts", [])]
    # the tables are laid out while the charts are drawn (by a helper process, where one waits)
    uris, tables = draw_charts(charts, meanwhile=lambda: [[layout_table(t) for t in sec.get("tables", [])] for sec in data["sections"]])
    drawn = iter(uris)
    sections = [{**sec, "tables": laid_out, "charts": [{**c, "uri": next(drawn)} for c in sec.get("charts", [])]}
                for sec, laid_out in zip(data["sections"], tables)]
    body = [s for s in sections if s.get("part", "body") == "body"]
    appendix = [s for s in sections if s.get("part", "body") == "appendix"]
    return _template().render(report=data, meta=data.get("meta", {}), body=body, appendix=appendix)


def _report_dict(report) -> dict:
    if isinstance(report, Report):
        return report.to_dict()
    if isinstance(report, dict) and "sections" in report:
        return report
    if isinstance(report, dict) and isinstance(report.get("report"), dict):
        return report["report"]
    if hasattr(report, "report") and isinstance(report.report, Report):
        return report.report.to_dict()
    raise TypeError(f"render_html needs a Report, its dict or a recorded valuation's JSON. Got {type(report).__name__}.")


def write_reports(result, out_dir: str | Path, *, pdf: bool | None = None) -> dict:
    """Write ``<application>-<valuation id>.html``, ``.json`` and ``.pdf`` atomically; returns their paths.

    ``result``: a :class:`~ipvalue.lending.pipeline.ValuationResult`. ``pdf``: True requires the
    PDF (an error where it cannot be printed), False skips it, None (default) prints it where this
    machine can (:func:`~ipvalue.report.printing.pdf_unavailable`) and logs why not otherwise.
    """
    return write_rendered(result.report, result.to_json(indent=2), out_dir, f"{result.application.application_id}-{result.valuation_id}", pdf=pdf)


def write_rendered(report, json_text: str, out_dir: str | Path, stem: str, *, pdf: bool | None = None) -> dict:
    """Write ``<stem>.html`` (``report`` rendered), ``<stem>.json`` (``json_text``) and ``<stem>.pdf``
    atomically into ``out_dir``; returns their paths. ``pdf`` as :func:`write_reports` takes it."""
    from ipvalue.io import write_bytes_atomic, write_text_atomic

    out_dir = Path(out_dir)
    html = render_html(report)
    paths = {"html": write_text_atomic(html, out_dir / f"{stem}.html"), "json": write_text_atomic(json_text, out_dir / f"{stem}.json")}
    if prints_pdf(pdf, stem):
        paths["pdf"] = write_bytes_atomic(render_pdf(html), out_dir / f"{stem}.pdf")
    return paths
