"""Reports of a valuation: the 内部评估报告 (internal valuation report) a credit committee files,
as self-contained bilingual HTML (charts embedded), PDF (WeasyPrint, CJK font embedded) and JSON.

The report is built from a :class:`~ipvalue.lending.valuation.ValuationResult`; nothing is
revalued here. Its sections are addressable (:func:`report_sections`: ``id``, Chinese and English
title, paragraphs and tables), in the order of a 资产评估报告: 评估目的, 价值类型, 评估基准日,
评估依据, 评估假设, 评估对象与范围, 评估方法选择及理由, 参数, 各方法结果及调和, 敏感性, 处置分析,
准入检查, 特别事项说明, 评估结论有效期及重估触发, 使用限制, 签署. The HTML shows each as
``<section id="section-<id>">``; the JSON for the loan system carries the same sections under
``report``.
"""

from __future__ import annotations

import logging

import base64
import io
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.config import load_yaml
from ipvalue.io import write_text_atomic
from ipvalue.io.register import register_status

VALUE_TYPE_DEFINITIONS = {
    "market_value": ("市场价值", "自愿买方和自愿卖方在各自理性行事且未受任何强迫的情况下，评估对象在评估基准日进行正常公平交易的价值估计数额",
                     "the estimated amount for which the asset would exchange on the valuation date between a willing buyer and a willing seller "
                     "in an arm's-length transaction, each acting knowledgeably and without compulsion"),
    "value_in_use": ("在用价值", "将评估对象作为企业组成部分或者要素资产按其正在使用方式和程度及其对所属企业的贡献的价值估计数额",
                     "the value of the asset to the borrower as part of its business, used as it is used now, by its contribution to that business"),
    "collateral_value": ("抵质押价值", "以抵（质）押为目的，评估对象在处置时扣除强制变现折扣、处置费用与处置时间影响后的价值",
                         "for a pledge: the value on disposal after the forced-sale discount, disposal cost and time to dispose"),
}
VALUE_TYPE_SOURCE = "《资产评估价值类型指导意见》(中评协〔2017〕47号); 抵质押价值 as used for collateral in the same guidance; definitions paraphrased"
#: Months the conclusion may be used after the valuation date (资产评估执业准则——资产评估报告: a report
#: is used when the economic act falls within one year of the valuation date).
VALIDITY_MONTHS = 12
VALIDITY_SOURCE = "《资产评估执业准则——资产评估报告》: 评估基准日与经济行为实现日相距不超过一年时方可使用评估结论 (one year); bank policy may shorten it"

logger = logging.getLogger(__name__)

DECISIONS_ZH = {"eligible": "符合内部评估质押条件", "not eligible": "不符合条件", "external appraisal required": "需外部评估", "review required": "需复核签批", "documents required": "需补充材料"}


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


@dataclass
class Section:
    """One addressable section of the 内部评估报告: paragraphs (Chinese, English) and tables."""

    id: str
    title_zh: str
    title_en: str
    paragraphs: list[tuple[str, str]] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)  # {"id", "columns": [[key, label]], "rows": [dict]}

    def table(self, table_id: str, frame: pd.DataFrame, labels: dict) -> None:
        cols = [c for c in labels if c in frame.columns]
        frame = frame[cols].apply(lambda c: c.dt.strftime("%Y-%m-%d") if pd.api.types.is_datetime64_any_dtype(c) else c)
        rows = json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False, date_unit="s"))
        self.tables.append({"id": table_id, "columns": [[c, labels[c]] for c in cols], "rows": rows})


def _leaves(node, path="") -> list[dict]:
    """Every ``{value, source}`` of an assumption set, with its dotted path."""
    if isinstance(node, dict):
        if "value" in node and "source" in node:
            return [{"parameter": path, "value": node["value"], "source": str(node["source"]).strip()}]
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{path}.{k}" if path else str(k))]
    return []


def _assumption_table(name: str) -> pd.DataFrame:
    raw, _ = load_yaml(name.rsplit("-v", 1)[0]) if name else ({}, "")
    return pd.DataFrame(_leaves(raw), columns=["parameter", "value", "source"])


