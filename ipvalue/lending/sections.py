"""The 内部评估报告 of a valuation, as addressable sections (:class:`~ipvalue.report.sections.Report`).

The pipeline's steps own the sections of what they computed (the conclusion and the value chain,
the choice of method, the economic life, the disposal view, the checks, the decision); each method
brings its own (:attr:`MethodResult.sections`); this module puts them in the order of a 资产评估报告:

评估结论 · 评估目的 · 价值类型 · 评估基准日 · 评估依据 · 评估假设 · 评估对象与范围 · 价值链 ·
评估方法选择及理由 · 参数表 · (each method) · 经济寿命 · 处置分析 · 准入检查 · 风险分担 · 解释 ·
人工调整 · 特别事项说明 · 有效期及重估触发 · 使用限制 · 签署 · 附录：计算过程 · 溯源

Nothing is revalued here, and every number a reader needs to re-derive the loan cap is in a table
(the cash flows, the comparables and their adjustments, the cost build-up, the disposal
parameters and the Monte Carlo's seed, draws and quantiles). HTML, PDF and JSON render these
sections alike (:mod:`ipvalue.report.render`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue import terms
from ipvalue.config import load_yaml
from ipvalue.io.register import register_status
from ipvalue.lending.disposal import DisposalAssumptions
from ipvalue.methods.base import VALUE_TYPE_SOURCE, VALUE_TYPES
from ipvalue.report.sections import Chart, Column, Report, Section

#: Months the conclusion may be used after the valuation date (资产评估执业准则——资产评估报告: a report
#: is used when the economic act falls within one year of the valuation date).
VALIDITY_MONTHS = 12
VALIDITY_SOURCE = "《资产评估执业准则——资产评估报告》：评估基准日与经济行为实现日相距不超过一年时方可使用评估结论；银行可在政策中缩短"
PATENT = Column("patent_id", "专利", "Patent")


def _rmb(x) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"¥{x:,.0f}"


def _wan(x) -> str:
    return f"{x / 1e4:,.2f} 万元"


def build_report(result, *, inputs, policy: dict) -> Report:
    """The report of a :class:`~ipvalue.lending.pipeline.ValuationResult`."""
    app, s, prov = result.application, result.summary, result.provenance
    vd = pd.Timestamp(s["valuation_date"])
    report = Report(
        "专利权质押内部评估报告", "Internal valuation report for a patent pledge loan",
        meta={"application_id": app.application_id, "borrower": app.borrower, "valuation_date": s["valuation_date"], "valuation_id": result.valuation_id,
              "decision": s["decision"], "decision_zh": terms.zh(terms.DECISIONS, s["decision"]), "eligible": s["eligible"]},
    )
    report.add(conclusion_section(result), purpose_section(result), value_type_section(result), valuation_date_section(result, vd),
               basis_section(result), assumptions_section(result), scope_section(result, vd), value_chain_section(result),
               methods_section(result), parameters_section(result, inputs, policy))
    for r in result.methods.values():
        report.add(*[sec for sec in r.sections if sec.part == "body"])
    report.add(life_section(result), disposal_section(result), checks_section(result), risk_sharing_section(result),
               explanation_section(result))
    if len(result.overrides):
        report.add(overrides_section(result))
    report.add(special_matters_section(result), validity_section(vd), limits_section(policy), sign_off_section(result))
    for r in result.methods.values():
        report.add(*[sec for sec in r.sections if sec.part == "appendix"])
    report.add(disposal_appendix(result), provenance_section(prov))
    return report


def conclusion_section(result) -> Section:
    s, app = result.summary, result.application
    q = round(100 * (s["disposal_quantile"] or 0.1))
    decision_zh, decision_en = terms.DECISIONS.get(s["decision"], (s["decision"], s["decision"]))
    basis_zh = "、".join(f"{_label(m)[0]}{n}件" for m, n in s["market_value_basis"].items()) or "无"
    basis_en = ", ".join(f"{_label(m)[1]} for {n}" for m, n in s["market_value_basis"].items()) or "none"
    sec = Section("summary", "评估结论", "Conclusion")
    sec.text(
        f"经评估，{app.borrower}出质的 {s['patents']} 件专利（其中有效 {s['patents_in_force']} 件）于评估基准日 {s['valuation_date']} 的市场价值"
        f"（价值类型：市场价值）为人民币 {s['market_value_rmb']:,.0f} 元（依据：{basis_zh}）；以抵押为目的，处置视角第 {q} 百分位的抵质押价值"
        f"（价值类型：抵质押价值）为 {s['collateral_value_rmb']:,.0f} 元，质押率上限为 {s['pledge_value_rmb']:,.0f} 元，质押可贷上限取二者较低者 "
        f"{s['loan_cap_rmb']:,.0f} 元（由{terms.zh(terms.CAP_BASIS, s['loan_cap_basis'])}决定）；申请金额 {s['requested_amount_rmb']:,.0f} 元。结论：{decision_zh}。",
        f"The {s['patents']} patents pledged by {app.borrower} ({s['patents_in_force']} in force) have a market value (value type: market value) of "
        f"RMB {s['market_value_rmb']:,.0f} on {s['valuation_date']} (from {basis_en}); for the pledge, the disposal view's P{q} collateral value "
        f"(value type: collateral value) is RMB {s['collateral_value_rmb']:,.0f} and the pledge-rate limit RMB {s['pledge_value_rmb']:,.0f}, so the loan "
        f"cap is the lower, RMB {s['loan_cap_rmb']:,.0f} (set by {terms.en(terms.CAP_BASIS, s['loan_cap_basis'])}); requested RMB "
        f"{s['requested_amount_rmb']:,.0f}. Decision: {decision_en}.")
    if s.get("review_required"):
        review = s.get("review")
        sec.text("各评估方法结果差异超过政策阈值（或有需复核的提示），需复核人签批" + (f"：已由 {review['reviewer']} 签批（{review['reason']}）" if review else "：尚未签批"),
                 "The methods disagree beyond the policy's factor (or a flag wants review): a reviewer's sign-off is required"
                 + (f": signed off by {review['reviewer']} ({review['reason']})" if review else ": not yet signed off"))
    if s.get("overrides"):
        sec.text(f"本次评估含 {s['overrides']} 项人工调整（见人工调整）。", f"This valuation includes {s['overrides']} manual override(s) (see Manual overrides).")
    chain = value_chain_rows(result)
    sec.table("summary-table", chain, [Column("item_zh", "项目", "Item"), Column("item_en", "Item", "Item (en)"),
                                        Column("value_type_zh", "价值类型", "Value type"), Column("amount_rmb", "金额（元）", "Amount (RMB)", "money")])
    sec.chart(Chart("chart-value-chain", "barh", "价值链与申请金额、可贷上限", "Value chain against the request and the cap", "金额（元）", "amount (RMB)",
                    series=[{"name_zh": "金额", "name_en": "amount", "x": (chain["item_zh"] + " " + chain["item_en"]).tolist()[::-1],
                             "y": chain["amount_rmb"].fillna(0.0).round(2).tolist()[::-1]}]))
    return sec


def value_chain_rows(result) -> pd.DataFrame:
    """The value chain as rows: value in use → market value → collateral value (P50, at the
    quantile) → pledge-rate limit → loan cap, and the request."""
    s = result.summary
    q = round(100 * (s["disposal_quantile"] or 0.1))
    rows = [
        ("在用价值（收益法，借款人自身收入与利润率）", "value in use (income approach on the borrower's own revenue and margin)", "value_in_use", s.get("value_in_use_rmb")),
        ("市场价值（内部评估价值）", "market value (the internal value)", "market_value", s["market_value_rmb"]),
        ("抵质押价值 P50（处置视角）", "collateral value P50 (disposal view)", "collateral_value", s["collateral_value_p50_rmb"]),
        (f"抵质押价值 P{q}（处置视角）", f"collateral value P{q} (disposal view)", "collateral_value", s["collateral_value_rmb"]),
        ("质押率上限（市场价值 × 质押率）", "pledge-rate limit (market value × pledge rate)", "collateral_value", s["pledge_value_rmb"]),
        ("质押可贷上限", "loan cap", "collateral_value", s["loan_cap_rmb"]),
        ("申请金额", "requested amount", "", s["requested_amount_rmb"]),
    ]
    out = pd.DataFrame(rows, columns=["item_zh", "item_en", "value_type", "amount_rmb"])
    out["value_type_zh"] = out["value_type"].map(lambda v: VALUE_TYPES[v][0] if v in VALUE_TYPES else "贷款金额（非价值）")
    return out


def _label(method: str) -> tuple[str, str]:
    from ipvalue.methods import method_labels

    return method_labels().get(method, (method, method))


def purpose_section(result) -> Section:
    app, s = result.application, result.summary
    return Section("purpose", "评估目的", "Purpose of the valuation").text(
        f"为{app.borrower}以其专利权出质申请知识产权质押贷款（申请 {app.application_id}，金额 {s['requested_amount_rmb']:,.0f} 元，期限 {s['term_years']:g} 年，"
        f"用途：{app.purpose or '未填'}）提供银行内部评估，作为授信审批的参考（金发〔2025〕10号：单笔1000万元以下（含本数）的知识产权质押贷款可采用内部评估）。",
        f"Internal valuation by the bank for {app.borrower}'s patent-pledge loan application {app.application_id} ({s['requested_amount_rmb']:,.0f} RMB over "
        f"{s['term_years']:g} years; purpose: {app.purpose or 'not given'}), as input to the credit decision (金发〔2025〕10号: internal valuation for "
        "IP-pledge loans of ¥10 million or less).")


def value_type_section(result) -> Section:
    sec = Section("value-type", "价值类型及定义", "Value types and their definitions")
    used = ["value_in_use", "market_value", "collateral_value"]
    for vt in used:
        zh, en, dzh, den = VALUE_TYPES[vt]
        sec.text(f"{zh}：{dzh}", f"{en}: {den}")
    sec.text("内部评估价值的价值类型为市场价值；可贷上限依据抵质押价值。在用价值仅说明借款人自身经营中的价值，借款人违约时随之消失，不作为抵押依据。来源：" + VALUE_TYPE_SOURCE,
             "The internal value is a market value; the loan cap rests on the collateral value. The value in use describes the right's worth to the "
             "borrower's own business, which is what fails on default: it is never the collateral base. Source: " + VALUE_TYPE_SOURCE)
    return sec


def valuation_date_section(result, vd) -> Section:
    return Section("valuation-date", "评估基准日", "Valuation date").text(
        f"评估基准日为 {vd.date()}；登记簿事件、年费与剩余寿命均以该日为准。评估时间 {result.provenance.get('valued_at', '')}。",
        f"The valuation date is {vd.date()}; register events, fees and remaining lives are taken as of that date. Valued at {result.provenance.get('valued_at', '')}.")


def basis_section(result) -> Section:
    app, prov = result.application, result.provenance
    sec = Section("basis", "评估依据", "Basis of the valuation")
    for zh, en in (("法律法规：《专利法》第10、14、42、44、66条；《民法典》第440、444、1259条；《专利权质押登记办法》",
                    "Law: 专利法 arts. 10, 14, 42, 44, 66; 民法典 arts. 440, 444, 1259; 专利权质押登记办法"),
                   ("政策：金发〔2025〕10号《知识产权金融生态综合试点工作方案》", "Policy: 金发〔2025〕10号 (the IP-finance pilots)"),
                   ("准则：《资产评估基本准则》《资产评估执业准则——无形资产》《资产评估执业准则——资产评估方法》《专利资产评估指导意见》《资产评估价值类型指导意见》"
                    "（银行内部评估参照执行，非资产评估机构出具）",
                    "Standards (followed by analogy; this is a bank's internal valuation, not an appraisal firm's report): 资产评估基本准则, 无形资产, "
                    "资产评估方法, 专利资产评估指导意见, 资产评估价值类型指导意见")):
        sec.text(zh, en)
    docs = pd.DataFrame([{"patent_id": d.patent_id, "kind": terms.both(terms.DOCUMENT_KINDS, d.kind), "reference": d.reference, "co_owner": d.co_owner,
                          "paid_until": None if d.paid_until is None else str(d.paid_until.date())} for d in app.documents],
                        columns=["patent_id", "kind", "reference", "co_owner", "paid_until"])
    sec.table("documents-table", docs, [PATENT, Column("kind", "文件", "Document"), Column("reference", "编号", "Reference"),
                                        Column("co_owner", "共有人", "Co-owner"), Column("paid_until", "缴至", "Paid until", "date")],
              caption_zh="申请所附文件", caption_en="Documents the application references")
    data = [("申请文件", "application", f"{app.application_id}（输入哈希 {prov.get('input_hash', '')}）"),
            ("登记簿导出", "register export", app.register.code_table if app.register is not None else "未提供 not provided"),
            ("收益法假设集", "income assumption set", f"{prov.get('assumption_set', '')}（{prov.get('assumption_set_hash', '')}）"),
            ("质押政策", "pledge policy", f"{prov.get('pledge_policy', '')}（{prov.get('pledge_policy_hash', '')}）"),
            ("调和规则", "reconciliation rules", prov.get("reconciliation_rules", "")),
            ("处置假设", "disposal assumptions", f"{prov.get('disposal_assumption_set', '')}（{prov.get('disposal_assumption_set_hash', '')}）"),
            ("续费模型", "renewal model", f"{prov.get('renewal_model', '未使用')} {prov.get('renewal_model_version', '')}".strip()),
            ("价值模型", "value model", f"{prov.get('value_model', '未使用')} {prov.get('value_model_version', '')}".strip())]
    sec.table("data-table", pd.DataFrame(data, columns=["item_zh", "item_en", "value"]),
              [Column("item_zh", "数据", "Data"), Column("item_en", "Data", "(en)"), Column("value", "来源及版本", "Source and version")])
    return sec


def assumptions_section(result) -> Section:
    sec = Section("assumptions", "评估假设", "Assumptions")
    for zh, en in (("交易假设与公开市场假设：市场价值按自愿买卖双方的正常交易估计", "Transaction and open-market assumptions: the market value is what willing parties would agree"),
                   ("借款人提供的收入预测、财务报表与文件真实完整；登记簿导出反映评估基准日的法律状态", "The borrower's forecast, statements and documents are true and complete; the register export reflects the legal status on the valuation date"),
                   ("年费按期缴纳（或已预缴）至贷款期限加缓冲期届满；专利权未被宣告无效", "Annual fees are paid (or prepaid) through the loan term plus buffer; the rights are not invalidated"),
                   ("各数值假设见参数表，逐项注明来源；标注“待校准”的为项目默认值，须以银行自身数据校准", "Every numeric assumption is in the parameter table with its source; those marked to calibrate are project defaults the bank calibrates on its own data")):
        sec.text(zh, en)
    return sec


def scope_section(result, vd) -> Section:
    app = result.application
    scope = app.patents[["patent_id", "application_number", "patent_type", "claims_total", "legal_status", "applicants", "fees_paid_until"]].copy()
    if app.register is not None:
        reg = register_status(app.register, app.patents, as_of=vd)
        scope = scope.join(reg[["register_status", "active_pledges", "active_licences", "licence_types", "preservation_in_force", "unknown_codes"]])
        scope["register_status"] = scope["register_status"].map(lambda v: terms.both(terms.LEGAL_STATUSES, v) if isinstance(v, str) else None)
    reports = {d.patent_id: d.reference for d in app.documents if d.kind == "evaluation_report"}
    scope["evaluation_report"] = scope["patent_id"].map(reports).where(scope["patent_type"] != "invention", "发明无需 n/a (invention)")
    scope["patent_type"] = scope["patent_type"].map(lambda v: terms.both(terms.PATENT_TYPES, v))
    scope["legal_status"] = scope["legal_status"].map(lambda v: terms.both(terms.LEGAL_STATUSES, v))
    sec = Section("scope", "评估对象与范围", "Subject and scope")
    sec.text("评估对象为下列专利权（登记簿信息来自申请所附的国家知识产权局法律状态导出）。" if app.register is not None else
             "评估对象为下列专利权；申请未附国家知识产权局法律状态导出，登记簿信息须补充。",
             "The subject is the patents below (register facts from the CNIPA legal-status export the application attaches)." if app.register is not None else
             "The subject is the patents below; the application attaches no CNIPA legal-status export, so the register facts are to be supplied.")
    sec.table("scope-table", scope, [
        PATENT, Column("application_number", "申请号", "Application no."), Column("patent_type", "类型", "Type"),
        Column("claims_total", "权利要求数", "Claims", "integer"), Column("legal_status", "法律状态", "Status"),
        Column("register_status", "登记簿状态", "Register status"), Column("applicants", "权利人", "Owners"),
        Column("active_licences", "有效许可", "Licences", "integer"), Column("active_pledges", "有效质押", "Pledges", "integer"),
        Column("fees_paid_until", "年费缴至", "Fees paid until", "date"), Column("evaluation_report", "评价报告", "Evaluation report"),
    ])
    return sec


def value_chain_section(result) -> Section:
    p = result.patents
    sec = Section("value-chain", "价值链：在用价值 → 市场价值 → 抵质押价值 → 可贷上限", "Value chain: value in use → market value → collateral value → loan cap")
    sec.text("在用价值按借款人自身收入、利润率与税率计算，仅作业务参考；市场价值取通过证据检验的市场法，否则取按市场参与者口径重述的收益法（行业利润率、标准税率，不含借款人特有的协同效应），"
             "或以真实价格训练的价值模型；抵质押价值为市场价值的处置视角（扣除强制变现折扣、处置费用与处置期间持有成本），在市场价值分布的政策分位数上读取；"
             "可贷上限取抵质押价值与质押率上限（市场价值 × 质押率）的较低者。",
             "The value in use is the borrower's own revenue, margin and tax rate: for information. The market value is the market approach where its "
             "comparables pass the evidence tests, else the income approach restated for a market participant (sector margin, standard tax, none of the "
             "borrower's own synergies), or a value model trained on real prices; the collateral value is the market value's disposal view (less the "
             "forced-sale discount, disposal costs and the cost of holding while disposing), read at the policy's quantile of the market value's "
             "distribution; the loan cap is the lower of that and the pledge-rate limit (market value × pledge rate).")
    table = p.assign(basis_label=p["basis_method"].map(lambda m: " ".join(_label(m)) if m else "—"),
                     patent_type_label=p["patent_type"].map(lambda v: terms.both(terms.PATENT_TYPES, v)))
    sec.table("value-chain-table", table, [
        PATENT, Column("patent_type_label", "类型", "Type"), Column("value_in_use_rmb", "在用价值", "Value in use", "money"),
        Column("market_value_rmb", "市场价值", "Market value", "money"), Column("basis_label", "市场价值依据", "Market value from"),
        Column("collateral_value_rmb", "抵质押价值（分摊）", "Collateral value (share)", "money"), Column("pledge_rate", "质押率", "Pledge rate", "percent1"),
        Column("pledge_value_rmb", "质押率上限", "Pledge-rate limit", "money"),
    ])
    pk = result.packages.reset_index()
    sec.table("packages-table", pk, [
        Column("package_id", "专利包", "Package"), Column("value_in_use_rmb", "在用价值", "Value in use", "money"),
        Column("market_value_rmb", "市场价值", "Market value", "money"), Column("collateral_value_p50_rmb", "抵质押价值 P50", "Collateral value P50", "money"),
        Column("collateral_value_q_rmb", "抵质押价值（政策分位）", "Collateral value (policy quantile)", "money"),
        Column("pledge_value_rmb", "质押率上限", "Pledge-rate limit", "money"),
    ], caption_zh="专利包为质押单位", caption_en="The package is the pledge unit")
    return sec


def methods_section(result) -> Section:
    p = result.patents
    sec = Section("methods", "评估方法选择及理由", "Choice of methods and reasons")
    sec.text("按《资产评估基本准则》第十六条，各方法的结果经分析比较，逐件按数据的质量与数量选择市场价值的依据：通过证据检验的市场法优先，其次为有财务报表支持的收益法"
             "（市场参与者口径）、以真实价格训练的价值模型、仅有预测的收益法；未通过检验的市场法与成本法作交叉核对或下限参考；合成数据训练的模型仅供参考。"
             "各方法中心值差异超过政策系数时需复核签批。",
             "Under 资产评估基本准则 art. 16 the methods' results are compared and, patent by patent, the market value is taken from the best evidence: a market "
             "approach passing its evidence tests, then the income approach backed by statements (market-participant basis), a value model trained on real "
             "prices, the income approach on the forecast alone; a market approach that fails its tests and the cost approach are cross-checks or a floor; a "
             "model trained on synthetic labels is for information. When the methods' central values differ beyond the policy's factor, a reviewer signs off.")
    cols = [PATENT]
    for name, r in result.methods.items():
        cols.append(Column(f"method_{name}_rmb", r.label_zh, r.label_en, "money"))
        cols.append(Column(f"{name}_role_label", f"{r.label_zh}作用", f"role of the {r.label_en}"))
    table = p.copy()
    for name in result.methods:
        table[f"{name}_role_label"] = table.get(f"{name}_role", pd.Series("none", index=p.index)).map(lambda v: terms.zh(terms.ROLES, v))
    table["basis_label"] = p["basis_method"].map(lambda m: _label(m)[0] if m else "—")
    cols += [Column("basis_label", "市场价值依据", "Market value from"), Column("disagreement", "方法差异（倍）", "Disagreement (x)", "number")]
    sec.table("methods-table", table, cols)
    sec.table("method-choice-table", p, [PATENT, Column("method_reason_zh", "理由", "Reason"), Column("method_reason_en", "Reason", "Reason (en)")])
    for name, zh, en in result.skipped_methods:
        sec.text(zh, en)
    return sec


def parameters_section(result, inputs, policy: dict) -> Section:
    """参数表: the values applied, each with where it came from."""
    app, prov = result.application, result.provenance
    rows = []

    def add(zh, en, value, kind, source):
        rows.append({"parameter_zh": zh, "parameter_en": en, "value": value, "kind": kind, "source": source})

    income = result.methods.get("income")
    if income is not None:
        c = income.columns
        from ipvalue.methods.income import IncomeAssumptions

        a = IncomeAssumptions.load(app.assumption_set)
        aset = prov.get("assumption_set", "")
        add("所得税率（在用价值）", "tax rate (value in use)", float(c["tax_rate"].iloc[0]), "percent",
            "申请 application" if app.tax_rate is not None else f"假设集 {aset}")
        add("所得税率（市场参与者）", "tax rate (market participant)", a.tax_rate, "percent", f"假设集 {aset}：标准税率")
        add("营业利润率（在用价值）", "operating margin (value in use)", float(c["operating_margin"].iloc[0]), "percent", str(c["margin_source"].iloc[0]))
        add("营业利润率（市场参与者）", "operating margin (market participant)", float(c["margin_benchmark"].iloc[0]), "percent", prov.get("industry_margin_set", ""))
        add("利润分成比例下限", "profit split, low", a.profit_split[0], "percent", f"假设集 {aset}")
        add("利润分成比例上限", "profit split, high", a.profit_split[1], "percent", f"假设集 {aset}")
        add("无风险利率", "risk-free rate", a.risk_free, "percent", f"假设集 {aset}")
        for k, v in a.premiums.items():
            add(f"风险溢价：{k}", f"premium: {k}", v, "percent", f"假设集 {aset}")
        add("折现率", "discount rate", a.discount_rate, "percent", f"假设集 {aset}：无风险利率 + 溢价")
        add("收入预测基期收入", "base revenue of the forecast", float(app.patents["revenue_base_rmb"].iloc[0]) if app.patents["revenue_base_rmb"].notna().any() else None,
            "money", "申请 application")
        add("折现方式", "discounting", "年中 mid-year" if a.mid_year else "年末 end of year", "text", f"假设集 {aset}")
        add("蒙特卡洛情景数 / 种子", "Monte Carlo draws / seed", f"{inputs.scenarios.n_draws:,} / {inputs.scenarios.seed}", "text", f"假设集 {aset}")
    d = DisposalAssumptions.load()
    for zh, en, v in (("强制变现折扣", "forced-sale discount", d.forced_sale_discount), ("处置费用率", "disposal cost rate", d.disposal_cost_rate),
                      ("处置期间持有成本（年）", "holding rate (per year)", d.holding_rate)):
        add(zh, en, v, "percent", f"处置假设 {d.name}-v{d.version}")
    add("处置年限（年）", "years to dispose", d.time_to_dispose_years, "years", f"处置假设 {d.name}-v{d.version}")
    add("可贷上限分位数", "quantile of the cap", d.cap_quantile, "percent", f"处置假设 {d.name}-v{d.version}")
    for ptype, rate in policy["pledge_rate"].items():
        add(f"质押率：{terms.zh(terms.PATENT_TYPES, ptype)}", f"pledge rate: {terms.en(terms.PATENT_TYPES, ptype)}", float(rate["value"]), "percent",
            f"质押政策 {prov.get('pledge_policy', '')}")
    add("方法差异系数", "disagreement factor", float(policy["reconciliation"]["disagreement_factor"]["value"]), "number", f"质押政策 {prov.get('pledge_policy', '')}")
    add("内部评估限额（含本数）" if policy["internal_valuation_limit_rmb"].get("inclusive", True) else "内部评估限额（不含本数）", "internal-valuation limit",
        float(policy["internal_valuation_limit_rmb"]["value"]), "money", f"质押政策 {prov.get('pledge_policy', '')}；金发〔2025〕10号；民法典第1259条")
    if prov.get("renewal_model") not in (None, "", "not used"):
        add("续费模型", "renewal model", f"{prov['renewal_model']}（版本 {prov.get('renewal_model_version', '')}）", "text", "模型注册表 model registry")
    sec = Section("parameters", "参数表", "Parameters applied and their sources")
    sec.text("下表为本次评估实际采用的数值及其来源（申请资料、银行配置的假设集及版本、注册模型版本）；逐件专利的参数见各方法一节。",
             "The values this valuation applied and where each came from (the application, the bank's assumption set and version, the registered model "
             "version); per-patent parameters are in each method's section.")
    table = pd.DataFrame(rows)
    table["value_text"] = [_fmt_value(v, k) for v, k in zip(table["value"], table["kind"])]
    sec.table("parameters-table", table, [Column("parameter_zh", "参数", "Parameter"), Column("parameter_en", "Parameter", "(en)"),
                                          Column("value_text", "取值", "Value"), Column("source", "来源", "Source")])
    return sec


def _fmt_value(v, kind) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    if kind == "percent":
        return f"{100 * v:.2f}%"
    if kind == "money":
        return f"¥{v:,.0f}"
    if kind == "years":
        return f"{v:g} 年"
    if kind == "number":
        return f"{v:g}"
    return str(v)


def life_section(result) -> Section:
    p, prov = result.patents, result.provenance
    sec = Section("economic-life", "经济寿命与有效概率", "Economic life and the probability in force")
    sec.text("两件事终止专利的超额收益：未缴年费失效（各年末仍有效的概率 S_t：续费模型，中国专利取中国专利年费生存表的水平（待校准）与模型的排序；"
             "已预缴年费的期间不计失效风险），以及技术与市场的过时（按技术领域的年衰减率 O_t，待校准）。各年现金流按 W_t = S_t × O_t × A_t 加权，"
             "A_t 为该年落在剩余法定期限内的比例。经济寿命为超额收益期（O_t × A_t 之和），预期有效期为 S_t 曲线下的面积。",
             "Two things end a patent's excess returns: lapse for unpaid fees (S_t, the probability it is in force at the end of year t: the renewal "
             "model; Chinese patents take the CN life table's level, to calibrate, and the model's order; no lapse risk while fees are prepaid) and "
             "technology and market obsolescence (O_t, a yearly rate by technology field, to calibrate). Each year's cash flow is weighted by "
             "W_t = S_t × O_t × A_t, A_t the share of the year inside the remaining legal life. The economic life is the period of excess returns "
             "(the sum of O_t × A_t); the expected period in force is the area under S_t.")
    if prov.get("renewal_model") not in (None, "", "not used"):
        sec.text(f"续费模型 {prov['renewal_model']}（版本 {prov.get('renewal_model_version', '')}），特征按评估基准日计算。",
                 f"Renewal model {prov['renewal_model']} (version {prov.get('renewal_model_version', '')}), its features as of the valuation date.")
    table = p.assign(economic_life_source=p["economic_life_source"].map(lambda v: terms.both(terms.LIFE_SOURCES, v)),
                     fee_survival_source=p.get("fee_survival_source", pd.Series("", index=p.index)).map(lambda v: terms.both(terms.LIFE_SOURCES, v) if v else ""))
    cols = [PATENT, Column("remaining_life_years", "剩余法定寿命（年）", "Legal life (y)", "years"),
            Column("expected_in_force_years", "预期有效期（年）", "Expected years in force", "years"),
            Column("fees_paid_until_documented", "年费缴至", "Fees paid until", "date"),
            Column("obsolescence_rate", "年过时率", "Obsolescence per year", "percent1"),
            Column("economic_life_years", "经济寿命（年）", "Economic life (y)", "years"), Column("economic_life_source", "经济寿命来源", "Source")]
    if "p_fee_headline" in p:
        cols += [Column("headline_zh", "概率口径", "What the probability is"), Column("p_fee_headline", "概率", "Probability", "percent1")]
    sec.table("life-table", table, cols)
    curves = result.life
    if curves is not None:
        s_t = curves.survival()
        last = int(np.max(np.ceil(curves.legal_life), initial=1)) or 1
        years = list(range(1, min(last, s_t.shape[1]) + 1))
        sec.chart(Chart("chart-survival", "step", "各年末有效概率 S_t", "Probability in force at the end of year t (S_t)", "评估基准日后年数", "years after the valuation date",
                        "概率", "probability",
                        series=[{"name_zh": pid, "name_en": pid, "x": years, "y": [round(float(v), 4) for v in s_t[j, :len(years)]]}
                                for j, pid in enumerate(p["patent_id"])]))
    return sec


def disposal_section(result) -> Section:
    s = result.summary
    d = DisposalAssumptions.load()
    q = round(100 * (s["disposal_quantile"] or d.cap_quantile))
    sec = Section("disposal", "处置分析", "Disposal view")
    sec.text(f"抵质押价值 = 市场价值 ×（1 − 强制变现折扣 {d.forced_sale_discount:.0%} − 处置费用率 {d.disposal_cost_rate:.0%}）÷（1 + 持有成本 {d.holding_rate:.0%}）^ 处置年限 {d.time_to_dispose_years:g}"
             f" = 市场价值 × {d.realisation_factor:.4f}，逐情景计算，专利包情景合计后取第 {q} 百分位；不超过变现系数 × 市场价值。",
             f"Collateral value = market value × (1 − forced-sale discount {d.forced_sale_discount:.0%} − disposal cost {d.disposal_cost_rate:.0%}) ÷ (1 + holding rate "
             f"{d.holding_rate:.0%}) ^ {d.time_to_dispose_years:g} year(s) = market value × {d.realisation_factor:.4f}, scenario by scenario; the package's "
             f"summed scenarios are read at P{q}; never above the realisation factor × the market value.")
    raw, _ = load_yaml("disposal-cn")
    params = pd.DataFrame([
        {"parameter_zh": zh, "parameter_en": en, "value": float(raw[key]["value"]), "source": " ".join(str(raw[key]["source"]).split())}
        for key, zh, en in (("forced_sale_discount", "强制变现折扣", "forced-sale discount"), ("disposal_cost_rate", "处置费用率", "disposal cost rate"),
                            ("time_to_dispose_years", "处置年限（年）", "years to dispose"), ("holding_rate", "持有成本（年）", "holding rate per year"),
                            ("cap_quantile", "可贷上限分位数", "quantile of the cap"))
    ])
    sec.table("disposal-parameters-table", params, [Column("parameter_zh", "参数", "Parameter"), Column("parameter_en", "Parameter", "(en)"),
                                                    Column("value", "取值", "Value", "number"), Column("source", "来源", "Source")])
    draws = result.market_draws.sum(axis=0) if result.market_draws is not None else np.zeros(1)
    collateral = draws * d.realisation_factor
    sec.chart(Chart("chart-distribution", "hist", "市场价值分布与处置视角（专利包合计）", "Market value distribution and the disposal view (package total)",
                    "金额（元）", "amount (RMB)", "情景数", "scenarios",
                    series=[{"name_zh": "市场价值情景", "name_en": "market value scenarios", "values": np.round(draws, 2).tolist()}],
                    markers=[{"x": float(np.median(draws)), "label_zh": "市场价值 P50", "label_en": "market value P50"},
                             {"x": float(s["collateral_value_rmb"]), "label_zh": f"抵质押价值 P{q}", "label_en": f"collateral value P{q}"},
                             {"x": float(np.quantile(collateral, 0.5)), "label_zh": "抵质押价值 P50", "label_en": "collateral value P50"}]))
    return sec


def disposal_appendix(result) -> Section:
    """The disposal view's workings: seed, draws and the quantiles a reader checks."""
    s, prov = result.summary, result.provenance
    d = DisposalAssumptions.load()
    draws = result.market_draws.sum(axis=0) if result.market_draws is not None else np.zeros(1)
    pk = result.packages.reset_index()
    sec = Section("appendix-disposal", "计算过程：处置视角与可贷上限", "Workings: the disposal view and the loan cap", part="appendix")
    sec.text(f"蒙特卡洛 {prov.get('monte_carlo_draws', len(draws)):,} 个情景，随机种子 {prov.get('monte_carlo_seed', '')}；专利包市场价值情景的 P10 / P50 / P90 为 "
             f"{np.quantile(draws, 0.1):,.0f} / {np.quantile(draws, 0.5):,.0f} / {np.quantile(draws, 0.9):,.0f} 元；变现系数 {d.realisation_factor:.6f}；"
             f"抵质押价值 P{round(100 * d.cap_quantile)} = {s['collateral_value_rmb']:,.2f} 元；质押率上限 = Σ 市场价值 × 质押率 = {s['pledge_value_rmb']:,.2f} 元；"
             f"可贷上限 = min(二者) = {s['loan_cap_rmb']:,.2f} 元。",
             f"Monte Carlo {prov.get('monte_carlo_draws', len(draws)):,} scenarios, seed {prov.get('monte_carlo_seed', '')}; the package market value's "
             f"P10 / P50 / P90 are {np.quantile(draws, 0.1):,.0f} / {np.quantile(draws, 0.5):,.0f} / {np.quantile(draws, 0.9):,.0f} RMB; realisation factor "
             f"{d.realisation_factor:.6f}; collateral value P{round(100 * d.cap_quantile)} = {s['collateral_value_rmb']:,.2f} RMB; pledge-rate limit = Σ market "
             f"value × pledge rate = {s['pledge_value_rmb']:,.2f} RMB; loan cap = the lower = {s['loan_cap_rmb']:,.2f} RMB.")
    sec.table("disposal-packages-table", pk, [
        Column("package_id", "专利包", "Package"), Column("market_value_rmb", "市场价值", "Market value", "money2"),
        Column("market_value_p50_rmb", "市场价值情景 P50", "Market value scenarios P50", "money2"),
        Column("realisation_factor", "变现系数", "Realisation factor", "rate"), Column("quantile", "分位数", "Quantile", "percent1"),
        Column("collateral_value_p50_rmb", "抵质押价值 P50", "Collateral value P50", "money2"),
        Column("collateral_value_q_rmb", "抵质押价值（分位）", "Collateral value (quantile)", "money2"),
        Column("pledge_value_rmb", "质押率上限", "Pledge-rate limit", "money2"),
    ])
    return sec


