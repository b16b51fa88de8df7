"""Start-up of fresh processes and the model load from the registry, each beside a baseline
measured in the same run.

    .venv/bin/python -m benchmarks.startup                 # 10 start-up runs, 5 model loads of each kind
    .venv/bin/python -m benchmarks.startup --repeat 20 --no-model
    .venv/bin/python -m benchmarks.startup --repeat 3 --tracking-uri sqlite:///mlflow/mlflow.db \
        --model models:/ipvalue-renewal@champion --model models:/ipvalue-value@champion   # the demo's models (make demo)

Start-up: ``python -c pass`` (the interpreter alone: the baseline), ``python -c "import ipvalue"``,
``ipvalue --version`` and ``ipvalue --help``, each in a fresh process, the commands taken in turn
so that they share the machine's load; median, min and max of --repeat runs. Target (issues 23
and 25): ``ipvalue --help`` under 0.5 s on the 2-core machine; it took 4-8 s when the CLI imported
every command's library up front.

Model load: a small value model (experiments/value-demo.yaml on 800 synthetic patents, the tests'
model) is trained and registered in a temporary MLflow store, or ``--tracking-uri`` names a store
and ``--model`` its models (e.g. the demo's two). In fresh processes, in turn, each process loading
every model once:

- ``direct``: :func:`ipvalue.registry.load_model` reading the SQLite registry straight from its
  database (:mod:`ipvalue.registry_store`): MLflow is not imported;
- ``mlflow``: the same function through MLflow's client (the direct read declined), which is what
  it did for every store before and still does for a server or PostgreSQL: ``import mlflow``,
  MLflow's SQLAlchemy store (engine, schema check), the version resolved, the pyfunc loaded;
- ``store``: the baseline MLflow's way cannot avoid: ``import mlflow`` and opening the store with
  one registry query.

Each figure is the load's wall time including the imports it triggers (MLflow's for ``mlflow``;
scikit-learn and LightGBM, which unpickling needs either way), after ``ipvalue.registry`` is
imported (timed apart). The requirement checks are also timed alone, on the registered model's
folder: MLflow's (``warn_dependency_requirement_mismatches``, what ``mlflow.pyfunc.load_model``
runs) against :func:`ipvalue.registry.requirement_mismatches`. This is what `ipvalue value`,
`ipvalue score` and each service worker pay once per model.

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


def one_load(kind: str, uri: str, models: list[str]) -> dict:
    """In this (fresh) process: import time of ipvalue.registry, then the wall and CPU time of
    loading ``models`` the ``kind`` way (imports they trigger included)."""
    import warnings

    warnings.simplefilter("ignore")
    started = time.perf_counter()
    import ipvalue.registry_store
    from ipvalue.registry import load_model

    imported, cpu = time.perf_counter(), time.process_time()
    if kind == "checks":
        import mlflow
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

        from ipvalue.registry import requirement_mismatches, resolve_version
        from ipvalue.tracking import use_tracking

        use_tracking(uri)
        client = mlflow.MlflowClient()
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=client.get_model_version_download_uri(*resolve_version(models[0], client=client))))
        cpu = time.process_time()
        warn_dependency_requirement_mismatches((folder / "requirements.txt").read_text(encoding="utf-8").split())
        mlflow_check = time.process_time()
        requirement_mismatches(folder)
        return {"kind": kind, "mlflow_check_cpu_s": mlflow_check - cpu, "pinned_cpu_s": time.process_time() - mlflow_check}
    if kind == "store":
        import mlflow

        from ipvalue.tracking import use_tracking

        use_tracking(uri)
        mlflow.MlflowClient().search_registered_models(max_results=1)
    else:
        if kind == "mlflow":
            ipvalue.registry_store.SCHEMA_REVISIONS = frozenset()  # the direct read declined: MLflow's client answers
        loaded = [load_model(model, tracking_uri=uri) for model in models]
        read_directly = all(m.loaded_through == "registry database" for m in loaded)
        if read_directly != (kind == "direct"):
            raise RuntimeError(f"{kind}: the models were {'read directly' if read_directly else 'loaded through MLflow'}")
    return {"kind": kind, "import_s": imported - started, "load_s": time.perf_counter() - imported, "cpu_s": time.process_time() - cpu,
            "mlflow_imported": "mlflow" in sys.modules}


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
    parser.add_argument("--tracking-uri", default=None, help="load from this store instead of training a small model (e.g. sqlite:///mlflow/mlflow.db after make demo)")
    parser.add_argument("--model", action="append", help="with --tracking-uri: a model URI to load (repeatable; default models:/ipvalue-value@champion)")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, uri, *models = args.one
        print(json.dumps(one_load(kind, uri, models)))
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
    if args.tracking_uri:
        uri, models = args.tracking_uri, args.model or [MODEL]
    else:
        store = Path(tempfile.mkdtemp(prefix="ipvalue-bench-startup-"))
        print(f"\ntraining the small value model into {store} ...", flush=True)
        uri, models = train(store), [MODEL]
    print(f"\nmodel load from the registry ({', '.join(models)} on {uri}), fresh processes, {args.loads} of each kind (load average {load_average()})")
    kinds = {"store": "MLflow: import, open the store (baseline)", "mlflow": "load_model through MLflow's client", "direct": "load_model read directly"}
    runs = {kind: [] for kind in kinds}
    for _ in range(args.loads):
        for kind in kinds:
            runs[kind].append(run_isolated("benchmarks.startup", "--one", kind, uri, *models))
    print(f"  {'':<42} {'wall: median':>13} {'min':>6} {'max':>6} {'CPU':>7}  (s)   import of ipvalue.registry before it, wall; mlflow imported")
    for kind, label in kinds.items():
        print(f"  {label:<42}       {spread([r['load_s'] for r in runs[kind]], [r['cpu_s'] for r in runs[kind]])}"
              f"        {statistics.median(r['import_s'] for r in runs[kind]):.2f} s; {runs[kind][0]['mlflow_imported']}")
    for clock, key in (("wall", "load_s"), ("CPU", "cpu_s")):
        store_s, through, direct = (statistics.median(r[key] for r in runs[k]) for k in kinds)
        print(f"  {clock}: read directly {direct:.2f} s against {through:.2f} s through MLflow's client ({direct / through:.0%}); "
              f"MLflow's import and store alone take {store_s:.2f} s")
    checks = [run_isolated("benchmarks.startup", "--one", "checks", uri, *models) for _ in range(args.loads)]
    print(f"  requirement check alone, CPU, median of {args.loads}: MLflow's {statistics.median(c['mlflow_check_cpu_s'] for c in checks):.2f} s, "
          f"the pinned comparison {statistics.median(c['pinned_cpu_s'] for c in checks):.3f} s")
    print(f"(load average at the end {load_average()}; reproduce: {shlex.join([python, '-m', 'benchmarks.startup', *sys.argv[1:]])})")


if __name__ == "__main__":
    main()
