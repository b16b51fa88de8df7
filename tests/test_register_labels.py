"""Renewal labels read from a CNIPA legal-status export, and ``ipvalue train`` on such an export
(the shipped synthetic fixture, experiments/data/cnipa-synthetic)."""

import numpy as np
import pandas as pd
import pytest

from ipvalue.exceptions import InputFileError
from ipvalue.io.register import parse_register
from ipvalue.models.renewal import FeeSchedule
from ipvalue.synthetic import make_register_history
from ipvalue.training.register_labels import fees_paid_from_register, termination_dates

pytestmark = pytest.mark.filterwarnings("ignore")
CN = FeeSchedule.load("cn-annual")
FIXTURE = "experiments/data/cnipa-synthetic"


def _patents(n):
    return pd.DataFrame({
        "patent_id": [f"P{i}" for i in range(n)],
        "application_number": [f"20101000000{i}.{i}" for i in range(n)],
        "filing_date": pd.to_datetime(["2010-03-01"] * n),
        "grant_date": pd.to_datetime(["2013-06-01"] * n),
    })


def _register(rows):
    return parse_register(pd.DataFrame(rows, columns=["申请号", "法律状态公告日", "事件代码", "法律状态信息"]).astype(str))


def test_fees_paid_by_hand():
    # filed 2010-03-01, granted 2013-06-01: the fees due at anniversaries 1-3 were paid with the
    # grant (counted as paid, never at risk); 4 (2014) and 5 (2015) paid; 6 (2016-03-01) unpaid.
    patents = _patents(8)
    register = _register([
        ["CN201010000000.0", "2017.01.10", "CF01", "未缴年费专利权终止 申请日：2010.03.01；终止日期：2016.03.01"],
        ["201010000001.1", "2016-12-20", "CF01", "未缴年费专利权终止"],  # no 终止日期: the last fee whose late period ended before
        ["201010000002.2", "2017-01-10", "CF01", "终止日期：2016年3月1日"],
        ["201010000002.2", "2017-03-01", "RR01", "恢复"],               # restored: in force
        ["201010000004.4", "2026-01-10", "CF01", "终止日期：2025.03.01"],  # after the export date: not seen
        ["201010000005.5", "2015-05-05", "PE01", "登记号：Y2015000001"],
        ["201010000006.6", "2018-05-05", "IW01", "无效宣告"],            # may have ended otherwise: left out
        ["201010000007.7", "2018-05-05", "ZZ99", "专利权全部无效"],       # an unknown code saying so: left out
        ["201010000007.7", "2016-06-01", "CF01", "终止日期：2016.02.20"],  # 10 days from the anniversary: still that fee
    ])
    labels = fees_paid_from_register(patents, register, CN, exported_on="2025-12-31")
    assert labels["fees_paid"].fillna(-1).tolist() == [5, 5, 19, 19, 19, 19, -1, -1]
    assert labels["label_basis"].tolist() == ["termination date stated", "termination date from the announcement", "restored",
                                              "no events in the export", "no events in the export", "no termination",
                                              "other ending: left out", "other ending: left out"]
    assert labels["pledge_count"].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    nearly = _register([["201010000000.0", "2016.06.01", "CF01", "终止日期：2016.02.20"]])
    assert fees_paid_from_register(_patents(1), nearly, CN, exported_on="2025-12-31")["fees_paid"].tolist() == [5]


def test_a_termination_outside_the_granted_term_names_the_export_row():
    register = _register([["201010000000.0", "2013.01.10", "CF01", "终止日期：2012.03.01"]])  # before the 2013 grant
    with pytest.raises(InputFileError, match=r"row 1 \(申请号 2010100000000\).*2012-03-01.*grant 2013-06-01"):
        fees_paid_from_register(_patents(1), register, CN, exported_on="2025-12-31")
    late = _register([["201010000000.0", "2023.01.10", "CF01", "终止日期：2022.03.01"]])  # a utility model's 10-year term ended 2020-03-01
    with pytest.raises(InputFileError, match="2022-03-01 for unpaid fees, outside its granted term"):
        fees_paid_from_register(_patents(1), late, CN, exported_on="2025-12-31", expiry=pd.Series(pd.to_datetime(["2020-03-01"])))
    off = _register([["201010000000.0", "2016.09.10", "CF01", "终止日期：2016.05.01"]])  # two months from every anniversary
    with pytest.raises(InputFileError, match=r"row 1 .*2016-05-01 is more than 45 days from every filing anniversary"):
        fees_paid_from_register(_patents(1), off, CN, exported_on="2025-12-31")


