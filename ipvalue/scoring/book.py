"""Reading a collateral book to score, in every format ``ipvalue validate`` reads: CSV / TXT / TSV
(UTF-8 or GB18030, detected; the delimiter found as validate finds it) and Parquet are streamed in
chunks, so memory follows the chunk size, not the file; an Excel workbook (.xlsx, .xlsm, .xls) is
read once by the same reader as validate (:func:`ipvalue.io.read_table`: merged cells filled, fake
workbooks refused) and then cut into chunks."""

from __future__ import annotations

import csv
import hashlib
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ipvalue.exceptions import EmptyInputError, InputFileError
from ipvalue.io import detect_encoding, read_table
from ipvalue.io.tables import sniff_delimiter
from ipvalue.names import normalise_id

DEFAULT_CHUNK_SIZE = 50_000
PARQUET = (".parquet", ".pq")
DELIMITED = (".csv", ".txt", ".tsv")
WORKBOOKS = (".xlsx", ".xlsm", ".xls")


class Book:
    """A book to score, opened once: its kind, and for CSV the encoding and delimiter.

    Parameters
    ----------
    path : str or Path
        ``.csv`` / ``.txt`` / ``.tsv``, ``.parquet`` / ``.pq`` or ``.xlsx`` / ``.xlsm`` / ``.xls``.
    encoding : str, optional
        CSV encoding; UTF-8 then GB18030 are tried when omitted.
    """

    def __init__(self, path: str | Path, *, encoding: str | None = None):
        self.path = path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Input file {str(path)!r} does not exist. Fix: check the path.")
        suffix = path.suffix.lower()
        self.frame = None
        if suffix in WORKBOOKS:
            self.frame = read_table(path)[0]  # validate's reader: the whole sheet (Excel holds at most 1,048,575 rows)
        elif suffix in DELIMITED:
            if path.stat().st_size == 0:
                raise EmptyInputError(f"{path} is an empty file. Fix: export the table again with its header row.")
            self.encoding = detect_encoding(path, encoding)
            self.sep = "\t" if suffix == ".tsv" else sniff_delimiter(path, self.encoding)
        elif suffix not in PARQUET:
            raise InputFileError(f"Unsupported input type {path.suffix!r} for {path}. Fix: use .csv, .parquet or .xlsx.")
        self.kind = "workbook" if suffix in WORKBOOKS else "delimited" if suffix in DELIMITED else "parquet"

    def _read_csv(self, **kwargs):
        return pd.read_csv(self.path, dtype=str, encoding=self.encoding, sep=self.sep, **kwargs)

    def header(self) -> list[str]:
        if self.kind == "workbook":
            return [str(c) for c in self.frame.columns]
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).schema_arrow.names
        with readable_table(self.path):
            return list(self._read_csv(nrows=0).columns)

    def column(self, name: str) -> pd.Series:
        """One column of every row (what the duplicate check and the row count read)."""
        if self.kind == "workbook":
            return self.frame[name]
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(self.path, columns=[name]).column(0).to_pandas()
        with readable_table(self.path):
            return self._read_csv(usecols=[name])[name]

    def rows(self) -> int:
        """The number of data rows (for the progress display's total)."""
        if self.kind == "workbook":
            return len(self.frame)
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        header = self.header()
        return len(self.column(header[0])) if header else 0

    def chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE):
        """Yield ``(offset, raw frame)``; ``offset`` counts the data rows before the chunk."""
        offset = 0
        if self.kind == "workbook":
            for start in range(0, len(self.frame), chunk_size):
                yield start, self.frame.iloc[start:start + chunk_size].reset_index(drop=True)
            offset = len(self.frame)
        elif self.kind == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=chunk_size):
                frame = batch.to_pandas()
                yield offset, frame
                offset += len(frame)
        else:
            with readable_table(self.path):
                for frame in self._read_csv(chunksize=chunk_size):
                    yield offset, frame
                    offset += len(frame)
        if offset == 0:
            raise EmptyInputError(f"{self.path} has no data rows. Fix: check the export or its filter.")

    def index(self, mapping) -> tuple[set[str], int]:
        """The patent ids (normalised) that occur more than once anywhere in the book, and the number
        of rows, from one read of the id column: a chunked scorer quarantines every copy, as one
        validation of the whole file would, so the result does not depend on the chunk size."""
        header = self.header()
        source = next((col for col, target in mapping.renames(header)[0].items() if target == "patent_id"), None)
        if source is None:
            return set(), self.rows()
        ids = self.column(source)
        ids = normalise_id(ids.astype("str").where(ids.notna()))
        counts = ids.value_counts()
        return set(counts.index[counts > 1]), len(ids)


def iter_chunks(path: str | Path, chunk_size: int = DEFAULT_CHUNK_SIZE, *, encoding: str | None = None):
    """Yield ``(offset, raw frame)`` chunks of a book (see :class:`Book`)."""
    yield from Book(path, encoding=encoding).chunks(chunk_size)


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
