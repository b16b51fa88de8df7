"""The Spark engine of ``ipvalue score``: the same registered model on a Spark session (local mode
by default, a standalone, YARN or Kubernetes cluster through the usual Spark configuration),
reading and writing Parquet. The input must use PatentFrame column names (e.g. ``ipvalue validate
--valid-out``).

Executors need only the model's own requirements (``requirements.txt`` of the registered model)
and pyspark: the engine ships the ipvalue package to them (:func:`ship_package`) and broadcasts
the registered model's fitted estimator. Each batch is validated once and scored as the local
engine scores a chunk, so both engines give the same values."""

from __future__ import annotations

import json
import logging
import os
import posixpath
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.exceptions import EmptyInputError, InputFileError
from ipvalue.frame import COLUMN_BY_NAME, validate_patent_frame
from ipvalue.io.spreadsheets import OutputTypeError
from ipvalue.models.output import explain_top
from ipvalue.registry import load_model
from ipvalue.scoring.summary import ScoreSummary

logger = logging.getLogger(__name__)


def spark_session(master: str | None = None):
    """A Spark session on ``master`` when given, else on the master Spark is configured with
    (``spark-submit --master ...``, ``PYSPARK_SUBMIT_ARGS``, ``spark-defaults.conf``; Spark's own
    default is ``local[*]``, every core of this machine). Python workers run
    ``spark.pyspark.python`` / ``PYSPARK_PYTHON`` when set, else this interpreter (right for local
    mode only: on a cluster, point them at an environment with the model's requirements).
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("ipvalue-score").config("spark.ui.enabled", "false")
    return (builder.master(master) if master else builder).getOrCreate()


def ship_package(spark) -> Path:
    """Send this process's ``ipvalue`` package to the executors (``SparkContext.addPyFile``), so
    the validation step and the model run on executors whose Python has the model's requirements
    but no ipvalue. The zip is named by its content hash (Spark refuses one file name with two
    paths), written once to the temporary folder; returns its path."""
    import hashlib
    import io
    import zipfile

    package = Path(__file__).resolve().parents[1]
    files = [p for p in sorted(package.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(str(Path("ipvalue") / path.relative_to(package)), date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    target = Path(tempfile.gettempdir()) / f"ipvalue-code-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    if not target.is_file():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    spark.sparkContext.addPyFile(str(target))
    return target


INPUT_PREFIX = "_input_"


def score_batch(pdf: pd.DataFrame, *, estimator, cols: list[str], passthrough: list[str], explain: str) -> pd.DataFrame:
    """One Arrow batch (``row`` and the input columns, text as strings, numbers as doubles):
    validated once against the contract, valid rows scored with the estimator's ``output_frame``
    (no second validation: the pyfunc would turn the typed frame back into text and check it
    again), invalid rows kept with their reasons and their input under ``_input_<column>``.
    ``estimator`` is the fitted model or a Spark broadcast of it."""
    inner = getattr(estimator, "value", estimator)
    pdf = pdf.reset_index(drop=True)
    rows = pdf["row"].to_numpy()
    result = validate_patent_frame(pdf.drop(columns=["row"]), source="spark partition")
    quarantine = pdf.loc[result.quarantine.index, cols].rename(columns=lambda c: INPUT_PREFIX + c)
    quarantine.insert(0, "row", rows[result.quarantine.index])
    quarantine.insert(1, "reasons", result.quarantine["reasons"].to_numpy())
    parts = [quarantine]
    if len(result.valid):
        frame = result.valid.assign(**{c: pdf.loc[result.valid.index, c] if c in pdf else np.nan for c in passthrough})
        scored = pd.concat([frame[["patent_id"]], inner.output_frame(frame, explain=explain)], axis=1).reset_index(drop=True)
        scored.insert(0, "row", rows[result.valid.index])
        parts.insert(0, scored)
    combined = pd.concat(parts, ignore_index=True)
    # plain NumPy / object columns: Arrow-backed pandas columns reach Spark as chunked arrays
    for c in combined.columns:
        if c == "row":
            combined[c] = combined[c].astype("int64")
        elif pd.api.types.is_numeric_dtype(combined[c]) or pd.api.types.is_bool_dtype(combined[c]):
            combined[c] = combined[c].astype("float64")
        else:
            combined[c] = combined[c].astype(object).where(combined[c].notna(), None)
    return combined


def hadoop_path(spark, target: str):
    """``(file system, path)`` of a path or URI through Spark's Hadoop configuration, so outputs
    are replaced on whatever file system Spark writes to (local, HDFS, S3, ...)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(target)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def number_rows(df):
    """``df`` with a ``row`` column: 1-based positions in partition order (for one Parquet or CSV
    file, the input order), as ``RDD.zipWithIndex`` gives them, computed in the JVM.

    ``monotonically_increasing_id`` holds the partition index in its upper bits and the position
    within the partition in its lower 33; a small count per partition gives each partition's
    offset. (``zipWithIndex`` on ``df.rdd`` sent every row through Python one at a time: 100 s of a
    1M-row run.)
    """
    from pyspark.sql import functions as F

    tagged = df.withColumn("_ipvalue_id", F.monotonically_increasing_id())
    partition = F.shiftright(F.col("_ipvalue_id"), 33)
    counts = sorted((r["p"], r["n"]) for r in tagged.groupBy(partition.alias("p")).agg(F.count(F.lit(1)).alias("n")).collect())
    offsets, total = [], 0
    for p, n in counts:
        offsets += [F.lit(p), F.lit(total)]
        total += n
    if not offsets:
        return tagged.drop("_ipvalue_id").withColumn("row", F.lit(None).cast("long"))
    offset = F.create_map(*offsets)[partition]
    position = F.col("_ipvalue_id") - F.shiftleft(partition, 33)
    return tagged.withColumn("row", (offset + position + 1).cast("long")).drop("_ipvalue_id")


