"""Start-up of fresh processes and the model load from the registry, each beside a baseline
measured in the same run.

    .venv/bin/python -m benchmarks.startup                 # 10 start-up runs, 5 model loads of each kind
    .venv/bin/python -m benchmarks.startup --repeat 20 --no-model

Start-up: ``python -c pass`` (the interpreter alone: the baseline), ``python -c "import ipvalue"``,
``ipvalue --version`` and ``ipvalue --help``, each in a fresh process, the commands taken in turn
so that they share the machine's load; median, min and max of --repeat runs. Target (issues 23
and 25): ``ipvalue --help`` under 0.5 s on the 2-core machine; it took 4-8 s when the CLI imported
every command's library up front.

Model load: a small value model (experiments/value-demo.yaml on 800 synthetic patents, the tests'
model) is trained and registered in a temporary MLflow store. In fresh processes, in turn:
``ipvalue.registry.load_model("models:/ipvalue-value@champion")`` (one client, the version
resolved once, pinned requirements compared instead of MLflow's scan), the same load as it was
written before (``mlflow.pyfunc.load_model`` on ``models:/NAME/VERSION``, MLflow's requirement
check included, then the run's tags, each step with its own client), and the baseline neither can
avoid: opening the SQLite store (MLflow's SQLAlchemy store, alembic) with one registry query.
Imports (mlflow, ipvalue.registry) are timed apart. The requirement checks are also timed alone, on
the registered model's folder: MLflow's (``warn_dependency_requirement_mismatches``, what
``mlflow.pyfunc.load_model`` runs) against :func:`ipvalue.registry.requirement_mismatches`. This is what `ipvalue value`, `ipvalue score`
and each service worker pay once per model.

Wall time on the shared 2-core machine varies with its load (printed) by a factor of 2-4; the CPU
seconds each process used (user + system) vary far less: compare those when the machine is busy.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import run_isolated

MODEL = "models:/ipvalue-value@champion"


def train(store: Path) -> str:
    """Register the tests' small value model in a new store; returns its tracking URI."""
    import warnings

    import yaml

    from ipvalue.training import run_experiment

    warnings.simplefilter("ignore")
    spec = yaml.safe_load(open("experiments/value-demo.yaml", encoding="utf-8"))
    spec.update(name="value-small")
    spec["data"]["n"], spec["split"]["k"] = 800, 3
    spec["gates"] = {"spearman_min": 0.0, "coverage_min": 0.0, "must_beat": []}
    path = store / "value-small.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    run_experiment(path, tracking_uri=uri)
    return uri


def load_before(uri: str):
    """``ipvalue.registry.load_model`` as it was before the single-client load (commit 1324e16)."""
    import mlflow

    from ipvalue.registry import resolve_version
    from ipvalue.tracking import use_tracking

    use_tracking(uri)
    name, version = resolve_version(MODEL)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return pyfunc, dict(mlflow.MlflowClient().get_run(pyfunc.metadata.run_id).data.tags)


def one_load(kind: str, uri: str) -> dict:
    """In this (fresh) process: import time, then the wall and CPU time of one load of ``kind``."""
    import warnings

    warnings.simplefilter("ignore")
    started = time.perf_counter()
    import mlflow

    from ipvalue.registry import load_model
    from ipvalue.tracking import use_tracking

    imported, cpu = time.perf_counter(), time.process_time()
    if kind == "checks":
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

        from ipvalue.registry import requirement_mismatches, resolve_version

        use_tracking(uri)
        client = mlflow.MlflowClient()
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=client.get_model_version_download_uri(*resolve_version(MODEL, client=client))))
        cpu = time.process_time()
        warn_dependency_requirement_mismatches((folder / "requirements.txt").read_text(encoding="utf-8").split())
        mlflow_check = time.process_time()
        requirement_mismatches(folder)
        return {"kind": kind, "mlflow_check_cpu_s": mlflow_check - cpu, "pinned_cpu_s": time.process_time() - mlflow_check}
    if kind == "store":
        use_tracking(uri)
        mlflow.MlflowClient().search_registered_models(max_results=1)
    elif kind == "before":
        load_before(uri)
    else:
        load_model(MODEL, tracking_uri=uri)
    return {"kind": kind, "import_s": imported - started, "load_s": time.perf_counter() - imported, "cpu_s": time.process_time() - cpu}


