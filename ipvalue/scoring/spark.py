"""The Spark engine of ``ipvalue score``: the same registered pyfunc through
``mlflow.pyfunc.spark_udf`` on a Spark session (local mode by default, any cluster through the
usual Spark configuration), reading and writing Parquet. The input must use PatentFrame column
names (e.g. ``ipvalue validate --valid-out``)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from ipvalue.exceptions import EmptyInputError
from ipvalue.frame import COLUMN_BY_NAME, to_records, validate_patent_frame
from ipvalue.models.output import explain_top
from ipvalue.registry import load_model
from ipvalue.scoring.summary import ScoreSummary


def spark_session(master: str | None = None):
    """A Spark session configured the usual Spark way, else local mode.

    The master and the rest of the configuration come from ``master`` when given, else from
    Spark's own configuration (``spark-submit --master ...``, ``PYSPARK_SUBMIT_ARGS``,
    ``spark-defaults.conf``), else ``local[2]``. Python workers run ``spark.pyspark.python`` /
    ``PYSPARK_PYTHON`` when set, else this interpreter (right for local mode only: on a cluster,
    point them at an environment with the model's requirements).
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    configured = SparkConf()  # starts the JVM with spark-submit's / PYSPARK_SUBMIT_ARGS's settings
    builder = SparkSession.builder.appName("ipvalue-score").config("spark.ui.enabled", "false")
    if master or not configured.contains("spark.master"):
        builder = builder.master(master or "local[2]")
    return builder.getOrCreate()


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

    explain_top(explain)  # raises on an unknown mode
    started = time.perf_counter()
    input_path, out = Path(input_path), Path(out)
    quarantine_out = Path(quarantine_out) if quarantine_out else out.with_name(out.stem + ".quarantine")
    model = load_model(model_uri, tracking_uri=tracking_uri)
    loaded = time.perf_counter()
    spark = spark or spark_session()
    ship_package(spark)
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
    sample_out = model.pyfunc.predict(to_records(sample.drop(columns=["row"]), extra_columns=passthrough), params={"explain": explain})
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