def report_sections(result) -> list[Section]:
    """The sections of the 内部评估报告, built from the valuation result (nothing is revalued)."""
    app, s, prov, pat = result.application, result.summary, result.provenance, result.patents
    vd = pd.Timestamp(s["valuation_date"])
    checks = result.checks
    status_col = checks["status"] if "status" in checks else np.where(checks["passed"], "pass", "fail")
    checks = checks.assign(status=status_col)
    out = []

    sec = Section("purpose", "评估目的", "Purpose of the valuation")
    sec.paragraphs.append((f"为{app.borrower}以其专利权出质申请知识产权质押贷款（申请 {app.application_id}，金额 {s['requested_amount_rmb']:,.0f} 元，期限 {s['term_years']:g} 年，用途：{app.purpose or '未填'}）提供银行内部评估，"
                           "作为授信审批的参考（金发〔2025〕10号：单笔1000万元以下的知识产权质押贷款可采用内部评估）。",
                           f"Internal valuation by the bank for {app.borrower}'s patent-pledge loan application {app.application_id} "
                           f"({s['requested_amount_rmb']:,.0f} RMB over {s['term_years']:g} years; purpose: {app.purpose or 'not given'}), as input to the credit decision "
                           "(金发〔2025〕10号: internal valuation for IP-pledge loans of ¥10 million or less)."))
    out.append(sec)

    sec = Section("value-type", "价值类型及定义", "Value type and definition")
    used = sorted(set(pat["value_type"].dropna()) | {"collateral_value"})
    for vt in used:
        zh, dzh, den = VALUE_TYPE_DEFINITIONS.get(vt, (vt, "", ""))
        sec.paragraphs.append((f"{zh}（{vt}）：{dzh}", f"{vt}: {den}"))
    sec.paragraphs.append((f"内部评估价值的价值类型：{s['internal_value_type']}；可贷上限依据抵质押价值。来源：{VALUE_TYPE_SOURCE}",
                           f"Value type of the internal value: {s['internal_value_type']}; the loan cap rests on the collateral value. Source: {VALUE_TYPE_SOURCE}"))
    out.append(sec)

    sec = Section("valuation-date", "评估基准日", "Valuation date")
    sec.paragraphs.append((f"评估基准日为 {vd.date()}；登记簿事件、年费与剩余寿命均以该日为准。评估时间 {prov.get('valued_at', '')}。",
                           f"The valuation date is {vd.date()}; register events, fees and remaining lives are taken as of that date. Valued at {prov.get('valued_at', '')}."))
    out.append(sec)

    sec = Section("basis", "评估依据", "Basis of the valuation")
    for zh, en in (("法律法规：《专利法》第10、14、44、66条；《民法典》第440、444、1259条；《专利权质押登记办法》", "Law: 专利法 arts. 10, 14, 44, 66; 民法典 arts. 440, 444, 1259; 专利权质押登记办法"),
                   ("政策：金发〔2025〕10号《知识产权金融生态综合试点工作方案》", "Policy: 金发〔2025〕10号 (IP-finance pilots)"),
                   ("准则：《资产评估基本准则》《资产评估执业准则——无形资产》《资产评估执业准则——资产评估方法》《专利资产评估指导意见》《资产评估价值类型指导意见》（银行内部评估参照执行，非资产评估机构出具）",
                    "Standards (followed by analogy; this is a bank's internal valuation, not an appraisal firm's report): 资产评估基本准则, 无形资产, 资产评估方法, 专利资产评估指导意见, 资产评估价值类型指导意见")):
        sec.paragraphs.append((zh, en))
    docs = pd.DataFrame([{"patent_id": d.patent_id, "kind": d.kind, "reference": d.reference, "co_owner": d.co_owner,
                          "paid_until": None if d.paid_until is None else str(d.paid_until.date())} for d in app.documents],
                        columns=["patent_id", "kind", "reference", "co_owner", "paid_until"])
    sec.table("documents-table", docs, {"patent_id": "专利 Patent", "kind": "文件 Document", "reference": "编号 Reference", "co_owner": "共有人 Co-owner", "paid_until": "缴至 Paid until"})
    data = [("申请文件 application", f"{app.application_id} (input hash {prov.get('input_hash', '')})"),
            ("登记簿导出 register export", app.register.code_table if app.register is not None else "未提供 not provided"),
            ("假设集 assumption set", f"{prov.get('assumption_set', '')} ({prov.get('assumption_set_hash', '')})"),
            ("质押政策 pledge policy", f"{prov.get('pledge_policy', '')} ({prov.get('pledge_policy_hash', '')})"),
            ("调和规则 reconciliation", f"{prov.get('reconciliation_rules', '')}"), ("处置假设 disposal", f"{prov.get('disposal_assumption_set', '')}"),
            ("续费模型 renewal model", f"{prov.get('renewal_model', '')} {prov.get('renewal_model_version', '')}"),
            ("价值模型 value model", f"{prov.get('value_model', '')} {prov.get('value_model_version', '')}")]
    sec.table("data-table", pd.DataFrame(data, columns=["item", "value"]), {"item": "数据 Data", "value": "来源 Source"})
    out.append(sec)

    sec = Section("assumptions", "评估假设", "Assumptions")
    for zh, en in (("交易假设、公开市场假设与持续使用假设：专利按借款人当前方式继续使用", "Transaction, open-market and continued-use assumptions: the patents keep being used as the borrower uses them now"),
                   ("借款人提供的收入预测、财务报表与文件真实完整；登记簿导出反映评估基准日的法律状态", "The borrower's forecast, statements and documents are true and complete; the register export reflects the legal status on the valuation date"),
                   ("年费按期缴纳（或已预缴）至贷款期限加缓冲期届满；专利权未被宣告无效", "Annual fees are paid (or prepaid) through the loan term plus buffer; the rights are not invalidated"),
                   (f"数值假设见参数表（假设集 {prov.get('assumption_set', '')}），每项注明来源；标注“default to calibrate”的为待校准的项目默认值",
                    f"Numeric assumptions are in the parameter table (assumption set {prov.get('assumption_set', '')}), each with its source; 'default to calibrate' marks project defaults awaiting calibration")):
        sec.paragraphs.append((zh, en))
    out.append(sec)

    sec = Section("scope", "评估对象与范围", "Subject and scope (from the register)")
    scope = app.patents[["patent_id", "application_number", "patent_type", "claims_total", "legal_status", "applicants", "fees_paid_until"]].copy()
    if app.register is not None:
        reg = register_status(app.register, app.patents, as_of=vd)
        scope = scope.join(reg[["register_status", "active_pledges", "active_licences", "licence_types", "preservation_in_force", "unknown_codes"]])
    reports = {d.patent_id: d.reference for d in app.documents if d.kind == "evaluation_report"}
    scope["evaluation_report"] = scope["patent_id"].map(reports).where(scope["patent_type"] != "invention", "n/a (invention)")
    scope["co_owners"] = scope["applicants"].fillna("").map(lambda a: ";".join(x for x in str(a).split(";")[1:] if x.strip()))
    sec.table("scope-table", scope, {"patent_id": "专利 Patent", "application_number": "申请号", "patent_type": "类型 Type", "claims_total": "权利要求 Claims",
                                     "legal_status": "法律状态 Status", "register_status": "登记簿状态 Register", "applicants": "权利人 Owners", "co_owners": "共有人 Co-owners",
                                     "active_licences": "有效许可 Licences", "licence_types": "许可类型 Types", "active_pledges": "有效质押 Pledges",
                                     "preservation_in_force": "保全 Preserved", "fees_paid_until": "年费缴至 Fees paid until", "evaluation_report": "评价报告 Evaluation report",
                                     "unknown_codes": "未知代码 Unknown codes"})
    out.append(sec)

    sec = Section("methods", "评估方法选择及理由", "Choice of methods and reasons")
    sec.paragraphs.append(("收益法（收益分成法，按续费生存概率加权）为基本方法；市场法（银行可比交易）与成本法（研发成本，作下限参考）在有数据时使用；机器学习价值模型仅在以真实价格或评估值训练时参与，否则为挑战者。"
                           "按《资产评估基本准则》第十六条，逐件说明主方法的选择理由：",
                           "The income approach (royalty-split, cash flows weighted by the survival probability) is the base; the market approach (the bank's comparables) "
                           "and the cost approach (R&D cost, a floor) are used where their data exist; the ML value model takes part only when trained on real prices or appraisals. "
                           "The primary method of each patent and its reason:"))
    sec.table("method-choice-table", pat, {"patent_id": "专利 Patent", "primary_method": "主方法 Primary", "value_type": "价值类型 Value type",
                                           "method_reason_zh": "理由", "method_reason_en": "Reason"})
    out.append(sec)

    sec = Section("parameters", "参数表", "Parameters and their sources")
    per_patent = pat[["patent_id", "grade", "score", "sharing_rate", "income_period_years", "remaining_life_years", "economic_life_years", "economic_life_source", "pledge_rate"]].copy()
    per_patent = per_patent.merge(app.patents[["patent_id", "revenue_base_rmb", "revenue_growth"]], on="patent_id", how="left")
    per_patent["tax_rate"] = app.tax_rate
    sec.table("patent-parameters-table", per_patent, {"patent_id": "专利 Patent", "revenue_base_rmb": "基期收入 Revenue (RMB)", "revenue_growth": "增长率 Growth",
                                                      "sharing_rate": "分成率 Sharing rate", "score": "评分 Score", "grade": "评级 Grade",
                                                      "remaining_life_years": "剩余法定寿命 Legal life (y)", "economic_life_years": "经济寿命 Econ. life (y)",
                                                      "economic_life_source": "寿命来源 Life source", "income_period_years": "收益期 Income period (y)",
                                                      "tax_rate": "所得税率 Tax (application)", "pledge_rate": "质押率 Pledge rate"})
    if app.financials is not None:
        sec.table("financials-table", app.financials, {"year": "年度 Year", "revenue_rmb": "收入 Revenue (RMB)", "operating_margin": "营业利润率 Operating margin"})
    sec.table("assumption-parameters-table", _assumption_table(prov.get("assumption_set", "")),
              {"parameter": "参数 Parameter（折现率构成、利润率、税率、衰减等）", "value": "取值 Value", "source": "来源 Source"})
    out.append(sec)
    return out


