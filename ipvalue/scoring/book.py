"""Reading a collateral book in chunks (CSV in UTF-8 or GB18030, or Parquet): memory follows the
chunk size, not the file."""

from __future__ import annotations

import csv
import hashlib
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ipvalue.exceptions import EmptyInputError, InputFileError
from ipvalue.io import detect_encoding
from ipvalue.names import normalise_id

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
        with readable_table(path):
            for frame in pd.read_csv(path, dtype=str, encoding=detect_encoding(path, encoding), chunksize=chunk_size):
                yield offset, frame
                offset += len(frame)
    else:
        raise InputFileError(f"Unsupported input type {path.suffix!r} for {path}. Fix: use .csv or .parquet.")
    if offset == 0:
        raise EmptyInputError(f"{path} has no data rows. Fix: check the export or its filter.")


@contextmanager
def readable_table(path: Path):
    """pandas' errors on a malformed or empty CSV as input errors naming the file and the fix."""
    try:
        yield
    except pd.errors.EmptyDataError as exc:
        raise EmptyInputError(f"{path} has no header row ({exc}). Fix: export the table again with its header row.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(f"{path} is not a well-formed table: {str(exc).strip()}. "
                             "Fix: every row needs as many fields as the header, and quotes must be closed; re-export the file.") from None


def content_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (streamed): what a resumed run compares, since a copy that keeps
    size and timestamp (``cp -p``, ``rsync -t``, ``tar``) can hold other content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def duplicated_ids(path: str | Path, mapping, chunk_size: int = DEFAULT_CHUNK_SIZE, *, encoding: str | None = None) -> set[str]:
    """The patent ids (normalised) that occur more than once anywhere in the book, read from the
    id column only: a chunked scorer quarantines every copy, as one validation of the whole file
    would, so the result does not depend on the chunk size."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        header = pq.ParquetFile(path).schema_arrow.names
    else:
        with readable_table(path):
            header = list(pd.read_csv(path, dtype=str, encoding=detect_encoding(path, encoding), nrows=0).columns)
    source = next((col for col, target in mapping.renames(header)[0].items() if target == "patent_id"), None)
    if source is None:
        return set()
    if path.suffix.lower() in (".parquet", ".pq"):
        ids = pq.read_table(path, columns=[source]).column(0).to_pandas()
    else:
        with readable_table(path):
            ids = pd.read_csv(path, dtype=str, encoding=detect_encoding(path, encoding), usecols=[source])[source]
    ids = normalise_id(ids.astype("str").where(ids.notna()))
    counts = ids.value_counts()
    return set(counts.index[counts > 1])