def checks_section(result) -> Section:
    c = result.checks.copy()
    c["check_label"] = c["check"].map(lambda k: terms.zh(terms.CHECKS, k))
    c["check_label_en"] = c["check"].map(lambda k: terms.en(terms.CHECKS, k))
    c["status_label"] = c["status"].map(lambda k: terms.both(terms.CHECK_STATUSES, k))
    c["scope_label"] = c["scope"].where(c["scope"] != "application", "申请 application")
    sec = Section("checks", "准入检查", "Eligibility checks")
    sec.table("checks-table", c, [Column("scope_label", "范围", "Scope"), Column("check_label", "检查", "Check"), Column("check_label_en", "Check", "(en)"),
                                  Column("status_label", "结果", "Result"), Column("reason_zh", "说明", "Reason"), Column("reason_en", "Reason", "Reason (en)")])
    return sec


def risk_sharing_section(result) -> Section:
    s = result.summary
    sec = Section("risk-sharing", "风险分担", "Risk sharing")
    sec.text(f"风险分担方案：{s['risk_sharing_scheme']}；损失按风险敞口 min(申请金额, 可贷上限) 全损计算，银行承担 {s['bank_share_of_loss']:.0%}。",
             f"Risk-sharing scheme: {s['risk_sharing_scheme']}; shares of a full loss of the exposure min(requested, cap); the bank bears {s['bank_share_of_loss']:.0%}.")
    sec.table("risk-table", result.risk_sharing, [Column("party", "参与方", "Party"), Column("share", "比例", "Share", "percent1"),
                                                   Column("loss_rmb", "损失承担", "Loss", "money")])
    return sec