def closing_sections(result) -> list[Section]:
    """The sections after the results: sensitivity, special matters, validity, limits, sign-off."""
    s, prov = result.summary, result.provenance
    vd = pd.Timestamp(s["valuation_date"])
    checks = result.checks.assign(status=result.checks["status"] if "status" in result.checks else np.where(result.checks["passed"], "pass", "fail"))
    out = []

    sec = Section("sensitivity", "敏感性分析", "Sensitivity")
    sens = result.sensitivity.groupby(["assumption", "step"], as_index=False)[["value_low_rmb", "value_rmb", "value_high_rmb"]].sum()
    sec.table("sensitivity-table", sens.sort_values("value_high_rmb", key=lambda v: -(v - sens.loc[v.index, "value_low_rmb"]).abs()),
              {"assumption": "假设 Assumption", "step": "变动 Step", "value_low_rmb": "下调 Down (RMB)", "value_rmb": "基准 Base (RMB)", "value_high_rmb": "上调 Up (RMB)"})
    out.append(sec)

    sec = Section("special-matters", "特别事项说明", "Special matters")
    labels = prov.get("value_model_labels") or ""
    items = []
    if prov.get("renewal_model") not in (None, "", "not used"):
        items.append((f"续费模型 {prov['renewal_model']}（run {prov.get('renewal_run_id', '')}）的训练样本见其模型卡；若以美国高校维持费数据训练，则用于中国专利时仅为替代，需以银行年费数据校准",
                      f"The renewal model {prov['renewal_model']} (run {prov.get('renewal_run_id', '')}): see its model card for the training population; trained on US university maintenance data it is a stand-in for Chinese patents until calibrated on the bank's 年费 data"))
    if labels:
        items.append((f"价值模型以 {labels} 标签训练" + ("（合成数据：仅作挑战者，不参与结论）" if labels == "synthetic" else ""),
                      f"The value model was trained on {labels} labels" + (" (synthetic: a challenger only, not in the conclusion)" if labels == "synthetic" else "")))
    for c in checks[checks["check"].isin(["co_owner_consent", "exclusive_licence", "invalidation_resolved", "register_extract"])].itertuples():
        if c.status != "pass" or c.check == "co_owner_consent" and "单独所有" not in c.reason_zh or c.check == "exclusive_licence" and "独占" in c.reason_zh:
            items.append((f"{c.scope}：{c.reason_zh}", f"{c.scope}: {c.reason_en}"))
    if s.get("review_required"):
        review = s.get("review")
        items.append(("各评估方法结果差异超过政策阈值，需复核人签批" + (f"：已由 {review['reviewer']} 签批（{review['reason']}）" if review else "：尚未签批"),
                      "The methods disagree beyond the policy factor; a reviewer's sign-off is required" + (f": signed off by {review['reviewer']} ({review['reason']})" if review else ": not yet signed off")))
    if s.get("overrides"):
        items.append((f"本次评估含 {s['overrides']} 项人工调整（见人工调整表）", f"{s['overrides']} manual override(s) (see the overrides table)"))
    docs = checks[checks["status"] == "needs_document"]
    for c in docs.itertuples():
        if c.check not in ("co_owner_consent", "exclusive_licence", "invalidation_resolved", "register_extract"):
            items.append((f"待补文件 {c.scope} {c.check}：{c.reason_zh}", f"Document needed {c.scope} {c.check}: {c.reason_en}"))
    sec.paragraphs.extend(items or [("无", "None")])
    out.append(sec)

    sec = Section("validity", "评估结论有效期及重估触发", "Validity and revaluation triggers")
    until = vd + pd.DateOffset(months=VALIDITY_MONTHS)
    sec.paragraphs.append((f"评估结论自评估基准日 {vd.date()} 起 {VALIDITY_MONTHS} 个月内有效（至 {until.date()}）。来源：{VALIDITY_SOURCE}",
                           f"The conclusion may be used for {VALIDITY_MONTHS} months from the valuation date {vd.date()} (until {until.date()}). Source: {VALIDITY_SOURCE}"))
    for zh, en in (("登记簿出现新事件：未缴年费终止（CF01）、保全（PP01）、无效宣告（IW01/IP01）、转移（TR01）、独占许可备案（EE01）", "a new register event: lapse for unpaid fees (CF01), preservation (PP01), invalidation (IW01/IP01), transfer (TR01), an exclusive licence (EE01)"),
                   ("年费未在到期日前缴纳", "an annual fee not paid by its due date"),
                   ("借款人收入或利润率显著偏离预测，或产品停止使用专利", "the borrower's revenue or margin departs markedly from the forecast, or the product stops using the patents"),
                   ("假设集、质押政策或所用模型版本变更", "a change of the assumption set, the pledge policy or a model version used"),
                   ("贷款展期、增额，或借款人新增知识产权质押融资", "a loan extension or increase, or new IP-pledge borrowing by the borrower")):
        sec.paragraphs.append(("重估触发：" + zh, "Revaluation trigger: " + en))
    out.append(sec)

    sec = Section("limits", "使用限制", "Limits of use")
    for zh, en in (("本报告为银行内部评估，仅供本笔质押贷款授信审批与贷后管理使用，不作为资产评估机构出具的评估报告，不得用于其他目的或向第三方提供", "This is the bank's internal valuation for this pledge loan's credit decision and monitoring only; it is not an appraisal firm's report and may not be used for other purposes or given to third parties"),
                   ("评估结论以评估假设和所列文件为前提；前提不成立时结论失效", "The conclusion holds only under the stated assumptions and the documents listed"),
                   (f"评估金额超过 {1e7 / 1e4:,.0f} 万元或借款人知识产权质押融资总敞口超过该限额时，须外部评估", "Above ¥10,000,000, or when the borrower's total IP-pledge exposure exceeds it, an external appraisal is required")):
        sec.paragraphs.append((zh, en))
    out.append(sec)

    sec = Section("sign-off", "签署", "Sign-off")
    review = s.get("review") or {}
    signers = pd.DataFrame([
        {"role": "评估人员 Preparer", "name": prov.get("user", ""), "date": str(prov.get("valued_at", ""))[:10], "note": f"valuation {result.valuation_id}"},
        {"role": "复核人 Reviewer", "name": review.get("reviewer", ""), "date": "", "note": review.get("reason", "") or ("需复核签批 review required" if s.get("review_required") else "")},
        {"role": "审批人 Approver", "name": "", "date": "", "note": ""},
    ])
    sec.table("signoff-table", signers, {"role": "角色 Role", "name": "姓名 Name", "date": "日期 Date", "note": "说明 Note"})
    out.append(sec)
    return out


