"""The command line: subcommands, outputs and exit codes."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvalue import cli
from ipvalue.audit import read_audit_table
from ipvalue.cli import main
from ipvalue.cli.exitcodes import EXIT_CONFIG, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE


def test_validate_reports_and_writes_quarantine(tmp_path, tiny_frame, capsys):
    tiny_frame.loc[0, "claims_total"] = "-1"
    src = tmp_path / "in.csv"
    tiny_frame.to_csv(src, index=False)
    code = main(["validate", str(src), "--quarantine-out", str(tmp_path / "q.csv"), "--valid-out", str(tmp_path / "v.parquet")])
    out = capsys.readouterr().out
    assert code == EXIT_PARTIAL
    assert "rows in: 3  valid: 2  quarantined: 1" in out
    assert "row 1 (CN111111111B): column 'claims_total' = '-1': below the minimum 0" in out
    assert pd.read_csv(tmp_path / "q.csv")["row"].tolist() == [1]
    assert len(pd.read_parquet(tmp_path / "v.parquet")) == 2


def test_validate_missing_file_is_an_input_error(capsys):
    assert main(["validate", "no-such-file.csv"]) == EXIT_INPUT
    assert "does not exist" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == EXIT_USAGE
    assert "validate" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["score", "book.csv", "--model", "models:/m@champion", "--out", "o.parquet", "--chunk-size", "0"], "--chunk-size: must be a whole number >= 1. Got '0'."),
    (["score", "book.csv", "--model", "models:/m@champion", "--out", "o.parquet", "--workers", "0"], "--workers: must be a whole number >= 1. Got '0'."),
    (["pool", "book.csv", "--scored", "s.parquet", "--as-of", "next week"], "--as-of: must be a date written YYYY-MM-DD. Got 'next week'."),
    (["pool", "book.csv", "--scored", "s.parquet", "--value-drop", "20"], "--value-drop: must be a fraction in [0, 1]"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_an_unsupported_file_type_is_an_input_error(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}", encoding="utf-8")
    assert main(["validate", str(tmp_path / "x.json")]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: Unsupported file type '.json'") and "Traceback" not in err


@pytest.mark.parametrize("uri, message", [
    ("models:/nope@champion", "No registered model 'nope' with alias @champion"),
    ("models:/ipvalue-value@nope", "No registered model 'ipvalue-value' with alias @nope"),
    ("models:/ipvalue-value/99", "No registered model 'ipvalue-value' with version 99"),
    ("some/folder", "A model must be named by its registry URI"),
    ("runs:/abc/model", "A model must be named by its registry URI"),
])
def test_an_unknown_or_unregistered_model_is_an_input_error(uri, message, value_registry, tiny_frame, tmp_path, capsys):
    tiny_frame.to_csv(tmp_path / "book.csv", index=False)
    code = main(["score", str(tmp_path / "book.csv"), "--model", uri, "--out", str(tmp_path / "o.parquet"), "--tracking-uri", value_registry[1]])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT, err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def officer_token(tmp_path, monkeypatch):
    """``ipvalue value`` authenticates its user: an officer's token for the store tmp_path/a.db."""
    from ipvalue.audit import add_user

    monkeypatch.delenv("IPVALUE_AUDIT_KEY_FILE", raising=False)
    monkeypatch.setenv("IPVALUE_TOKEN", add_user("cli-officer", "officer", tmp_path / "a.db"))


def test_an_application_without_revenue_is_an_input_error(tmp_path, tiny_frame, capsys, officer_token):
    app = {"application_id": "A-1", "borrower": "x", "requested_amount_rmb": 1e6, "term_years": 2, "valuation_date": "2026-06-30",
           "patents": {"records": tiny_frame.head(1).to_dict("records")}}
    (tmp_path / "app.yaml").write_text(__import__("yaml").safe_dump(app), encoding="utf-8")
    assert main(["value", str(tmp_path / "app.yaml"), "--out", str(tmp_path / "r"), "--audit-db", str(tmp_path / "a.db")]) == EXIT_INPUT
    assert "The 'revenue_forecast' of application A-1 is missing" in capsys.readouterr().err


