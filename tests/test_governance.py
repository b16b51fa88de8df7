"""Governance: PSI / CSI by hand, drift verdicts, promotion through gates, model card, validation
report reproducibility, override log."""

import math
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from ipvalue.governance import PromotionError, drift_report, load_reference, model_card, override_summary, promote, psi, validation_report, verdict
from ipvalue.tracking import use_tracking
from tests.conftest import PDF_ENGINES, pdf_font_problems, printing_with, require_or_skip

pytestmark = pytest.mark.filterwarnings("ignore")


def _without_images(html: str) -> str:
    """The page without its embedded PNGs (whose base64 may spell anything, "NaN" included)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)


def _pdf_text(path) -> str:
    if not shutil.which("pdftotext"):
        require_or_skip("PDF text check skipped: install poppler-utils", "IPVALUE_REQUIRE_CHROMIUM")
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


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
    with pytest.raises(PromotionError, match=r"must be one of \['champion', 'challenger'\]. Got '../../x'"):  # F11: refused before any tag
        promote("models:/ipvalue-renewal/1", validator="王验证", reason="ok", alias="../../x")
    assert "validated_by" not in MlflowClient().get_model_version("ipvalue-renewal", "1").tags
    moved = promote("models:/ipvalue-renewal/1", validator="王验证", reason="OOT AUC above every baseline")
    assert moved["version"] == "1" and moved["alias"] == "champion"
    tags = MlflowClient().get_model_version("ipvalue-renewal", "1").tags
    assert tags["validated_by"] == "王验证" and tags["validation_reason"] == "OOT AUC above every baseline"
    card = model_card("models:/ipvalue-renewal@champion").to_markdown()
    assert "validated by: 王验证" in card and "| champion | 1 | 1 | 王验证 | OOT AUC above every baseline |" in card


def test_the_command_signs_a_promotion_with_the_validators_token_not_a_typed_name(registry, tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from ipvalue.audit import add_user
    from ipvalue.cli import main

    _, uri, _ = registry
    db = tmp_path / "audit.db"
    tokens = {name: add_user(name, role, db) for name, role in (("li.officer", "officer"), ("zhou.validator", "validator"))}
    args = ["govern", "promote", "--model", "models:/ipvalue-renewal/1", "--reason", "验证报告结论：通过", "--audit-db", str(db), "--tracking-uri", uri]
    with pytest.raises(SystemExit) as usage:  # a name typed on the command line is no signature
        main([*args, "--validator", "someone"])
    assert usage.value.code == 2 and "unrecognized arguments: --validator" in capsys.readouterr().err
    monkeypatch.delenv("IPVALUE_TOKEN", raising=False)
    monkeypatch.setenv("IPVALUE_TOKEN_FILE", str(tmp_path / "no-token"))
    assert main(args) == 3 and "token" in capsys.readouterr().err
    monkeypatch.setenv("IPVALUE_TOKEN", tokens["li.officer"])
    assert main(args) == 3 and "this act needs role validator" in capsys.readouterr().err
    monkeypatch.setenv("IPVALUE_TOKEN", tokens["zhou.validator"])
    assert main(args) == 0 and "is now @champion" in capsys.readouterr().out
    assert MlflowClient().get_model_version("ipvalue-renewal", "1").tags["validated_by"] == "zhou.validator"


def test_the_card_lists_every_feature_of_the_spec(registry):
    _, uri, results = registry
    use_tracking(uri)
    card = model_card("models:/ipvalue-value@champion")
    features = card.sections["Features"][1]
    spec = results["value"].model.features_.spec_
    assert features["feature"].tolist() == spec.names
    assert set(features["monotone"]) <= {"+ (value rises)", "- (value falls)", "none"}
    html = card.to_html()
    for zh, en in (("预期用途", "Intended use"), ("不适用的用途", "Out-of-scope uses"), ("数据", "Data"), ("特征", "Features"),
                   ("模型表现", "Performance"), ("局限性", "Limitations"), ("版本历史", "Version history")):
        assert f"<h2>{zh} <span class='en'>{en}</span></h2>" in html
    # charts with Chinese captions as their alt text; metric keys by readable names; no NaN anywhere
    for chart, alt in (("importance", "特征重要性（SHAP）"), ("accuracy", "分十分位的准确度"), ("output-distribution", "估值 P50（元）的分布")):
        assert re.search(f"<figure id='chart-{chart}'><img src='data:image/png;base64,[^']+' alt='{re.escape(alt)}", html), chart
    assert "<td>交叉验证 Spearman 秩相关 (cross-validated: Spearman rank correlation)</td>" in html and ">cv_spearman<" not in html
    assert "NaN" not in _without_images(html) and "nan<" not in html.lower()
    assert "<td>—</td>" in html and "“—”：不适用或无数据" in html  # the version history's first move has no previous version


@pytest.mark.slow
def test_the_validation_report_reproduces_its_numbers(registry, data_dir, tmp_path):
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
    # the validator's pictures: ROC, reliability diagram, PSI / CSI bars, score distributions, in HTML and PDF
    html = first.to_html()
    for chart, alt in (("roc", "ROC 曲线（样本外）"), ("calibration", "校准曲线（可靠性图）"), ("score-distribution", "的分布：训练期专利与样本外专利对比"),
                       ("stability", "稳定性指标：训练期与样本外")):
        assert re.search(f"<figure id='chart-{chart}'><img src='data:image/png;base64,[^']+' alt='[^']*{re.escape(alt)}", html), chart
    assert "<h2>校准 <span class='en'>Calibration</span></h2>" in html and "NaN" not in _without_images(html)
    assert "期望校准误差 ECE" in html and "“—”：不适用或无数据" in html  # observed rate has no interval: a dash and the note
    csi = first.sections["Stability of the features (CSI)"][1]
    assert set(csi["kind"]) == {"PSI", "CSI"} and len(csi) > 10
    for engine in PDF_ENGINES:  # the same page printed by each engine
        with printing_with(engine):
            written = first.write(tmp_path / engine, "validation_report", pdf=True)
        assert {p.name for p in written} >= {"validation_report.html", "validation_report.pdf", "validation_report.md", "roc.png", "calibration.png"}
        assert pdf_font_problems(tmp_path / engine / "validation_report.pdf") == [], engine
        text = _pdf_text(tmp_path / engine / "validation_report.pdf")
        assert "NaN" not in text and "nan" not in text.split()
        for words in ("验证报告", "样本外（时间外）表现", "ROC曲线（样本外）", "校准曲线（可靠性图）", "特征稳定性（CSI）"):
            assert words in text.replace(" ", ""), (engine, words)


def test_override_summary_counts_direction_and_size(tmp_path):
    from ipvalue.audit import connect

    db = tmp_path / "audit.db"
    with connect(db) as con:
        for i in range(4):
            con.execute("INSERT INTO valuations (valuation_id, application_id, valued_at, \"user\", input_hash, decision, internal_value_rmb, loan_cap_rmb, "
                        "provenance_json, result_json, branch, act) VALUES (?, 'A', '2026-01-01', 'u', 'h', 'eligible', 1, 1, '{}', '{}', 'b', 'valuation')", (f"v{i}",))
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


def test_drift_writes_an_html_report_with_the_verdict_bars_and_distributions_and_no_mlflow_bar(value_registry, tmp_path, capsys, monkeypatch):
    from ipvalue.cli import main
    from ipvalue.io.spreadsheets import write_csv_atomic
    from ipvalue.synthetic import make_demo_portfolio

    _, uri, results = value_registry
    use_tracking(uri)
    batch = make_demo_portfolio(600, seed=98).patents
    batch = batch[batch["legal_status"] == "in_force"]
    drifted = batch.assign(revenue_base_rmb=batch["revenue_base_rmb"] * 8, claims_total=batch["claims_total"] + 15)
    write_csv_atomic(results["value"].model.output_frame(drifted, explain="none"), tmp_path / "scored.csv")  # read back as analysts keep it
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)  # the command itself must switch MLflow's bar off
    code = main(["govern", "drift", "--reference", results["value"].run_id, "--current", str(tmp_path / "scored.csv"), "--tracking-uri", uri,
                 "--report-dir", str(tmp_path / "gov"), "--out", str(tmp_path / "drift.xlsx")])
    captured = capsys.readouterr()
    assert code == 1 and "verdict: ACT" in captured.out
    assert "Downloading artifacts" not in captured.err + captured.out
    html = (tmp_path / "gov" / "drift_report.html").read_text(encoding="utf-8")
    assert "<p class='verdict' id='verdict'" in html and "结论 Verdict: 需处置 Act" in html
    assert re.search("<figure id='chart-stability'><img src='data:image/png;base64,[^']+' alt='稳定性指标：参考与当前", html)
    assert re.search("<figure id='chart-distribution-value_p50_rmb'><img src='data:image/png;base64,[^']+' alt='估值 P50（元）的分布：参考（训练总体）与当前批次对比", html)
    assert "<td>特征：产品基年收入（对数） feature_log_revenue_rmb</td>" in html and "<td>需处置 act</td>" in html
    assert "NaN" not in _without_images(html)
    assert (tmp_path / "drift.xlsx").exists() and (tmp_path / "gov" / "drift_report_charts" / "stability.png").exists()


def test_without_a_cjk_font_the_charts_fall_back_to_english_and_say_so(monkeypatch):
    import ipvalue.charts as charts
    from ipvalue.governance import ModelCard
    from ipvalue.governance.charts import roc_figure

    assert charts.cjk_font() == "Noto Sans CJK SC" or charts.cjk_font() is None  # Debian's fonts-noto-cjk where installed
    monkeypatch.setattr(charts, "cjk_font", lambda: None)
    assert charts.label("校准", "calibration") == "calibration"
    figure = roc_figure([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9], auc=1.0)
    html = ModelCard("Validation report").add("Out-of-time performance", figures=[figure]).to_html()
    assert "No Chinese (CJK) font is installed, so the charts show their English labels only. Fix: install one" in html


def test_the_drift_report_renders_in_chromium_with_its_charts_and_chinese_headings(chromium, tmp_path):
    """A real browser draws the report a validator opens: charts decoded, headings in a CJK face."""
    from selenium.webdriver.common.by import By

    from ipvalue.governance import drift_document

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"value_p50_rmb": rng.lognormal(13, 1, 800), "feature_claims_total": rng.poisson(10, 800).astype(float)})
    current = pd.DataFrame({"value_p50_rmb": rng.lognormal(13.6, 1, 500), "feature_claims_total": rng.poisson(14, 500).astype(float)})
    table = drift_report(reference, current)
    paths = drift_document(table, reference, current, reference_name="run r1", current_name="book.csv").write(tmp_path, "drift_report", pdf=False)
    page = next(p for p in paths if p.suffix == ".html")
    chromium.get(page.resolve().as_uri())
    assert "需处置 Act" in chromium.find_element(By.ID, "verdict").text
    for chart in ("chart-stability", "chart-distribution-value_p50_rmb", "chart-distribution-feature_claims_total"):
        img = chromium.find_element(By.CSS_SELECTOR, f"#{chart} img")
        img.location_once_scrolled_into_view  # noqa: B018 - scroll it into view
        assert img.is_displayed() and chromium.execute_script("return arguments[0].naturalWidth", img) > 300, chart
    chromium.execute_cdp_cmd("DOM.enable", {})
    chromium.execute_cdp_cmd("CSS.enable", {})
    root = chromium.execute_cdp_cmd("DOM.getDocument", {})["root"]["nodeId"]
    node = chromium.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": "#section-verdict h2"})["nodeId"]
    fonts = chromium.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    assert any("CJK" in f["familyName"] for f in fonts), fonts
    chromium.save_screenshot(str(tmp_path / "drift_report.png"))  # kept out of the repository


# --- the valuation methods: their back-test in the validation report -------------------------------

@pytest.fixture(scope="module")
def pilot_ledger(tmp_path_factory):
    from ipvalue.calibration import PilotTruth, make_pilot_ledger, write_ledger

    return write_ledger(make_pilot_ledger(PilotTruth(), seed=0), tmp_path_factory.mktemp("pilot") / "ledger")


def test_govern_report_with_a_ledger_validates_the_valuation_methods(pilot_ledger, tmp_path, capsys):
    from html import escape

    from ipvalue.cli import main

    assert main(["govern", "report", "--ledger", str(pilot_ledger), "--out", str(tmp_path), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 0
    assert "valuation methods' back-test: every gate passed" in capsys.readouterr().out
    html = (tmp_path / "validation_report.html").read_text(encoding="utf-8")
    for zh, en in (("估值方法验证范围", "Valuation methods: scope"), ("估值方法回测：处置视角P10覆盖率", "Methods back-test: Coverage of the disposal view's P10"),
                   ("估值方法回测：人工调整：按分行、客户经理与时间", "Methods back-test: Overrides by branch, officer and time")):
        assert f"{zh} <span class='en'>{escape(en)}</span>" in html, en
    for chart in ("chart-values-vs-deals", "chart-p10-coverage", "chart-losses-vs-cap", "chart-override-frequency", "chart-override-drift"):
        assert f"id='chart-{chart}'" in html, chart
    assert "回测闸门 Back-test gates: 闸门全部通过 / every gate passed" in html and "NaN" not in _without_images(html)
    assert "<th>高于P10 Above the P10</th>" in html and "<th>客户经理 Officer</th>" in html  # the sections' tables, cells as the report reads them
    assert re.search(r"<td>SYN-客户经理03</td><td>SYN-分行03</td><td>\d+</td>", html)
    markdown = (tmp_path / "validation_report.md").read_text(encoding="utf-8")
    assert "## 估值方法回测：损失与可贷上限 Methods back-test: Losses against the cap" in markdown
    assert (tmp_path / "validation_report_charts" / "chart-p10-coverage.png").is_file()
    assert main(["govern", "report", "--out", str(tmp_path)]) == 2  # nothing to validate


def test_govern_report_with_a_calibration_run_uses_the_back_test_it_logged(pilot_ledger, tmp_path):
    from ipvalue.calibration.run import calibrate
    from ipvalue.cli import main
    from ipvalue.config import load_yaml
    from ipvalue.governance import ModelCard, add_methods_backtest, methods_backtest

    settings, _ = load_yaml("calibration-cn")
    settings["interval"]["draws"]["value"] = 400
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = calibrate(pilot_ledger, out=tmp_path / "calibration", tracking_uri=uri, settings=settings, report_pdf=False)
    assert main(["govern", "report", "--calibration-run", result.run_id, "--out", str(tmp_path / "gov"), "--tracking-uri", uri]) == 0
    html = (tmp_path / "gov" / "validation_report.html").read_text(encoding="utf-8")
    assert f"Validation report: valuation methods ({result.run_id})" in html and "Methods back-test: Candidate sets" in html
    use_tracking(uri)
    logged = methods_backtest(calibration_run=result.run_id)
    assert logged.ids == result.report.ids and logged.select("coverage").tables[0].rows == result.report.select("coverage").tables[0].rows
    card = add_methods_backtest(ModelCard("Validation report: ipvalue-renewal version 1"), logged)  # beside a model's own sections
    assert "Methods back-test: Values against deal prices and external appraisals" in card.sections
    assert card.heading("Methods back-test: Conclusion") == "估值方法回测：回测结论 Methods back-test: Conclusion"
