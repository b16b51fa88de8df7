"""Files and folders only their owner may read: ipvalue's state (the audit store, its key and
checkpoints, uploads, reports) is the bank's record, created 0600 in folders created 0700 whatever
the umask (F15: they were created 0644).

A module of the standard library only, so the audit store (:mod:`ipvalue.audit`) can use it
without importing anything that reads configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRIVATE_FILE_MODE", "PRIVATE_FOLDER_MODE", "open_private", "private_folder"]

#: Mode of the files ipvalue creates for its state (owner read / write only).
PRIVATE_FILE_MODE = 0o600
#: Mode of the folders ipvalue creates for its state.
PRIVATE_FOLDER_MODE = 0o700
_OPEN_FLAGS = {"a": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "w": os.O_WRONLY | os.O_TRUNC | os.O_CREAT, "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL}


def private_folder(path: str | Path) -> Path:
    """``path`` as a folder, created with mode 0700 (its missing parents too) when it does not exist;
    an existing folder is left as it is."""
    path = Path(path)
    for folder in reversed([path, *path.parents]):
        if not folder.exists():
            folder.mkdir(mode=PRIVATE_FOLDER_MODE, exist_ok=True)
    return path


def open_private(path: str | Path, mode: str = "a", *, encoding: str | None = "utf-8"):
    """Open a file for writing that, when this call creates it, has mode 0600 (whatever the umask).

    Parameters
    ----------
    path : str or Path
    mode : {'a', 'w', 'x', 'ab', 'wb', 'xb'}, default='a'
        Append, truncate or create-only ('x' raises FileExistsError when it exists), text or binary.
    encoding : str, default='utf-8'
        For text modes.

    Returns
    -------
    file object

    Examples
    --------
    >>> with open_private(state / "uploads" / name, "xb") as fh:      # doctest: +SKIP
    ...     fh.write(content)
    """
    if mode.rstrip("b") not in _OPEN_FLAGS or mode.count("b") > 1:
        raise ValueError(f"The 'mode' of open_private must be one of a, w, x (with 'b' for bytes). Got {mode!r}.")
    fd = os.open(path, _OPEN_FLAGS[mode.rstrip("b")], PRIVATE_FILE_MODE)
    try:
        return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)
    except BaseException:
        os.close(fd)
        raise
