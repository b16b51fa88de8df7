"""Rendering the 内部评估报告: self-contained bilingual HTML (charts embedded), PDF (WeasyPrint,
CJK font embedded) and JSON, all from the same :class:`~ipvalue.report.sections.Report`.

The renderers only lay sections out: each table column says how it reads (money with thousands
separators, percentages, years, dates), each chart is data drawn here with Chinese and English
labels. A recorded valuation carries its report in its JSON, so HTML and PDF can be rendered again
from the record alone (the service re-renders a report lost to a crash).
"""

from __future__ import annotations

import logging
import math
from importlib import resources
from pathlib import Path

from ipvalue.report.sections import Report

logger = logging.getLogger(__name__)

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
    if kind == "rate":
        return f"{v:.4f}"
    if kind == "years":
        return f"{v:.1f}"
    if kind == "integer":
        return f"{v:,.0f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def draw_chart(chart: dict) -> str:
    """A chart (the data of :class:`~ipvalue.report.sections.Chart`) as a PNG data URI, in the
    house style (:mod:`ipvalue.charts`: a CJK font for the Chinese labels)."""
    import numpy as np

    from ipvalue.charts import chart_style, label, png_data_uri

    with chart_style() as plt:
        kind, series = chart["kind"], chart.get("series") or []
        tall = kind in ("barh", "tornado") and series and len(series[0].get("x", series[0].get("labels", []))) > 6
        fig, ax = plt.subplots(figsize=(6.4, 3.6 if not tall else 4.6))
        money = lambda v, _pos=None: f"{v / 1e4:,.0f}万"  # noqa: E731
        if kind == "bar":
            for s in series:
                ax.bar(s["x"], s["y"], color="#2b5d8a", label=f"{s['name_zh']} {s['name_en']}")
            ax.yaxis.set_major_formatter(money)
        elif kind == "barh":
            s = series[0]
            colors = ["#2b5d8a" if v >= 0 else "#c9764f" for v in s["y"]]
            ax.barh([str(x)[:40] for x in s["x"]], s["y"], color=colors)
            if max((abs(v) for v in s["y"]), default=0) >= 1e4:
                ax.xaxis.set_major_formatter(money)
        elif kind in ("line", "step"):
            for s in series:
                if kind == "step":
                    ax.step(s["x"], s["y"], where="post", label=s["name_zh"])
                else:
                    ax.plot(s["x"], s["y"], label=s["name_zh"])
            values = [v for s in series for v in s["y"] if v is not None]
            if values and min(values) >= 0 and max(values) <= 1:  # probabilities and shares
                ax.set_ylim(0, 1.05)
            if len(series) <= 8:
                ax.legend(fontsize=6)
        elif kind == "scatter":  # model against observation: log scales, the line of equality
            colours = ("#c9764f", "#2b5d8a", "#1a7f37", "#7aa6c9")
            points = [v for s in series for v in (*s["x"], *s["y"]) if v is not None and v > 0]
            for i, s in enumerate(series):
                ax.scatter(s["x"], s["y"], s=9, alpha=0.6, color=colours[i % len(colours)], label=f"{s['name_zh']} {s['name_en']}")
            if points:
                lo, hi = min(points), max(points)
                ax.plot([lo, hi], [lo, hi], color="#1d2733", lw=0.8, linestyle="--", label="相等 equal")
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.legend(fontsize=6)
        elif kind == "hist":
            values = np.asarray(series[0]["values"], float)
            ax.hist(values, bins=50, color="#7aa6c9")
            ax.xaxis.set_major_formatter(money)
            for i, m in enumerate(chart.get("markers") or []):
                ax.axvline(m["x"], color=("#1d2733", "#c62828", "#1a7f37")[i % 3], linestyle=("-", "--", ":")[i % 3], label=f"{m['label_zh']} {m['label_en']}")
            if chart.get("markers"):
                ax.legend(fontsize=6)
        elif kind == "tornado":
            s = series[0]
            base = s["base"]
            y = np.arange(len(s["labels"]))
            ax.barh(y, np.asarray(s["low"]) - base, left=base, color="#c9764f", label="下调 down")
            ax.barh(y, np.asarray(s["high"]) - base, left=base, color="#4f8fc9", label="上调 up")
            ax.set_yticks(y, [str(x)[:36] for x in s["labels"]])
            ax.axvline(base, color="#1d2733")
            ax.xaxis.set_major_formatter(money)
            ax.legend(fontsize=6)
        ax.set_title(label(chart["title_zh"], chart["title_en"], sep="\n"), fontsize=9)
        if chart.get("x_label_zh"):
            ax.set_xlabel(label(chart["x_label_zh"], chart.get("x_label_en", "")))
        if chart.get("y_label_zh"):
            ax.set_ylabel(label(chart["y_label_zh"], chart.get("y_label_en", "")))
        return png_data_uri(fig)