def report_json(result) -> str:
    """The loan system's JSON: the valuation result plus the report's sections (``report``)."""
    payload = json.loads(result.to_json())
    payload["report"] = [asdict(sec) for sec in report_sections(result) + closing_sections(result)]
    return json.dumps(payload, ensure_ascii=False, indent=2, default=str)


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
        sections=report_sections(result), closing=closing_sections(result), r=result, app=result.application, s=result.summary, decision_zh=DECISIONS_ZH.get(result.summary["decision"], ""),
        patents=patents.to_dict("records"), checks=result.checks.to_dict("records"), sharing=result.risk_sharing.to_dict("records"),
        reasons=result.reasons.to_dict("records"), points=points.to_dict("records"), overrides=result.overrides.to_dict("records"),
        provenance=result.provenance, charts=_charts(result), packages=result.packages.reset_index().to_dict("records"),
        has_renewal="p_fee_headline" in result.patents, has_value="ml_value_p50_rmb" in result.patents, money=money, pct=pct, num=num,
    )


def render_pdf(html: str) -> bytes:
    """The report as PDF (WeasyPrint; the CJK font, Debian ``fonts-noto-cjk``, is embedded as a subset).

    Raises
    ------
    RuntimeError
        No CJK font is installed: the Chinese text would print as boxes.
    """
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration

    _require_cjk_font()
    return weasyprint.HTML(string=html).write_pdf(font_config=FontConfiguration())