def test_a_broken_experiment_file_is_a_configuration_error(tmp_path, capsys):
    (tmp_path / "e.yaml").write_text("name: e\nmodel: {kind: renewal}\n", encoding="utf-8")
    assert main(["train", str(tmp_path / "e.yaml")]) == EXIT_CONFIG
    assert "configuration error: Experiment" in capsys.readouterr().err


def test_a_bug_is_an_internal_error_with_the_traceback_logged(monkeypatch, capsys, caplog):
    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli.contract, "run", broken)
    assert main(["contract"]) == EXIT_INTERNAL
    assert "internal error (a bug in ipvalue): RuntimeError: a bug" in capsys.readouterr().err
    assert "Traceback" in caplog.text


def test_contract_lists_columns(capsys):
    assert main(["contract"]) == EXIT_OK
    assert "claims_independent" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_trains_registers_and_values_every_synthetic_patent(tmp_path, capsys, data_dir, monkeypatch):
    from ipvalue import workflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stores, real = [], workflow.value_and_record
    monkeypatch.setattr(workflow, "value_and_record", lambda app, **kw: stores.append(kw["store"]) or real(app, **kw))
    assert main(["demo", "--n", "60", "--out", str(tmp_path / "out"), "--tracking-uri", uri]) == EXIT_OK
    assert stores and set(map(str, stores)) == {str(tmp_path / "out" / "audit.db")}  # the demo's application goes through the one workflow
    out = capsys.readouterr().out
    assert "SYNTHETIC demo pledge book: 60 patents" in out and "the pledge book at" in out
    assert "experiment value-demo" in out and "experiment renewal-us-university" in out
    values = pd.read_parquet(tmp_path / "out" / "valuations.parquet")
    assert len(values) == 60 and values["patent_id"].str.startswith("SYN-").all()
    assert values["assumption_set_hash"].nunique() == 1
    granted = values["remaining_life_years"] > 0
    assert (values.loc[granted, "fee_survival_source"] == "renewal_model").mean() > 0.9  # fee lapse from the renewal champion
    assert set(values.loc[granted, "economic_life_source"]) <= {"obsolescence_curve", "legal_life"}  # excess returns: the obsolescence curve
    in_force = values["register_status"] == "in_force"
    assert (values.loc[in_force & (values["market_value_rmb"] > 0), "basis_method"] == "income").all()  # synthetic value model: information only
    assert (values.loc[~in_force, "market_value_rmb"] == 0).all()
    assert (values["value_model"] == "models:/ipvalue-value@champion").all() and values["method_ml_rmb"].notna().all()
    # the value chain with its value types, as an officer reads it
    assert "value chain: value in use" in out and "(在用价值) → market value" in out and "(市场价值) → collateral value P50" in out and "(抵质押价值)" in out
    assert "loan cap" in out
    # the demo's application is signed off through the same path as the CLI and the service: a second person, a reviewer
    versions = read_audit_table("valuations", tmp_path / "out" / "audit.db")
    if "review required" in versions["decision"].tolist():
        assert versions["act"].tolist() == ["valuation", "sign-off"] and versions["user"].tolist() == ["syn-demo-officer", "syn-demo-reviewer"]
        assert versions["decision"].iloc[-1] == "eligible" and "after the SYNTHETIC reviewer syn-demo-reviewer's sign-off" in out
    # it ends with a calibration on a generated pilot ledger: the coefficients beside the truth, the back-test before / after, its report
    assert "校准 calibration: SYNTHETIC pilot ledger of 800 loans with known true parameters" in out
    assert re.search(r"强制处置折价率 forced-sale discount: truth 0\.7 \| 0\.6 → 0\.6\d+ \[", out)
    assert re.search(r"P10 beaten by realised net recoveries: before [\d.]+% → after [\d.]+%", out)
    assert (tmp_path / "out" / "calibration" / "backtest" / "report.html").is_file() and "回测报告 back-test report:" in out


