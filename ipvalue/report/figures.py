"""The report's charts drawn: a :class:`~ipvalue.report.sections.Chart` (data) becomes an SVG in the
house style (:mod:`ipvalue.charts`: a CJK font, so the Chinese labels print).

Each chart is drawn at the width it prints at (162 mm, the report's text width less a margin),
so its 7-9 pt labels read at their size on paper. SVG with its text kept as text: sharp in print,
the labels searchable in the PDF's text layer, and cheaper than rasterising a PNG that WeasyPrint
then decodes and compresses again. Margins are set from the labels' lengths rather than by
matplotlib's tight layout (which draws every chart twice).
"""

from __future__ import annotations

import numpy as np

#: Figure width in inches (162 mm: the printed chart width).
WIDTH_IN = 6.38
#: Colours of the value chain's bars by value type (and of the request).
VALUE_TYPE_COLOURS = {"value_in_use": "#9aa7b4", "market_value": "#2b5d8a", "collateral_value": "#1a7f37", "request": "#c9764f", "cap": "#0f4d2a"}
MARKER_STYLES = (("#c62828", "--"), ("#1d2733", "-"), ("#1a7f37", ":"), ("#6a3d9a", "-."))


def wan(value, _pos=None) -> str:
    """An axis tick in 万元 (10,000 RMB)."""
    return f"{value / 1e4:,.0f}万" if abs(value) >= 1e4 or value == 0 else f"{value / 1e4:,.2f}万"


def rmb(value) -> str:
    return f"¥{value:,.0f}"


def _label_inches(labels, fontsize: float) -> float:
    from ipvalue.report.textwidth import text_em

    longest = max((max(text_em(part) for part in str(x).split("\n")) for x in labels), default=0.0)
    return longest * fontsize / 72.0


def draw_chart(chart: dict, *, image: str = "svg") -> str:
    """A chart (the data of :class:`~ipvalue.report.sections.Chart`) as a data URI: ``image="svg"``
    (default: the reports) or ``"png"`` (documents whose charts are also written as image files,
    e.g. a governance card's Markdown)."""
    from ipvalue.charts import chart_style, label, png_data_uri, svg_data_uri

    if image not in ("svg", "png"):
        raise ValueError(f"The 'image' of a chart must be 'svg' or 'png'. Got {image!r}.")

    kind, series = chart["kind"], chart.get("series") or []
    with chart_style() as plt:
        rows = len(series[0].get("x", series[0].get("labels", []))) if series and kind in ("barh", "tornado") else 0
        height = {"barh": 1.0 + 0.32 * max(rows, 3), "tornado": 1.1 + 0.36 * max(rows, 3)}.get(kind, 3.1)
        fig, ax = plt.subplots(figsize=(WIDTH_IN, height))
        left = 0.75
        if kind == "bar":
            _bar(ax, series)
        elif kind == "barh":
            left = _barh(ax, chart, series)
        elif kind in ("line", "step"):
            _lines(ax, chart, series, kind)
        elif kind == "hist":
            _hist(ax, chart, series)
        elif kind == "tornado":
            left = _tornado(ax, series)
        elif kind == "scatter":
            _scatter(ax, series)
        ax.set_title(label(chart["title_zh"], chart["title_en"], sep="\n"), fontsize=9, loc="left")
        if chart.get("x_label_zh"):
            ax.set_xlabel(label(chart["x_label_zh"], chart.get("x_label_en", "")), fontsize=8)
        if chart.get("y_label_zh"):
            ax.set_ylabel(label(chart["y_label_zh"], chart.get("y_label_en", "")), fontsize=8)
        title_in, bottom_in = 0.48, 0.46
        fig.subplots_adjust(left=min(left / WIDTH_IN, 0.62), right=0.97, top=1 - title_in / height, bottom=bottom_in / height)
        return svg_data_uri(fig) if image == "svg" else png_data_uri(fig, dpi=150)


def _bar(ax, series) -> None:
    for s in series:
        ax.bar(s["x"], s["y"], color="#2b5d8a", label=f"{s['name_zh']} {s['name_en']}")
    ax.yaxis.set_major_formatter(wan)
    if series and len(series[0]["x"]) <= 25:
        ax.set_xticks(series[0]["x"])


