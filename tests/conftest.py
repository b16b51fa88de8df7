"""Shared fixtures: the real data in ../shared/data and small synthetic frames."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pandas as pd
import pytest

from ipvalue.synthetic import make_demo_portfolio


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


def _small_value_experiment(folder) -> str:
    """experiments/value-demo.yaml on a smaller synthetic book (fast), with gates it passes."""
    import yaml

    spec = yaml.safe_load(open("experiments/value-demo.yaml", encoding="utf-8"))
    spec.update(name="value-small")
    spec["data"]["n"], spec["split"]["k"] = 800, 3
    spec["gates"] = {"spearman_min": 0.5, "coverage_min": 0.6, "must_beat": ["claims_only"]}
    small = folder / "value-small.yaml"
    small.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return str(small)


@pytest.fixture(scope="session")
def value_registry(tmp_path_factory):
    """A temporary MLflow store with a small value model (synthetic data, so no shared data is
    needed) registered as ipvalue-value@champion. Returns (folder, tracking uri, results)."""
    from ipvalue.training import run_experiment

    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return folder, uri, {"value": run_experiment(_small_value_experiment(folder), tracking_uri=uri)}


def _renewal_experiment(folder, *, validation_extras: bool) -> str:
    """experiments/renewal-us-university.yaml, or (``validation_extras=False``) the same experiment
    without its point-in-time and per-stage figures (``evaluation.point_in_time`` and
    ``report_stages``): the same data, spec, parameters and seeds, so the same registered model
    and headline figures, in about half the time (2 model fits instead of 4, one bootstrap
    instead of 5)."""
    import yaml

    if validation_extras:
        return "experiments/renewal-us-university.yaml"
    spec = yaml.safe_load(open("experiments/renewal-us-university.yaml", encoding="utf-8"))
    spec["evaluation"].pop("point_in_time")
    spec["evaluation"].pop("report_stages")
    path = folder / "renewal-us-university.yaml"  # the name the run records, as for the full file
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def registry(value_registry, data_dir, request):
    """:func:`value_registry` plus the renewal model trained on the real data (ipvalue-renewal@champion).

    The run's point-in-time and per-stage validation figures are computed only when a slow test
    that uses this fixture is selected (the validation report's test reads them); a fast run
    (``make test-fast``) registers the same model without them.
    """
    from ipvalue.training import run_experiment

    folder, uri, results = value_registry
    extras = any(item.get_closest_marker("slow") and "registry" in item.fixturenames for item in request.session.items)
    renewal = run_experiment(_renewal_experiment(folder, validation_extras=extras), tracking_uri=uri, data_dir=data_dir)
    return folder, uri, {**results, "renewal": renewal}


# --- loan applications (lending tests) -------------------------------------------------------------

BORROWER = "合成示例测试科技有限公司"


def synthetic_patent(i, **changes):
    base = {
        "patent_id": f"SYN-CN-T{i:03d}", "jurisdiction": "CN", "patent_type": "invention", "filing_date": "2018-03-01",
        "publication_date": "2019-09-01", "grant_date": "2020-06-01", "legal_status": "in_force", "fees_paid_until": "2027-03-01",
        "claims_total": 12, "claims_independent": 2, "family_size": 2, "family_offices": "CN;US", "forward_citations": 4,
        "backward_citations": 8, "npl_citations": 2, "ipc_main": "G06F 16/00", "ipc_codes": "G06F 16/00;G06N 3/08",
        "applicants": BORROWER, "inventor_count": 3,
    }
    return {**base, **changes}


def synthetic_application(**changes):
    raw = {
        "application_id": "SYN-APP-T1", "borrower": BORROWER, "requested_amount_rmb": 100_000, "term_years": 2,
        "purpose": "working capital (synthetic test)", "valuation_date": "2026-06-30",
        "patents": {"records": [synthetic_patent(1), synthetic_patent(2, patent_type="utility_model", filing_date="2021-01-01", publication_date="2021-08-01", grant_date="2021-08-01")]},
        "revenue_forecast": {"base_rmb": 40_000_000, "growth": 0.05}, "risk_sharing": "5311",
        "documents": [  # what a clean application references: fees prepaid through the term plus buffer, the utility model's 评价报告, register extracts
            {"patent_id": "SYN-CN-T001", "kind": "fee_prepayment", "reference": "SYN-FEE-001", "paid_until": "2029-07-01"},
            {"patent_id": "SYN-CN-T002", "kind": "fee_prepayment", "reference": "SYN-FEE-002", "paid_until": "2029-07-01"},
            {"patent_id": "SYN-CN-T002", "kind": "evaluation_report", "reference": "SYN-PJBG-2026-002"},
            {"patent_id": "SYN-CN-T001", "kind": "register_extract", "reference": "SYN-DJB-001"},  # the register's evidence of status and pledges
            {"patent_id": "SYN-CN-T002", "kind": "register_extract", "reference": "SYN-DJB-002"},
        ],
    }
    raw.update(changes)
    if "patents" in changes and "documents" not in changes:
        del raw["documents"]  # they reference SYN-CN-T001 / T002 of the default patents
    return raw


@pytest.fixture
def make_patent():
    """``make_patent(i, **changes)``: a valid synthetic CN invention owned by :data:`BORROWER`."""
    return synthetic_patent


#: The audit store's applications when the store was read and holds none (the exposure check's input).
NO_OTHER_APPLICATIONS = pd.DataFrame(columns=["application_id", "borrower", "requested_amount_rmb", "decision", "term_years", "valuation_date"])


@pytest.fixture
def make_application():
    """``make_application(**changes)``: a clean synthetic application (two patents, revenue, risk sharing)."""
    return synthetic_application


# --- fresh virtual environments (tracking, packaging, Spark cluster tests) ------------------------

def require_or_skip(message: str, flag: str):
    """Fail when CI sets ``flag`` (the check is mandatory there), else skip with ``message``."""
    if os.environ.get(flag):
        pytest.fail(message)
    pytest.skip(message)


def fresh_venv(folder, *install_args, timeout: int = 1800):
    """A new virtual environment at ``folder`` (uv, this Python's version) with ``uv pip install
    *install_args``; its python. Skips where uv or PyPI is unreachable, fails in CI."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    python = Path(folder) / "bin" / "python"
    try:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(folder)], check=True, capture_output=True, text=True, timeout=300)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *map(str, install_args)], check=True, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        require_or_skip(f"fresh virtual environment check skipped: needs uv and PyPI ({exc}; {detail[-500:]})", "IPVALUE_REQUIRE_FRESH_VENV")
    return python