def explanation_section(result) -> Section:
    sec = Section("explanation", "解释：理由与评分", "Explanation: reasons and scorecard")
    reasons = result.reasons.copy()
    if len(reasons):
        reasons["model_label"] = reasons["model"].map({"renewal": "续费模型 renewal model", "value": "价值模型 value model"}).fillna(reasons["model"])
        sec.table("reasons-table", reasons, [PATENT, Column("model_label", "模型", "Model"), Column("rank", "序", "#", "integer"),
                                             Column("reason_zh", "原因", "Reason"), Column("reason_en", "Reason", "Reason (en)")])
        top = reasons[(reasons["model"] == "renewal") & (reasons["rank"] >= 1)].copy() if "renewal" in set(reasons["model"]) else reasons[reasons["rank"] >= 1].copy()
        if len(top) and "contribution" in top:
            top = top.assign(points=100 * top["contribution"].astype(float)).head(12)
            sec.chart(Chart("chart-reasons", "barh", "主要理由（概率点 / 贡献）", "Top reasons (probability points / contribution)", "贡献", "contribution",
                            series=[{"name_zh": "贡献", "name_en": "contribution", "x": (top["patent_id"] + " " + top["reason_zh"].str.slice(0, 24)).tolist(),
                                     "y": top["points"].round(2).tolist()}]))
    else:
        sec.text("未使用机器学习模型。", "No ML model was used.")
    points = result.scorecard_points.sort_values(["patent_id", "points"], ascending=[True, False]).groupby("patent_id").head(5)
    sec.table("points-table", points, [PATENT, Column("label_zh", "指标", "Indicator"), Column("label_en", "Indicator", "(en)"),
                                       Column("points", "得分", "Points", "number"), Column("max_points", "满分", "Max", "number")],
              caption_zh="评分卡得分（每件前5项）", caption_en="Scorecard points (top 5 per patent)")
    return sec