def render_html(report) -> str:
    """The report (a :class:`Report`, its dict, or a recorded result's JSON dict with ``report``)
    as one self-contained HTML string (no external files or network)."""
    from jinja2 import Environment, select_autoescape

    data = _report_dict(report)
    env = Environment(autoescape=select_autoescape(["html", "j2"]))
    env.filters["cell"] = format_cell
    template = env.from_string((resources.files("ipvalue") / "report" / "report.html.j2").read_text(encoding="utf-8"))
    charts = {c["id"]: draw_chart(c) for sec in data["sections"] for c in sec.get("charts", [])}
    body = [s for s in data["sections"] if s.get("part", "body") == "body"]
    appendix = [s for s in data["sections"] if s.get("part", "body") == "appendix"]
    return template.render(report=data, meta=data.get("meta", {}), body=body, appendix=appendix, charts=charts)


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
    machine can (:func:`pdf_unavailable`) and logs why not otherwise.
    """
    return write_rendered(result.report, result.to_json(), out_dir, f"{result.application.application_id}-{result.valuation_id}", pdf=pdf)


def write_rendered(report, json_text: str, out_dir: str | Path, stem: str, *, pdf: bool | None = None) -> dict:
    """Write ``<stem>.html`` (``report`` rendered), ``<stem>.json`` (``json_text``) and ``<stem>.pdf``
    atomically into ``out_dir``; returns their paths. ``pdf`` as :func:`write_reports` takes it."""
    from ipvalue.io import write_bytes_atomic, write_text_atomic

    out_dir = Path(out_dir)
    html = render_html(report)
    paths = {"html": write_text_atomic(html, out_dir / f"{stem}.html"), "json": write_text_atomic(json_text, out_dir / f"{stem}.json")}
    if pdf is None:
        reason = pdf_unavailable()
        if reason:
            logger.warning("PDF of %s not written: %s", stem, reason)
        pdf = reason is None
    if pdf:
        paths["pdf"] = write_bytes_atomic(render_pdf(html), out_dir / f"{stem}.pdf")
    return paths


def render_pdf(html: str) -> bytes:
    """The report as PDF (WeasyPrint; the CJK font, Debian ``fonts-noto-cjk``, is embedded as a subset).

    Raises
    ------
    RuntimeError
        No CJK font is installed: the Chinese text would print as boxes.
    """
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration

    _require_cjk_font()
    return weasyprint.HTML(string=html).write_pdf(font_config=FontConfiguration())


def _require_cjk_font() -> None:
    import subprocess

    try:
        found = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if not found:
        raise RuntimeError("No Chinese (CJK) font is installed: the PDF's Chinese text would print as boxes. "
                           "Fix: install one (Debian: apt-get install fonts-noto-cjk).")


def pdf_unavailable() -> str | None:
    """Why this machine cannot print the PDF report (WeasyPrint or its Pango libraries missing, no
    CJK font), or None when it can."""
    try:
        import weasyprint  # noqa: F401  (needs Debian's Pango libraries)
    except (ImportError, OSError) as exc:
        return f"WeasyPrint is not usable ({exc}). Fix: pip install weasyprint and install Debian's libpango-1.0-0 and libpangoft2-1.0-0."
    try:
        _require_cjk_font()
    except RuntimeError as exc:
        return str(exc)
    return None