@pytest.fixture(scope="session")
def model_venv(value_registry, tmp_path_factory):
    """A fresh virtual environment holding only what the registered value model's own
    ``requirements.txt`` names: no ipvalue, no checkout on its path. Returns its python."""
    import mlflow

    from ipvalue.tracking import use_tracking

    _, uri, _ = value_registry
    use_tracking(uri)
    requirements = mlflow.pyfunc.get_model_dependencies("models:/ipvalue-value@champion")
    return fresh_venv(tmp_path_factory.mktemp("model-venv") / "venv", "--compile-bytecode", "-r", requirements)


# --- a real browser (report and governance rendering tests) ----------------------------------------

@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium driven by selenium (Debian's chromium and chromium-driver); skipped where
    absent, a failure when IPVALUE_REQUIRE_CHROMIUM is set."""
    import shutil

    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if webdriver is None or not (binary and driver_path):
        require_or_skip("Chromium check skipped: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) "
                        "and the test extra (selenium)", "IPVALUE_REQUIRE_CHROMIUM")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1200,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# --- printing PDF with each engine ------------------------------------------------------------------

#: The engines that print a page to PDF (``$IPVALUE_PDF_ENGINE``); PDF tests run with each.
PDF_ENGINES = ("chromium", "weasyprint")


@contextmanager
def printing_with(engine: str):
    """Inside the block, PDFs are printed by ``engine``. Skips (fails when IPVALUE_REQUIRE_CHROMIUM
    is set, as in CI) where this machine lacks the engine, a CJK font or poppler-utils."""
    import shutil

    from ipvalue.report import pdf_unavailable

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IPVALUE_PDF_ENGINE", engine)
        missing = pdf_unavailable() or (None if shutil.which("pdftotext") and shutil.which("pdffonts") else "poppler-utils (pdftotext, pdffonts) is not installed")
        if missing:
            require_or_skip(f"PDF check with {engine} skipped: {missing}", "IPVALUE_REQUIRE_CHROMIUM")
        yield


def font_problems(pdffonts: str, raw: bytes = b"") -> list[str]:
    """What is wrong with a PDF's fonts, from ``pdffonts`` output and the file's bytes: a font not
    embedded, a font with no Unicode map (its text would not read back), or no CJK face among them.

    WeasyPrint embeds CID fonts that ``pdffonts`` names (``NotoSansCJKsc-Regular``); Chromium embeds
    Type 3 fonts that it lists as ``[none]``, whose font descriptors (uncompressed in its files)
    carry the face's name (``/FontName /AAAAAA+NotoSansCJKsc-Regular``).
    """
    import re

    rows = [line.split() for line in pdffonts.splitlines()[2:] if line.strip()]
    if not rows:
        return ["no font at all"]
    problems = [f"not embedded: {' '.join(r[:-5])}" for r in rows if r[-5] != "yes"]
    problems += [f"no Unicode map: {' '.join(r[:-5])}" for r in rows if r[-3] != "yes"]
    names = [r[0] for r in rows] + [m.decode("latin-1") for m in re.findall(rb"/FontName\s*/([^\s/<>\[\]()]+)", raw)]
    if not any("CJK" in name for name in names):
        problems.append(f"no CJK face among {sorted(set(names))}")
    return problems


def pdf_font_problems(path) -> list[str]:
    """:func:`font_problems` of the PDF at ``path``."""
    import subprocess
    from pathlib import Path

    listing = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    return font_problems(listing, Path(path).read_bytes())
