"""This process's temporary files: the set the atomic writers (:func:`ipvalue.io.write_atomic`,
:func:`ipvalue.io.write_text_atomic`) keep of the files they are writing, and the SIGTERM handler
that removes them.

Standard library only, so that the command line can install the handler before it imports pandas
or any other heavy package.
"""

from __future__ import annotations

import os
import signal

#: Paths of the temporary files this process is writing now (added when a write starts, removed
#: when its file is renamed into place or dropped).
LIVE_TEMPORARY_FILES: set[str] = set()


def remove_temporary_files_on_sigterm() -> None:
    """Install a SIGTERM handler that removes this process's temporary files, then exits 143.

    For the CLI's entry point (a library does not install handlers on import). A handler installed
    before keeps being called, after the files are removed.
    """
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        for tmp in list(LIVE_TEMPORARY_FILES):
            try:
                os.remove(tmp)
            except OSError:
                pass
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
