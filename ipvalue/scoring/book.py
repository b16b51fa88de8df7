"""Reading a collateral book in chunks (CSV in UTF-8 or GB18030, or Parquet): memory follows the
chunk size, not the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ipvalue.exceptions import EmptyInputError, InputFileError
from ipvalue.io import detect_encoding

DEFAULT_CHUNK_SIZE = 50_000


def iter_chunks(path: str | Path, chunk_size: int = DEFAULT_CHUNK_SIZE, *, encoding: str | None = None):
    """Yield ``(offset, raw frame)`` chunks of a CSV or Parquet file; ``offset`` counts data rows before the chunk."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Input file {str(path)!r} does not exist. Fix: check the path.")
    offset = 0
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
            frame = batch.to_pandas()
            yield offset, frame
            offset += len(frame)
    elif path.suffix.lower() in (".csv", ".txt"):
        if path.stat().st_size == 0:
            raise EmptyInputError(f"{path} is an empty file. Fix: export the table again with its header row.")
        for frame in pd.read_csv(path, dtype=str, encoding=detect_encoding(path, encoding), chunksize=chunk_size):
            yield offset, frame
            offset += len(frame)
    else:
        raise InputFileError(f"Unsupported input type {path.suffix!r} for {path}. Fix: use .csv or .parquet.")
    if offset == 0:
        raise EmptyInputError(f"{path} has no data rows. Fix: check the export or its filter.")
