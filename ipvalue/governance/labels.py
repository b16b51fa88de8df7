"""Readable names for what governance documents show: section titles, table columns, metric keys
of a training run (``oot_fee2_ece_if_calibrated_p95`` → "第2期 样本外 完全校准模型的ECE（95分位）"),
segments and verdicts — Chinese with the English beside it, never a raw key."""

from __future__ import annotations

import re

#: Chinese titles of the sections (the English title is the section's key).
SECTION_TITLES = {
    "Model details": "模型信息", "Intended use": "预期用途", "Out-of-scope uses": "不适用的用途", "Data": "数据",
    "Features": "特征", "Method and assumptions": "方法与假设", "Performance": "模型表现", "Limitations": "局限性",
    "Version history": "版本历史", "Scope": "验证范围", "Out-of-time performance": "样本外（时间外）表现",
    "Performance by segment": "分群表现", "Calibration": "校准", "Challengers and baselines": "挑战模型与基准模型",
    "Per fee stage, out of time and point in time": "各缴费阶段表现（时间外与时点）", "Monotonicity against the spec": "单调性检验",
    "Sensitivity": "敏感性", "Stability over time": "跨期稳定性", "Stability of the features (CSI)": "特征稳定性（CSI）",
    "Back-test of the income approach's input": "收益法输入的回测", "Manual overrides (audit trail)": "人工调整记录（审计轨迹）",
    "Verdict": "结论", "Stability indices": "稳定性指标", "Distributions": "分布对比", "Output distribution": "模型输出分布",
    "Charts": "图表", "Notes": "说明",
}
#: Table columns (governance tables, drift, the override log).
COLUMN_LABELS = {
    "metric": "指标 Metric", "value": "数值 Value", "ci_low": "95%置信下限 CI low", "ci_high": "95%置信上限 CI high",
    "feature": "特征 Feature", "builder": "构造器 Builder", "monotone": "单调方向 Monotone", "missing": "缺失处理 Missing values",
    "description_zh": "中文说明 Description (zh)", "description_en": "英文说明 Description (en)",
    "segment": "分群 Segment", "patents": "专利数 Patents", "observed": "实际比率 Observed", "predicted": "预测均值 Predicted", "auc": "AUC",
    "model": "模型 Model", "champion_lift": "冠军模型提升 Champion lift", "direction": "方向 Direction", "violations": "违反次数 Violations",
    "mean_abs_change_in_lapse_probability": "失效概率平均绝对变化 Mean |Δ lapse probability|",
    "fee stage": "缴费阶段 Fee stage", "outcome": "结果 Outcome", "year": "年份 Year", "size": "专利数 Patents", "mean": "均值 Mean",
    "std": "标准差 Std dev", "patents observed": "已观察专利 Patents observed", "predicted P(paid)": "预测缴费概率 Predicted P(paid)",
    "observed share paid": "实际缴费比例 Observed share paid", "column": "列 Column", "kind": "类型 Kind", "verdict": "结论 Verdict",
    "bin": "区间 Bin", "reference_share": "参考占比 Reference share", "current_share": "当前占比 Current share",
    "contribution": "贡献 Contribution", "count": "专利数 Patents", "bin_low": "区间下限 Bin low", "bin_high": "区间上限 Bin high",
    "field": "调整字段 Field", "overrides": "调整次数 Overrides", "valuations": "估值次数 Valuations",
    "valuations_with_override": "有调整的估值 Valuations with an override", "up": "上调 Up", "down": "下调 Down",
    "mean_relative_change": "平均相对变化 Mean relative change", "median_relative_change": "相对变化中位数 Median relative change",
    "officers": "客户经理数 Officers", "share_of_valuations": "占估值比例 Share of valuations",
    "n": "专利数 Patents", "logistic baseline auc": "逻辑回归基准 AUC logistic baseline AUC",
    "calibrated-model ece (p95)": "完全校准模型ECE（95分位） calibrated-model ECE (p95)",
    "alias": "别名 Alias", "version": "版本 Version", "previous_version": "原版本 Previous version", "by": "操作人 By",
    "reason": "理由 Reason", "at": "时间 At",
}
#: Values that are keys in a table (segments, verdicts, kinds).
VALUE_LABELS = {
    "grant year": "授权年份 grant year", "technology (IPC section)": "技术领域（IPC部） technology (IPC section)",
    "patent type": "专利类型 patent type", "applicant type": "申请人类型 applicant type",
    "stable": "稳定 stable", "watch": "关注 watch", "act": "需处置 act", "PSI": "PSI（输出）", "CSI": "CSI（特征）",
    "+ (value rises)": "+（价值随之上升） value rises", "- (value falls)": "-（价值随之下降） value falls", "none": "无 none",
    "ECE": "期望校准误差 ECE", "observed rate": "实际缴费比例 observed rate", "mean predicted": "平均预测概率 mean predicted",
    "ECE of a perfectly calibrated model on these predictions (sampling noise; 95th percentile as ci_high)":
        "完全校准模型在这些预测上的ECE（抽样噪声；95分位为置信上限） ECE of a perfectly calibrated model on these predictions (sampling noise; 95th percentile as CI high)",
    "claims_only": "仅权利要求数 claims only", "composite": "综合指数 composite index", "logistic": "逻辑回归 logistic regression",
    "linear": "线性回归 linear regression",
}
VERDICT_LABELS = {"stable": "稳定 Stable", "watch": "关注 Watch", "act": "需处置 Act"}