def _barh(ax, chart, series) -> float:
    """Horizontal bars, one per label, with the amounts written at their ends; ``colors`` per bar
    (value types) and vertical ``markers`` (the cap, the request) where given."""
    from ipvalue.charts import cjk_font

    s = series[0]
    labels = [str(x) if cjk_font() else str(x).split("\n")[-1] for x in s["x"]]
    values = np.asarray(s["y"], float)
    colours = s.get("colors") or ["#2b5d8a" if v >= 0 else "#c9764f" for v in values]
    y = np.arange(len(values))[::-1]
    ax.barh(y, values, color=colours, height=0.62)
    ax.set_yticks(y, labels, fontsize=8)
    ax.grid(axis="y", visible=False)
    money = s.get("format", "money" if np.nanmax(np.abs(values), initial=0) >= 1e4 else "number") == "money"
    span = float(np.nanmax(np.abs(values), initial=1.0)) or 1.0
    for yi, v in zip(y, values):
        text = rmb(v) if money else f"{v:+.1f}"
        ax.text(v + (0.01 * span if v >= 0 else -0.01 * span), yi, text, va="center", ha="left" if v >= 0 else "right", fontsize=7.5)
    if money:
        ax.xaxis.set_major_formatter(wan)
        ax.set_xlim(0, span * 1.2)
    else:
        ax.set_xlim(min(0.0, float(np.nanmin(values, initial=0))) * 1.3, max(0.0, float(np.nanmax(values, initial=0))) * 1.3 or 1.0)
        ax.axvline(0, color="#1d2733", linewidth=0.8)
    if s.get("legend"):
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=item["color"], label=item["label"]) for item in s["legend"]], fontsize=7, loc="best", frameon=True, framealpha=0.9)
    _markers(ax, chart, loc="lower right")
    return _label_inches(labels, 8) + 0.25


def _lines(ax, chart, series, kind) -> None:
    from matplotlib.ticker import PercentFormatter

    for s in series:
        name = f"{s['name_zh']}" if s["name_zh"] == s.get("name_en") else f"{s['name_zh']} {s.get('name_en', '')}"
        if kind == "step":
            ax.step(s["x"], s["y"], where="post", label=name, linewidth=1.4)
        else:
            ax.plot(s["x"], s["y"], label=name, linewidth=1.4)
    values = [v for s in series for v in s["y"] if v is not None]
    if values and min(values) >= 0 and max(values) <= 1:  # probabilities and shares
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if series and max(len(s["x"]) for s in series) <= 25:
        ax.set_xticks(sorted({x for s in series for x in s["x"]}))
    if len(series) <= 8:
        ax.legend(fontsize=7, loc="upper right", frameon=False)


def _hist(ax, chart, series) -> None:
    values = np.asarray(series[0]["values"], float)
    ax.hist(values, bins=50, histtype="stepfilled", color="#9cbcd8", edgecolor="#7aa6c9", linewidth=0.6)  # one outline, not 50 bars
    ax.xaxis.set_major_formatter(wan)
    _markers(ax, chart, with_value=True)


def _markers(ax, chart, *, with_value: bool = True, loc: str = "upper right") -> None:
    from ipvalue.charts import label

    markers = chart.get("markers") or []
    for i, m in enumerate(markers):
        colour, style = MARKER_STYLES[i % len(MARKER_STYLES)]
        text = label(m["label_zh"], m["label_en"]) + (f"：{rmb(m['x'])}" if with_value else "")
        ax.axvline(m["x"], color=colour, linestyle=style, linewidth=1.3, label=text)
    if markers:
        ax.legend(fontsize=7, loc=loc, frameon=True, framealpha=0.9)


def _tornado(ax, series) -> float:
    """Bars from the base value to the value with each assumption moved down (orange) and up
    (blue), largest swing on top, with the assumption's name in Chinese and English."""
    from ipvalue.charts import cjk_font

    s = series[0]
    base = float(s["base"])
    labels = [str(x) if cjk_font() else str(x).split("\n")[-1] for x in s["labels"]]
    y = np.arange(len(labels))
    ax.barh(y, np.asarray(s["low"]) - base, left=base, color="#c9764f", height=0.6, label="下调 down")
    ax.barh(y, np.asarray(s["high"]) - base, left=base, color="#4f8fc9", height=0.6, label="上调 up")
    ax.set_yticks(y, labels, fontsize=7.5)
    ax.grid(axis="y", visible=False)
    ax.axvline(base, color="#1d2733", linewidth=1)
    ax.text(base, len(labels) - 0.4, f"基准 base {rmb(base)}", ha="center", va="bottom", fontsize=7)
    ax.set_ylim(-0.6, len(labels) + 0.2)
    ax.xaxis.set_major_formatter(wan)
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    return _label_inches(labels, 7.5) + 0.25


def _scatter(ax, series) -> None:
    """A model's figures (y) against observed ones (x) on log scales, with the line of equality."""
    colours = ("#c9764f", "#2b5d8a", "#1a7f37", "#7aa6c9")
    points = [v for s in series for v in (*s["x"], *s["y"]) if v is not None and v > 0]
    for i, s in enumerate(series):
        ax.scatter(s["x"], s["y"], s=9, alpha=0.6, color=colours[i % len(colours)], label=f"{s['name_zh']} {s['name_en']}")
    if points:
        lo, hi = min(points), max(points)
        ax.plot([lo, hi], [lo, hi], color="#1d2733", lw=0.8, linestyle="--", label="相等 equal")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.legend(fontsize=7, frameon=False)
