"""The model card of a registered version (skops style: a card built section by section), from
MLflow: run, tags, feature spec, aliases and their history."""

from __future__ import annotations

import base64
import html
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.charts import VERDICT_COLOURS
from ipvalue.governance.charts import accuracy_figure, distribution_figure, importance_figure, reliability_figure
from ipvalue.governance.labels import SECTION_TITLES, VALUE_LABELS, column_label, metric_label
from ipvalue.io import write_bytes_atomic, write_text_atomic
from ipvalue.registry import alias_history, load_model, resolve_version

logger = logging.getLogger(__name__)

INTENDED_USE = (
    "Internal valuation (内部评估) of patents pledged for bank loans of ¥10 million or less in the IP-finance pilots "
    "(金发〔2025〕10号): a reference for the credit line beside the income approach, with the officer's review."
)
OUT_OF_SCOPE = [
    "Loans above ¥10 million (on the borrower's total exposure), which need an external appraisal.",
    "Fair-value accounting, tax, litigation damages or transfer pricing.",
    "Patents outside the training population's offices and types without re-validation (the renewal model is trained on US university patents).",
    "Automated decisions without an officer's review and the eligibility checks.",
]


#: The note under a table with a dash.
DASH_NOTE = ("“—”：不适用或无数据（例如分群只有一种结果或样本太少，或该指标没有置信区间）。",
             "“—”: not applicable or no data (e.g. a segment with one outcome or too few patents, or a figure without an interval).")
#: Integer columns written without thousands separators (years, stages, versions).
PLAIN_INTEGERS = {"year", "fee stage", "version", "previous_version", "bin", "decile", "direction"}
_STYLE = """
body{font-family:'Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei',Arial,sans-serif;margin:24px;color:#1d2733;line-height:1.45}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:26px;border-bottom:2px solid #2b5d8a;padding-bottom:3px}
.en{color:#4a5866;font-weight:normal}p.note{font-size:12px;color:#4a5866}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ccd;padding:3px 7px;vertical-align:top}
th{background:#eef3f8;text-align:left}td.num{text-align:right;white-space:nowrap}
p.verdict{display:block}figure{margin:12px 0;page-break-inside:avoid}figure img{max-width:100%;border:1px solid #e3e8ee}
figcaption{font-size:12px;color:#4a5866}.verdict{font-size:16px;font-weight:bold;padding:6px 10px;display:inline-block;border-radius:4px}
@page{size:A4;margin:14mm 12mm}
@media print{body{margin:0}h2{page-break-after:avoid}tr,figure{page-break-inside:avoid}thead{display:table-header-group}table{font-size:9px}}
"""


