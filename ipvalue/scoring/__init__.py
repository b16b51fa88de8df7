"""Batch scoring of a collateral book with a registered model (``ipvalue score``).

Local engine (:func:`score_file`, :mod:`ipvalue.scoring.local`)
    Streams the input in chunks (memory bounded by the chunk size), validates each chunk against the
    PatentFrame contract, scores the valid rows and sets the others aside with their reasons. Each
    finished chunk is written to a work folder beside the output with a small "done" record, so a
    re-run with the same arguments after a crash continues from the last finished chunk. Chunks run
    two at a time on threads (``workers``) and are appended, in input order, to one Parquet file
    that is renamed into place at the end; its file metadata carries the model URI, version, run id
    and feature-spec hash. ``rows in = rows scored + rows quarantined``
    is checked and printed; the same input and model give a byte-identical file.

Spark engine (:func:`score_spark`, :mod:`ipvalue.scoring.spark`)
    The same pyfunc through ``mlflow.pyfunc.spark_udf`` on a Spark session (local mode by default,
    any cluster through the usual Spark configuration), reading and writing Parquet. The input must
    use PatentFrame column names (e.g. ``ipvalue validate --valid-out``).
"""

from ipvalue.scoring.book import DEFAULT_CHUNK_SIZE, iter_chunks
from ipvalue.scoring.local import score_file
from ipvalue.scoring.spark import score_spark, spark_session
from ipvalue.scoring.summary import ScoreSummary

__all__ = ["DEFAULT_CHUNK_SIZE", "ScoreSummary", "iter_chunks", "score_file", "score_spark", "spark_session"]
