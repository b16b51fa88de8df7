"""Chinese headings and Excel number formats of a scoring output's columns, for the ``.xlsx``
an analyst opens: each header cell shows the Chinese heading above the column name, so the sheet
reads in Chinese and still maps one to one onto the Parquet and CSV columns."""

from __future__ import annotations

import re

from ipvalue.io.spreadsheets import MONEY, RATIO

#: Headings of the columns every scoring output or quarantine may have.
HEADINGS = {
    "row": "行号（输入文件数据行）",
    "reasons": "隔离原因",
    "patent_id": "专利号",
    "value_p10_rmb": "估值 P10（元）",
    "value_p50_rmb": "估值 P50（元）",
    "value_p90_rmb": "估值 P90（元）",
    "collateral_status": "押品状态（有效才计价）",
    "collateral_basis_rmb": "可计入押品的价值（元）",
    "expected_life_years": "预期剩余寿命（年）",
    "economic_life_years": "经济寿命（年）",
    "quality_percentile": "质量百分位",
    "shap_expected_value": "解释基准值（SHAP）",
}
#: Metadata keys of an output (the model that made it) as the workbook's notes show them.
METADATA_LABELS = {
    "ipvalue.model_uri": "模型 Model",
    "ipvalue.model_version": "模型版本 Model version",
    "ipvalue.run_id": "训练运行 Training run",
    "ipvalue.feature_spec_hash": "特征规格哈希 Feature-spec hash",
}


def output_headings(columns, estimator=None, *, spec=None) -> dict:
    """``{column: Chinese heading}`` for the columns that have one.

    ``estimator``: the registered model's estimator, whose feature spec gives each
    ``feature_<name>`` / ``shap_<name>`` its Chinese description and (renewal models) whose
    ``stage_label`` says what each ``p_fee_k`` means; or only the feature ``spec``.
    """
    spec = spec or getattr(getattr(estimator, "features_", None), "spec_", None)
    described = {f.name: f.description_zh for f in spec.features} if spec is not None else {}
    out = {}
    for col in map(str, columns):
        if col in HEADINGS:
            out[col] = HEADINGS[col]
        elif m := re.fullmatch(r"p_fee_(\d+)", col):
            label = estimator.stage_label(int(m[1]))["zh"] if hasattr(estimator, "stage_label") else None
            out[col] = label or f"第{m[1]}期续费概率"
        elif m := re.fullmatch(r"driver_(\d+)(_shap)?", col):
            out[col] = f"第{m[1]}大驱动因素" + ("的贡献（SHAP）" if m[2] else "")
        elif col.startswith("feature_") and col.removeprefix("feature_") in described:
            out[col] = "特征：" + described[col.removeprefix("feature_")]
        elif col.startswith("shap_") and col.removeprefix("shap_") in described:
            out[col] = "贡献（SHAP）：" + described[col.removeprefix("shap_")]
    return out


def output_labels(columns, estimator=None) -> dict:
    """Header text per column: the Chinese heading above the column name where there is one."""
    headings = output_headings(columns, estimator)
    return {c: f"{headings[c]}\n{c}" if c in headings else c for c in map(str, columns)}


def output_formats(columns) -> dict:
    """Excel number formats: money with thousands separators, probabilities to four places."""
    out = {}
    for col in map(str, columns):
        if col.endswith("_rmb") and not col.startswith(("feature_", "shap_")):
            out[col] = MONEY
        elif re.fullmatch(r"p_fee_\d+|quality_percentile", col):
            out[col] = RATIO
    return out


def column_name(header) -> str:
    """The column name in a header cell written by :func:`output_labels` (its last line)."""
    return str(header).rsplit("\n", 1)[-1].strip()