@dataclass
class ModelCard:
    """A governance document built section by section (skops style):
    ``card.add("Data", text, table, figures=[...])``.

    Sections are addressable by their English title (``card.sections[title]`` is ``(text,
    table)``: the figures as computed, with their keys); ``to_markdown``, ``to_html`` and
    ``write`` render the same content for people: Chinese and English headings, readable names
    for metric keys and enum values, numbers formatted, "—" (with a note) where a table has no
    value, and the charts of each section (:class:`~ipvalue.governance.charts.Figure`).
    """

    title: str
    sections: dict = field(default_factory=dict)
    title_zh: str = ""
    figures: dict = field(default_factory=dict)
    #: ``{column: {value: label}}``: how a table column's values read (e.g. feature names).
    value_labels: dict = field(default_factory=dict)
    #: ``{section title: (text, verdict)}``: a sentence shown first and boxed in the verdict's colour.
    leads: dict = field(default_factory=dict)
    #: ``{section title: Chinese title}`` of sections not in the shared table of titles.
    titles_zh: dict = field(default_factory=dict)

    def add(self, title: str, text: str = "", table: pd.DataFrame | None = None, *, figures: list | None = None,
            lead: tuple[str, str] | None = None) -> "ModelCard":
        self.sections[title] = (text, table)
        if figures:
            self.figures[title] = list(figures)
        if lead:
            self.leads[title] = lead
        return self

    def heading(self, title: str) -> str:
        zh = self.titles_zh.get(title) or SECTION_TITLES.get(title)
        return f"{zh} {title}" if zh else title

    def _display(self, value, column: str) -> str:
        """A cell as people read it: '—' for a missing value, numbers formatted, keys named."""
        if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, (float, np.floating)) and np.isnan(value)):
            return "—"
        if isinstance(value, (bool, np.bool_)):
            return "是 yes" if value else "否 no"
        if isinstance(value, (int, np.integer)):
            return str(int(value)) if column in PLAIN_INTEGERS else f"{int(value):,}"
        if isinstance(value, (float, np.floating)):
            if not np.isfinite(value):
                return "∞" if value > 0 else "-∞"
            if column in PLAIN_INTEGERS and float(value).is_integer():
                return str(int(value))
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
        text = str(value)
        if column in self.value_labels and text in self.value_labels[column]:
            return self.value_labels[column][text]
        if column == "metric" and re.fullmatch(r"[a-z0-9_]+", text):
            return metric_label(text)
        return VALUE_LABELS.get(text, text)

    def _rows(self, table: pd.DataFrame) -> tuple[list[str], list[list[str]], bool]:
        columns = [str(c) for c in table.columns]
        rows = [[self._display(v, c) for v, c in zip(row, columns)] for row in table.itertuples(index=False)]
        return [column_label(c) for c in columns], rows, any("—" == cell for row in rows for cell in row)

    def to_markdown(self, *, charts_dir: str | None = None) -> str:
        """Markdown; with ``charts_dir`` the charts as images ``<charts_dir>/<id>.png`` (see :meth:`write`)."""
        out = [f"# {_text(self.title_zh + ' ' if self.title_zh else '')}{_text(self.title)}", ""]
        for title, (text, table) in self.sections.items():
            out += [f"## {_text(self.heading(title))}", ""]
            if title in self.leads:
                out += [f"**{_text(self.leads[title][0])}**", ""]
            if text:
                out += [_text(text), ""]
            for fig in self.figures.get(title, []):
                out += [f"![{_text(fig.caption_zh)}]({charts_dir}/{fig.id}.png)" if charts_dir else f"*{_text(fig.caption_zh)}*", "",
                        f"*{_text(fig.caption_en)}*", ""]
            if table is not None and len(table):
                header, rows, dashed = self._rows(table)
                out += ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
                out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
                out.append("")
                if dashed:
                    out += [f"{DASH_NOTE[0]} {DASH_NOTE[1]}", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        """One self-contained HTML page (charts embedded, nothing from the network), also the PDF's source."""
        from ipvalue.charts import cjk_font_note

        title = html.escape(self.title)
        parts = [f"<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>{html.escape(self.title_zh)} {title}</title>",
                 f"<style>{_STYLE}</style></head><body>",
                 f"<h1>{html.escape(self.title_zh)} <span class='en'>{title}</span></h1>"]
        if any(self.figures.values()) and cjk_font_note():
            parts.append(f"<p class='note'>{html.escape(cjk_font_note())}</p>")
        for name, (text, table) in self.sections.items():
            zh = self.titles_zh.get(name) or SECTION_TITLES.get(name)
            parts.append(f"<section id='section-{_slug(name)}'><h2>{html.escape(zh) + ' ' if zh else ''}<span class='en'>{html.escape(name)}</span></h2>")
            if name in self.leads:
                lead, verdict = self.leads[name]
                parts.append(f"<p class='verdict' id='verdict' style='background:{VERDICT_COLOURS.get(verdict, '#eef3f8')};color:#fff'>{html.escape(lead)}</p>")
            for para in (text or "").split("\n\n"):
                if para.strip():
                    parts.append(f"<p>{html.escape(para).replace(chr(10), '<br>')}</p>")
            for fig in self.figures.get(name, []):
                parts.append(f"<figure id='chart-{html.escape(fig.id)}'><img src='{fig.uri}' alt='{html.escape(fig.caption, quote=True)}'>"
                             f"<figcaption>{html.escape(fig.caption_zh)}<br>{html.escape(fig.caption_en)}</figcaption></figure>")
            if table is not None and len(table):
                header, rows, dashed = self._rows(table)
                numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
                parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>")
                parts += ["<tr>" + "".join(f"<td class='num'>{html.escape(v)}</td>" if num else f"<td>{html.escape(v)}</td>" for v, num in zip(row, numeric)) + "</tr>"
                          for row in rows]
                parts.append("</tbody></table>")
                if dashed:
                    parts.append(f"<p class='note'>{html.escape(DASH_NOTE[0])}<br>{html.escape(DASH_NOTE[1])}</p>")
            parts.append("</section>")
        return "\n".join(parts + ["</body></html>"])

    def write(self, out_dir, stem: str, *, pdf: bool | None = None) -> list[Path]:
        """Write ``<stem>.md`` (charts as ``<stem>_charts/<id>.png``), ``<stem>.html`` (charts
        embedded) and ``<stem>.pdf`` atomically; returns the paths written.

        ``pdf``: True requires the PDF, False skips it, None (default) prints it where this
        machine can (:func:`ipvalue.report.pdf_unavailable`) and logs why not otherwise.
        """
        from ipvalue.report import prints_pdf, render_pdf

        out_dir = Path(out_dir)
        charts = f"{stem}_charts"
        written = []
        for figures in self.figures.values():
            for fig in figures:
                written.append(write_bytes_atomic(base64.b64decode(fig.uri.split(",", 1)[1]), out_dir / charts / f"{fig.id}.png"))
        page = self.to_html()
        written += [write_text_atomic(self.to_markdown(charts_dir=charts), out_dir / f"{stem}.md"), write_text_atomic(page, out_dir / f"{stem}.html")]
        if prints_pdf(pdf, stem):
            written.append(write_bytes_atomic(render_pdf(page), out_dir / f"{stem}.pdf"))
        return written


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _cell(v) -> str:
    return _text(str(v)).replace("|", "\\|").replace("\n", " ")


def _text(text: str) -> str:
    """Markdown text from a run tag or a validator's words: HTML escaped, so a reason cannot
    carry markup into a rendered card."""
    return html.escape(text, quote=False)


def _run_table(run_id: str, artifact: str) -> pd.DataFrame | None:
    """A table the training run logged (CSV or Parquet), or None when the run has none."""
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact)
    except Exception:  # noqa: BLE001 - MLflow raises its own errors for a missing artifact; older runs lack some tables
        logger.info("run %s has no artifact %s", run_id, artifact)
        return None
    return pd.read_parquet(path) if artifact.endswith(".parquet") else pd.read_csv(path)


