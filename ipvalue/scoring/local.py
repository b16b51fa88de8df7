"""The local engine of ``ipvalue score``: a book of any size streamed in chunks, each chunk
validated against the PatentFrame contract, its valid rows scored by the registered model and the
others set aside with their reasons. Each finished chunk is kept in a work folder beside the output
with a small "done" record, so a re-run with the same arguments after a crash continues from the
last finished chunk (and sweeps the temporary files a killed run left). Chunks run ``workers`` at a
time on threads and are appended, in input order, to one output renamed into place at the end:
Parquet (its file metadata carries the model URI, version, run id and feature-spec hash), CSV for
Excel or an .xlsx workbook, by the extension. ``rows in = rows scored + rows quarantined`` is
checked; the same input and model give a byte-identical Parquet file.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.frame import validate_patent_frame
from ipvalue.io import ColumnMapping, sweep_temporary_files, write_text_atomic
from ipvalue.io.spreadsheets import table_format
from ipvalue.lending.reconcile import collateral_status
from ipvalue.models.output import check_sample_fraction, explain_top, explanation_sample
from ipvalue.registry import RegisteredModel, load_model
from ipvalue.scoring.book import DEFAULT_CHUNK_SIZE, Book, content_hash
from ipvalue.scoring.parts import open_sink, read_part, write_part
from ipvalue.scoring.progress import Progress
from ipvalue.scoring.summary import ScoreSummary

logger = logging.getLogger(__name__)


def as_received(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows as the book had them, as text: what the quarantine keeps. Date cells of a workbook are
    written ``YYYY-MM-DD`` (with the time only when they have one), missing cells stay missing."""
    out = raw.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_datetime64_any_dtype(s.dtype) or (s.dtype == object and s.map(lambda v: isinstance(v, datetime.datetime)).any()):
            out[col] = s.map(lambda v: (v.date().isoformat() if v == datetime.datetime.combine(v.date(), datetime.time(), v.tzinfo) else v.isoformat(sep=" "))
                             if isinstance(v, datetime.datetime) and not pd.isna(v) else v)
    return out.astype("str")


