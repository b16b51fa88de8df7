"""The command line: subcommands, outputs and exit codes."""

import pandas as pd

from ipvalue.cli import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main


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


def test_contract_lists_columns(capsys):
    assert main(["contract"]) == EXIT_OK
    assert "claims_independent" in capsys.readouterr().out


def test_demo_trains_registers_and_values_every_synthetic_patent(tmp_path, capsys, data_dir):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["demo", "--n", "60", "--out", str(tmp_path / "out"), "--tracking-uri", uri]) == EXIT_OK
    out = capsys.readouterr().out
    assert "SYNTHETIC demo pledge book: 60 patents" in out and "income approach" in out
    assert "experiment value-demo" in out and "experiment renewal-us-university" in out
    values = pd.read_parquet(tmp_path / "out" / "valuations.parquet")
    assert len(values) == 60 and values["patent_id"].str.startswith("SYN-").all()
    assert (values["p5_rmb"] <= values["p95_rmb"]).all()
    assert values["assumption_set_hash"].nunique() == 1
    granted = values["remaining_life_years"] > 0
    assert (values.loc[granted, "economic_life_source"] == "input").mean() > 0.9  # from the renewal champion
    assert (values["ml_value_model"] == "models:/ipvalue-value@champion").all()
    assert (values["ml_value_p10_rmb"] <= values["ml_value_p90_rmb"]).all()