def overrides_section(result) -> Section:
    o = result.overrides.assign(field_label=result.overrides["field"].map(lambda k: terms.both(terms.OVERRIDE_FIELDS, k)))
    sec = Section("overrides", "人工调整", "Manual overrides")
    sec.table("overrides-table", o, [PATENT, Column("field_label", "字段", "Field"), Column("model_value", "模型值", "Model value", "number"),
                                     Column("override_value", "调整值", "Override", "number"), Column("reason", "原因", "Reason"),
                                     Column("officer", "经办人", "Officer")])
    return sec


def special_matters_section(result) -> Section:
    s, prov, checks = result.summary, result.provenance, result.checks
    items = []
    if prov.get("renewal_model") not in (None, "", "not used"):
        items.append((f"续费模型 {prov['renewal_model']} 的训练样本见其模型卡；若以美国高校维持费数据训练，则用于中国专利时仅为替代，须以银行年费数据校准",
                      f"The renewal model {prov['renewal_model']}: see its model card for the training population; trained on US university maintenance data it "
                      "is a stand-in for Chinese patents until calibrated on the bank's 年费 data"))
    labels = prov.get("value_model_labels") or ""
    if labels:
        synthetic = labels == "synthetic"
        items.append(("价值模型以" + ("合成数据训练：仅供参考，不参与结论与差异检验" if synthetic else f"{labels} 标签训练"),
                      "The value model learnt from " + ("synthetic labels: for information only, in no check" if synthetic else f"{labels} labels")))
    for c in checks[checks["check"].isin(["co_owner_consent", "exclusive_licence", "invalidation_resolved", "register_extract"])].itertuples():
        if c.status != "pass" or c.check == "co_owner_consent" and "单独所有" not in c.reason_zh or c.check == "exclusive_licence" and "独占" in c.reason_zh:
            items.append((f"{c.scope}：{c.reason_zh}", f"{c.scope}: {c.reason_en}"))
    if result.flags is not None:
        for f in result.flags.itertuples():
            items.append((f"{f.scope}：{f.reason_zh}", f"{f.scope}: {f.reason_en}"))
    if s.get("methods_disagree"):
        review = s.get("review")
        items.append(("各评估方法结果差异超过政策阈值，需复核人签批" + (f"：已由 {review['reviewer']} 签批（{review['reason']}）" if review else "：尚未签批"),
                      "The methods disagree beyond the policy factor; a reviewer's sign-off is required" + (f": signed off by {review['reviewer']} ({review['reason']})" if review else ": not yet signed off")))
    if s.get("overrides"):
        items.append((f"本次评估含 {s['overrides']} 项人工调整（见人工调整）", f"{s['overrides']} manual override(s) (see Manual overrides)"))
    for c in checks[checks["status"] == "needs_document"].itertuples():
        if c.check not in ("co_owner_consent", "exclusive_licence", "invalidation_resolved", "register_extract"):
            items.append((f"待补材料 {c.scope}（{terms.zh(terms.CHECKS, c.check)}）：{c.reason_zh}", f"Document needed {c.scope} ({terms.en(terms.CHECKS, c.check)}): {c.reason_en}"))
    sec = Section("special-matters", "特别事项说明", "Special matters")
    for zh, en in items or [("无", "None")]:
        sec.text(zh, en)
    return sec


