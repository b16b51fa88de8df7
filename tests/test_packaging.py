"""The wheel is complete: built from the source tree, it carries the feature specs and experiments
written in the top-level ``features/`` and ``experiments/`` folders, and installed into a fresh
virtual environment with the lock's pins it runs ``ipvalue demo`` from an empty folder."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import fresh_venv, require_or_skip

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("ipvalue", "features", "experiments", "pyproject.toml", "setup.py", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built (sdist first, then the wheel from the sdist) from a copy of the source tree."""
    tree = tmp_path_factory.mktemp("source") / "ipvalue-src"
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, tree / name)
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    try:
        subprocess.run([uv, "build", "-q", "-o", str(tree / "dist"), str(tree)], check=True, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        require_or_skip(f"wheel build skipped: needs uv and PyPI for the build backend ({exc}; {getattr(exc, 'stderr', '')[-500:]})", "IPVALUE_REQUIRE_FRESH_VENV")
    return next((tree / "dist").glob("ipvalue-*.whl"))


@pytest.mark.slow
def test_the_wheel_carries_every_feature_spec_and_experiment_as_written(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        for folder, packaged in (("features", "ipvalue/specs"), ("experiments", "ipvalue/experiments")):
            for spec in (ROOT / folder).glob("*.yaml"):
                assert whl.read(f"{packaged}/{spec.name}") == spec.read_bytes()
    assert {"ipvalue/assumptions/statutory-terms.yaml", "ipvalue/mappings/cn.yaml", "ipvalue/report/report.html.j2"} <= names
    assert not any(n.startswith(("features/", "experiments/", "tests/")) for n in names)  # nothing outside the package


@pytest.mark.slow
@pytest.mark.venv
def test_the_installed_wheel_runs_the_demo_from_an_empty_folder(wheel, tmp_path):
    python = fresh_venv(tmp_path / "venv", "--compile-bytecode", "-r", ROOT / "requirements.lock", wheel)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IPVALUE_DATA_DIR", "MLFLOW_TRACKING_URI")}
    check = subprocess.run([str(python), "-c", "import ipvalue; from ipvalue.features import FeatureSpec; "
                            "print(ipvalue.__file__, FeatureSpec.load('core-v1').hash)"], cwd=empty, env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-3000:]
    assert "site-packages" in check.stdout and str(ROOT) not in check.stdout
    done = subprocess.run([str(python.parent / "ipvalue"), "demo", "--n", "200"], cwd=empty, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert (empty / "demo-output" / "valuations.parquet").is_file() and (empty / "mlflow" / "mlflow.db").is_file()
    assert "renewal model skipped: no public data" in done.stdout  # run outside the checkout, nothing of it found
