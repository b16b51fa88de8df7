"""The charts of the governance documents (model card, validation report, drift report): ROC
curve, reliability diagram, accuracy by decile, PSI / CSI bars, reference-vs-current
distributions and SHAP importance. Each returns a :class:`Figure`: an embedded PNG with its
caption in Chinese and English (the alt text of the image), drawn in the house style
(:mod:`ipvalue.charts`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ipvalue.charts import BLUE, GREY, VERDICT_COLOURS, chart_style, cjk_font, label, png_data_uri
from ipvalue.governance.drift import PSI_ACT, PSI_WATCH


@dataclass
class Figure:
    """A chart of a governance document: ``id`` (HTML id ``chart-<id>``), the PNG as a data URI and
    its caption, Chinese and English."""

    id: str
    uri: str
    caption_zh: str
    caption_en: str

    @property
    def caption(self) -> str:
        return f"{self.caption_zh} {self.caption_en}"


def _unit_square(draw, *, diagonal, x, y, title, legend) -> str:
    """A chart on the unit square with its dashed diagonal (ROC, reliability): ``draw(ax)`` adds the curve."""
    with chart_style() as plt:
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        ax.plot([0, 1], [0, 1], color=GREY, lw=1, linestyle="--", label=label(*diagonal))
        draw(ax)
        ax.set_xlabel(label(*x))
        ax.set_ylabel(label(*y))
        ax.set_title(label(*title, "\n"))
        ax.set_xlim(0, 1), ax.set_ylim(0, 1.01)
        ax.legend(loc=legend)
        return png_data_uri(fig)


def roc_figure(y, p, *, auc: float, title_zh: str = "ROC 曲线（样本外）", title_en: str = "ROC curve, out of time") -> Figure:
    """The ROC curve of probabilities ``p`` for the 0/1 outcomes ``y`` (the event: paid)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(y), np.asarray(p))

    def draw(ax):
        ax.plot(fpr, tpr, color=BLUE, lw=2, label=f"AUC {auc:.3f}")

    uri = _unit_square(draw, diagonal=("随机", "chance"), x=("假阳性率", "false positive rate"), y=("真阳性率", "true positive rate"),
                       title=(title_zh, title_en), legend="lower right")
    return Figure("roc", uri, f"{title_zh}：曲线越靠近左上角，区分能力越强（AUC {auc:.3f}）。",
                  f"{title_en}: the closer to the top left, the better the model separates paid from lapsed (AUC {auc:.3f}).")


def reliability_figure(table: pd.DataFrame, *, title_zh: str = "校准曲线（可靠性图）", title_en: str = "Calibration curve (reliability diagram)") -> Figure:
    """Observed rate against mean predicted probability per bin (``predicted``, ``observed``, ``n``);
    points on the diagonal are calibrated, their size follows the patents in the bin."""
    t = table.dropna(subset=["predicted", "observed"])

    def draw(ax):
        sizes = 20 + 180 * (t["n"] / t["n"].max()) if "n" in t and len(t) else 40
        ax.plot(t["predicted"], t["observed"], color=BLUE, lw=1.5)
        ax.scatter(t["predicted"], t["observed"], s=sizes, color=BLUE, zorder=3, label=label("模型", "model"))

    uri = _unit_square(draw, diagonal=("完全校准", "perfectly calibrated"), x=("预测概率", "predicted probability"), y=("实际比率", "observed rate"),
                       title=(title_zh, title_en), legend="upper left")
    return Figure("calibration", uri, f"{title_zh}：点落在对角线上即预测概率与实际比率一致；点的大小表示该区间的专利数。",
                  f"{title_en}: points on the diagonal mean predicted and observed rates agree; point size shows the patents in the bin.")


def accuracy_figure(table: pd.DataFrame) -> Figure:
    """A value model's accuracy: median observed against median predicted value per decile (log scale)."""
    with chart_style() as plt:
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        lo = float(np.nanmin(table[["predicted", "observed"]].to_numpy()))
        hi = float(np.nanmax(table[["predicted", "observed"]].to_numpy()))
        ax.plot([lo, hi], [lo, hi], color=GREY, lw=1, linestyle="--", label=label("预测=实际", "predicted = observed"))
        ax.plot(table["predicted"], table["observed"], color=BLUE, marker="o", lw=1.5, label=label("十分位中位数", "decile medians"))
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xlabel(label("预测价值（元）", "predicted value (RMB)"))
        ax.set_ylabel(label("实际价值（元）", "observed value (RMB)"))
        ax.set_title(label("分十分位的准确度（交叉验证）", "Accuracy by decile, out of fold", "\n"))
        ax.legend(loc="upper left")
        uri = png_data_uri(fig)
    return Figure("accuracy", uri, "分十分位的准确度（交叉验证）：各预测十分位中实际价值与预测价值的中位数，对数刻度。",
                  "Accuracy by decile, out of fold: median observed against median predicted value in each decile of the prediction, log scale.")