def test_register_labels_need_annual_fees_and_application_numbers():
    with pytest.raises(InputFileError, match="cn-annual"):
        fees_paid_from_register(_patents(1), _register([]), FeeSchedule.load("us-maintenance"), exported_on="2025-12-31")
    with pytest.raises(InputFileError, match="patent P0, column 'application_number': empty"):
        fees_paid_from_register(_patents(1).assign(application_number=[" "]), _register([]), CN, exported_on="2025-12-31")


def test_an_unreadable_termination_date_or_a_repeated_application_is_refused():
    register = _register([["201010000000.0", "2017.01.10", "CF01", "终止日期：2016.13.45"]])
    with pytest.raises(InputFileError, match=r"row 1 .*'info'.*2016\.13\.45.*YYYY\.MM\.DD"):
        fees_paid_from_register(_patents(1), register, CN, exported_on="2025-12-31")
    twice = _patents(2).assign(application_number=["CN201010000000.0", "2010100000000"])
    with pytest.raises(InputFileError, match=r"patents \['P0', 'P1'\].*appears 2 times"):
        fees_paid_from_register(twice, _register([]), CN, exported_on="2025-12-31")


def test_termination_dates_are_read_in_every_written_form():
    got = termination_dates(pd.Series(["终止日期：2016.03.01", "终止日: 2016-3-1", "终止日期：2016年03月01日", "no date", None]))
    assert got[:3].tolist() == [pd.Timestamp("2016-03-01")] * 3 and got[3:].isna().all()


def test_labels_read_back_the_simulated_truth():
    history = make_register_history(400, seed=3)
    register = parse_register(history.events.astype(str))
    labels = fees_paid_from_register(history.patents, register, CN, exported_on="2025-12-31")
    truth = history.lapse_anniversary.fillna(CN.n_stages + 1) - 1
    assert (labels["fees_paid"] == truth).all()
    assert set(labels["label_basis"]) == {"no events in the export", "no termination", "restored", "termination date stated",
                                          "termination date from the announcement"}


def test_the_shipped_fixture_is_what_the_generator_makes():
    history = make_register_history(1500, seed=0)
    patents = pd.read_csv(f"{FIXTURE}/patents.csv", dtype=str)
    events = pd.read_csv(f"{FIXTURE}/register.csv", dtype=str, encoding="gb18030")
    pd.testing.assert_frame_equal(events, history.events.astype(str))
    assert patents["application_number"].tolist() == history.patents["application_number"].tolist()
    assert patents["grant_date"].fillna("").tolist() == history.patents["grant_date"].dt.strftime("%Y-%m-%d").fillna("").tolist()