def _require_cjk_font() -> None:
    import subprocess

    try:
        found = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if not found:
        raise RuntimeError("No Chinese (CJK) font is installed: the PDF's Chinese text would print as boxes. "
                           "Fix: install one (Debian: apt-get install fonts-noto-cjk).")


def pdf_unavailable() -> str | None:
    """Why this machine cannot print the PDF report (WeasyPrint or its Pango libraries missing, no
    CJK font), or None when it can."""
    try:
        import weasyprint  # noqa: F401  (needs Debian's Pango libraries)
    except (ImportError, OSError) as exc:
        return f"WeasyPrint is not usable ({exc}). Fix: pip install weasyprint and install Debian's libpango-1.0-0 and libpangoft2-1.0-0."
    try:
        _require_cjk_font()
    except RuntimeError as exc:
        return str(exc)
    return None


def write_reports(result, out_dir: str | Path, *, pdf: bool | None = None) -> dict:
    """Write ``<application>-<valuation id>.html``, ``.json`` and ``.pdf`` atomically; returns their paths.

    ``pdf``: True requires the PDF (an error where it cannot be printed), False skips it, None
    (default) prints it where this machine can (:func:`pdf_unavailable`) and logs why not otherwise.
    """
    out_dir = Path(out_dir)
    stem = f"{result.application.application_id}-{result.valuation_id}"
    html = render_html(result)
    paths = {
        "html": write_text_atomic(html, out_dir / f"{stem}.html"),
        "json": write_text_atomic(report_json(result), out_dir / f"{stem}.json"),
    }
    if pdf is None:
        reason = pdf_unavailable()
        if reason:
            logger.warning("PDF report not written: %s", reason)
        pdf = reason is None
    if pdf:
        paths["pdf"] = _write_bytes_atomic(render_pdf(html), out_dir / f"{stem}.pdf")
    return paths


def _write_bytes_atomic(data: bytes, path: Path) -> Path:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
