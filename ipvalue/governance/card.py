"""The model card of a registered version (skops style: a card built section by section), from
MLflow: run, tags, feature spec, aliases and their history."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

from ipvalue.registry import alias_history, load_model, resolve_version

INTENDED_USE = (
    "Internal valuation (内部评估) of patents pledged for bank loans under ¥10 million in the IP-finance pilots "
    "(金发〔2025〕10号): a reference for the credit line beside the income approach, with the officer's review."
)
OUT_OF_SCOPE = [
    "Loans of ¥10 million or more, where an external appraisal remains the norm.",
    "Fair-value accounting, tax, litigation damages or transfer pricing.",
    "Patents outside the training population's offices and types without re-validation (the renewal model is trained on US university patents).",
    "Automated decisions without an officer's review and the eligibility checks.",
]


@dataclass
class ModelCard:
    """A model card built section by section (skops style): ``card.add("Data", text, table)``.

    Sections are addressable by title; ``to_markdown`` and ``to_html`` render the same content.
    """

    title: str
    sections: dict = field(default_factory=dict)

    def add(self, title: str, text: str = "", table: pd.DataFrame | None = None) -> "ModelCard":
        self.sections[title] = (text, table)
        return self

    def to_markdown(self) -> str:
        out = [f"# {_text(self.title)}", ""]
        for title, (text, table) in self.sections.items():
            out += [f"## {_text(title)}", ""]
            if text:
                out += [_text(text), ""]
            if table is not None and len(table):
                cols = list(table.columns)
                out += ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
                out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
                out.append("")
        return "\n".join(out)

    def to_html(self) -> str:
        parts = [f"<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 "<style>body{font-family:Arial,'Noto Sans CJK SC',sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}"
                 "td,th{border:1px solid #ccd;padding:3px 7px}th{background:#eef3f8}</style></head><body>", f"<h1>{html.escape(self.title)}</h1>"]
        for title, (text, table) in self.sections.items():
            parts.append(f"<section><h2>{html.escape(title)}</h2>")
            for para in (text or "").split("\n\n"):
                if para.strip():
                    parts.append(f"<p>{html.escape(para).replace(chr(10), '<br>')}</p>")
            if table is not None and len(table):
                parts.append(table.to_html(index=False, border=0, float_format=lambda x: f"{x:.4g}"))
            parts.append("</section>")
        return "\n".join(parts + ["</body></html>"])


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return _text(str(v)).replace("|", "\\|").replace("\n", " ")


def _text(text: str) -> str:
    """Markdown text from a run tag or a validator's words: HTML escaped, so a reason cannot
    carry markup into a rendered card."""
    return html.escape(text, quote=False)


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
    card = ModelCard(f"Model card: {name} version {version}")
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
    card.add("Features", f"{len(features)} features from {spec.id}; monotone directions are enforced as LightGBM constraints where set.", features)
    card.add("Method and assumptions", "\n".join([
        "LightGBM discrete-time hazard model on patent × fee-stage rows (a stage counts only when observed); survival = product of (1 − hazard)."
        if tags.get("ipvalue.kind") == "renewal" else
        "LightGBM regression on log value with monotone constraints; split-conformal P10/P90 interval on log residuals (guaranteed marginal coverage).",
        "Parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if k.startswith("lgbm_")) + ".",
    ]))
    perf = pd.DataFrame(sorted(metrics.items()), columns=["metric", "value"])
    card.add("Performance", "Out-of-time or grouped cross-validated figures of the training run; baselines scored on the same data.", perf)
    card.add("Limitations", "\n".join([
        "Calibration can drift when the population changes: monitor PSI / CSI (ipvalue govern drift).",
        "SHAP contributions explain the model, not causality.",
        "Values are a reference for the credit decision, reconciled with the income approach and reviewed by an officer.",
    ]))
    history = pd.DataFrame(alias_history(name))
    card.add("Version history", "Alias moves recorded by ipvalue (who, when, why).", history if len(history) else None)
    return card