@pytest.mark.slow
def test_train_on_a_register_export_registers_a_cn_annual_fee_model(tmp_path, monkeypatch):
    import mlflow

    from ipvalue.training import run_experiment
    from ipvalue.tracking import use_tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_experiment("experiments/renewal-cnipa-synthetic.yaml", tracking_uri=uri)
    assert result.gates_passed and result.registration["registered"]
    use_tracking(uri)
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["data_origin"].startswith("synthetic")
    metrics = run.data.metrics
    assert metrics["labels_termination_date_stated"] > 0 and metrics["labels_termination_date_from_the_announcement"] > 0
    assert metrics["oot_auc"] > metrics["baseline_claims_only_auc"]

    model = result.model
    assert model.trained_on_cn_fees and model.schedule_.n_stages == 19
    history = make_register_history(300, seed=11)
    patents = history.patents[history.patents["grant_date"].notna()]
    assert not model.uses_life_table(patents).any()  # its own level, not the life table's
    s = model.predict_survival(patents)
    before_grant = model.schedule_.paid_with_grant(patents)
    assert np.allclose(s.to_numpy()[before_grant], 1.0)  # fees paid with the grant never lapse
    survival = model.yearly_survival(patents, "2026-06-30", 20)
    assert (survival.diff(axis=1).iloc[:, 1:] <= 1e-12).all().all()
    utility = (patents["patent_type"] == "utility_model").to_numpy()
    left = (patents["filing_date"] + pd.DateOffset(years=10) - pd.Timestamp("2026-06-30")).dt.days / 365.25
    assert (survival.to_numpy()[utility][:, 10:] == 0).all() and (left[utility] < 10).all()

    outputs = model.valuation_outputs(patents, "2026-06-30", years=20)  # what a valuation takes from it
    # the fee due at filing anniversary 5 buys patent year 6: CN wording
    assert outputs.reason_stage == 5 and model.stage_label() == {"stage": 5, "zh": "第6年年费缴纳概率", "en": "P(6th-year annual fee paid)"}
    # a CN patent's headline is its next annual fee at risk; its probability points add up to it
    head = outputs.headline
    assert np.allclose(outputs.headline_contributions.sum(axis=1), head["probability"], atol=1e-9)
    assert np.allclose(outputs.contributions.sum(axis=1), outputs.p_fee["p_fee_5"], atol=1e-6)  # the model's own stage, as before
    at_risk = head["patent_year"].notna()
    assert at_risk.any() and head.loc[at_risk, "label_zh"].str.fullmatch(r"第\d+年年费缴纳概率").all()
    assert (head.loc[at_risk, "patent_year"] == head.loc[at_risk, "stage"] + 1).all()
    # the run carries the life table the export gives, which a bank can install in place of the defaults
    path = mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="cn-life-table.estimated.yaml", dst_path=str(tmp_path))
    (tmp_path / "bank" / "assumptions").mkdir(parents=True)
    (tmp_path / "bank" / "assumptions" / "cn-life-table.yaml").write_bytes(open(path, "rb").read())
    monkeypatch.setenv("IPVALUE_CONFIG_DIR", str(tmp_path / "bank"))
    from ipvalue.models.renewal import CNLifeTable

    table = CNLifeTable.load()
    counts = model.stage_counts_.xs("utility_model", level="patent_type")
    assert table.hazards["utility_model"][4] == pytest.approx(counts.loc[5.0, "lapses"] / counts.loc[5.0, "rows"], abs=1e-4)  # age 5 = stage 5
    assert all(0.02 < h.mean() < 0.4 for h in table.hazards.values()) and "estimated" in open(path, encoding="utf-8").read()


@pytest.mark.parametrize("change, message", [
    ({"exported_on": None}, r"needs \[.data.exported_on.\]"),
    ({"observed_until": "2026-06-30"}, "observed_until on or before exported_on"),
    ({"register": "data/cnipa-synthetic/missing.csv"}, "'data.register'.*is not a file"),
    ({"exported_on": "2025-13-01"}, "must be dates"),
    ({"label": None}, r"needs \['data.label'\]"),
])
def test_a_register_experiment_without_its_files_or_dates_is_refused(tmp_path, change, message):
    import shutil

    import yaml

    from ipvalue.exceptions import SpecError
    from ipvalue.training import load_data, load_experiment

    spec = yaml.safe_load(open("experiments/renewal-cnipa-synthetic.yaml", encoding="utf-8"))
    spec["data"].update({k: v for k, v in change.items() if v is not None})
    spec["data"] = {k: v for k, v in spec["data"].items() if change.get(k, 0) is not None}
    shutil.copytree(FIXTURE, tmp_path / "data" / "cnipa-synthetic")
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SpecError, match=message):
        load_data(load_experiment(tmp_path / "x.yaml"), None)