def test_an_unwritable_output_folder_is_an_input_error_not_a_crash(tmp_path, tiny_frame, capsys, monkeypatch):
    import errno

    from ipvalue.io import tables

    tiny_frame.to_csv(tmp_path / "in.csv", index=False)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "v.parquet"))

    monkeypatch.setattr(tables.tempfile, "mkstemp", full_disk)
    assert main(["validate", str(tmp_path / "in.csv"), "--valid-out", str(tmp_path / "v.parquet")]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Fix: check that the folder exists" in err


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe garbage", b"a,b\n1,2,3\n\"unclosed", "申请号,申请日\nCN1,2020-01-01\n".encode("gbk"),
                                     b"patent_id,jurisdiction,patent_type,filing_date\n=HYPERLINK(1),CN,invention,2020-01-01\n"])
def test_broken_files_never_crash_validate(content, tmp_path, capsys):
    path = tmp_path / "book.csv"
    path.write_bytes(content)
    assert main(["validate", str(path)]) in (EXIT_OK, EXIT_PARTIAL, EXIT_INPUT)
    assert "internal error" not in capsys.readouterr().err


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(max_size=300).map(lambda t: t.encode("utf-8")))
def test_random_bytes_as_a_book_or_an_application_never_exit_70(tmp_path, officer_token, content):
    (tmp_path / "book.csv").write_bytes(content)
    (tmp_path / "app.yaml").write_bytes(content)
    assert main(["validate", str(tmp_path / "book.csv")]) != EXIT_INTERNAL
    assert main(["value", str(tmp_path / "app.yaml"), "--out", str(tmp_path / "r"), "--audit-db", str(tmp_path / "a.db")]) != EXIT_INTERNAL


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5), max_leaves=20))
def test_random_yaml_applications_never_exit_70(tmp_path, officer_token, tree):
    import yaml

    raw = {"application_id": "A-1", "borrower": "x", "requested_amount_rmb": 1e6, "term_years": 2, "valuation_date": "2026-06-30",
           "patents": tree, "revenue_forecast": tree, "overrides": tree}
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert main(["value", str(tmp_path / "app.yaml"), "--out", str(tmp_path / "r"), "--audit-db", str(tmp_path / "a.db")]) != EXIT_INTERNAL


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: ("patent_id,jurisdiction,patent_type,filing_date\n" + t).encode("utf-8")))
def test_random_books_never_make_score_exit_70(value_registry, tmp_path, content):
    (tmp_path / "book.csv").write_bytes(content)
    code = main(["score", str(tmp_path / "book.csv"), "--model", "models:/ipvalue-value@champion", "--out", str(tmp_path / "o.parquet"),
                 "--tracking-uri", value_registry[1], "--explain", "none"])
    assert code != EXIT_INTERNAL