def model_card(model_uri: str) -> ModelCard:
    """The model card of a registered version, from MLflow (run, tags, spec, aliases, history)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    name, version = resolve_version(model_uri)
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    model = load_model(f"models:/{name}/{version}").estimator
    spec = model.features_.spec_
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    aliases = [a for a, v in client.get_registered_model(name).aliases.items() if str(v) == str(version)]
    kind = tags.get("ipvalue.kind")
    card = ModelCard(f"Model card: {name} version {version}", title_zh=f"模型卡：{name} 第{version}版")
    card.value_labels["feature"] = {f.name: f"{f.description_zh} {f.name}" for f in spec.features}
    card.add("Model details", "\n".join([
        f"Registered model: {name}, version {version}; aliases now: {', '.join(aliases) or 'none'}.",
        f"Kind: {tags.get('ipvalue.kind')}; experiment: {params.get('experiment')}; run {mv.run_id}.",
        f"Training code: git commit {tags.get('git_commit')}; feature spec {spec.id} (hash {spec.hash}).",
        f"Owners: {tags.get('owner', 'the ipvalue model owner of the bank (set the run tag owner)')}; validated by: {mv.tags.get('validated_by', 'not yet validated')}.",
    ]))
    card.add("Intended use", INTENDED_USE)
    card.add("Out-of-scope uses", "\n".join(f"- {x}" for x in OUT_OF_SCOPE))
    card.add("Data", "\n".join([
        f"Source: {tags.get('data_origin', 'unknown')}. Training data hash: {tags.get('training_data_hash')}.",
        f"Split: {params.get('split', '').replace(chr(10), '; ')}." + (f" Observation date (later fee stages censored): {tags.get('observed_until')}." if tags.get("observed_until") else ""),
        "Known limitations: " + ("right-censoring of the fee stages not yet due at the observation date; US-only, university-owned training patents, "
                                 "so Chinese patents are scored outside the training population" if tags.get("ipvalue.kind") == "renewal"
                                 else "labels are appraisal values; on the demo they are synthetic (labelled synthetic)") + ".",
    ]))
    features = pd.DataFrame([{"feature": f.name, "builder": f.builder, "monotone": {1: "+ (value rises)", -1: "- (value falls)", 0: "none"}[f.monotone],
                              "missing": f.missing, "description_zh": f.description_zh, "description_en": f.description_en} for f in spec.features])
    importance = _run_table(mv.run_id, "shap_importance.csv")
    card.add("Features", f"{len(features)} features from {spec.id}; monotone directions are enforced as LightGBM constraints where set.", features,
             figures=[importance_figure(importance.set_index(importance.columns[0]).iloc[:, 0], {f.name: f.description_zh for f in spec.features})]
             if importance is not None and len(importance) else None)
    card.add("Method and assumptions", "\n".join([
        "LightGBM discrete-time hazard model on patent × fee-stage rows (a stage counts only when observed); survival = product of (1 − hazard)."
        if tags.get("ipvalue.kind") == "renewal" else
        "LightGBM regression on log value with monotone constraints; split-conformal P10/P90 interval on log residuals (guaranteed marginal coverage).",
        "Parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if k.startswith("lgbm_")) + ".",
    ]))
    perf = pd.DataFrame(sorted(metrics.items()), columns=["metric", "value"])
    curve = _run_table(mv.run_id, "reliability.csv" if kind == "renewal" else "accuracy_by_decile.csv")
    chart = None if curve is None or not len(curve) else reliability_figure(curve, title_zh="校准曲线（样本外，训练运行）",
                                                                            title_en="Calibration curve, out of time (training run)") \
        if kind == "renewal" else accuracy_figure(curve)
    card.add("Performance", "Out-of-time or grouped cross-validated figures of the training run; baselines scored on the same data. "
                            "The ROC curve and the stability charts of a renewal model are in its validation report.", perf,
             figures=[chart] if chart else None)
    reference = _run_table(mv.run_id, "reference.parquet")
    output = (f"p_fee_{model.headline_stage_}" if kind == "renewal" else "value_p50_rmb") if reference is not None else None
    if output in getattr(reference, "columns", []):
        zh, en = (model.stage_label()["zh"], model.stage_label()["en"]) if kind == "renewal" else ("估值 P50（元）", "value P50 (RMB)")
        card.add("Output distribution", f"The model's output on its training population ({len(reference):,} patents, the reference of "
                                        "ipvalue govern drift).",
                 figures=[distribution_figure(reference[output], name_zh=zh, name_en=en, chart_id="output-distribution",
                                              reference_label=("训练总体", "training population"))])
    card.add("Limitations", "\n".join([
        "Calibration can drift when the population changes: monitor PSI / CSI (ipvalue govern drift).",
        "SHAP contributions explain the model, not causality.",
        "Values are a reference for the credit decision, reconciled with the income approach and reviewed by an officer.",
    ]))
    history = pd.DataFrame(alias_history(name))
    card.add("Version history", "Alias moves recorded by ipvalue (who, when, why).", history if len(history) else None)
    return card