def validity_section(vd) -> Section:
    until = vd + pd.DateOffset(months=VALIDITY_MONTHS)
    sec = Section("validity", "评估结论有效期及重估触发", "Validity and revaluation triggers")
    sec.text(f"评估结论自评估基准日 {vd.date()} 起 {VALIDITY_MONTHS} 个月内有效（至 {until.date()}）。来源：{VALIDITY_SOURCE}",
             f"The conclusion may be used for {VALIDITY_MONTHS} months from the valuation date {vd.date()} (until {until.date()}); a bank's policy may shorten it.")
    for zh, en in (("登记簿出现新事件：未缴年费终止（CF01）、保全（PP01）、无效宣告（IW01/IP01）、转移（TR01）、独占许可备案（EE01）",
                    "a new register event: lapse for unpaid fees (CF01), preservation (PP01), invalidation (IW01/IP01), transfer (TR01), an exclusive licence (EE01)"),
                   ("年费未在到期日前缴纳", "an annual fee not paid by its due date"),
                   ("借款人收入或利润率显著偏离预测，或产品停止使用专利", "the borrower's revenue or margin departs markedly from the forecast, or the product stops using the patents"),
                   ("假设集、质押政策或所用模型版本变更", "a change of the assumption sets, the pledge policy or a model version used"),
                   ("贷款展期、增额，或借款人新增知识产权质押融资", "a loan extension or increase, or new IP-pledge borrowing by the borrower")):
        sec.text("重估触发：" + zh, "Revaluation trigger: " + en)
    return sec