#: What the Spark engine cannot read (Excel) or write (files for Excel): the local engine does both.
SPARK_UNREADABLE = (".xlsx", ".xlsm", ".xls", ".tsv", ".txt")
SPARK_UNWRITABLE = (".csv", ".xlsx", ".xlsm", ".xls", ".tsv", ".txt", ".json")


def check_spark_paths(input_path: str, out: str, quarantine_out: str) -> None:
    """Refuse, before Spark starts, an input it cannot read and outputs it cannot write.

    Raises
    ------
    InputFileError
        An Excel, TSV or TXT book (Spark reads CSV and Parquet).
    OutputTypeError
        An output named like a CSV or workbook file: Spark writes a Parquet folder, replaced as a whole.
    """
    suffix = posixpath.splitext(input_path)[1].lower()
    if suffix in SPARK_UNREADABLE:
        raise InputFileError(f"The Spark engine reads CSV or Parquet books; {input_path} is a {suffix} file. "
                             "Fix: score it with --engine local (it reads every format ipvalue validate reads), "
                             "or convert it first: ipvalue validate BOOK --valid-out book.parquet.")
    for name, path in (("--out", out), ("--quarantine-out", quarantine_out)):
        if posixpath.splitext(path)[1].lower() in SPARK_UNWRITABLE:
            raise OutputTypeError(f"The Spark engine writes {name} as a Parquet folder (replaced as a whole); it cannot write {path}. "
                                  "Fix: give a folder name without an extension (e.g. scored-2026-06), or use --engine local "
                                  "for a .csv or .xlsx file.")


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
    """Score a Parquet (or CSV) book on Spark with a registered model.

    Rows are numbered like the local engine (1-based input order, in the JVM:
    :func:`number_rows`), repartitioned (a single Parquet row group would keep one task busy),
    then validated and scored in one ``mapInPandas`` pass (:func:`score_batch`, the registered
    model's estimator broadcast to the executors); invalid rows go to the quarantine with their
    reasons. ``out`` and ``quarantine_out`` are Parquet folders, replaced as a whole at the end.
    """
    explain_top(explain)  # raises on an unknown mode
    started = time.perf_counter()
    # paths or URIs (hdfs://, s3a://, file:) as Spark reads them: a bare path is on the default file system
    input_path, out = str(input_path), str(out).rstrip("/")
    quarantine_out = str(quarantine_out) if quarantine_out else posixpath.splitext(out)[0] + ".quarantine"
    check_spark_paths(input_path, out, quarantine_out)
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    model = load_model(model_uri, tracking_uri=tracking_uri)
    loaded = time.perf_counter()
    spark = spark or spark_session()
    ship_package(spark)
    try:
        df = spark.read.option("header", True).csv(str(input_path)) if input_path.lower().endswith(".csv") else spark.read.parquet(str(input_path))
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
    numbered = number_rows(df)

    n = partitions or max(2, spark.sparkContext.defaultParallelism * 2)
    estimator = spark.sparkContext.broadcast(model.estimator)  # unpickled on executors from ipvalue's shipped code
    score = partial(score_batch, estimator=estimator, cols=cols, passthrough=passthrough, explain=explain)
    # the output schema: the model's own input example (valid when it was logged), scored on the driver
    probe = model.pyfunc.input_example.reindex(columns=cols)
    probe = probe.assign(**{c: pd.to_numeric(probe[c], errors="coerce") if c in numeric else probe[c].astype(object) for c in cols})
    sample = score_batch(probe.assign(row=range(1, len(probe) + 1)), estimator=model.estimator, cols=cols, passthrough=passthrough, explain=explain)
    outputs = [c for c in sample.columns if c not in ("row", "reasons") and not c.startswith(INPUT_PREFIX)]
    probed = sample.loc[sample["reasons"].isna()]
    if probed.empty:
        raise RuntimeError(f"The input example stored with {model.uri} no longer scores: {sample['reasons'].tolist()}.")
    typed = {c: T.DoubleType() if pd.api.types.is_numeric_dtype(probed[c]) else T.StringType() for c in outputs}
    schema = T.StructType([T.StructField("row", T.LongType()), T.StructField("reasons", T.StringType()),
                           *[T.StructField(INPUT_PREFIX + f.name, f.dataType) for f in df.schema.fields],
                           *[T.StructField(c, typed[c]) for c in outputs]])
    # One pass on executors: each batch is validated once and its valid rows scored by the
    # registered model's estimator (as the local engine does), the others kept with their reasons.
    checked = numbered.repartition(n).mapInPandas(lambda batches: (score(pdf) for pdf in batches), schema=schema).persist(StorageLevel.MEMORY_AND_DISK)
    scored = checked.filter(F.col("reasons").isNull()).select("row", *outputs)
    quarantine = checked.filter(F.col("reasons").isNotNull()).select("row", "reasons", *[F.col(INPUT_PREFIX + c).alias(c) for c in cols])

    def replace(frame, target: str) -> int:
        tmp = posixpath.join(posixpath.dirname(target), f".{posixpath.basename(target)}.tmp")
        frame.write.mode("overwrite").parquet(tmp)
        fs, path = hadoop_path(spark, target)
        fs.delete(path, True)
        if not fs.rename(hadoop_path(spark, tmp)[1], path):
            raise OSError(f"Could not move {tmp} to {target}. Fix: check that the output folder is writable.")
        return spark.read.parquet(target).count()

    stage = time.perf_counter()
    rows_in = checked.count()
    logger.debug("spark: numbered, validated and scored %d rows in %.1f s", rows_in, time.perf_counter() - stage)
    if rows_in and not checked.filter(F.col("reasons").isNull()).limit(1).count():
        checked.unpersist()
        raise EmptyInputError(f"{input_path} has no valid rows to score.")
    stage = time.perf_counter()
    rows_scored = replace(scored, out)
    logger.debug("spark: wrote %d scored rows in %.1f s", rows_scored, time.perf_counter() - stage)
    stage = time.perf_counter()
    rows_quarantined = replace(quarantine, quarantine_out)
    logger.debug("spark: wrote %d quarantined rows in %.1f s", rows_quarantined, time.perf_counter() - stage)
    checked.unpersist()
    estimator.destroy()
    if rows_in != rows_scored + rows_quarantined:
        raise RuntimeError(f"row count mismatch: {rows_in} rows in, {rows_scored} scored + {rows_quarantined} quarantined")
    fs, path = hadoop_path(spark, f"{out}/_ipvalue_model.json")
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(json.dumps(model.metadata, indent=2).encode("utf-8")))
    finally:
        stream.close()
    return ScoreSummary(rows_in, rows_scored, rows_quarantined, n, 0, str(out), str(quarantine_out), model.uri, model.version,
                        model.run_id, model.feature_spec_hash, time.perf_counter() - started, loaded - started)
