"""Governance: PSI / CSI by hand, drift verdicts, promotion through gates, model card, validation
report reproducibility, override log."""

import math

import numpy as np
import pandas as pd
import pytest

from ipvalue.governance import PromotionError, drift_report, load_reference, model_card, override_summary, promote, psi, validation_report, verdict
from ipvalue.tracking import use_tracking

pytestmark = pytest.mark.filterwarnings("ignore")


def test_psi_of_categories_by_hand():
    value, table = psi(pd.Series(["a"] * 50 + ["b"] * 50), pd.Series(["a"] * 80 + ["b"] * 20))
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert value == pytest.approx(expected, rel=1e-12) and value == pytest.approx(0.4159, abs=1e-4)
    assert set(table["bin"]) == {"a", "b"}


def test_psi_of_numbers_by_hand_with_an_empty_bin():
    reference = pd.Series(np.arange(100, dtype=float))  # quartile edges 24.75, 49.5, 74.25
    current = pd.Series(np.r_[np.arange(50), np.arange(50)].astype(float))  # all in the lower half
    value, table = psi(reference, current, bins=4)
    expected = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + 2 * (1e-4 - 0.25) * math.log(1e-4 / 0.25)
    assert value == pytest.approx(expected, rel=1e-9)
    assert len(table) == 4


def test_missing_values_are_a_bin_and_identical_batches_are_stable():
    s = pd.Series([1.0, 2.0, np.nan, 4.0] * 25)
    assert psi(s, s)[0] == pytest.approx(0.0)
    assert "missing" in set(psi(s, s)[1]["bin"])
    assert [verdict(v) for v in (0.05, 0.1, 0.2, 0.3)] == ["stable", "watch", "watch", "act"]


def test_a_drifted_synthetic_batch_is_flagged(registry):
    from ipvalue.synthetic import make_demo_portfolio

    _, uri, results = registry
    use_tracking(uri)
    model = results["value"].model
    reference = load_reference(results["value"].run_id)
    same = make_demo_portfolio(1500, seed=99).patents
    same = same[same["legal_status"] == "in_force"]  # the training population: in-force patents with appraisals
    drifted = same.assign(revenue_base_rmb=same["revenue_base_rmb"] * 8, claims_total=same["claims_total"] + 15)
    calm = drift_report(reference, model.output_frame(same, explain="none"))
    hot = drift_report(reference, model.output_frame(drifted, explain="none"))
    assert calm["value"].max() < 0.25 and set(calm["kind"]) == {"PSI", "CSI"}
    top = hot.set_index("column")
    assert top.loc["feature_log_revenue_rmb", "verdict"] == "act" and top.loc["feature_claims_total", "verdict"] == "act"
    assert top.loc["value_p50_rmb", "verdict"] == "act" and top.loc["value_p50_rmb", "kind"] == "PSI"