def limits_section(policy: dict) -> Section:
    limit = float(policy["internal_valuation_limit_rmb"]["value"])
    inclusive = policy["internal_valuation_limit_rmb"].get("inclusive", True)
    sec = Section("limits", "使用限制", "Limits of use")
    for zh, en in (("本报告为银行内部评估，仅供本笔质押贷款授信审批与贷后管理使用，不作为资产评估机构出具的评估报告，不得用于其他目的或向第三方提供",
                    "This is the bank's internal valuation for this pledge loan's credit decision and monitoring only; it is not an appraisal firm's report and may "
                    "not be used for other purposes or given to third parties"),
                   ("评估结论以评估假设和所列文件为前提；前提不成立时结论失效", "The conclusion holds only under the stated assumptions and the documents listed"),
                   (f"内部评估适用于单笔贷款金额 {limit / 1e4:,.0f} 万元以下（{'含' if inclusive else '不含'}本数）的知识产权质押贷款，按贷款金额判断，"
                    "同一借款人的未结知识产权质押贷款合并计算；超过时须外部评估（评估价值本身高于该金额不影响适用）",
                    f"The internal route covers IP-pledge loans of RMB {limit:,.0f} {'or less' if inclusive else 'and under'}, judged by the loan amount, with the "
                    "borrower's open IP-pledge loans added together; above it an external appraisal is required (a valuation above that amount does not by itself "
                    "change the route)")):
        sec.text(zh, en)
    return sec