_SCOPES = {"oot": ("样本外", "out of time"), "pit": ("时点", "point in time"), "cv": ("交叉验证", "cross-validated"),
           "refit_in_sample": ("重拟合（样本内）", "refit, in sample")}
_BASELINES = {"claims_only": ("仅权利要求数", "claims only"), "composite": ("综合指数", "composite index"),
              "logistic": ("逻辑回归", "logistic regression"), "linear": ("线性回归", "linear regression")}
_MEASURES = {
    "auc": ("AUC", "AUC"), "auc_ci_low": ("AUC 95%置信下限", "AUC, 95% CI low"), "auc_ci_high": ("AUC 95%置信上限", "AUC, 95% CI high"),
    "brier": ("Brier 分数", "Brier score"), "ece": ("期望校准误差 ECE", "expected calibration error (ECE)"),
    "ece_if_calibrated_mean": ("完全校准模型的ECE（均值）", "ECE of a perfectly calibrated model (mean)"),
    "ece_if_calibrated_p95": ("完全校准模型的ECE（95分位）", "ECE of a perfectly calibrated model (95th percentile)"),
    "mean_predicted": ("平均预测概率", "mean predicted probability"), "observed_rate": ("实际缴费比例", "observed rate"),
    "spearman": ("Spearman 秩相关", "Spearman rank correlation"), "coverage_p10_p90": ("P10–P90 区间覆盖率", "P10–P90 interval coverage"),
    "mae_log": ("对数价值平均绝对误差", "mean absolute error of log value"), "pinball_p10": ("P10 分位损失", "pinball loss at P10"),
    "pinball_p50": ("P50 分位损失", "pinball loss at P50"), "pinball_p90": ("P90 分位损失", "pinball loss at P90"),
}
_COUNTS = {
    "labelled_patents": ("有标签专利数", "labelled patents"), "unlabelled_patents_left_out": ("未计入的无标签专利数", "unlabelled patents left out"),
    "monotonicity_violations": ("单调性违反次数", "monotonicity violations"), "test_patents": ("测试专利数", "test patents"),
    "train_patents": ("训练专利数", "training patents"), "refit_patents": ("重拟合专利数", "patents in the refit"),
    "validated_model_train_patents": ("验证模型的训练专利数", "training patents of the validated model"),
}


def metric_label(key: str) -> str:
    """A readable name for a training run's metric key, Chinese with the English beside it.

    Examples
    --------
    >>> metric_label("oot_fee2_auc")
    '第2期 样本外 AUC (fee 2, out of time: AUC)'
    >>> metric_label("lift_over_logistic_auc")
    '相对逻辑回归的提升：AUC (lift over logistic regression: AUC)'
    """
    if key in _COUNTS:
        zh, en = _COUNTS[key]
        return f"{zh} ({en})"
    if m := re.fullmatch(r"test_patents_fee(\d+)", key):
        return f"第{m[1]}期测试专利数 (test patents, fee {m[1]})"
    for prefix, (zh_kind, en_kind) in (("baseline_", ("基准模型", "baseline")), ("lift_over_", ("相对", "lift over"))):
        if key.startswith(prefix):
            rest = key.removeprefix(prefix)
            name = next((b for b in sorted(_BASELINES, key=len, reverse=True) if rest.startswith(b + "_")), None)
            if name:
                measure = rest.removeprefix(name + "_")
                stage = re.match(r"fee(\d+)_", measure)
                measure = measure[stage.end():] if stage else measure
                mzh, men = _MEASURES.get(measure, (measure, measure.replace("_", " ")))
                bzh, ben = _BASELINES[name]
                where_zh = f"第{stage[1]}期 " if stage else ""
                where_en = f", fee {stage[1]}" if stage else ""
                if prefix == "lift_over_":
                    return f"{where_zh}相对{bzh}的提升：{mzh} (lift over {ben}{where_en}: {men})"
                return f"{where_zh}{zh_kind}（{bzh}）：{mzh} ({en_kind} {ben}{where_en}: {men})"
    for scope in sorted(_SCOPES, key=len, reverse=True):
        if key.startswith(scope + "_"):
            rest = key.removeprefix(scope + "_")
            stage = re.match(r"fee(\d+)_", rest)
            measure = rest[stage.end():] if stage else rest
            if measure in _MEASURES:
                szh, sen = _SCOPES[scope]
                mzh, men = _MEASURES[measure]
                if stage:
                    return f"第{stage[1]}期 {szh} {mzh} (fee {stage[1]}, {sen}: {men})"
                return f"{szh} {mzh} ({sen}: {men})"
    return key.replace("_", " ")


def column_label(column: str) -> str:
    """The heading of a table column (unknown columns as they are, underscores as spaces)."""
    column = str(column)
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    if m := re.fullmatch(r"(out of time|point in time) (\w+)", column):
        scope = {"out of time": "时间外", "point in time": "时点"}[m[1]]
        zh, en = _MEASURES.get(m[2], (m[2], m[2].replace("_", " ")))
        return f"{scope} {zh} {m[1]} {en}"
    return column.replace("_", " ")
