"""Parse an untrusted patent export in a child process under a memory limit.

:func:`read_patents_bounded` is :func:`ipvalue.io.read_patents` run in a forked worker whose
address space is capped (``resource.RLIMIT_AS``) and whose time is capped: a file that needs more
memory than the budget ends the worker, never the service. The worker writes its validated result
(Parquet tables and a JSON note list) into a private temporary folder the parent created; the
parent reads those files back. They are written by ipvalue's own code in a folder only this user
can open, so reading them back is not deserialising someone else's file (and they are Parquet and
JSON, never pickles).

Workers come from a fork server that has already imported pandas and ipvalue (a fork of a
single-threaded process: safe beside a threaded web server, and about 50 ms instead of a
2-second interpreter start per upload).

Limits
------
* :data:`PARSE_MEMORY_BYTES`: address space the worker may add above what it holds when it
  starts (the fork server's imports). ``RLIMIT_AS`` counts reserved address space, not resident
  memory: the default leaves room for the allocators' reservations; the resident peak is lower.
* :data:`PARSE_TIMEOUT_S`: wall-clock seconds before the worker is killed.
* :data:`ipvalue.io.tables.UPLOAD_LIMITS`: rows, cells and decompressed bytes, refused before
  parsing where the file declares them.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import resource
import tempfile
from pathlib import Path

import pandas as pd

from ipvalue import exceptions
from ipvalue.exceptions import InputError, InputFileError, PatentFrameError
from ipvalue.frame import COLUMNS, ValidationResult
from ipvalue.io.tables import UPLOAD_LIMITS, ReadLimits, read_patents

logger = logging.getLogger(__name__)

#: Address space (bytes) a parse worker may add above its start; beyond it the parse is refused.
PARSE_MEMORY_BYTES = 2 * 1024**3
#: Seconds a parse may take before its worker is killed and the file refused.
PARSE_TIMEOUT_S = 300.0
_DATE_COLUMNS = [c.name for c in COLUMNS if c.kind == "date"]
_context = None


def _fork_server():
    """The fork-server context, its server preloaded with this module (and so pandas / ipvalue)."""
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["ipvalue.io.bounded"])
        _context = ctx
    return _context


def read_patents_bounded(
    path: str | Path,
    *,
    memory_bytes: int = PARSE_MEMORY_BYTES,
    timeout_s: float = PARSE_TIMEOUT_S,
    limits: ReadLimits | None = UPLOAD_LIMITS,
    **options,
) -> ValidationResult:
    """:func:`~ipvalue.io.read_patents` in a worker process with bounded memory and time.

    Parameters
    ----------
    path : str or Path
        The export (CSV, Excel, Parquet).
    memory_bytes : int, default=PARSE_MEMORY_BYTES
        Address space the worker may add (bytes).
    timeout_s : float, default=PARSE_TIMEOUT_S
        Seconds before the worker is killed.
    limits : ReadLimits, default=UPLOAD_LIMITS
        Rows, cells and decompressed bytes of the read.
    **options
        ``mapping``, ``encoding``, ``sheet_name``, ``strict``, ``date_format`` of
        :func:`~ipvalue.io.read_patents`.

    Returns
    -------
    ValidationResult
        As :func:`~ipvalue.io.read_patents` returns it, except that the quarantine's and the
        problems' cells come back as text (their original Excel types cannot all be stored).

    Raises
    ------
    InputError
        The error :func:`~ipvalue.io.read_patents` raised (same class and message), or an
        :class:`~ipvalue.exceptions.InputFileError` when the parse needed more memory or time
        than allowed (naming the limit and the fix).
    FileNotFoundError
        ``path`` does not exist.

    Examples
    --------
    >>> loaded = read_patents_bounded("upload.csv", memory_bytes=512 * 2**20)   # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Input file {str(path)!r} does not exist. Fix: check the path.")
    unknown = set(options) - {"mapping", "encoding", "sheet_name", "strict", "date_format"}
    if unknown:
        raise TypeError(f"read_patents_bounded got unknown option(s) {sorted(unknown)}.")
    with tempfile.TemporaryDirectory(prefix="ipvalue-parse-") as folder:  # mode 0700: only this user
        worker = _fork_server().Process(target=parse_worker, args=(str(path), folder, int(memory_bytes), limits, options), daemon=True)
        worker.start()
        worker.join(timeout_s)
        if worker.is_alive():
            worker.kill()
            worker.join()
            raise InputFileError(f"{path.name} took more than {timeout_s:,.0f} s to parse (the limit of a parse). "
                                 "Fix: export only the patents needed (e.g. the borrower's), or split the file.")
        return _read_back(Path(folder), path, worker.exitcode, memory_bytes)