@pytest.mark.parametrize("extra, message", [
    (["--out", "scored.json"], "error: The output file 'scored.json' must end in .parquet, .csv or .xlsx. Got '.json'. Fix: name it scored.parquet"),
    (["--out", "scored.csv", "--quarantine-out", "q.xlsb"], "error: The output file 'q.xlsb' must end in .parquet, .csv or .xlsx. Got '.xlsb'."),
    (["--out", "scored.xlsx", "--engine", "spark"], "error: The Spark engine writes --out as a Parquet folder"),
])
def test_an_output_type_score_cannot_write_is_a_usage_error(extra, message, tiny_frame, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_frame.to_csv("book.csv", index=False)
    assert main(["score", "book.csv", "--model", "models:/m@champion", *extra]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.csv"]  # refused before any work


# --- start-up: the parser and `import ipvalue` without the heavy libraries --------------------------

HEAVY = ("pandas", "numpy", "pyarrow", "scipy", "sklearn", "lightgbm", "shap", "mlflow", "matplotlib", "fastapi", "uvicorn", "weasyprint",
         "jinja2", "yaml", "sqlalchemy", "ipvalue.exceptions", "ipvalue.io")


def _fresh_imports(code: str) -> tuple[list[str], str]:
    """The heavy modules a fresh interpreter has imported after running ``code``, and its output."""
    import json
    import subprocess
    import sys

    probe = code + f"\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1]), out


def test_help_version_and_every_command_help_import_no_heavy_library():
    # `ipvalue --help` waited 4-8 s for pandas, scikit-learn and MLflow (issue 23, 25): each command imports them in its run
    code = """
from ipvalue.cli import main
for argv in (["--help"], ["--version"], *([c, "--help"] for c in ("contract", "validate", "train", "value", "score", "pool", "govern",
                                                                 "demo", "serve", "users", "audit", "calibrate"))):
    try:
        main(argv)
    except SystemExit as stop:
        assert stop.code == 0, (argv, stop.code)
"""
    loaded, out = _fresh_imports(code)
    assert loaded == []
    assert "usage: ipvalue [-h]" in out and "usage: ipvalue score" in out and __import__("ipvalue").__version__ in out.splitlines()


def test_import_ipvalue_is_light_and_reads_the_version_on_first_use():
    loaded, out = _fresh_imports("import ipvalue\nprint(ipvalue.__version__)")
    assert loaded == [] and out.splitlines()[0] == __import__("ipvalue").__version__


#: A command standing in for main(): a library it imports registers an exit handler, a module-level
#: object would print when the interpreter tears its modules down, and more output than a pipe holds
#: is still buffered when it returns.
_CONSOLE_SCRIPT = """
import atexit, sys
import ipvalue.cli as cli
class TornDown:
    def __del__(self):
        print("torn down", flush=True)
def command(argv=None):
    atexit.register(lambda: print("library exit handler"))
    sys.modules["__main__"].kept = TornDown()
    print("#" * 100_000)
    return 3
cli.main = command
cli.run() if sys.argv[1] == "console script" else sys.exit(command())
"""


@pytest.mark.parametrize("way", ["console script", "python's exit"])
def test_the_console_script_skips_the_interpreters_teardown_but_not_the_exit_handlers(way):
    # tearing down pandas, scikit-learn, SciPy, LightGBM and matplotlib took 0.4 s of `ipvalue value`
    done = subprocess.run([sys.executable, "-c", _CONSOLE_SCRIPT, way], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and done.stderr == ""
    assert done.stdout.count("#") == 100_000 and "library exit handler" in done.stdout  # everything flushed, every handler run
    assert ("torn down" in done.stdout) == (way == "python's exit")  # the teardown the console script skips


def test_the_console_script_is_run():
    scripts = tomllib.loads((Path(cli.__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["ipvalue"] == "ipvalue.cli:run"


def test_a_user_role_outside_the_list_is_a_usage_error_naming_the_roles(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["users", "add", "rita", "--role", "boss"])
    assert stop.value.code == EXIT_USAGE
    assert "argument --role: invalid choice: 'boss' (choose from 'officer', 'reviewer', 'validator', 'admin')" in capsys.readouterr().err


def test_score_options_are_checked_by_the_library_rules(capsys):
    for option, value, message in (("--explain", "top0", "The 'explain' option must be 'all', 'none' or 'top<N>'"),
                                   ("--explain-sample", "2", "The 'explain_sample' must be a fraction in (0, 1]")):
        with pytest.raises(SystemExit) as stop:
            main(["score", "book.csv", "--model", "models:/m@champion", "--out", "o.parquet", option, value])
        assert stop.value.code == EXIT_USAGE and message in capsys.readouterr().err