def score_chunk(raw: pd.DataFrame, offset: int, mapping, model: RegisteredModel, explain: str, explain_sample: float | None = None,
                duplicates: frozenset = frozenset()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate, score and quarantine one chunk; ``duplicates``: ids that occur more than once in
    the whole book (every copy is quarantined, whichever chunk it is in)."""
    raw = raw.reset_index(drop=True)
    mapped, _ = mapping.apply(raw, source="input chunk")
    result = validate_patent_frame(mapped, source="input chunk")
    if duplicates and len(result.valid):
        copies = result.valid["patent_id"].isin(duplicates)
        if copies.any():
            moved = pd.DataFrame({"reasons": "patent_id: duplicated id (another copy is elsewhere in the book)"}, index=result.valid.index[copies])
            result.quarantine = pd.concat([result.quarantine, moved]).sort_index()
            result.valid = result.valid[~copies]
    rows = np.arange(offset + 1, offset + len(raw) + 1)
    quarantine = as_received(raw.loc[result.quarantine.index])
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
        rows_explained = explanation_sample(frame["patent_id"], explain_sample) if explain_sample is not None else None
        output = inner.output_frame(frame, explain=explain, explain_rows=rows_explained)
        if "value_p50_rmb" in output:  # a value model: what the book may count as collateral (0 unless the right is in force)
            status = collateral_status(frame)
            output.insert(output.columns.get_loc("value_p50_rmb") + 2, "collateral_status", status.to_numpy())
            output.insert(output.columns.get_loc("collateral_status") + 1, "collateral_basis_rmb", output["value_p50_rmb"].where(status.eq("in_force"), 0.0))
        scored = pd.concat([frame[["patent_id"]], output], axis=1).reset_index(drop=True)
        scored.insert(0, "row", rows[valid.index])
    else:
        scored = pd.DataFrame({"row": pd.Series(dtype="int64")})
    return scored, quarantine


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
    """Score a book of any size with a registered model (local engine).

    Parameters
    ----------
    input_path : str or Path
        Every format ``ipvalue validate`` reads: CSV / TXT / TSV (streamed), Parquet (streamed),
        Excel (.xlsx, .xlsm, .xls; read whole, as Excel holds at most 1,048,575 rows).
    model_uri : str
        e.g. ``models:/ipvalue-value@champion``.
    out : str or Path
        Output file (``row``, ``patent_id``, model outputs), by its extension: ``.parquet`` (with
        the model in its file metadata), ``.csv`` (UTF-8 with BOM, formula-safe, no scientific
        notation) or ``.xlsx`` (typed cells, Chinese headings above the column names, the model
        in a sheet "说明 About"). Any other extension is a ValueError.
    quarantine_out : str or Path, optional
        Rejected rows with ``row`` and ``reasons``; default ``<out stem>.quarantine<out suffix>``.
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
        Show the phases (model load, reading the book) and a bar of rows with total, rate and
        time left; default only when stderr is a terminal.
    workers : int, default=2
        Chunks scored at a time (threads). Memory grows with ``workers × chunk_size``; the
        output is the same for any value.

    Returns
    -------
    ScoreSummary
    """
    explain_top(explain)  # raises on an unknown mode
    if explain_sample is not None:
        check_sample_fraction(explain_sample)
    if int(workers) < 1:
        raise ValueError(f"The 'workers' must be a positive number of threads. Got {workers!r}.")
    if int(chunk_size) < 1:
        raise ValueError(f"The 'chunk_size' must be a positive number of rows. Got {chunk_size!r}.")
    started = time.perf_counter()
    input_path, out = Path(input_path), Path(out)
    quarantine_out = Path(quarantine_out) if quarantine_out else out.with_name(out.stem + ".quarantine" + out.suffix)
    table_format(out), table_format(quarantine_out)  # raises on an extension that is no table file, before any work
    if not input_path.exists():
        raise FileNotFoundError(f"Input file {str(input_path)!r} does not exist. Fix: check the path.")
    progress = Progress(progress)
    with progress.phase(f"loading model {model_uri}"):
        model = load_model(model_uri, tracking_uri=tracking_uri)
    loaded = time.perf_counter()
    # Each chunk's LightGBM call gets its share of the cores, so the calls of `workers` chunks run
    # side by side instead of contending for the same OpenMP threads.
    model.estimator.booster_.set_params(n_jobs=max(1, (os.cpu_count() or 1) // int(workers)))
    column_mapping = ColumnMapping.load(mapping)
    with progress.phase(f"reading {input_path.name}"):
        book = Book(input_path, encoding=encoding)
        manifest = {
            "input": str(input_path.resolve()), "sha256": content_hash(input_path), "chunk_size": int(chunk_size),
            "explain": explain, "explain_sample": explain_sample, "mapping": str(mapping), "parts": "arrow-ipc", **model.metadata,
        }
        duplicates, total_rows = book.index(column_mapping)
        duplicates = frozenset(duplicates)
    work = out.with_name(out.name + ".parts")
    # A run killed by SIGKILL (or a power cut) could not clean up: its temporary outputs and parts
    # are swept here, before this run makes its own.
    for folder in {out.parent, quarantine_out.parent, work}:
        sweep_temporary_files(folder)
    manifest_path = work / "manifest.json"
    if work.exists() and (not manifest_path.exists() or json.loads(manifest_path.read_text(encoding="utf-8")) != manifest):
        logger.info("discarding stale work folder %s (different input, model or options)", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(manifest, sort_keys=True), manifest_path)

    counts = {"in": 0, "scored": 0, "quarantined": 0}
    resumed, n_chunks = 0, 0

    def paths(i: int) -> tuple[Path, Path, Path]:
        return work / f"part-{i:05d}.arrow", work / f"quarantine-{i:05d}.arrow", work / f"done-{i:05d}.json"

    def run_chunk(i: int, offset: int, raw: pd.DataFrame):
        part, qpart, done = paths(i)
        scored, quarantine = score_chunk(raw, offset, column_mapping, model, explain, explain_sample, duplicates)
        tables = write_part(scored, part), write_part(quarantine, qpart)
        record = {"in": len(raw), "scored": len(scored), "quarantined": len(quarantine)}
        if record["in"] != record["scored"] + record["quarantined"]:
            raise RuntimeError(f"chunk {i}: {record['in']} rows in but {record['scored']} scored + {record['quarantined']} quarantined")
        write_text_atomic(json.dumps(record), done)  # last: a chunk counts as finished only with all its files
        return record, tables

    def load_chunk(i: int):
        part, qpart, done = paths(i)
        return json.loads(done.read_text(encoding="utf-8")), (read_part(part), read_part(qpart))

    notes = [("输入 Input", input_path.name)]
    sinks = (open_sink(out, model.metadata, sheet="评分 scored", estimator=model.estimator, notes=notes),
             open_sink(quarantine_out, model.metadata, sheet="隔离 quarantine", notes=notes))

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
        with progress.rows(total_rows, f"scoring {input_path.name}") as bar, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ipvalue-score") as pool:
            for i, (offset, raw) in enumerate(book.chunks(chunk_size)):
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
        # The quarantine is renamed into place first: the scored file appears last, so it is never
        # seen without its quarantine (an interrupt in between leaves no output; the run resumes).
        with progress.phase(f"writing {out.name}"):
            quarantined_rows = sinks[1].commit()
            scored_rows = sinks[0].commit()
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
