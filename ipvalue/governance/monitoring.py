"""The stability report of a scored batch against a model's training population (``ipvalue govern
drift``): the verdict, PSI / CSI bars and the table, and the distributions that moved, as a
document (HTML, Markdown, PDF) a validator files beside the table."""

from __future__ import annotations

import pandas as pd

from ipvalue.governance.card import ModelCard
from ipvalue.governance.charts import distribution_figure, stability_figure
from ipvalue.governance.drift import PSI_ACT, PSI_WATCH, verdict
from ipvalue.governance.labels import VERDICT_LABELS
from ipvalue.scoring.headings import output_headings

#: Distributions drawn: every model output, then the features that moved most.
MAX_FEATURE_DISTRIBUTIONS = 3


def drift_document(table: pd.DataFrame, reference: pd.DataFrame, current: pd.DataFrame, *, reference_name: str, current_name: str,
                   spec=None) -> ModelCard:
    """The stability report of ``current`` against ``reference``.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`~ipvalue.governance.drift_report` of the two.
    reference, current : pandas.DataFrame
        The training population (``reference.parquet`` of the run) and the scored batch.
    reference_name, current_name : str
        What they are, as the report names them (the run id, the file).
    spec : FeatureSpec, optional
        The model's feature spec, whose Chinese descriptions name the features.
    """
    worst = table.iloc[0]
    overall = verdict(float(worst["value"]))
    names = output_headings(table["column"], spec=spec)
    doc = ModelCard(f"Stability report: {current_name} against {reference_name}", title_zh="模型稳定性报告")
    doc.value_labels["column"] = {c: f"{names[c]} {c}" for c in names}
    counts = table["verdict"].value_counts()
    doc.add("Verdict", "\n".join([
        f"The largest index is {float(worst['value']):.4f} ({names.get(worst['column'], '')} {worst['column']}, {worst['kind']}).",
        f"{counts.get('act', 0)} of {len(table)} indices call for action, {counts.get('watch', 0)} for watching, {counts.get('stable', 0)} are stable "
        f"(below {PSI_WATCH:.2f} stable, {PSI_WATCH:.2f} to {PSI_ACT:.2f} watch, above {PSI_ACT:.2f} act; ipvalue govern drift exits 1 on act).",
        f"Reference: the training population of {reference_name} ({len(reference):,} patents). Current: {current_name} ({len(current):,} patents).",
        "PSI compares a model output's distribution, CSI a feature's, in ten bins at the reference deciles (missing values a bin of their own).",
    ]), lead=(f"结论 Verdict: {VERDICT_LABELS[overall]}（最大指标 largest index {float(worst['value']):.4f}）", overall))
    doc.add("Stability indices", "Every output (PSI) and every feature (CSI), largest first.", table,
            figures=[stability_figure(table, names, title_zh="稳定性指标：参考与当前", title_en="Stability indices, reference vs current")])
    outputs = table.loc[table["kind"].eq("PSI"), "column"].tolist()
    moved = table.loc[table["kind"].eq("CSI") & table["verdict"].ne("stable"), "column"].head(MAX_FEATURE_DISTRIBUTIONS).tolist()
    figures = [distribution_figure(reference[c], current[c], name_zh=names.get(c, c), name_en=c, chart_id=f"distribution-{c}",
                                   reference_label=("参考（训练总体）", "reference (training population)"), current_label=("当前批次", "current batch"))
               for c in outputs + moved if pd.api.types.is_numeric_dtype(reference[c]) and pd.api.types.is_numeric_dtype(current[c])]
    doc.add("Distributions", "The model's outputs" + (f" and the {len(moved)} features that moved most" if moved else "") + ": reference against current.",
            figures=figures)
    return doc