def parse_worker(path: str, folder: str, memory_bytes: int, limits: ReadLimits | None, options: dict) -> None:
    """The worker's job: cap the address space, read and validate, write the result to ``folder``.

    Not for direct use: :func:`read_patents_bounded` starts it in a child process.
    """
    _limit_address_space(memory_bytes)
    out = Path(folder)
    try:
        result = read_patents(path, limits=limits, **options)
        result.valid.to_parquet(out / "valid.parquet")
        _as_text(result.quarantine).to_parquet(out / "quarantine.parquet")
        _as_text(result.problems).to_parquet(out / "problems.parquet")
        (out / "notes.json").write_text(json.dumps(result.notes, ensure_ascii=False), encoding="utf-8")
    except MemoryError:
        (out / "error.json").write_text(json.dumps({"kind": "memory"}), encoding="utf-8")
    except FileNotFoundError as exc:
        (out / "error.json").write_text(json.dumps({"kind": "missing", "message": str(exc)}, ensure_ascii=False), encoding="utf-8")
    except InputError as exc:
        problems = getattr(exc, "problems", None)
        if isinstance(problems, pd.DataFrame):
            _as_text(problems).to_parquet(out / "error-problems.parquet")
        (out / "error.json").write_text(json.dumps({"kind": "input", "class": type(exc).__name__, "message": str(exc)}, ensure_ascii=False),
                                        encoding="utf-8")


def _limit_address_space(memory_bytes: int) -> None:
    """RLIMIT_AS = what the process holds now + ``memory_bytes`` (never above the hard limit)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            held = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):  # not Linux: no way to know the start; no cap
        logger.warning("the parse worker's memory cannot be capped on this platform (no /proc/self/status)")
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = held + memory_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns (mixed Excel cells) as text, missing kept missing: storable in Parquet."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v)).astype("str")
    out.columns = [str(c) for c in out.columns]
    return out


def _read_back(folder: Path, path: Path, exitcode: int | None, memory_bytes: int) -> ValidationResult:
    error = folder / "error.json"
    if error.is_file():
        found = json.loads(error.read_text(encoding="utf-8"))
        if found["kind"] == "missing":
            raise FileNotFoundError(found["message"])
        if found["kind"] == "input":
            kind = getattr(exceptions, found["class"], None)
            kind = kind if isinstance(kind, type) and issubclass(kind, InputError) else InputFileError
            if issubclass(kind, PatentFrameError):
                extra = folder / "error-problems.parquet"
                raise kind(found["message"], pd.read_parquet(extra) if extra.is_file() else None)
            raise kind(found["message"])
    elif exitcode == 0 and (folder / "notes.json").is_file():
        valid = pd.read_parquet(folder / "valid.parquet")
        valid[_DATE_COLUMNS] = valid[_DATE_COLUMNS].astype("datetime64[s]")
        return ValidationResult(valid=valid, quarantine=pd.read_parquet(folder / "quarantine.parquet"),
                                problems=pd.read_parquet(folder / "problems.parquet"),
                                notes=json.loads((folder / "notes.json").read_text(encoding="utf-8")))
    elif exitcode is not None and exitcode > 0:
        raise RuntimeError(f"The parse worker for {path.name} failed (exit {exitcode}); its traceback is in the log.")
    # a MemoryError in the worker, or the worker killed by a signal (an allocator that aborts, the kernel)
    logger.warning("parse of %s stopped at the memory limit of %d bytes (worker exit %s)", path.name, memory_bytes, exitcode)
    raise InputFileError(f"{path.name} needed more than {memory_bytes / 2**20:,.0f} MB of memory to parse (the limit of a parse). "
                         "Fix: export only the patents needed (e.g. the borrower's), or split the file.")
