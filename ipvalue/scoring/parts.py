"""The files of a scoring run: finished chunks kept as Arrow IPC parts (for a resumed run) and the
Parquet output, appended in input order and renamed into place only when complete."""

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


class ParquetSink:
    """One Parquet output, appended chunk by chunk in input order to a temporary file that
    :meth:`commit` renames into place (a reader never sees it half-written). Its schema, with the
    model metadata, is that of the first chunk with rows."""

    def __init__(self, out: Path, metadata: dict):
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        self.out, self.tmp = out, Path(tmp)
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
