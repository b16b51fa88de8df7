"""Batch scoring of a collateral book with a registered raw-record pyfunc.

Local engine (:func:`score_file`)
    Streams the input in chunks (memory bounded by the chunk size), validates each chunk against the
    PatentFrame contract, scores the valid rows and sets the others aside with their reasons. Each
    finished chunk is written to a work folder beside the output with a small "done" record, so a
    re-run with the same arguments after a crash continues from the last finished chunk. Chunks run
    two at a time on threads (``workers``) and are appended, in input order, to one Parquet file
    that is renamed into place at the end; its file metadata carries the model URI, version, run id
    and feature-spec hash. ``rows in = rows scored + rows quarantined``
    is checked and printed; the same input and model give a byte-identical file.

Spark engine (:func:`score_spark`)
    The same pyfunc through ``mlflow.pyfunc.spark_udf`` on a Spark session (local mode by default,
    any cluster through the usual Spark configuration), reading and writing Parquet. The input must
    use PatentFrame column names (e.g. ``ipvalue validate --valid-out``).
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.exceptions import EmptyInputError
from ipvalue.explain import check_sample_fraction, explain_top
from ipvalue.explain import explain_sample as explain_sample_rows

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 50_000


@dataclass
class ScoreSummary:
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    chunks: int
    chunks_resumed: int
    output: str
    quarantine: str
    model_uri: str
    model_version: str
    run_id: str
    feature_spec_hash: str
    seconds: float
    model_load_seconds: float = 0.0

    def line(self) -> str:
        return (
            f"rows in {self.rows_in:,} = scored {self.rows_scored:,} + quarantined {self.rows_quarantined:,} "
            f"({self.chunks} chunks, {self.chunks_resumed} resumed, {self.seconds:.1f} s of which model load "
            f"{self.model_load_seconds:.1f} s) -> {self.output}"
        )


@dataclass
class ModelInfo:
    uri: str
    version: str
    run_id: str
    feature_spec_hash: str
    pyfunc: object

    @property
    def estimator(self):
        """The fitted ipvalue model inside the pyfunc (RenewalModel, ValueRegressor)."""
        return self.pyfunc.unwrap_python_model().model

    @property
    def metadata(self) -> dict:
        return {"ipvalue.model_uri": self.uri, "ipvalue.model_version": self.version, "ipvalue.run_id": self.run_id,
                "ipvalue.feature_spec_hash": self.feature_spec_hash}


def load_model_info(model_uri: str, *, tracking_uri: str | None = None) -> ModelInfo:
    """Load a registered pyfunc and resolve its version, run id and feature-spec hash."""
    import mlflow
    from mlflow import MlflowClient

    from ipvalue.tracking import use_tracking

    use_tracking(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    version = ""
    if model_uri.startswith("models:/"):
        name, _, ref = model_uri[len("models:/"):].partition("@")
        client = MlflowClient()
        if ref:
            version = str(client.get_model_version_by_alias(name, ref).version)
        else:
            version = model_uri.rstrip("/").rsplit("/", 1)[-1]
    estimator = model.unwrap_python_model().model
    return ModelInfo(model_uri, version, model.metadata.run_id or "", estimator.features_.spec_.hash, model)


def _detect_encoding(path: Path, encoding: str | None) -> str:
    """UTF-8 if the whole file decodes as UTF-8, else GB18030 (checked incrementally, in blocks)."""
    if encoding:
        return encoding
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        try:
            while block := fh.read(1 << 22):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return "utf-8-sig"
        except UnicodeDecodeError:
            return "gb18030"


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
        for frame in pd.read_csv(path, dtype=str, encoding=_detect_encoding(path, encoding), chunksize=chunk_size):
            yield offset, frame
            offset += len(frame)
    else:
        raise ValueError(f"Unsupported input type {path.suffix!r} for {path}. Fix: use .csv or .parquet.")
    if offset == 0:
        raise EmptyInputError(f"{path} has no data rows. Fix: check the export or its filter.")


def _score_chunk(raw: pd.DataFrame, offset: int, mapping, model: ModelInfo, explain: str, explain_sample: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    from ipvalue.frame import validate_patent_frame

    raw = raw.reset_index(drop=True)
    mapped, _ = mapping.apply(raw, source="input chunk")
    result = validate_patent_frame(mapped, source="input chunk")
    rows = np.arange(offset + 1, offset + len(raw) + 1)
    quarantine = raw.loc[result.quarantine.index].astype("str")
    quarantine.insert(0, "row", rows[result.quarantine.index])
    quarantine.insert(1, "reasons", result.quarantine["reasons"].to_numpy())
    valid = result.valid
    if len(valid):
        # The chunk is validated already: score the typed frame with the loaded pyfunc's model
        # (its predict would turn it back into text and validate it again).
        inner = model.estimator
        # pass-through columns are not in the header mapping: take them from the raw chunk
        extra = {c: pd.to_numeric(raw.loc[valid.index, c], errors="coerce") if c in raw else np.nan for c in inner.features_.spec_.passthrough}
        frame = valid.assign(**extra)
        rows_explained = explain_sample_rows(frame["patent_id"], explain_sample) if explain_sample is not None else None
        scored = pd.concat([frame[["patent_id"]], inner.score_frame(frame, explain=explain, explain_rows=rows_explained)], axis=1).reset_index(drop=True)
        scored.insert(0, "row", rows[valid.index])
    else:
        scored = pd.DataFrame({"row": pd.Series(dtype="int64")})
    return scored, quarantine


def _write_part(frame: pd.DataFrame, path: Path):
    """A finished chunk as an Arrow IPC file (fast to write and read back), written atomically;
    returns the Arrow table."""
    import pyarrow as pa
    import pyarrow.feather as feather

    table = pa.Table.from_pandas(frame, preserve_index=False)
    tmp = path.with_name(f".{path.name}.tmp")
    feather.write_feather(table, tmp)
    os.replace(tmp, path)
    return table


def _read_part(path: Path):
    import pyarrow.feather as feather

    return feather.read_table(path)


class _ParquetSink:
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


def score_file(
    input_path: str | Path,
    *,
    model_uri: str,
    out: str | Path,
    quarantine_out: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    explain: str = "all",
    explain_sample: float | None = None,
    mapping="auto",
    encoding: str | None = None,
    tracking_uri: str | None = None,
    progress: bool | None = None,
    workers: int = 2,
) -> ScoreSummary:
    """Score a CSV or Parquet book of any size with a registered model (local engine).

    Parameters
    ----------
    input_path : str or Path
    model_uri : str
        e.g. ``models:/ipvalue-value@champion``.
    out : str or Path
        Output Parquet file (``row``, ``patent_id``, model outputs).
    quarantine_out : str or Path, optional
        Rejected rows with ``row`` and ``reasons``; default ``<out stem>.quarantine.parquet``.
    chunk_size : int, default=50,000
    explain : {'all', 'top<N>', 'none'}, default='all'
        SHAP columns for every feature, the N largest drivers (e.g. 'top3'), or none (fastest).
    explain_sample : float, optional
        Explain only this fraction of the patents (a sample chosen by a hash of the patent id, the
        same on every run); the others get missing explanation columns. TreeSHAP is the costly
        part of scoring: a 5 % sample costs about a twentieth.
    mapping : default='auto'
        Column mapping of the input headers (see :class:`ipvalue.io.ColumnMapping`).
    progress : bool, optional
        Show a progress bar; default only when stderr is a terminal.
    workers : int, default=2
        Chunks scored at a time (threads). Memory grows with ``workers × chunk_size``; the
        output is the same for any value.

    Returns
    -------
    ScoreSummary
    """
    from tqdm import tqdm

    from ipvalue.io import ColumnMapping, write_text_atomic

    explain_top(explain)  # raises on an unknown mode
    if explain_sample is not None:
        check_sample_fraction(explain_sample)
    if int(workers) < 1:
        raise ValueError(f"The 'workers' must be a positive number of threads. Got {workers!r}.")
    if int(chunk_size) < 1:
        raise ValueError(f"The 'chunk_size' must be a positive number of rows. Got {chunk_size!r}.")
    started = time.perf_counter()
    input_path, out = Path(input_path), Path(out)
    quarantine_out = Path(quarantine_out) if quarantine_out else out.with_name(out.stem + ".quarantine.parquet")
    model = load_model_info(model_uri, tracking_uri=tracking_uri)
    loaded = time.perf_counter()
    # Each chunk's LightGBM call gets its share of the cores, so the calls of `workers` chunks run
    # side by side instead of contending for the same OpenMP threads.
    model.estimator.booster_.set_params(n_jobs=max(1, (os.cpu_count() or 1) // int(workers)))
    column_mapping = ColumnMapping.load(mapping)
    if not input_path.exists():
        raise FileNotFoundError(f"Input file {str(input_path)!r} does not exist. Fix: check the path.")
    stat = input_path.stat()
    manifest = {
        "input": str(input_path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "chunk_size": int(chunk_size),
        "explain": explain, "explain_sample": explain_sample, "mapping": str(mapping), "parts": "arrow-ipc", **model.metadata,
    }
    work = out.with_name(out.name + ".parts")
    manifest_path = work / "manifest.json"
    if work.exists() and (not manifest_path.exists() or json.loads(manifest_path.read_text(encoding="utf-8")) != manifest):
        logger.info("discarding stale work folder %s (different input, model or options)", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(manifest, sort_keys=True), manifest_path)

    counts = {"in": 0, "scored": 0, "quarantined": 0}
    resumed, n_chunks = 0, 0
    show = sys.stderr.isatty() if progress is None else progress

    def paths(i: int) -> tuple[Path, Path, Path]:
        return work / f"part-{i:05d}.arrow", work / f"quarantine-{i:05d}.arrow", work / f"done-{i:05d}.json"

    def run_chunk(i: int, offset: int, raw: pd.DataFrame):
        part, qpart, done = paths(i)
        scored, quarantine = _score_chunk(raw, offset, column_mapping, model, explain, explain_sample)
        tables = _write_part(scored, part), _write_part(quarantine, qpart)
        record = {"in": len(raw), "scored": len(scored), "quarantined": len(quarantine)}
        if record["in"] != record["scored"] + record["quarantined"]:
            raise RuntimeError(f"chunk {i}: {record['in']} rows in but {record['scored']} scored + {record['quarantined']} quarantined")
        write_text_atomic(json.dumps(record), done)  # last: a chunk counts as finished only with all its files
        return record, tables

    def load_chunk(i: int):
        part, qpart, done = paths(i)
        return json.loads(done.read_text(encoding="utf-8")), (_read_part(part), _read_part(qpart))

    sinks = _ParquetSink(out, model.metadata), _ParquetSink(quarantine_out, model.metadata)

    def finish(future) -> None:
        record, tables = future.result()
        for sink, table in zip(sinks, tables):
            sink.append(table)
        for k in counts:
            counts[k] += record[k]
        bar.update(record["in"])

    # Chunks run `workers` at a time on threads: LightGBM and Arrow release the GIL, so one chunk's
    # model call overlaps the next chunk's pandas work. Finished chunks are appended to the outputs
    # in input order (so the output does not depend on which thread finishes first) and kept as
    # parts in the work folder until the end, for a resumed run.
    pending: deque = deque()
    try:
        with tqdm(desc=f"scoring {input_path.name}", unit="rows", disable=not show, file=sys.stderr) as bar, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ipvalue-score") as pool:
            for i, (offset, raw) in enumerate(iter_chunks(input_path, chunk_size, encoding=encoding)):
                n_chunks += 1
                if paths(i)[2].exists():
                    resumed += 1
                    pending.append(pool.submit(load_chunk, i))
                else:
                    pending.append(pool.submit(run_chunk, i, offset, raw))
                while len(pending) >= workers:  # bounds memory: at most `workers` chunks in flight
                    finish(pending.popleft())
            while pending:
                finish(pending.popleft())
        written = [sink.rows for sink in sinks]
        if written != [counts["scored"], counts["quarantined"]] or counts["in"] != sum(written):
            raise RuntimeError(f"row count mismatch: {counts} but wrote {written[0]} scored and {written[1]} quarantined rows")
        scored_rows, quarantined_rows = (sink.commit() for sink in sinks)
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    shutil.rmtree(work)
    summary = ScoreSummary(
        counts["in"], scored_rows, quarantined_rows, n_chunks, resumed, str(out), str(quarantine_out), model.uri, model.version,
        model.run_id, model.feature_spec_hash, time.perf_counter() - started, loaded - started,
    )
    logger.info(summary.line())
    return summary


def spark_session(master: str = "local[2]"):
    """A Spark session whose Python workers run this interpreter (unless ``PYSPARK_PYTHON`` says
    otherwise); on a cluster, configure Spark as usual and pass your own session."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return SparkSession.builder.master(master).appName("ipvalue-score").config("spark.ui.enabled", "false").getOrCreate()


