"""Shared fixtures: the real data in ../shared/data and small synthetic frames."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from ipvalue.demo import make_demo_portfolio


@pytest.fixture(scope="session")
def data_dir():
    """The public reference data; skipped where absent, a failure in CI."""
    from ipvalue.io import default_data_dir

    try:
        return default_data_dir()
    except FileNotFoundError as exc:
        if os.environ.get("IPVALUE_REQUIRE_SHARED_DATA") or os.environ.get("CI"):
            pytest.fail(f"CI needs ../shared/data: {exc}")
        pytest.skip(f"real data not available: {exc}")


@pytest.fixture(scope="session")
def university(data_dir):
    from ipvalue.io import load_university_maintenance

    return load_university_maintenance(data_dir)


@pytest.fixture(scope="session")
def demo():
    return make_demo_portfolio(300, seed=7)


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    """Three valid patents in canonical columns, as raw strings (as a CSV would give them)."""
    return pd.DataFrame(
        {
            "patent_id": ["CN111111111B", "CN222222222U", "US7000001B2"],
            "jurisdiction": ["CN", "CN", "US"],
            "patent_type": ["invention", "utility_model", "invention"],
            "filing_date": ["2015-03-01", "2019-07-15", "2004-01-10"],
            "grant_date": ["2018-05-20", "2020-02-01", "2006-06-06"],
            "legal_status": ["in_force", "in_force", "expired"],
            "claims_total": ["10", "6", "20"],
            "claims_independent": ["2", "1", "3"],
            "ipc_main": ["G06F 16/00", "H02J 7/00", "A61K 31/00"],
        }
    )


@pytest.fixture(scope="session")
def registry(tmp_path_factory, data_dir):
    """A temporary MLflow store with the renewal model (real data) and a small value model
    (synthetic), both registered as champions. Returns (folder, tracking uri, results)."""
    import yaml

    from ipvalue.models.experiment import run_experiment

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    spec = yaml.safe_load(open("experiments/value-demo.yaml", encoding="utf-8"))
    spec.update(name="value-small")
    spec["data"]["n"], spec["split"]["k"] = 800, 3
    spec["gates"] = {"spearman_min": 0.5, "coverage_min": 0.6, "must_beat": ["claims_only"]}
    small = folder / "value-small.yaml"
    small.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    results = {
        "renewal": run_experiment("experiments/renewal-us-university.yaml", tracking_uri=uri, data_dir=data_dir),
        "value": run_experiment(small, tracking_uri=uri),
    }
    return folder, uri, results
