"""The files of a scoring run: finished chunks kept as Arrow IPC parts (for a resumed run) and the
outputs (Parquet, CSV for Excel or an .xlsx workbook, by the extension), appended in input order to
a temporary file beside the target and renamed into place only when complete."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd


def write_part(frame: pd.DataFrame, path: Path):
    """A finished chunk as an Arrow IPC file (fast to write and read back), written atomically;
    returns the Arrow table."""
    import pyarrow as pa
    import pyarrow.feather as feather

    table = pa.Table.from_pandas(frame, preserve_index=False)
    tmp = path.with_name(f".{path.name}.tmp")
    feather.write_feather(table, tmp)
    os.replace(tmp, path)
    return table


def read_part(path: Path):
    import pyarrow.feather as feather

    return feather.read_table(path)


def _temporary_beside(out: Path) -> Path:
    """A new temporary file ``.<name>.<random>.tmp`` beside ``out``: the pattern
    :func:`ipvalue.io.sweep_temporary_files` removes when a killed run left it behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    return Path(tmp)


class ParquetSink:
    """One Parquet output, appended chunk by chunk in input order to a temporary file that
    :meth:`commit` renames into place (a reader never sees it half-written). Its schema, with the
    model metadata, is that of the first chunk with rows."""

    def __init__(self, out: Path, metadata: dict):
        self.out, self.tmp = out, _temporary_beside(out)
        self.metadata = {k.encode(): str(v).encode() for k, v in metadata.items()}
        self.writer, self.empty_schema, self.rows = None, None, 0

    def append(self, table) -> None:
        import pyarrow.parquet as pq

        if not table.num_rows:
            self.empty_schema = self.empty_schema or table.schema
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema.with_metadata({**(table.schema.metadata or {}), **self.metadata}))
        schema = self.writer.schema
        self.writer.write_table(table if table.schema.equals(schema, check_metadata=False) else table.cast(schema))
        self.rows += table.num_rows

    def commit(self) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:  # no rows at all: an empty file with the columns
            schema = (self.empty_schema or pa.schema([("row", pa.int64())])).with_metadata(self.metadata)
            self.writer = pq.ParquetWriter(self.tmp, schema)
        self.writer.close()
        os.replace(self.tmp, self.out)
        return self.rows

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)


class CsvSink:
    """One CSV output for Excel (UTF-8 with BOM, formula-safe, no scientific notation; see
    :func:`ipvalue.io.spreadsheets.csv_ready`), appended chunk by chunk to a temporary file that
    :meth:`commit` renames into place. The columns are those of the first chunk with rows. CSV has
    no place for the model metadata: the command prints it (Parquet and .xlsx carry it)."""

    def __init__(self, out: Path, metadata: dict):
        from ipvalue.io.spreadsheets import CsvStream

        self.out, self.tmp = out, _temporary_beside(out)
        self.handle = open(self.tmp, "w", encoding="utf-8-sig", newline="")
        self.stream, self.columns, self.empty, self.rows = CsvStream(self.handle), None, None, 0

    def append(self, table) -> None:
        frame = table.to_pandas()
        if not len(frame):
            self.empty = self.empty if self.empty is not None else frame
            return
        self.columns = self.columns or list(frame.columns)
        self.stream.write(frame.reindex(columns=self.columns))
        self.rows += len(frame)

    def commit(self) -> int:
        if self.columns is None:  # no rows at all: the header alone
            self.stream.write(self.empty if self.empty is not None else pd.DataFrame({"row": pd.Series(dtype="int64")}))
        self.handle.close()
        os.replace(self.tmp, self.out)
        return self.rows

    def discard(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


class XlsxSink:
    """One .xlsx output: a sheet of typed cells (numbers as numbers, ids as text) whose header shows
    each column's Chinese heading above its name, frozen, with money in thousands; a sheet "说明
    About" names the model behind it (also in the document properties). Rows stream in (openpyxl's
    write-only mode); the workbook is saved to a temporary file and renamed into place by
    :meth:`commit`. Past Excel's 1,048,576 rows a sheet continues in "<sheet> (2)"."""

    def __init__(self, out: Path, metadata: dict, *, sheet: str, estimator=None, notes: list | None = None):
        from ipvalue.io.spreadsheets import XlsxBook
        from ipvalue.scoring.headings import METADATA_LABELS

        self.out, self.tmp = out, _temporary_beside(out)
        self.sheet, self.estimator, self.notes = sheet, estimator, list(notes or [])
        self.notes += [(METADATA_LABELS.get(k, k), str(v)) for k, v in metadata.items()]
        self.book = XlsxBook(properties={"title": out.name, "subject": "ipvalue score", "custom": metadata})
        self.columns, self.empty, self.rows = None, None, 0

    def append(self, table) -> None:
        from ipvalue.scoring.headings import output_formats, output_labels

        frame = table.to_pandas()
        if not len(frame):
            self.empty = self.empty if self.empty is not None else frame
            return
        if self.columns is None:
            self.columns = list(frame.columns)
            self.labels, self.formats = output_labels(self.columns, self.estimator), output_formats(self.columns)
        self.book.append(frame.reindex(columns=self.columns), sheet=self.sheet, labels=self.labels, formats=self.formats)
        self.rows += len(frame)

    def commit(self) -> int:
        from ipvalue.scoring.headings import output_labels

        if self.columns is None:  # no rows at all: the header alone
            empty = self.empty if self.empty is not None else pd.DataFrame({"row": pd.Series(dtype="int64")})
            self.book.append(empty, sheet=self.sheet, labels=output_labels(empty.columns, self.estimator))
        self.book.notes("说明 About", self.notes + [("行数 Rows", f"{self.rows:,}")])
        self.book.save(self.tmp)
        os.replace(self.tmp, self.out)
        return self.rows

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def open_sink(out: Path, metadata: dict, *, sheet: str = "data", estimator=None, notes: list | None = None):
    """The sink for ``out`` by its extension (.parquet, .csv, .xlsx); a ValueError names the allowed ones."""
    from ipvalue.io.spreadsheets import table_format

    kind = table_format(out)
    if kind == "csv":
        return CsvSink(out, metadata)
    if kind == "xlsx":
        return XlsxSink(out, metadata, sheet=sheet, estimator=estimator, notes=notes)
    return ParquetSink(out, metadata)


def read_output(path: str | Path) -> pd.DataFrame:
    """A scoring output in any of the types ``ipvalue score`` writes (what ``ipvalue pool --scored``
    and ``--previous`` read): Parquet; CSV with or without BOM; the first sheet of an .xlsx, whose
    header cells hold the column name on their last line. Patent ids are read as text."""
    from ipvalue.io.spreadsheets import table_format
    from ipvalue.scoring.headings import column_name

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Scored file {str(path)!r} does not exist. Fix: check the path (the --out of ipvalue score).")
    kind = table_format(path)
    if kind == "parquet":
        return pd.read_parquet(path)
    if kind == "csv":
        return pd.read_csv(path, encoding="utf-8-sig", dtype={"patent_id": str})
    frame = pd.read_excel(path, sheet_name=0, dtype=object)
    frame.columns = [column_name(c) for c in frame.columns]
    return frame.infer_objects().astype({"patent_id": str}, errors="ignore") if "patent_id" in frame else frame.infer_objects()
