"""Batch scoring: nothing lost, resumable, deterministic, explained; Spark gives the same values."""

import os
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ipvalue.scoring import local
from ipvalue.synthetic import make_demo_portfolio
from ipvalue.scoring import score_file

pytestmark = pytest.mark.filterwarnings("ignore")
MODEL = "models:/ipvalue-value@champion"


@pytest.fixture(scope="module")
def registry(value_registry):
    """Scoring needs only the synthetic value model: these tests run without the shared data."""
    return value_registry


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A synthetic book of 1,200 patents as a GBK-encoded CSV with Chinese-export problems in 3 rows."""
    folder = tmp_path_factory.mktemp("book")
    patents = make_demo_portfolio(1200, seed=21).patents.drop(columns=["appraised_value_rmb"])
    patents.loc[5, "claims_total"] = -3
    patents.loc[640, "patent_type"] = "plant"
    patents.loc[1100, "grant_date"] = "1999-01-01"
    path = folder / "book.csv"
    patents.to_csv(path, index=False, encoding="gbk")
    return path, patents


def run(book, registry, tmp_path, name="scored.parquet", **kw):
    _, uri, _ = registry
    return score_file(book[0], model_uri=MODEL, out=tmp_path / name, tracking_uri=uri, chunk_size=kw.pop("chunk_size", 250), **kw)


def test_every_row_is_scored_or_quarantined_with_its_reason(book, registry, tmp_path):
    s = run(book, registry, tmp_path)
    assert (s.rows_in, s.rows_scored, s.rows_quarantined, s.chunks) == (1200, 1197, 3, 5)
    scored = pd.read_parquet(s.output)
    q = pd.read_parquet(s.quarantine)
    assert sorted(scored["row"].tolist() + q["row"].tolist()) == list(range(1, 1201))
    assert q["row"].tolist() == [6, 641, 1101]
    assert q["reasons"].tolist() == ["claims_total: below the minimum 0", "patent_type: unknown value", "grant_date: grant date is before the filing date"]
    assert scored["patent_id"].tolist() == book[1].drop(index=[5, 640, 1100])["patent_id"].tolist()
    assert (scored["value_p10_rmb"] <= scored["value_p90_rmb"]).all()
    meta = pq.read_schema(s.output).metadata
    assert meta[b"ipvalue.model_uri"] == MODEL.encode() and meta[b"ipvalue.model_version"] == b"1"
    assert meta[b"ipvalue.run_id"] and len(meta[b"ipvalue.feature_spec_hash"]) == 16
    assert not (tmp_path / "scored.parquet.parts").exists()


def test_same_input_and_model_give_byte_identical_output_whatever_the_parallelism(book, registry, tmp_path):
    a = run(book, registry, tmp_path, "a.parquet")
    b = run(book, registry, tmp_path, "b.parquet")
    c = run(book, registry, tmp_path, "c.parquet", workers=1)
    d = run(book, registry, tmp_path, "d.parquet", workers=4)
    assert open(a.output, "rb").read() == open(b.output, "rb").read() == open(c.output, "rb").read() == open(d.output, "rb").read()


def test_a_killed_run_resumes_and_gives_the_uninterrupted_output(book, registry, tmp_path, monkeypatch):
    reference = run(book, registry, tmp_path, "reference.parquet")
    real = local.score_chunk
    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(local, "score_chunk", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run(book, registry, tmp_path, "resumed.parquet")
    assert not (tmp_path / "resumed.parquet").exists()  # nothing half-written at the target
    # chunks run two at a time: the one after the crash may have finished too, the crashed one has not
    done = {p.name for p in (tmp_path / "resumed.parquet.parts").glob("done-*")}
    assert {"done-00000.json", "done-00001.json"} <= done and "done-00002.json" not in done
    monkeypatch.setattr(local, "score_chunk", real)
    resumed = run(book, registry, tmp_path, "resumed.parquet")
    assert resumed.chunks_resumed == len(done)
    assert open(resumed.output, "rb").read() == open(reference.output, "rb").read()


def test_a_changed_option_discards_the_stale_work_folder(book, registry, tmp_path):
    parts = tmp_path / "x.parquet.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text('{"chunk_size": 1}')
    (parts / "done-00000.json").write_text('{"in": 999, "scored": 999, "quarantined": 0}')
    s = run(book, registry, tmp_path, "x.parquet")
    assert s.chunks_resumed == 0 and s.rows_in == 1200


def test_explanation_options(book, registry, tmp_path):
    none = pd.read_parquet(run(book, registry, tmp_path, "none.parquet", explain="none").output)
    top = pd.read_parquet(run(book, registry, tmp_path, "top.parquet", explain="top3").output)
    full = pd.read_parquet(run(book, registry, tmp_path, "all.parquet").output)
    assert not [c for c in none.columns if c.startswith(("shap_", "driver_"))]
    assert [c for c in top.columns if c.startswith("driver_")] == ["driver_1", "driver_1_shap", "driver_2", "driver_2_shap", "driver_3", "driver_3_shap"]
    pd.testing.assert_series_equal(none["value_p50_rmb"], full["value_p50_rmb"])
    shap = full.filter(like="shap_").drop(columns=["shap_expected_value"])
    biggest = shap.abs().idxmax(axis=1).str.removeprefix("shap_")
    assert (biggest == top["driver_1"]).all()


def test_top_n_drivers_and_a_sample_of_explained_patents(book, registry, tmp_path):
    full = pd.read_parquet(run(book, registry, tmp_path, "all.parquet").output).set_index("patent_id")
    top5 = pd.read_parquet(run(book, registry, tmp_path, "top5.parquet", explain="top5").output).set_index("patent_id")
    shap = full.filter(like="shap_").drop(columns=["shap_expected_value"]).abs()
    ranked = pd.DataFrame(np.sort(shap.to_numpy(), axis=1)[:, ::-1][:, :5], index=shap.index)
    np.testing.assert_allclose(top5[[f"driver_{k}_shap" for k in range(1, 6)]].abs().to_numpy(), ranked.to_numpy(), rtol=1e-12)

    # 10 % of the patents explained, chosen by patent id: the same ones whatever the chunking
    a = pd.read_parquet(run(book, registry, tmp_path, "s1.parquet", explain="all", explain_sample=0.1).output).set_index("patent_id")
    b = pd.read_parquet(run(book, registry, tmp_path, "s2.parquet", explain="all", explain_sample=0.1, chunk_size=97).output).set_index("patent_id")
    explained = a["shap_expected_value"].notna()
    assert 0.05 < explained.mean() < 0.15
    assert explained.equals(b["shap_expected_value"].notna())
    pd.testing.assert_frame_equal(a[explained].filter(like="shap_"), full[explained].filter(like="shap_"))
    pd.testing.assert_series_equal(a["value_p50_rmb"], full["value_p50_rmb"])  # every patent is still valued


def test_a_first_chunk_without_any_ipc_code_does_not_break_the_output_schema(registry, tmp_path):
    """Text columns that are empty in a whole chunk still travel as text, so later chunks append."""
    patents = make_demo_portfolio(600, seed=5).patents.drop(columns=["appraised_value_rmb"])
    patents.loc[:249, ["ipc_main", "ipc_codes"]] = None
    patents.to_parquet(tmp_path / "book.parquet", index=False)
    s = score_file(tmp_path / "book.parquet", model_uri=MODEL, out=tmp_path / "o.parquet", tracking_uri=registry[1], chunk_size=250, explain="top3")
    out = pd.read_parquet(s.output)
    assert s.rows_scored + s.rows_quarantined == 600
    assert out["feature_tech_sector"].iloc[:200].isna().all() and out["feature_tech_sector"].iloc[-100:].notna().all()


def test_bad_options_are_refused(book, registry, tmp_path):
    with pytest.raises(ValueError, match=r"The 'explain' option must be 'all', 'none' or 'top<N>' \(e.g. 'top3'\). Got 'some'"):
        run(book, registry, tmp_path, explain="some")
    with pytest.raises(ValueError, match=r"The 'explain_sample' must be a fraction in \(0, 1\]"):
        run(book, registry, tmp_path, explain_sample=0.0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        score_file(tmp_path / "none.csv", model_uri=MODEL, out=tmp_path / "o.parquet", tracking_uri=registry[1])


def _spark_or_skip():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pyspark = None
    if pyspark is None or not shutil.which("java"):
        message = "Spark engine check skipped: needs Java and the spark extra (pip install 'ipvalue[spark]')"
        if os.environ.get("IPVALUE_REQUIRE_SPARK"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.slow
@pytest.mark.spark
def test_spark_engine_gives_the_same_values_as_the_local_engine(book, registry, tmp_path):
    _spark_or_skip()
    from ipvalue.scoring import score_spark, spark_session

    _, uri, _ = registry
    source = tmp_path / "book.parquet"  # one row group: the engine must repartition to use both cores
    pd.read_csv(book[0], dtype=str, encoding="gbk").to_parquet(source, index=False, row_group_size=100_000)
    local = score_file(source, model_uri=MODEL, out=tmp_path / "local.parquet", tracking_uri=uri, explain="top3")
    spark = spark_session()
    try:
        s = score_spark(source, model_uri=MODEL, out=tmp_path / "spark_out", tracking_uri=uri, explain="top3", spark=spark, partitions=4)
        got = spark.read.parquet(s.output).toPandas().sort_values("row").reset_index(drop=True)
        q = spark.read.parquet(s.quarantine).toPandas().sort_values("row")
    finally:
        spark.stop()
    want = pd.read_parquet(local.output).sort_values("row").reset_index(drop=True)
    assert (s.rows_in, s.rows_scored, s.rows_quarantined) == (local.rows_in, local.rows_scored, local.rows_quarantined)
    assert q["row"].tolist() == pd.read_parquet(local.quarantine)["row"].tolist()
    assert got["row"].tolist() == want["row"].tolist() and got["patent_id"].tolist() == want["patent_id"].tolist()
    np.testing.assert_allclose(got["value_p50_rmb"].to_numpy(float), want["value_p50_rmb"].to_numpy(float), rtol=1e-12)
    assert got["driver_1"].tolist() == want["driver_1"].tolist()


def test_a_right_not_in_force_is_no_collateral_in_the_scored_book(registry, tmp_path):
    patents = make_demo_portfolio(300, seed=5).patents.drop(columns=["appraised_value_rmb"])
    patents.to_parquet(tmp_path / "book.parquet")
    s = score_file(tmp_path / "book.parquet", model_uri=MODEL, out=tmp_path / "o.parquet", tracking_uri=registry[1], explain="none")
    out = pd.read_parquet(s.output).merge(patents[["patent_id", "legal_status", "grant_date"]], on="patent_id")
    dead = out["legal_status"].isin(["lapsed", "expired", "invalidated", "withdrawn", "rejected", "pending"]) | out["grant_date"].isna()
    assert dead.any() and (~dead).any()
    assert (out.loc[dead, "collateral_basis_rmb"] == 0).all() and (out.loc[dead, "value_p50_rmb"] > 0).all()
    np.testing.assert_allclose(out.loc[~dead, "collateral_basis_rmb"], out.loc[~dead, "value_p50_rmb"])


def test_a_book_changed_behind_the_same_size_and_timestamp_is_not_resumed(registry, tmp_path, monkeypatch):
    # issue 15 finding 7: cp -p / rsync -t / tar keep size and timestamp; the parts of the old content must not be reused
    patents = make_demo_portfolio(600, seed=8).patents.drop(columns=["appraised_value_rmb"])
    path = tmp_path / "book.csv"
    patents.to_csv(path, index=False)
    stat = os.stat(path)
    real = local.score_chunk

    def crash_on_second(*args, _n={"n": 0}, **kwargs):
        _n["n"] += 1
        if _n["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(local, "score_chunk", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        score_file(path, model_uri=MODEL, out=tmp_path / "o.parquet", tracking_uri=registry[1], chunk_size=150, workers=1, explain="none")
    monkeypatch.setattr(local, "score_chunk", real)
    text = path.read_text(encoding="utf-8")
    first = patents["patent_id"].iloc[0]
    text = text.replace(first, first[:-1] + ("A" if first[-1] != "A" else "B"), 1)  # one id changed, same length
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size and os.stat(path).st_mtime_ns == stat.st_mtime_ns
    resumed = score_file(path, model_uri=MODEL, out=tmp_path / "o.parquet", tracking_uri=registry[1], chunk_size=150, workers=1, explain="none")
    assert resumed.chunks_resumed == 0
    assert first not in set(pd.read_parquet(resumed.output)["patent_id"])


def test_duplicate_ids_in_different_chunks_are_quarantined_whatever_the_chunk_size(registry, tmp_path):
    patents = make_demo_portfolio(400, seed=9).patents.drop(columns=["appraised_value_rmb"])
    patents.loc[350, "patent_id"] = patents.loc[10, "patent_id"].lower()  # the same patent, written in lower case, far apart
    patents.to_csv(tmp_path / "book.csv", index=False)
    results = []
    for chunk in (50, 1000):
        s = score_file(tmp_path / "book.csv", model_uri=MODEL, out=tmp_path / f"o{chunk}.parquet", tracking_uri=registry[1], chunk_size=chunk, explain="none")
        q = pd.read_parquet(s.quarantine)
        results.append((s.rows_scored, sorted(q["row"].tolist())))
        assert {11, 351} <= set(q["row"]) and q.set_index("row").loc[351, "reasons"].startswith("patent_id: duplicated id")
    assert results[0] == results[1]


def test_an_interrupt_between_the_final_renames_never_leaves_an_output_without_its_quarantine(book, registry, tmp_path, monkeypatch):
    from ipvalue.scoring import parts

    real, calls = parts.os.replace, []

    def interrupted(src, dst):
        calls.append(dst)
        if str(dst).endswith(("scored.parquet", "quarantine.parquet")) and len([c for c in calls if str(c).endswith(".parquet")]) == 2:
            raise KeyboardInterrupt("killed between the renames")
        return real(src, dst)

    monkeypatch.setattr(parts.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(book, registry, tmp_path, "scored.parquet")
    assert not (tmp_path / "scored.parquet").exists()  # the output is the last to appear
    monkeypatch.setattr(parts.os, "replace", real)
    s = run(book, registry, tmp_path, "scored.parquet")
    assert (tmp_path / "scored.parquet").exists() and (tmp_path / "scored.quarantine.parquet").exists() and s.rows_in == 1200


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def standalone_cluster(tmp_path):
    """A Spark standalone master and two workers (1 core, 1 GB each) on 127.0.0.1, started from the
    scripts pyspark ships, without this process's Python path; stopped by their PIDs."""
    import json
    import subprocess
    import time
    import urllib.request
    from pathlib import Path

    _spark_or_skip()
    import pyspark

    home = Path(pyspark.__file__).parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_SUBMIT_ARGS")}
    env.update(SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", SPARK_NO_DAEMONIZE="1")
    port, ui = _free_port(), _free_port()
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    started = []

    def start(name, *args):
        log = open(logs / f"{name}.log", "wb")
        started.append(subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))

    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui))
        for i in (1, 2):
            start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
                  "--cores", "1", "--memory", "1g", "--webui-port", str(_free_port()), "--work-dir", str(tmp_path / f"work{i}"))
        deadline = time.monotonic() + 120
        while True:
            try:
                state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2).read())
                if int(state.get("aliveworkers", 0)) >= 2:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in started):
                pytest.fail("the standalone cluster did not start: " + " | ".join(f.read_text(errors="replace")[-800:] for f in logs.iterdir()))
            time.sleep(1)
        yield f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}/json/"
    finally:
        for process in reversed(started):  # by PID: only what this fixture started
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.venv
def test_spark_on_a_standalone_cluster_gives_the_local_engine_values_with_executors_on_the_model_environment(
        book, registry, model_venv, standalone_cluster, tmp_path):
    """``ipvalue score --engine spark`` against the cluster's master; executors run the fresh
    environment holding only the model's requirements (no ipvalue: the engine ships its code)."""
    import json
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    master, state_url = standalone_cluster
    _, uri, _ = registry
    source = tmp_path / "book.parquet"
    pd.read_csv(book[0], dtype=str, encoding="gbk").to_parquet(source, index=False, row_group_size=100_000)
    local = score_file(source, model_uri=MODEL, out=tmp_path / "local.parquet", tracking_uri=uri, explain="top3")
    root = Path(__file__).resolve().parents[1]
    submit = (f"--master {master} --conf spark.pyspark.python={model_venv} --conf spark.pyspark.driver.python={sys.executable} "
              "--conf spark.executor.memory=1g --conf spark.cores.max=2 pyspark-shell")
    env = {**os.environ, "PYTHONPATH": str(root), "PYSPARK_SUBMIT_ARGS": submit, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYSPARK_PYTHON", None)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from ipvalue.cli import main; sys.exit(main(sys.argv[1:]))", "score", str(source), "--model", MODEL,
         "--engine", "spark", "--out", str(tmp_path / "spark_out"), "--tracking-uri", uri, "--explain", "top3", "--partitions", "4"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-4000:])  # 1: finished, rows quarantined
    apps = json.loads(urllib.request.urlopen(state_url, timeout=10).read())["completedapps"]
    assert [a["name"] for a in apps] == ["ipvalue-score"]  # it ran on the cluster, not in local mode
    assert f"{local.rows_in:,}" in done.stdout or str(local.rows_in) in done.stdout
    got = pd.read_parquet(tmp_path / "spark_out").sort_values("row").reset_index(drop=True)
    q = pd.read_parquet(tmp_path / "spark_out.quarantine").sort_values("row")
    want = pd.read_parquet(local.output).sort_values("row").reset_index(drop=True)
    assert (len(got), len(q)) == (local.rows_scored, local.rows_quarantined)
    assert q["row"].tolist() == pd.read_parquet(local.quarantine)["row"].tolist()
    assert got["patent_id"].tolist() == want["patent_id"].tolist()
    np.testing.assert_allclose(got["value_p50_rmb"].to_numpy(float), want["value_p50_rmb"].to_numpy(float), rtol=1e-12)
    assert got["driver_1"].tolist() == want["driver_1"].tolist()
    # the executors ran the model's environment, which has no ipvalue of its own
    check = subprocess.run([str(model_venv), "-c", "import importlib.util; print(importlib.util.find_spec('ipvalue'))"],
                           cwd=tmp_path, capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert check.stdout.strip() == "None"


# --- outputs for Excel, every input validate reads, progress, a killed run's leftovers -------------

@pytest.fixture(scope="module")
def excel_book(tmp_path_factory):
    """300 synthetic patents; row 5 is quarantined (a negative claim count) and carries a formula
    in its applicant cell; as CSV and as an .xlsx workbook (dates as real date cells)."""
    folder = tmp_path_factory.mktemp("excel-book")
    patents = make_demo_portfolio(300, seed=31).patents.drop(columns=["appraised_value_rmb"])
    patents.loc[4, "claims_total"] = -3
    patents.loc[4, "applicants"] = '=HYPERLINK("http://x.example","click")'
    patents.to_csv(folder / "book.csv", index=False)
    patents.to_excel(folder / "book.xlsx", index=False)
    return folder, patents


def _numbers_in_scientific_notation(path) -> list[str]:
    import csv
    import re

    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [cell for row in csv.reader(fh) for cell in row if re.fullmatch(r"[+-]?\d+(\.\d+)?[eE][+-]?\d+", cell)]


def test_a_csv_output_opens_in_a_spreadsheet_reader_with_numbers_text_and_no_formula(excel_book, registry, tmp_path):
    import csv

    folder, patents = excel_book
    reference = score_file(folder / "book.csv", model_uri=MODEL, out=tmp_path / "s.parquet", tracking_uri=registry[1], chunk_size=120, explain="all")
    s = score_file(folder / "book.csv", model_uri=MODEL, out=tmp_path / "s.csv", tracking_uri=registry[1], chunk_size=120, explain="all")
    assert s.quarantine == str(tmp_path / "s.quarantine.csv")  # beside the output, of the same type
    want = pd.read_parquet(reference.output)
    raw = (tmp_path / "s.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the file as UTF-8
    with open(tmp_path / "s.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(want.columns) and len(rows) == len(want) == 299
    assert [r["patent_id"] for r in rows] == want["patent_id"].tolist()  # ids as text, unchanged
    got = np.array([float(r["value_p50_rmb"]) for r in rows])
    np.testing.assert_allclose(got, want["value_p50_rmb"].to_numpy(), rtol=1e-15)  # numbers, every digit kept
    tiny = want.filter(like="shap_").abs()
    assert ((tiny > 0) & (tiny < 1e-4)).any().any(), "the book must hold values Python would write as 1e-05"
    assert _numbers_in_scientific_notation(tmp_path / "s.csv") == []
    shap = np.array([float(r["shap_claims_total"]) for r in rows])
    np.testing.assert_allclose(shap, want["shap_claims_total"].to_numpy(), rtol=1e-12, atol=1e-300)
    with open(tmp_path / "s.quarantine.csv", encoding="utf-8-sig", newline="") as fh:
        quarantined = list(csv.DictReader(fh))
    assert [q["row"] for q in quarantined] == ["5"] and quarantined[0]["applicants"].startswith("'=HYPERLINK")  # formula-safe


def test_an_xlsx_output_has_typed_cells_chinese_headings_and_the_model(excel_book, registry, tmp_path):
    from openpyxl import load_workbook

    folder, _ = excel_book
    reference = pd.read_parquet(score_file(folder / "book.csv", model_uri=MODEL, out=tmp_path / "s.parquet", tracking_uri=registry[1], explain="top3").output)
    s = score_file(folder / "book.xlsx", model_uri=MODEL, out=tmp_path / "s.xlsx", tracking_uri=registry[1], chunk_size=120, explain="top3")
    book = load_workbook(tmp_path / "s.xlsx")
    assert book.sheetnames == ["评分 scored", "说明 About"]
    sheet = book["评分 scored"]
    header = [c.value for c in sheet[1]]
    assert [h.rsplit("\n", 1)[-1] for h in header] == list(reference.columns)
    assert header[reference.columns.get_loc("value_p50_rmb")] == "估值 P50（元）\nvalue_p50_rmb"
    assert header[reference.columns.get_loc("feature_claims_total")] == "特征：权利要求总数\nfeature_claims_total"
    assert sheet.freeze_panes == "A2" and sheet.max_row == 300
    first = {name.rsplit("\n", 1)[-1]: cell for name, cell in zip(header, sheet[2])}
    assert first["row"].data_type == "n" and first["row"].value == 1
    assert first["patent_id"].data_type == "s" and first["patent_id"].value == reference["patent_id"].iloc[0]
    assert first["value_p50_rmb"].data_type == "n" and first["value_p50_rmb"].number_format == "#,##0"
    assert first["value_p50_rmb"].value == pytest.approx(reference["value_p50_rmb"].iloc[0], rel=1e-15)
    assert first["driver_1"].data_type == "s" and first["driver_1_shap"].data_type == "n"
    about = dict(book["说明 About"].iter_rows(min_row=2, values_only=True))
    assert about["模型 Model"] == MODEL and about["模型版本 Model version"] == "1" and about["输入 Input"] == "book.xlsx"
    q = load_workbook(s.quarantine)["隔离 quarantine"]
    cells = {name.value.rsplit("\n", 1)[-1]: cell for name, cell in zip(q[1], q[2])}
    assert cells["row"].value == 5 and cells["filing_date"].value == str(excel_book[1].loc[4, "filing_date"].date())  # a date cell as ISO text
    # from the CSV (a workbook would hold the formula as a formula already): a formula stays text
    t = score_file(folder / "book.csv", model_uri=MODEL, out=tmp_path / "t.xlsx", tracking_uri=registry[1], explain="none")
    q = load_workbook(t.quarantine)["隔离 quarantine"]
    cells = {name.value.rsplit("\n", 1)[-1]: cell for name, cell in zip(q[1], q[2])}
    assert cells["applicants"].data_type == "s" and cells["applicants"].value.startswith("=HYPERLINK")


def test_score_reads_every_format_validate_reads(excel_book, registry, tmp_path):
    """The workbook validate reads (and a semicolon CSV, a TSV) scores to the values of the CSV."""
    from ipvalue.io import read_patents

    folder, patents = excel_book
    patents.to_csv(tmp_path / "semi.csv", index=False, sep=";")
    patents.to_csv(tmp_path / "book.tsv", index=False, sep="\t")
    want = pd.read_parquet(score_file(folder / "book.csv", model_uri=MODEL, out=tmp_path / "c.parquet", tracking_uri=registry[1], explain="none").output)
    for source in (folder / "book.xlsx", tmp_path / "semi.csv", tmp_path / "book.tsv"):
        assert len(read_patents(source).valid) == 299
        got = pd.read_parquet(score_file(source, model_uri=MODEL, out=tmp_path / f"{source.name}.parquet", tracking_uri=registry[1], chunk_size=100, explain="none").output)
        assert got["patent_id"].tolist() == want["patent_id"].tolist(), source.name
        np.testing.assert_allclose(got["value_p50_rmb"], want["value_p50_rmb"], rtol=1e-12)


def test_an_output_type_that_is_no_table_file_is_refused_before_any_work(excel_book, tmp_path):
    from ipvalue.io.spreadsheets import OutputTypeError

    folder, _ = excel_book
    for kwargs in ({"out": tmp_path / "s.json"}, {"out": tmp_path / "s.csv", "quarantine_out": tmp_path / "q.txt"}):
        with pytest.raises(OutputTypeError, match=r"must end in .parquet, .csv or .xlsx. Got '\.(json|txt)'. Fix: name it"):
            score_file(folder / "book.csv", model_uri="models:/not-even-loaded@champion", tracking_uri="sqlite:////nonexistent/x.db", **kwargs)
    assert not list(tmp_path.iterdir())


def test_the_spark_engine_refuses_spreadsheets_it_cannot_read_or_write():
    from ipvalue.exceptions import InputFileError
    from ipvalue.io.spreadsheets import OutputTypeError
    from ipvalue.scoring.spark import check_spark_paths

    check_spark_paths("hdfs:///books/b.parquet", "hdfs:///scored/2026-06", "hdfs:///scored/2026-06.quarantine")
    with pytest.raises(OutputTypeError, match="The Spark engine writes --out as a Parquet folder .* Fix: .*--engine local"):
        check_spark_paths("b.parquet", "scored.xlsx", "q")
    with pytest.raises(OutputTypeError, match="--quarantine-out"):
        check_spark_paths("b.csv", "scored", "q.csv")
    with pytest.raises(InputFileError, match=r"reads CSV or Parquet books; b.xlsx is a .xlsx file. Fix: .*--engine local"):
        check_spark_paths("b.xlsx", "scored", "q")


def test_progress_shows_the_model_load_then_rows_with_total_rate_and_time_left(excel_book, registry, tmp_path, capsys):
    folder, _ = excel_book
    score_file(folder / "book.csv", model_uri=MODEL, out=tmp_path / "s.parquet", tracking_uri=registry[1], chunk_size=100, explain="none", progress=True)
    err = capsys.readouterr().err
    assert f"loading model {MODEL} ✓" in err and "reading book.csv ✓" in err and "writing s.parquet ✓" in err
    bar = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("scoring book.csv")][-1]
    assert "100%" in bar and "300/300" in bar and " rows/s]" in bar and "<00:00" in bar, bar  # total, rate, time left
    score_file(folder / "book.csv", model_uri=MODEL, out=tmp_path / "t.parquet", tracking_uri=registry[1], explain="none", progress=False)
    assert capsys.readouterr().err == ""


def test_a_run_killed_with_sigkill_leaves_nothing_behind_once_rerun(excel_book, registry, tmp_path):
    """Issue 27: SIGKILL gives a run no chance to clean up; the next run sweeps what it left."""
    import signal
    import subprocess
    import sys
    import time

    folder, _ = excel_book
    argv = [sys.executable, "-c", "import sys; from ipvalue.cli import main; sys.exit(main())", "score", str(folder / "book.csv"), "--model", MODEL,
            "--out", str(tmp_path / "scored.csv"), "--tracking-uri", registry[1], "--chunk-size", "20", "--workers", "1", "--explain", "all"]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "scored.csv.parts").glob("done-*.json")):  # killed mid-run: after the first chunk
            assert child.poll() is None and time.monotonic() < deadline, "the child finished or hung before it could be killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.glob(".*.tmp"))
    assert any(name.startswith(".scored.csv.") for name in left), left  # what a killed run leaves
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1, rerun.stderr  # one row quarantined
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.csv", "scored.quarantine.csv"]
    assert "resumed" in rerun.stdout and ", 0 resumed" not in rerun.stdout
