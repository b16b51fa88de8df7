"""Reports of a valuation: a self-contained bilingual HTML page (charts embedded) and JSON."""

from __future__ import annotations

import base64
import io
from importlib import resources
from pathlib import Path

import numpy as np


from ipvalue.io import write_text_atomic

DECISIONS_ZH = {"eligible": "符合内部评估质押条件", "not eligible": "不符合条件", "external appraisal required": "需外部评估", "review required": "需复核签批"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _charts(result) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = {}
    cf = result.cash_flows.groupby("year")["present_value_rmb"].sum() / 1e4
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(cf.index, cf.to_numpy(), color="#2b5d8a")
    ax.set_xlabel("year")
    ax.set_ylabel("present value (10k RMB)")
    ax.set_title("Cash flows of the package (income approach)")
    fig.tight_layout()
    charts["cash_flows"] = _png(fig)

    draws = result.package_draws / 1e4
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(draws, bins=50, color="#7aa6c9")
    for q, style in ((0.05, ":"), (0.5, "-"), (0.95, ":")):
        ax.axvline(np.quantile(draws, q), color="#1d2733", linestyle=style)
    ax.set_xlabel("package value (10k RMB)")
    ax.set_title("Monte Carlo value distribution (P5 / P50 / P95)")
    fig.tight_layout()
    charts["distribution"] = _png(fig)

    t = result.sensitivity.groupby("assumption")[["value_low_rmb", "value_rmb", "value_high_rmb"]].sum() / 1e4
    t = t.assign(swing=(t["value_high_rmb"] - t["value_low_rmb"]).abs()).sort_values("swing")
    fig, ax = plt.subplots(figsize=(5, 3))
    base = t["value_rmb"].iloc[0] if len(t) else 0.0
    ax.barh(t.index, t["value_low_rmb"] - base, left=base, color="#c9764f", label="assumption down")
    ax.barh(t.index, t["value_high_rmb"] - base, left=base, color="#4f8fc9", label="assumption up")
    ax.axvline(base, color="#1d2733")
    ax.set_xlabel("package value (10k RMB)")
    ax.set_title("Sensitivity (tornado)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    charts["tornado"] = _png(fig)
    return charts


def render_html(result) -> str:
    """The report as one HTML string (no external files or network)."""
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(["html", "j2"]))
    template = env.from_string((resources.files("ipvalue") / "templates" / "report.html.j2").read_text(encoding="utf-8"))
    points = result.scorecard_points.sort_values(["patent_id", "points"], ascending=[True, False]).groupby("patent_id").head(5)
    patents = result.patents.replace({np.nan: None})

    def money(x):
        return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.0f}"

    def pct(x, digits=0):
        return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.{digits}f}%"

    def num(x):
        return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:,.4g}"

    return template.render(
        r=result, app=result.application, s=result.summary, decision_zh=DECISIONS_ZH.get(result.summary["decision"], ""),
        patents=patents.to_dict("records"), checks=result.checks.to_dict("records"), sharing=result.risk_sharing.to_dict("records"),
        reasons=result.reasons.to_dict("records"), points=points.to_dict("records"), overrides=result.overrides.to_dict("records"),
        provenance=result.provenance, charts=_charts(result), packages=result.packages.reset_index().to_dict("records"),
        has_renewal="p_fee_2" in result.patents, has_value="ml_value_p50_rmb" in result.patents, money=money, pct=pct, num=num,
    )


def write_reports(result, out_dir: str | Path) -> dict:
    """Write ``<application>-<valuation id>.html`` and ``.json`` atomically; returns their paths."""
    out_dir = Path(out_dir)
    stem = f"{result.application.application_id}-{result.valuation_id}"
    return {
        "html": write_text_atomic(render_html(result), out_dir / f"{stem}.html"),
        "json": write_text_atomic(result.to_json(), out_dir / f"{stem}.json"),
    }
