"""The back-test report of a calibration (回测报告), as addressable sections of the project's report
data model (:mod:`ipvalue.report.sections`), rendered like the 内部评估报告 by
:func:`ipvalue.report.render_html` / :func:`~ipvalue.report.render_pdf` and carried as JSON.

Out of time (calibrated on the earlier loans, tested on the later ones), before (the sets in use)
and after (the coefficients calibrated on the earlier loans) side by side:

* ``conclusion``: the gates and what they rest on;
* ``accuracy``: the market value at origination against deal prices and external appraisals
  (bias, median absolute log error, rank correlation), with both scatters (log scales, the line of
  equality);
* ``coverage``: the realised net recoveries against the disposal view's P10 (it should be beaten
  about 90 % of the time), with its interval;
* ``losses``: per defaulted loan disposed of, the net recovery against the cap, and the bank's loss;
* ``overrides``: overrides by branch and by officer over time (frequency, size, direction) and each
  officer's drift (the pilots ask banks to control valuation drift from staff judgement);
* ``coefficients``, ``candidates``, ``provenance``: what was estimated, the candidate sets and
  where every figure comes from.

Used by ``ipvalue calibrate`` (``backtest/report.html``, ``.pdf``, ``.json``, logged to the
calibration's MLflow run) and by the validation report (``ipvalue govern report --ledger`` or
``--calibration-run``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.calibration.backtest import Backtest
from ipvalue.calibration.ledger import Ledger
from ipvalue.report.sections import Chart, Column, Report, Section

__all__ = ["backtest_report", "write_backtest_report"]

#: How each back-test metric reads, Chinese and English (the summary table's ``metric``).
METRICS = {
    "bias vs deal prices": ("偏差：对成交价（对数比中位数）", "bias against deal prices (median log ratio)"),
    "mdale vs deal prices": ("误差：对成交价（绝对对数比中位数）", "median absolute log error against deal prices"),
    "spearman vs deal prices": ("秩相关：对成交价", "rank correlation with deal prices"),
    "bias vs external appraisals": ("偏差：对外部评估值", "bias against external appraisals"),
    "mdale vs external appraisals": ("误差：对外部评估值", "median absolute log error against appraisals"),
    "spearman vs external appraisals": ("秩相关：对外部评估值", "rank correlation with appraisals"),
    "P10 beaten by realised net recoveries": ("处置净回收高于P10抵质押价值的比例", "share of realised net recoveries above the P10"),
    "bank loss / amount lent (test loans)": ("银行损失占贷款额（测试期贷款）", "bank loss / amount lent (test loans)"),
    "net recovery ≥ cap (defaults disposed)": ("净回收不低于可贷上限的比例（已处置违约）", "net recovery ≥ cap (defaults disposed)"),
    "total cap / amount lent (test loans)": ("可贷上限合计占贷款额（测试期贷款）", "total cap / amount lent (test loans)"),
}
GATES = {"p10_coverage": ("P10覆盖率", "P10 coverage"), "bias_vs_deals": ("对成交价偏差", "bias against deal prices")}
BEFORE, AFTER = ("校准前（现行参数集）", "before (sets in use)"), ("校准后（以前期贷款校准）", "after (calibrated on the earlier loans)")
#: Officers drawn one by one in the chart of override sizes (the others are in the tables).
MAX_OFFICER_LINES = 6


def _metric_columns(kind: str) -> list[Column]:
    """The columns of a table of :func:`_metric_rows`: the metric, before and after as ``kind``, n."""
    return [Column("metric_zh", "指标", "Metric"), Column("metric_en", "Metric", "Metric (en)"), Column("before", BEFORE[0], BEFORE[1], kind),
            Column("after", AFTER[0], AFTER[1], kind), Column("n", "样本数", "n", "integer")]


def _metric_rows(summary: pd.DataFrame, names) -> pd.DataFrame:
    rows = summary[summary["metric"].isin(names)].copy()
    rows["metric_zh"] = rows["metric"].map(lambda m: METRICS.get(m, (m, m))[0])
    rows["metric_en"] = rows["metric"].map(lambda m: METRICS.get(m, (m, m))[1])
    return rows


def _scatter(chart_id: str, title: tuple, x_label: tuple, y_label: tuple, x: dict, y: dict) -> Chart:
    """Model against observation, before and after: ``x`` / ``y`` are ``{"before": array, "after": array}``
    (the observed values may be one array for both)."""
    series = []
    for (zh, en), when in ((BEFORE, "before"), (AFTER, "after")):
        xs, ys = np.asarray(x[when], float), np.asarray(y[when], float)
        ok = np.isfinite(xs) & np.isfinite(ys) & (xs > 0) & (ys > 0)
        series.append({"name_zh": zh, "name_en": en, "x": np.round(xs[ok], 2).tolist(), "y": np.round(ys[ok], 2).tolist()})
    return Chart(chart_id, "scatter", title[0], title[1], x_label[0], x_label[1], y_label[0], y_label[1], series=series)


def backtest_report(ledger: Ledger, backtest: Backtest, *, estimates: pd.DataFrame | None = None, candidates=(), run_id: str = "",
                    settings_name: str = "") -> Report:
    """The back-test report (see the module notes) of a ledger's out-of-time back-test.

    Parameters
    ----------
    ledger : Ledger
    backtest : Backtest
        :func:`~ipvalue.calibration.backtest.run_backtest`'s result.
    estimates : pandas.DataFrame, optional
        The calibration's estimates (on the whole ledger); default: the back-test's own, on the
        earlier loans.
    candidates : list of Candidate, optional
        The candidate sets the calibration wrote.
    run_id : str, optional
        The calibration's MLflow run.
    settings_name : str, optional
        The calibration settings (name-vN).

    Returns
    -------
    Report
    """
    bt, summary = backtest, backtest.summary
    synthetic = ledger.data_origin == "synthetic"
    passed = bool(bt.gates) and all(bt.gates.values())
    origin_zh = "合成数据（SYNTHETIC，仅作演示）" if synthetic else ledger.data_origin
    report = Report("校准回测报告", "Calibration back-test report", meta={
        "kind": "calibration back-test", "calibration_run": run_id, "ledger_sha256": ledger.hash, "as_of": str(ledger.as_of.date()),
        "split_date": str(bt.split_date.date()), "passed": passed, "data_origin": ledger.data_origin,
        "subtitle": [f"试点台账 Pilot ledger {Path(ledger.source).name} · sha256 {ledger.hash[:16]} · 台账日期 as of {ledger.as_of.date()} · "
                     f"数据 data: {origin_zh}",
                     f"样本外分割日 Out-of-time split {bt.split_date.date()}" + (f" · MLflow 运行 run {run_id}" if run_id else "")],
        "verdict_zh": "闸门全部通过" if passed else "闸门未全部通过", "verdict_en": "every gate passed" if passed else "a gate failed",
    })

    conclusion = Section("conclusion", "回测结论", "Conclusion")
    loans_test = int((ledger.loans["valuation_date"] > bt.split_date).sum())
    conclusion.text(f"以 {bt.split_date.date()} 及以前发放的 {len(ledger.loans) - loans_test:,} 笔贷款校准系数，在其后的 {loans_test:,} 笔贷款上检验：校准前为现行参数集，"
                    "校准后为以前期贷款估计的系数。" + ("闸门全部通过：候选参数集可提交验证人员审批晋级。" if passed else "有闸门未通过：候选参数集不得晋级。"),
                    f"Coefficients calibrated on the {len(ledger.loans) - loans_test:,} loans valued up to {bt.split_date.date()}, tested on the "
                    f"{loans_test:,} later ones: before is the sets in use, after the coefficients estimated on the earlier loans. "
                    + ("Every gate passed: the candidate sets may go to a validator for promotion." if passed else "A gate failed: the candidate sets may not be promoted."))
    if synthetic:
        conclusion.text("本台账为合成数据（每行标注 synthetic），数字仅演示方法，不代表任何银行的经验。",
                        "This ledger is SYNTHETIC (every row says so): the figures show the method, not any bank's experience.")
    gates = pd.DataFrame([{"gate_zh": GATES.get(k, (k, k))[0], "gate_en": GATES.get(k, (k, k))[1], "passed": bool(v), "evidence": bt.gate_notes[k]}
                          for k, v in bt.gates.items()])
    conclusion.table("gates-table", gates, [Column("gate_zh", "闸门", "Gate"), Column("gate_en", "Gate", "Gate (en)"), Column("passed", "结果", "Result", "check"),
                                            Column("evidence", "依据", "Evidence")], caption_zh="晋级闸门（样本外，校准后）", caption_en="Promotion gates (out of time, after)")
    report.add(conclusion)

    values = bt.tables["values"]
    accuracy = Section("accuracy", "估值与成交价、外部评估值", "Values against deal prices and external appraisals")
    accuracy.text("偏差为模型值与观测值对数比的中位数（正值表示高估），误差为其绝对值的中位数，秩相关为 Spearman 相关系数。",
                  "Bias is the median log ratio of the model's value to the observed one (positive: too high), the error its median absolute value, "
                  "the rank correlation Spearman's.")
    accuracy.table("accuracy-table", _metric_rows(summary, [m for m in METRICS if m.split(" vs ")[0] in ("bias", "mdale", "spearman")]), _metric_columns("number"))
    both = {"before": values["market_value_before_rmb"], "after": values["market_value_after_rmb"]}
    for chart_id, observed, (zh, en) in (("chart-values-vs-deals", values["deal_price_rmb"], ("成交价", "deal price")),
                                         ("chart-values-vs-appraisals", values["appraised_value_rmb"], ("外部评估值", "external appraisal"))):
        accuracy.chart(_scatter(chart_id, (f"发放时市场价值与{zh}（样本外）", f"Market value at origination against the {en} (out of time)"),
                                (f"{zh}（元）", f"{en} (RMB)"), ("市场价值（元）", "market value (RMB)"), {"before": observed, "after": observed}, both))
    report.add(accuracy)

    cov = bt.tables["coverage"]
    coverage = Section("coverage", "处置视角P10覆盖率", "Coverage of the disposal view's P10")
    lines = []
    for when, (zh, en) in (("before", BEFORE), ("after", AFTER)):
        share, lo, hi = cov.attrs.get(when, (np.nan, np.nan, np.nan))
        lines.append({"when_zh": zh, "when_en": en, "beaten": int(cov[f"beaten_{when}"].sum()), "n": len(cov), "share": share, "low": lo, "high": hi})
    coverage.text("已处置违约贷款的净回收（扣除处置费用，按持有成本率折现至违约日）与发放时P10抵质押价值比较：P10应被约90%的回收超过。",
                  "The net recoveries of the defaulted loans disposed of (after costs, discounted at the holding rate to the default) against the "
                  "collateral value at P10 at origination: about 90 % of them should beat it.")
    coverage.table("coverage-table", pd.DataFrame(lines), [
        Column("when_zh", "口径", "Basis"), Column("when_en", "Basis", "Basis (en)"), Column("beaten", "高于P10", "Above the P10", "integer"),
        Column("n", "已处置", "Disposed", "integer"), Column("share", "比例", "Share", "percent1"), Column("low", "90%区间下限", "90 % low", "percent1"),
        Column("high", "90%区间上限", "90 % high", "percent1")])
    coverage.chart(_scatter("chart-p10-coverage", ("处置净回收与P10抵质押价值", "Realised net recovery against the collateral value at P10"),
                            ("P10抵质押价值（元）", "collateral value at P10 (RMB)"), ("处置净回收（元）", "net recovery (RMB)"),
                            {"before": cov["collateral_p10_before_rmb"], "after": cov["collateral_p10_after_rmb"]},
                            {"before": cov["net_recovery_discounted_rmb"], "after": cov["net_recovery_discounted_rmb"]}))
    report.add(coverage)

    lost = bt.tables["losses"]
    losses = Section("losses", "损失与可贷上限", "Losses against the cap")
    losses.text("每笔已处置的违约贷款：净回收与发放时可贷上限比较（对角线以上：按上限放款不致损失），以及按风险分担后的银行损失。",
                "Each defaulted loan disposed of: its net recovery against the cap at origination (above the diagonal: a loan at the cap loses "
                "nothing) and the bank's loss after risk sharing.")
    losses.table("losses-table", _metric_rows(summary, [m for m in METRICS if "cap" in m or "loss" in m or m.startswith("P10")]), _metric_columns("percent1"))
    totals = pd.DataFrame([{"loans": len(lost), "exposure": lost["exposure_at_default_rmb"].sum(), "recovered": lost["net_recovery_rmb"].sum(),
                            "loss": lost["loss_rmb"].sum(), "bank_loss": lost["bank_loss_rmb"].sum(), "above_cap_after": int(lost["lent_above_cap_after"].sum())}])
    losses.table("losses-totals-table", totals, [
        Column("loans", "已处置违约贷款", "Defaults disposed", "integer"), Column("exposure", "违约敞口", "Exposure at default", "money"),
        Column("recovered", "净回收", "Net recovery", "money"), Column("loss", "损失", "Loss", "money"), Column("bank_loss", "银行承担", "Bank's share", "money"),
        Column("above_cap_after", "放款额高于校准后上限", "Lent above the calibrated cap", "integer")])
    losses.chart(_scatter("chart-losses-vs-cap", ("处置净回收与可贷上限", "Net recovery against the loan cap"), ("可贷上限（元）", "loan cap (RMB)"),
                          ("处置净回收（元）", "net recovery (RMB)"), {"before": lost["cap_before_rmb"], "after": lost["cap_after_rmb"]},
                          {"before": lost["net_recovery_rmb"], "after": lost["net_recovery_rmb"]}))
    report.add(losses)
    overrides, by_officer = _overrides_sections(bt)
    report.add(overrides)
    report.add(_coefficients_section(estimates if estimates is not None else bt.train_estimates, whole=estimates is not None))
    if candidates:
        report.add(_candidates_section(candidates))
    provenance = Section("provenance", "来源", "Provenance")
    rows = [("试点台账", "pilot ledger", f"{ledger.source} (sha256 {ledger.hash})"), ("台账日期", "ledger date", str(ledger.as_of.date())),
            ("数据来源", "data origin", ledger.data_origin), ("样本外分割日", "out-of-time split", str(bt.split_date.date())),
            ("校准运行", "calibration run", run_id or "—"), ("校准设置", "calibration settings", settings_name or "—"),
            ("台账行数", "ledger rows", ", ".join(f"{t} {n:,}" for t, n in ledger.n_rows.items()))]
    provenance.table("provenance-table", pd.DataFrame(rows, columns=["item_zh", "item_en", "value"]),
                     [Column("item_zh", "项目", "Item"), Column("item_en", "Item", "Item (en)"), Column("value", "内容", "Value")])
    report.add(provenance, by_officer)
    return report


def _overrides_sections(bt: Backtest) -> tuple[Section, Section]:
    """The overrides' section and its appendix (by officer and year)."""
    by_branch, by_officer, drift = bt.tables["overrides_by_branch"], bt.tables["overrides_by_officer"], bt.tables["override_drift"]
    sec = Section("overrides", "人工调整：按分行、客户经理与时间", "Overrides by branch, officer and time")
    sec.text("信贷员对模型价值的人工调整：频率（调整次数 / 估值次数）、幅度（相对变化 = 调整值 / 模型值 − 1）与方向（上调比例）；"
             "漂移为每名客户经理相对变化对时间的回归斜率（OLS，90%区间下限大于0即持续上调）。",
             "Officers' overrides of the model's value: frequency (overrides / valuations), size (relative change = override / model − 1) and "
             "direction (share upward); the drift is the OLS slope of an officer's relative change on time (a 90 % interval above 0 is a "
             "sustained upward drift).")
    flagged = drift.loc[drift["drifting_upward"], "officer"].tolist()
    if flagged:
        sec.text(f"持续上调的客户经理：{'、'.join(map(str, flagged))}。", f"Officers drifting upward: {', '.join(map(str, flagged))}.")
    frequency = [{"name_zh": str(b), "name_en": str(b), "x": g["year"].astype(int).tolist(), "y": g["frequency"].round(4).tolist()}
                 for b, g in by_branch.groupby("branch")]
    sec.chart(Chart("chart-override-frequency", "line", "人工调整频率（按分行、年度）", "Override frequency by branch and year", "年度", "year",
                    "调整次数 / 估值次数", "overrides / valuations", series=frequency))
    shown = list(dict.fromkeys(flagged + drift.sort_values("overrides", ascending=False)["officer"].tolist()))[:MAX_OFFICER_LINES]
    sizes = [{"name_zh": str(o), "name_en": str(o), "x": g["year"].astype(int).tolist(), "y": g["mean_relative_change"].fillna(0).round(4).tolist()}
             for o, g in by_officer[by_officer["officer"].isin(shown) & (by_officer["overrides"] > 0)].groupby("officer")]
    sec.chart(Chart("chart-override-size", "line", "人工调整平均幅度（按客户经理、年度）", "Mean size of the overrides by officer and year", "年度", "year",
                    "平均相对变化", "mean relative change", series=sizes))
    slopes = drift.dropna(subset=["slope_per_year"]).sort_values("slope_per_year")
    sec.chart(Chart("chart-override-drift", "barh", "人工调整漂移（每年相对变化的斜率）", "Drift of the overrides (slope of the relative change per year)",
                    "每年斜率", "slope per year", series=[{"name_zh": "斜率", "name_en": "slope", "x": slopes["officer"].astype(str).tolist(),
                                                           "y": slopes["slope_per_year"].round(4).tolist()}]))
    sec.table("overrides-by-branch-table", by_branch, [
        Column("branch", "分行", "Branch"), Column("year", "年度", "Year", "text"), Column("valuations", "估值次数", "Valuations", "integer"),
        Column("overrides", "调整次数", "Overrides", "integer"), Column("frequency", "频率", "Frequency", "percent1"),
        Column("mean_relative_change", "平均相对变化", "Mean relative change", "percent1"), Column("median_relative_change", "相对变化中位数", "Median relative change", "percent1"),
        Column("share_upward", "上调比例", "Share upward", "percent1")])
    sec.table("override-drift-table", drift, [
        Column("officer", "客户经理", "Officer"), Column("branch", "分行", "Branch"), Column("overrides", "调整次数", "Overrides", "integer"),
        Column("mean_relative_change", "平均相对变化", "Mean relative change", "percent1"), Column("slope_per_year", "每年斜率", "Slope per year", "percent1"),
        Column("low", "90%下限", "90 % low", "percent1"), Column("high", "90%上限", "90 % high", "percent1"),
        Column("drifting_upward", "持续上调", "Drifting upward", "text")])
    by_officer_table = by_officer.assign(year=by_officer["year"].astype(int).astype(str))
    appendix = Section("overrides-by-officer", "人工调整：按客户经理与年度", "Overrides by officer and year", part="appendix")
    appendix.table("overrides-by-officer-table", by_officer_table, [
        Column("officer", "客户经理", "Officer"), Column("year", "年度", "Year"), Column("valuations", "估值次数", "Valuations", "integer"),
        Column("overrides", "调整次数", "Overrides", "integer"), Column("frequency", "频率", "Frequency", "percent1"),
        Column("mean_relative_change", "平均相对变化", "Mean relative change", "percent1"), Column("share_upward", "上调比例", "Share upward", "percent1")])
    return sec, appendix


