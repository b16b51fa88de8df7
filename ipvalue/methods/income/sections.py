"""The income approach's part of the 内部评估报告: the method with its applied parameters, the
sensitivity (tornado) and, in the appendix, the year-by-year cash flows a reader re-derives the
values from."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue.report.sections import Chart, Column, Section

#: Readers' names of the tornado's assumptions.
ASSUMPTION_LABELS = {
    "sharing_position": ("分成率区间位置", "sharing rate's position in its range"),
    "discount_rate": ("折现率", "discount rate"),
    "growth": ("收入增长率", "revenue growth"),
    "economic_life_years": ("经济寿命（固定期限时）", "economic life (fixed horizon)"),
    "decay_per_year": ("分成率年衰减", "yearly decline of the sharing rate"),
    "revenue_level": ("收入水平", "revenue level"),
    "operating_margin": ("营业利润率", "operating margin"),
    "tax_rate": ("所得税率", "income-tax rate"),
    "hazard_multiplier": ("年费失效风险（×0.5 / ×2）", "fee-lapse hazards (×0.5 / ×2)"),
}
BASIS_LABELS = {"value_in_use": "在用价值 value in use", "market_participant": "市场参与者口径 market participant"}

PATENT = Column("patent_id", "专利", "Patent")


def income_sections(result, *, assumptions, scenarios, frame: pd.DataFrame) -> list[Section]:
    """The sections the income approach owns (see the module docstring)."""
    a = assumptions
    c = result.columns.assign(patent_id=frame["patent_id"].to_numpy())
    premiums = " + ".join(f"{v:.2%}" for v in a.premiums.values())
    m_zh, m_en = ("年中", "mid-year") if a.mid_year else ("年末", "end-of-year")
    sec = Section("method-income", "收益法（收益分成法）", "Income approach (royalty split)")
    sec.text(
        f"价值 = Σ_t 收入_t × 分成率 × 权重_t × (1 − 所得税率) ÷ (1 + 折现率)^t，按{m_zh}折现。分成率 = 利润分成比例（{a.profit_split[0]:.0%}–{a.profit_split[1]:.0%}）"
        f"× 营业利润率，在区间内的位置由评分卡确定；权重_t 为第 t 年末专利权仍有效且仍有超额收益的比例，在剩余法定寿命内计算（最后不足一年按比例）。"
        f"折现率 = 无风险利率 {a.risk_free:.2%} + 风险溢价（{premiums}）= {a.discount_rate:.2%}。"
        "在用价值按借款人自身利润率与税率计算；市场参与者口径按行业利润率与标准税率重述，作为市场价值的候选。",
        f"Value = Σ_t revenue_t × sharing rate × weight_t × (1 − tax rate) ÷ (1 + discount rate)^t, discounted {m_en}. Sharing rate = "
        f"profit split ({a.profit_split[0]:.0%}–{a.profit_split[1]:.0%}) × operating margin, its position in the range set by the scorecard; "
        "weight_t is the share of year t's income the right still earns (in force and with excess returns left), within the remaining legal life "
        f"(a final part year pro rata). Discount rate = risk-free {a.risk_free:.2%} + premiums ({premiums}) = {a.discount_rate:.2%}. "
        "The value in use takes the borrower's own margin and tax rate; the market-participant restatement takes the sector margin and the "
        "standard tax rate, and is offered as the market value.")
    wacc, wacc_source = result.provenance["wacc"], result.provenance["wacc_source"]
    above = a.discount_rate > wacc
    sec.text(f"折现率检验：折现率 {a.discount_rate:.2%} {'高于' if above else '未高于'}加权平均资本成本 WACC {wacc:.2%}（来源：{'申请资料' if wacc_source == 'application' else wacc_source}）"
             + ("，符合《资产评估专家指引第12号》的要求。" if above else "，不符合《资产评估专家指引第12号》的要求，需复核。"),
             f"Discount-rate check: the rate {a.discount_rate:.2%} {'exceeds' if above else 'does not exceed'} the WACC {wacc:.2%} (from {wacc_source})"
             + (", as 资产评估专家指引第12号 asks." if above else ": 资产评估专家指引第12号 asks that it does; review required."))
    sec.table("income-parameters-table", c, [
        PATENT, Column("revenue_base_rmb", "分摊基期收入", "Base revenue attributed", "money"),
        Column("allocation_share", "收入分摊比例", "Share of product revenue", "percent1"), Column("growth", "增长率", "Growth", "percent1"),
        Column("operating_margin", "营业利润率", "Operating margin", "percent"), Column("margin_source", "利润率来源", "Margin source"),
        Column("sharing_low", "分成率下限", "Sharing low", "percent"), Column("sharing_high", "分成率上限", "Sharing high", "percent"),
        Column("sharing_position", "区间位置", "Position", "percent1"), Column("sharing_rate", "分成率", "Sharing rate", "percent"),
        Column("tax_rate", "所得税率", "Tax", "percent1"), Column("discount_rate", "折现率", "Discount rate", "percent"),
        Column("remaining_life_years", "剩余法定寿命（年）", "Legal life (y)", "years"),
        Column("economic_life_years", "经济寿命（年）", "Economic life (y)", "years"), Column("income_period_years", "收益期（年）", "Income period (y)", "years"),
    ], caption_zh="收益法参数（实际采用值）", caption_en="Income approach: the values applied")
    sec.table("income-values-table", c, [
        PATENT, Column("value_in_use_rmb", "在用价值", "Value in use", "money"),
        Column("value_in_use_p5_rmb", "P5", "P5", "money"), Column("value_in_use_p95_rmb", "P95", "P95", "money"),
        Column("market_participant_sharing_rate", "市场参与者分成率", "Market-participant sharing rate", "percent"),
        Column("market_participant_value_rmb", "市场参与者口径价值", "Market-participant value", "money"),
    ], caption_zh="在用价值与市场参与者口径", caption_en="Value in use and the market-participant restatement")
    flows = result.evidence["cash_flows"]
    use = flows[flows["basis"] == "value_in_use"].groupby("year")["present_value_rmb"].sum()
    sec.chart(Chart("chart-income-cash-flows", "bar", "收益法逐年现金流现值（在用价值）", "Present value of the yearly cash flows (value in use)",
                    "年份", "year", "现值（元）", "present value (RMB)",
                    series=[{"name_zh": "现值", "name_en": "present value", "x": use.index.astype(int).tolist(), "y": use.round(2).tolist()}]))
    draws = result.evidence["value_in_use_draws"].sum(axis=0)
    sec.chart(Chart("chart-income-distribution", "hist", "在用价值蒙特卡洛分布（专利包合计）", "Monte Carlo distribution of the value in use (package total)",
                    "在用价值（元）", "value in use (RMB)", "情景数", "scenarios",
                    series=[{"name_zh": "情景", "name_en": "scenarios", "values": np.round(draws, 2).tolist()}],
                    markers=[{"x": float(np.quantile(draws, q)), "label_zh": f"P{round(100 * q)}", "label_en": f"P{round(100 * q)}"} for q in (0.05, 0.5, 0.95)]))
    sec.text(f"蒙特卡洛：{scenarios.n_draws:,} 个情景，随机种子 {scenarios.seed}（各专利共用情景，专利包价值为逐情景合计）。",
             f"Monte Carlo: {scenarios.n_draws:,} scenarios, seed {scenarios.seed} (scenarios shared by all patents; a package's value is the per-scenario sum).")

    sens = result.evidence["sensitivity"]
    package = sens.groupby(["assumption", "step"], as_index=False, sort=False)[["value_low_rmb", "value_rmb", "value_high_rmb"]].sum()
    package["swing_rmb"] = (package["value_high_rmb"] - package["value_low_rmb"]).abs()
    package = package.sort_values("swing_rmb", ascending=False)
    package["label_zh"] = package["assumption"].map(lambda k: ASSUMPTION_LABELS.get(k, (k, k))[0])
    package["label_en"] = package["assumption"].map(lambda k: ASSUMPTION_LABELS.get(k, (k, k))[1])
    tornado = Section("sensitivity", "敏感性分析", "Sensitivity")
    tornado.text("每项假设单独上下调整（其余不变）后专利包在用价值的变化，按影响大小排序。",
                 "The package's value in use with each assumption moved down and up alone (others fixed), largest swing first.")
    tornado.table("sensitivity-table", package, [
        Column("label_zh", "假设", "Assumption"), Column("label_en", "Assumption", "(English)"), Column("step", "调整幅度", "Step", "number"),
        Column("value_low_rmb", "下调后", "Down", "money"), Column("value_rmb", "基准", "Base", "money"), Column("value_high_rmb", "上调后", "Up", "money"),
    ])
    top = package.head(10).iloc[::-1]
    tornado.chart(Chart("chart-tornado", "tornado", "敏感性（龙卷风图）", "Sensitivity (tornado)", "专利包在用价值（元）", "package value in use (RMB)",
                        series=[{"labels": (top["label_zh"] + " " + top["label_en"]).tolist(), "low": top["value_low_rmb"].round(2).tolist(),
                                 "high": top["value_high_rmb"].round(2).tolist(), "base": float(top["value_rmb"].iloc[0]) if len(top) else 0.0,
                                 "name_zh": "下调 / 上调", "name_en": "down / up"}]))

    appendix = Section("appendix-income", "计算过程：收益法逐年现金流", "Workings: the income approach year by year", part="appendix")
    appendix.text("每件专利逐年：分摊收入 × 分成率 × 权重（有效概率 × 年内比例）×（1 − 所得税率）= 税后现金流；现金流 × 折现系数 = 现值；现值合计即该口径的价值。",
                  "Each patent, year by year: attributed revenue × sharing rate × weight (probability in force × share of the year) × (1 − tax) = "
                  "after-tax cash flow; × discount factor = present value; the present values add up to the value of that basis.")
    table = flows.assign(basis_label=flows["basis"].map(BASIS_LABELS))
    appendix.table("income-cash-flows-table", table, [
        Column("basis_label", "口径", "Basis"), PATENT, Column("year", "年", "Year", "integer"), Column("income_rmb", "分摊收入", "Revenue attributed", "money"),
        Column("sharing_position", "区间位置", "Position", "percent1"), Column("sharing_rate", "分成率", "Sharing rate", "percent"),
        Column("survival", "有效概率 S_t", "In force S_t", "rate"), Column("year_fraction", "年内比例", "Share of year", "rate"),
        Column("tax_rate", "所得税率", "Tax", "percent1"), Column("discount_factor", "折现系数", "Discount factor", "rate"),
        Column("cash_flow_rmb", "税后现金流", "Cash flow after tax", "money2"), Column("present_value_rmb", "现值", "Present value", "money2"),
    ])
    totals = flows.groupby(["basis", "patent_id"], as_index=False, sort=False)["present_value_rmb"].sum()
    appendix.table("income-totals-table", totals.assign(basis_label=totals["basis"].map(BASIS_LABELS)), [
        Column("basis_label", "口径", "Basis"), PATENT, Column("present_value_rmb", "现值合计", "Sum of present values", "money2"),
    ], caption_zh="现值合计 = 该口径的价值", caption_en="Sum of present values = the value of that basis")
    return [sec, tornado, appendix]
