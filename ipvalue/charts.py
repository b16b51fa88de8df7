"""The look of ipvalue's charts, shared by its reports: matplotlib on the headless Agg backend, a
CJK font so Chinese labels render (Debian's ``fonts-noto-cjk``: "Noto Sans CJK SC"), figures
embedded in HTML and PDF as PNG data URIs.

Where no CJK font is installed the charts fall back to their English labels (never boxes), and
:func:`cjk_font_note` says so in words a report can print.
"""

from __future__ import annotations

import base64
import io
from contextlib import contextmanager
from functools import lru_cache

#: CJK font families tried in turn (Debian / Ubuntu, Adobe, WenQuanYi, Windows, macOS).
CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "Microsoft YaHei", "SimHei", "PingFang SC")
#: Colours: the project's blue, a contrast orange, and the three stability verdicts.
BLUE, ORANGE, GREY = "#2b5d8a", "#c9764f", "#8a949e"
VERDICT_COLOURS = {"stable": "#4e9a5f", "watch": "#d9a13b", "act": "#c0463c"}


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed CJK font family matplotlib can use, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((family for family in CJK_FAMILIES if family in installed), None)


def cjk_font_note() -> str | None:
    """Why the charts carry English labels only (no CJK font), or None when Chinese renders."""
    if cjk_font():
        return None
    return ("图表未找到中文字体，仅显示英文标签。 No Chinese (CJK) font is installed, so the charts show their English labels only. "
            "Fix: install one (Debian: apt-get install fonts-noto-cjk).")


def label(zh: str, en: str, sep: str = " ") -> str:
    """A chart label: Chinese with the English beside it, or the English alone without a CJK font."""
    return f"{zh}{sep}{en}" if cjk_font() else en


@contextmanager
def chart_style():
    """The house style (Agg backend, CJK font, light grid) for every chart drawn inside the block:
    create, draw and save the figure within it (:func:`png_data_uri`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    family = cjk_font()
    # the font found first; the others only name fallbacks for an SVG opened where that font is missing
    fallbacks = [f for f in CJK_FAMILIES if f != family] if family else []
    style = {"font.family": "sans-serif", "font.sans-serif": ([family] if family else []) + ["DejaVu Sans"] + fallbacks, "axes.unicode_minus": False,
             "font.size": 9, "axes.titlesize": 10, "axes.titley": 1.0, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
    with plt.rc_context(style):
        yield plt


def png_data_uri(fig, *, dpi: int = 110) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (closed afterwards): a report that carries
    its charts needs no other file and nothing from the network. Call it inside :func:`chart_style`."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def svg_data_uri(fig) -> str:
    """The figure as a ``data:image/svg+xml;base64,...`` URI (closed afterwards), its text kept as
    text: sharp at any size, selectable, and in a PDF's text layer (WeasyPrint draws SVG itself).
    Margins are the caller's (no tight layout). Call it inside :func:`chart_style`."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ipvalue"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