def _coefficients_section(estimates: pd.DataFrame, *, whole: bool) -> Section:
    sec = Section("coefficients", "系数估计", "Coefficients")
    sec.text("全部台账贷款上的估计（候选参数集即由此写出）：90%区间、样本数与最低样本要求；样本不足的系数保持不变并说明原因。" if whole else
             "以前期贷款估计的系数（即“校准后”所用）：90%区间、样本数与最低样本要求；样本不足的系数保持不变并说明原因。",
             "Estimated on every loan of the ledger (the candidate sets are written from them): 90 % interval, sample size and the minimum it "
             "needs; a coefficient with too little evidence is left unchanged, saying why." if whole else
             "Estimated on the earlier loans (what 'after' uses): 90 % interval, sample size and the minimum it needs; a coefficient with too "
             "little evidence is left unchanged, saying why.")
    shown = estimates[~estimates["key"].str.startswith("life_table.")].assign(changed_label=lambda t: np.where(t["changed"], "已更新 changed", "未变 unchanged"))
    sec.table("coefficients-table", shown, [
        Column("label_zh", "系数", "Coefficient"), Column("label_en", "Coefficient", "Coefficient (en)"), Column("current", "现行值", "In use", "number"),
        Column("estimate", "估计值", "Estimate", "number"), Column("low", "90%下限", "90 % low", "number"), Column("high", "90%上限", "90 % high", "number"),
        Column("n", "样本数", "n", "integer"), Column("min_n", "最低样本", "Minimum", "integer"), Column("changed_label", "结果", "Result"),
        Column("reason", "说明", "Reason")])
    life = estimates[estimates["key"].str.startswith("life_table.")]
    if len(life):
        sec.text(f"年费失效风险（CN寿命表）：{int(life['changed'].sum())} / {len(life)} 个风险率由登记簿导出数据估计，其余样本不足保持不变。",
                 f"CN life table: {int(life['changed'].sum())} of {len(life)} hazards estimated from the register export, the others unchanged (too few at risk).")
    return sec


