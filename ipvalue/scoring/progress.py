"""What a long scoring run shows on a terminal (tqdm): one line per phase that ticks while it runs
(loading the model, reading the book) and then a bar of the rows with the total, the rate and the
time left. Nothing at all when stderr is not a terminal (a scheduler's log)."""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager


class Progress:
    """Phase lines and a row bar on ``stream`` (default stderr), shown only when ``show``.

    Parameters
    ----------
    show : bool, optional
        Default: only when ``stream`` is a terminal.
    """

    def __init__(self, show: bool | None = None, *, stream=None):
        self.stream = stream or sys.stderr
        self.show = bool(self.stream.isatty()) if show is None else bool(show)

    @contextmanager
    def phase(self, text: str):
        """A line ``text … 0:03`` whose clock ticks while the block runs, ending ``text ✓ 0:03``
        (a model load gives no progress of its own to show)."""
        if not self.show:
            yield
            return
        from tqdm import tqdm

        bar = tqdm(desc=f"{text} …", total=None, bar_format="{desc} {elapsed}", file=self.stream, leave=True)
        stop = threading.Event()

        def tick():
            while not stop.wait(0.5):
                bar.refresh()

        clock = threading.Thread(target=tick, name="ipvalue-progress", daemon=True)
        clock.start()
        try:
            yield
            bar.set_description_str(f"{text} ✓", refresh=False)
        finally:
            stop.set()
            clock.join()
            bar.close()

    def rows(self, total: int | None, desc: str):
        """A bar of rows with the total, the rate and the time left (disabled when not shown)."""
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=" rows", unit_scale=True, disable=not self.show, file=self.stream, dynamic_ncols=True)