def test_promotion_needs_gates_a_validator_and_a_reason(registry, tmp_path):
    import mlflow
    import yaml
    from mlflow import MlflowClient

    from ipvalue.training import run_experiment

    _, uri, results = registry
    use_tracking(uri)
    spec = yaml.safe_load(open("experiments/value-demo.yaml", encoding="utf-8"))
    spec.update(name="gov-fail", registered_model="gov-model")
    spec["data"]["n"], spec["split"]["k"] = 500, 2
    spec["gates"] = {"spearman_min": 0.999, "coverage_min": 0.0, "must_beat": []}
    (tmp_path / "fail.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    failing = run_experiment(tmp_path / "fail.yaml", tracking_uri=uri)
    assert not failing.gates_passed
    version = mlflow.register_model(failing.model_uri, "gov-model").version  # registered by hand, around the gates
    with pytest.raises(PromotionError, match=r"did not pass its validation gates \(gates_passed=False\)"):
        promote(f"models:/gov-model/{version}", validator="王验证", reason="looks fine")
    with pytest.raises(PromotionError, match="needs the validator's name"):
        promote("models:/ipvalue-renewal/1", validator=" ", reason="ok")
    with pytest.raises(PromotionError, match="needs a reason"):
        promote("models:/ipvalue-renewal/1", validator="王验证", reason="")
    moved = promote("models:/ipvalue-renewal/1", validator="王验证", reason="OOT AUC above every baseline")
    assert moved["version"] == "1" and moved["alias"] == "champion"
    tags = MlflowClient().get_model_version("ipvalue-renewal", "1").tags
    assert tags["validated_by"] == "王验证" and tags["validation_reason"] == "OOT AUC above every baseline"
    card = model_card("models:/ipvalue-renewal@champion").to_markdown()
    assert "validated by: 王验证" in card and "| champion | 1 | 1 | 王验证 | OOT AUC above every baseline |" in card


def test_the_card_lists_every_feature_of_the_spec(registry):
    _, uri, results = registry
    use_tracking(uri)
    card = model_card("models:/ipvalue-value@champion")
    features = card.sections["Features"][1]
    spec = results["value"].model.features_.spec_
    assert features["feature"].tolist() == spec.names
    assert set(features["monotone"]) <= {"+ (value rises)", "- (value falls)", "none"}
    html = card.to_html()
    for title in ("Intended use", "Out-of-scope uses", "Data", "Features", "Performance", "Limitations", "Version history"):
        assert f"<h2>{title}</h2>" in html


@pytest.mark.slow
def test_the_validation_report_reproduces_its_numbers(registry, data_dir):
    _, uri, _ = registry
    use_tracking(uri)
    first = validation_report("models:/ipvalue-renewal/1", data_dir=data_dir)
    second = validation_report("models:/ipvalue-renewal/1", data_dir=data_dir)
    assert first.to_markdown() == second.to_markdown()
    headline = first.sections["Out-of-time performance"][1].set_index("metric")
    assert headline.loc["AUC", "ci_low"] < headline.loc["AUC", "value"] < headline.loc["AUC", "ci_high"]
    assert first.sections["Monotonicity against the spec"][1]["violations"].sum() == 0
    segments = first.sections["Performance by segment"][1]
    assert {"grant year", "technology (IPC section)", "patent type", "applicant type"} == set(segments["segment"])
    stages = first.sections["Per fee stage, out of time and point in time"][1].set_index("fee stage")
    assert list(stages.index) == [1, 2] and (stages["point in time auc"] > 0.55).all()  # the experiment's evaluation.point_in_time
    assert stages.loc[2, "out of time auc"] == pytest.approx(headline.loc["AUC", "value"], abs=1e-9)  # the run's figure = the rebuilt one
    assert headline.loc[headline.index.str.startswith("ECE of a perfectly"), "value"].iloc[0] < headline.loc["ECE", "value"]
    assert all("_fee" not in m for m in first.sections["Challengers and baselines"][1]["model"])


def test_override_summary_counts_direction_and_size(tmp_path):
    from ipvalue.audit import connect

    db = tmp_path / "audit.db"
    with connect(db) as con:
        for i in range(4):
            con.execute("INSERT INTO valuations VALUES (?, 'A', '2026-01-01', 'u', 'h', 'eligible', 1, 1, '{}', '{}')", (f"v{i}",))
        con.executemany("INSERT INTO overrides VALUES (?, 'P', ?, ?, ?, 'reason', ?, '2026-01-01')", [
            ("v0", "sharing_rate", 0.02, 0.01, "张"), ("v1", "sharing_rate", 0.02, 0.03, "李"), ("v1", "internal_value_rmb", 100.0, 80.0, "张"),
        ])
    t = override_summary(db).set_index("field")
    assert t.loc["sharing_rate", "overrides"] == 2 and t.loc["sharing_rate", "up"] == 1 and t.loc["sharing_rate", "down"] == 1
    assert t.loc["sharing_rate", "share_of_valuations"] == 0.5 and t.loc["sharing_rate", "officers"] == 2
    assert t.loc["internal_value_rmb", "mean_relative_change"] == pytest.approx(-0.2)


def test_the_markdown_card_escapes_html_from_a_validators_reason():
    from ipvalue.governance import ModelCard

    card = ModelCard("Model card").add("Version history", "reason: <script>alert(1)</script>", pd.DataFrame({"reason": ["<img src=x onerror=alert(1)>"]}))
    md = card.to_markdown()
    assert "<script>" not in md and "&lt;script&gt;" in md and "<img" not in md