def score_spark(
    input_path: str | Path,
    *,
    model_uri: str,
    out: str | Path,
    quarantine_out: str | Path | None = None,
    explain: str = "all",
    partitions: int | None = None,
    tracking_uri: str | None = None,
    spark=None,
) -> ScoreSummary:
    """Score a Parquet (or CSV) book on Spark through ``mlflow.pyfunc.spark_udf``.

    Rows are numbered like the local engine (1-based input order), validated in ``mapInPandas``
    (invalid rows go to the quarantine with their reasons), repartitioned (a single Parquet row
    group would keep one task busy) and scored by the registered pyfunc. ``out`` and
    ``quarantine_out`` are Parquet folders, replaced as a whole at the end.
    """
    import mlflow
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from ipvalue.frame import COLUMN_BY_NAME, validate_patent_frame
    from ipvalue.tracking import raw_records

    explain_top(explain)  # raises on an unknown mode
    started = time.perf_counter()
    input_path, out = Path(input_path), Path(out)
    quarantine_out = Path(quarantine_out) if quarantine_out else out.with_name(out.stem + ".quarantine")
    model = load_model_info(model_uri, tracking_uri=tracking_uri)
    loaded = time.perf_counter()
    spark = spark or spark_session()
    try:
        df = spark.read.option("header", True).csv(str(input_path)) if input_path.suffix.lower() == ".csv" else spark.read.parquet(str(input_path))
        df.schema  # noqa: B018 - forces the footer read, where type errors surface
    except Exception as exc:  # pyspark's AnalysisException
        if "PARQUET_TYPE_ILLEGAL" in str(exc) and "NANOS" in str(exc):
            raise ValueError(
                f"Spark cannot read the nanosecond timestamps in {input_path}. Fix: write dates as text or as microsecond "
                "timestamps (pandas: to_parquet(..., coerce_timestamps='us', allow_truncated_timestamps=True))."
            ) from exc
        raise
    passthrough = model.estimator.features_.spec_.passthrough
    numeric = {c for c, spec in COLUMN_BY_NAME.items() if spec.kind in ("count", "float")} | set(passthrough)
    cols = [c for c in df.columns if c in COLUMN_BY_NAME or c in passthrough]
    df = df.select(*[F.col(c).cast("double" if c in numeric else "string").alias(c) for c in cols])
    numbered = df.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1] + 1)).toDF([*cols, "row"])

    def validate(batches):
        for pdf in batches:
            res = validate_patent_frame(pdf.drop(columns=["row"]), source="spark partition")
            reasons = pd.Series(None, index=pdf.index, dtype=object)
            reasons.iloc[res.quarantine.index] = res.quarantine["reasons"].to_numpy()
            yield pdf.assign(reasons=reasons)

    checked = numbered.mapInPandas(validate, schema=T.StructType([*numbered.schema.fields, T.StructField("reasons", T.StringType())])).cache()
    valid = checked.filter(F.col("reasons").isNull()).drop("reasons")
    quarantine = checked.filter(F.col("reasons").isNotNull()).select("row", "reasons", *cols)

    sample = valid.limit(2).toPandas()
    if sample.empty:
        raise EmptyInputError(f"{input_path} has no valid rows to score.")
    sample_out = model.pyfunc.predict(raw_records(sample.drop(columns=["row"]), extra_columns=passthrough), params={"explain": explain})
    fields = [T.StructField(c, T.DoubleType() if pd.api.types.is_numeric_dtype(sample_out[c]) else T.StringType()) for c in sample_out.columns]
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=T.StructType(fields), env_manager="local", params={"explain": explain})
    n = partitions or max(2, spark.sparkContext.defaultParallelism * 2)
    # A text column that is null in a whole Arrow batch would arrive as floats and fail the model's
    # string schema; the contract reads blank text as missing, so nulls travel as "".
    args = [F.col(c) if c in numeric else F.coalesce(F.col(c), F.lit("")).alias(c) for c in cols]
    scored = valid.repartition(n).select("row", udf(F.struct(*args)).alias("r")).select("row", "r.*")  # a struct keeps column names

    def replace(frame, target: Path) -> int:
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        frame.write.parquet(str(tmp))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return spark.read.parquet(str(target)).count()

    rows_in = checked.count()
    rows_scored = replace(scored, out)
    rows_quarantined = replace(quarantine, quarantine_out)
    checked.unpersist()
    if rows_in != rows_scored + rows_quarantined:
        raise RuntimeError(f"row count mismatch: {rows_in} rows in, {rows_scored} scored + {rows_quarantined} quarantined")
    (out / "_ipvalue_model.json").write_text(json.dumps(model.metadata, indent=2), encoding="utf-8")
    return ScoreSummary(rows_in, rows_scored, rows_quarantined, n, 0, str(out), str(quarantine_out), model.uri, model.version,
                        model.run_id, model.feature_spec_hash, time.perf_counter() - started, loaded - started)