def stability_figure(table: pd.DataFrame, names: dict | None = None, *, top: int = 20,
                     title_zh: str = "稳定性指标（PSI / CSI）", title_en: str = "Stability indices (PSI / CSI)") -> Figure:
    """Horizontal bars of the PSI of each output and the CSI of each feature (``column``, ``kind``,
    ``value``, ``verdict``; the ``top`` largest), coloured by verdict, with the 0.10 and 0.25 lines."""
    t = table.sort_values("value", ascending=False).head(top).iloc[::-1]
    names = (names or {}) if cjk_font() else {}  # Chinese names need a CJK font
    with chart_style() as plt:
        fig, ax = plt.subplots(figsize=(6.8, max(2.4, 0.28 * len(t) + 1.2)))
        ax.barh([names.get(c, c).removeprefix("特征：") for c in t["column"]], t["value"], color=[VERDICT_COLOURS[v] for v in t["verdict"]])
        for x, (zh, en), style in ((PSI_WATCH, ("关注线", "watch"), "--"), (PSI_ACT, ("处置线", "act"), ":")):
            ax.axvline(x, color=GREY, lw=1.2, linestyle=style, label=f"{label(zh, en)} {x:.2f}")
        ax.legend(loc="lower right", fontsize=7)
        ax.set_xlabel(label("指标值", "index value"))
        ax.set_title(label(title_zh, title_en, "\n"))
        ax.set_xlim(0, max(PSI_ACT * 1.3, float(t["value"].max()) * 1.1 if len(t) else 0))
        uri = png_data_uri(fig)
    shown = f"（最大的{len(t)}项）" if len(table) > top else ""
    return Figure("stability", uri, f"{title_zh}{shown}：低于0.10稳定，0.10–0.25需关注，高于0.25需处置。",
                  f"{title_en}{f' (the {len(t)} largest)' if len(table) > top else ''}: below 0.10 stable, 0.10–0.25 watch, above 0.25 act.")


def distribution_figure(reference: pd.Series, current: pd.Series | None = None, *, name_zh: str, name_en: str, chart_id: str,
                        reference_label: tuple[str, str] = ("参考（训练）", "reference (training)"),
                        current_label: tuple[str, str] = ("当前", "current")) -> Figure:
    """Overlaid histograms (shares of patents) of a score: reference against current, or the
    reference alone. Money (all values positive and spread over decades) is drawn on a log scale."""
    series = [(reference, reference_label, GREY if current is not None else BLUE)] + ([(current, current_label, BLUE)] if current is not None else [])
    data = [pd.to_numeric(s, errors="coerce").dropna().to_numpy(float) for s, _, _ in series]
    both = np.concatenate(data)
    log = bool(len(both)) and both.min() > 0 and both.max() / both.min() > 100
    data = [np.log10(d) for d in data] if log else data
    edges = np.histogram_bin_edges(np.concatenate(data), bins=30) if len(both) else np.linspace(0, 1, 31)
    with chart_style() as plt:
        fig, ax = plt.subplots(figsize=(6.0, 3.2))
        for values, (_, (zh, en), colour) in zip(data, series):
            weights = np.full(len(values), 1 / len(values)) if len(values) else None
            ax.hist(values, bins=edges, weights=weights, alpha=0.55, color=colour, label=f"{label(zh, en)} (n={len(values):,})")
        ax.set_xlabel(label(name_zh, name_en) + (" (log10)" if log else ""))
        ax.set_ylabel(label("专利占比", "share of patents"))
        ax.set_title(label(f"{name_zh}的分布", f"Distribution of {name_en}", "\n"))
        ax.legend()
        uri = png_data_uri(fig)
    versus_zh = f"：{reference_label[0]}与{current_label[0]}对比" if current is not None else f"：{reference_label[0]}"
    versus_en = f": {reference_label[1]} against {current_label[1]}" if current is not None else f": {reference_label[1]}"
    return Figure(chart_id, uri, f"{name_zh}的分布{versus_zh}" + ("（对数刻度）" if log else "") + "。",
                  f"Distribution of {name_en}{versus_en}" + (" (log scale)" if log else "") + ".")


def importance_figure(importance: pd.Series, names: dict | None = None, *, top: int = 15) -> Figure:
    """Mean |SHAP| of the ``top`` features (``importance`` indexed by feature name)."""
    t = importance.sort_values(ascending=False).head(top).iloc[::-1]
    names = (names or {}) if cjk_font() else {}  # Chinese names need a CJK font
    with chart_style() as plt:
        fig, ax = plt.subplots(figsize=(6.8, max(2.4, 0.28 * len(t) + 1.2)))
        ax.barh([names.get(f, f) for f in t.index], t.to_numpy(), color=BLUE)
        ax.set_xlabel(label("平均|SHAP|", "mean |SHAP|"))
        ax.set_title(label("特征重要性（SHAP）", "Feature importance (SHAP)", "\n"))
        uri = png_data_uri(fig)
    return Figure("importance", uri, f"特征重要性（SHAP）：对模型输出影响最大的{len(t)}个特征（平均绝对SHAP值）。",
                  f"Feature importance (SHAP): the {len(t)} features that move the model's output most (mean absolute SHAP value).")
