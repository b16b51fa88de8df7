"""The report's charts drawn by a second process while the command values the application.

``ipvalue value`` spends about 0.8 s on its report's charts: 0.35 s importing matplotlib and
0.45 s drawing seven charts, all after the valuation, while the machine's other core waits. Within
:func:`charts_drawn_aside`, a helper process (this module run as ``python -P -m``, the same
interpreter and environment) starts at once, imports matplotlib and loads the CJK font while the
command imports pandas and scikit-learn and values; :func:`draw_charts` then sends it the charts as
JSON and lays the report's tables out while it draws them.

The helper draws with :func:`ipvalue.report.figures.draw_chart`, the code a report uses in process,
so the charts are the same bytes either way (a test compares the HTML). It reads one line of JSON
and writes JSON back (no pickles), and serves one batch of charts. Anything else (outside the
block, a second report in the same command, a helper that failed to start, exited, answered
wrongly or took over :data:`HELPER_TIMEOUT_S`) is drawn in this process, as before; the helper is
killed when the block ends.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from contextlib import contextmanager
from contextvars import ContextVar

logger = logging.getLogger(__name__)

#: Seconds the command waits for the helper's charts before it draws them itself.
HELPER_TIMEOUT_S = 60.0
SVG_URI = "data:image/svg+xml;base64,"
#: The helper: this module in the same interpreter, without the working folder on its path.
HELPER_COMMAND = (sys.executable, "-P", "-m", __name__)

_HELPER: ContextVar[subprocess.Popen | None] = ContextVar("ipvalue_chart_helper", default=None)


@contextmanager
def charts_drawn_aside():
    """Start the chart helper; within the block, the first report's charts are drawn by it."""
    try:
        helper = subprocess.Popen(HELPER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError as exc:
        logger.info("Chart helper not started (%s); the charts are drawn in this process.", exc)
        helper = None
    token = _HELPER.set(helper)
    try:
        yield
    finally:
        _HELPER.reset(token)
        if helper is not None:
            _stop(helper)


def draw_charts(charts: list[dict], *, meanwhile=None) -> tuple[list[str], object]:
    """Each chart (the data of :class:`~ipvalue.report.sections.Chart`) as an SVG data URI, and
    what ``meanwhile()`` returns (called while the helper draws; None: nothing to do).

    Drawn by the helper of :func:`charts_drawn_aside` when one waits, else in this process."""
    from ipvalue.report.figures import draw_chart

    helper = _HELPER.get()
    if helper is not None:
        _HELPER.set(None)  # one batch per helper: a later report is drawn here
        if not _send(helper, charts):
            helper = None
    done = meanwhile() if meanwhile is not None else None
    uris = _receive(helper, len(charts)) if helper is not None else None
    if uris is None:
        uris = [draw_chart(c) for c in charts]
    return uris, done


def _send(helper: subprocess.Popen, charts: list[dict]) -> bool:
    try:
        helper.stdin.write(json.dumps({"charts": charts}, ensure_ascii=False).encode("utf-8") + b"\n")  # one line: JSON escapes newlines
        helper.stdin.flush()
        return True
    except (OSError, TypeError, ValueError) as exc:  # a helper that already exited; data JSON cannot carry
        logger.info("Chart helper not given the charts (%s); they are drawn in this process.", exc)
        _stop(helper)
        return False


def _receive(helper: subprocess.Popen, expected: int) -> list[str] | None:
    """The helper's SVG data URIs, or None (the helper stopped) when it fails or takes too long."""
    try:
        out, _ = helper.communicate(timeout=HELPER_TIMEOUT_S)
        uris = json.loads(out)["uris"]
    except subprocess.TimeoutExpired:
        logger.info("Chart helper took over %.0f s; the charts are drawn in this process.", HELPER_TIMEOUT_S)
        _stop(helper)
        return None
    except (ValueError, KeyError, TypeError) as exc:
        logger.info("Chart helper gave no charts (exit code %s: %s); they are drawn in this process.", helper.returncode, exc)
        return None
    if not isinstance(uris, list) or len(uris) != expected or not all(isinstance(u, str) and u.startswith(SVG_URI) for u in uris):
        logger.info("Chart helper answered with something other than %d SVG charts; they are drawn in this process.", expected)
        return None
    return uris


def _stop(helper: subprocess.Popen) -> None:
    if helper.poll() is None:
        helper.kill()
    helper.communicate()


def _serve() -> int:
    """The helper: import and warm up matplotlib, then draw the charts read from standard input."""
    from ipvalue.charts import chart_style, cjk_font, svg_data_uri
    from ipvalue.report.figures import draw_chart

    cjk_font()  # the font list: the first chart would wait for it
    with chart_style() as plt:  # the first drawing loads the font files and text layout
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.set_title("预热 warm-up")
        svg_data_uri(fig)
    request = json.loads(sys.stdin.buffer.readline() or b"{}")
    uris = [draw_chart(chart) for chart in request.get("charts", [])]
    sys.stdout.buffer.write(json.dumps({"uris": uris}).encode("ascii"))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve())