def timed_process(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a fresh process running ``argv``."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{shlex.join(argv)} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def spread(wall: list[float], cpu: list[float]) -> str:
    return f"{statistics.median(wall):>7.2f} {min(wall):>6.2f} {max(wall):>6.2f} {statistics.median(cpu):>7.2f}"


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="fresh processes per start-up command (default: 10)")
    parser.add_argument("--loads", type=int, default=5, help="fresh processes per kind of model load (default: 5)")
    parser.add_argument("--no-model", action="store_true", help="start-up only: no model trained or loaded")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_load(*args.one)))
        return

    python, ipvalue = sys.executable, str(Path(sys.executable).parent / "ipvalue")
    commands = {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import ipvalue"': [python, "-c", "import ipvalue"],
        "ipvalue --version": [ipvalue, "--version"],
        "ipvalue --help": [ipvalue, "--help"],
    }
    print(f"start-up, fresh processes, {args.repeat} runs each (load average {load_average()})")
    times = {name: ([], []) for name in commands}
    for _ in range(args.repeat):
        for name, argv in commands.items():
            for kept, value in zip(times[name], timed_process(argv)):
                kept.append(value)
    base = statistics.median(times["python -c pass"][0])
    print(f"  {'':<28} {'wall: median':>13} {'min':>6} {'max':>6} {'CPU':>7}  (s)  wall beside python -c pass")
    for name, (wall, cpu) in times.items():
        beside = "baseline" if name == "python -c pass" else f"+{statistics.median(wall) - base:.2f} s, {statistics.median(wall) / base:.1f}x"
        print(f"  {name:<28}       {spread(wall, cpu)}       {beside}" + ("   target < 0.5 s" if name == "ipvalue --help" else ""))

    if args.no_model:
        return
    store = Path(tempfile.mkdtemp(prefix="ipvalue-bench-startup-"))
    print(f"\ntraining the small value model into {store} ...", flush=True)
    uri = train(store)
    print(f"model load from the registry ({MODEL}), fresh processes, {args.loads} of each kind (load average {load_average()})")
    kinds = {"store": "open the store, one query (baseline)", "before": "load as before (MLflow's path)", "now": "ipvalue.registry.load_model"}
    runs = {kind: [] for kind in kinds}
    for _ in range(args.loads):
        for kind in kinds:
            runs[kind].append(run_isolated("benchmarks.startup", "--one", kind, uri))
    print(f"  {'':<38} {'wall: median':>13} {'min':>6} {'max':>6} {'CPU':>7}  (s)   imports before it (mlflow, ipvalue.registry), wall")
    for kind, label in kinds.items():
        print(f"  {label:<38}       {spread([r['load_s'] for r in runs[kind]], [r['cpu_s'] for r in runs[kind]])}"
              f"        {statistics.median(r['import_s'] for r in runs[kind]):.2f} s")
    for clock, key in (("wall", "load_s"), ("CPU", "cpu_s")):
        store_s, before, now = (statistics.median(r[key] for r in runs[k]) for k in kinds)
        print(f"  {clock} beyond opening the store: before {before - store_s:.2f} s, now {now - store_s:.2f} s; "
              f"the whole load takes {now / before:.0%} of its former {clock} time")
    checks = [run_isolated("benchmarks.startup", "--one", "checks", uri) for _ in range(args.loads)]
    print(f"  requirement check alone, CPU, median of {args.loads}: MLflow's {statistics.median(c['mlflow_check_cpu_s'] for c in checks):.2f} s, "
          f"the pinned comparison {statistics.median(c['pinned_cpu_s'] for c in checks):.3f} s")
    print(f"(load average at the end {load_average()}; reproduce: {shlex.join([python, '-m', 'benchmarks.startup'])})")


if __name__ == "__main__":
    main()