def sign_off_section(result) -> Section:
    s, prov = result.summary, result.provenance
    review = s.get("review") or {}
    signers = pd.DataFrame([
        {"role": "评估人员 Preparer", "name": prov.get("user", ""), "date": str(prov.get("valued_at", ""))[:10], "note": f"评估编号 {result.valuation_id}"},
        {"role": "复核人 Reviewer", "name": review.get("reviewer", ""), "date": "", "note": review.get("reason", "") or ("需复核签批 review required" if s.get("review_required") else "")},
        {"role": "审批人 Approver", "name": "", "date": "", "note": ""},
    ])
    sec = Section("sign-off", "签署", "Sign-off")
    sec.table("signoff-table", signers, [Column("role", "角色", "Role"), Column("name", "姓名", "Name"), Column("date", "日期", "Date"), Column("note", "说明", "Note")])
    return sec


def provenance_section(prov: dict) -> Section:
    rows = pd.DataFrame([{"key": k, "value": str(v)} for k, v in prov.items()])
    sec = Section("provenance", "溯源", "Provenance", part="appendix")
    sec.text("每个数字的来源：输入哈希、假设集与版本及其哈希、模型版本与运行编号、软件版本。", "Where every number came from: input hash, assumption sets, versions and hashes, model versions and runs, software version.")
    sec.table("provenance-table", rows, [Column("key", "项目", "Item"), Column("value", "值", "Value")])
    return sec