def _candidates_section(candidates) -> Section:
    sec = Section("candidates", "候选参数集", "Candidate sets")
    sec.text("候选参数集在验证人员以其API令牌晋级（签名并记入审计链）之前不得用于任何估值；晋级后安装于银行配置目录。",
             "No valuation may use a candidate set until a validator promotes it with their API token (signed and chained in the audit store); "
             "the promotion installs it in the bank's configuration folder.")
    rows = pd.concat([c.changes.assign(set=c.file_name) for c in candidates], ignore_index=True) if candidates else pd.DataFrame()
    if len(rows):
        rows["current"] = pd.to_numeric(rows["current"], errors="coerce")
        rows["candidate"] = pd.to_numeric(rows["candidate"], errors="coerce")
    sec.table("candidates-table", rows, [Column("set", "参数集", "Set"), Column("path", "参数", "Parameter"), Column("current", "现行值", "In use", "number"),
                                         Column("candidate", "候选值", "Candidate", "number")])
    return sec


def write_backtest_report(report: Report, out_dir, *, pdf: bool | None = None) -> dict:
    """Write ``report.html``, ``report.json`` and (where this machine can print it) ``report.pdf``
    into ``out_dir`` atomically; returns their paths.

    ``pdf``: True requires the PDF, False skips it, None prints it where this machine can
    (Chromium or WeasyPrint, and a CJK font: :func:`ipvalue.report.pdf_unavailable`) and logs why not otherwise.
    """
    from ipvalue.report.render import write_rendered

    return write_rendered(report, report.to_json(), out_dir, "report", pdf=pdf)
