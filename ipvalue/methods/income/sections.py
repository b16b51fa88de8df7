"""The income approach's part of the 内部评估报告: the method with its applied parameters, the
sensitivity (tornado) and, in the appendix, the year-by-year cash flows of both bases (value in
use, market participant) a reader re-derives the values from."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue import terms
from ipvalue.report.sections import Chart, Column, Section

#: Readers' names of the tornado's assumptions, and how their step reads: ``pp`` (percentage
#: points of a rate), ``share`` (a relative change), ``years``, ``range`` (a share of the sharing
#: rate's range), ``multiplier`` (the hazards × 1 / (1 + step) and × (1 + step)).
ASSUMPTION_LABELS = {
    "sharing_position": ("分成率区间位置", "sharing rate's position in its range", "range"),
    "discount_rate": ("折现率", "discount rate", "pp"),
    "growth": ("收入增长率", "revenue growth", "pp"),
    "economic_life_years": ("经济寿命（固定期限时）", "economic life (fixed horizon)", "years"),
    "decay_per_year": ("分成率年衰减", "yearly decline of the sharing rate", "pp"),
    "revenue_level": ("收入水平", "revenue level", "share"),
    "operating_margin": ("营业利润率", "operating margin", "pp"),
    "tax_rate": ("所得税率", "income-tax rate", "pp"),
    "hazard_multiplier": ("年费失效风险（各年风险率）", "fee-lapse hazards (every year's)", "multiplier"),
}
#: The Monte Carlo's shocks (the income set's ``monte_carlo`` block): name and how each applies.
SHOCKS = {
    "sharing_position_sd": ("分成率区间位置", "sharing rate's position", "+ sd × z"),
    "discount_rate_sd": ("折现率", "discount rate", "+ sd × z"),
    "growth_sd": ("收入增长率", "revenue growth", "+ sd × z"),
    "economic_life_sd_years": ("经济寿命（固定期限时，年）", "economic life (fixed horizon, years)", "+ sd × z"),
    "revenue_level_sd": ("收入水平", "revenue level", "× max(1 + sd × z, 0)"),
    "margin_sd": ("营业利润率", "operating margin", "+ sd × z"),
}

PATENT = Column("patent_id", "专利", "Patent")


def step_text(assumption: str, step: float, *, multipliers: tuple | None = None) -> str:
    """The tornado's step as a reader reads it: '±2.0 个百分点 pp', '±20%', '±2 年 years', '×0.5 / ×2'
    (the life row: every fee-lapse hazard times the life set's ``multipliers``)."""
    unit = ASSUMPTION_LABELS.get(assumption, ("", "", "number"))[2]
    if unit == "multiplier":
        return f"×{multipliers[0]:g} / ×{multipliers[1]:g}" if multipliers else "—"
    if unit == "pp":
        return f"±{100 * step:.1f} 个百分点 pp"
    if unit == "share":
        return f"±{100 * step:.0f}%"
    if unit == "range":
        return f"±{100 * step:.0f}% 区间 of the range"
    if unit == "years":
        return f"±{step:g} 年 years"
    return f"±{step:g}"


def income_sections(result, *, assumptions, scenarios, frame: pd.DataFrame, life=None) -> list[Section]:
    """The sections the income approach owns (see the module docstring). ``life``: the valuation's
    :class:`~ipvalue.models.life.LifeCurves` where the cash flows are weighted by them (the life
    row's multipliers)."""
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
    source_zh, source_en = ("申请资料", "the application") if wacc_source == "application" else (f"银行默认值 {wacc_source}", f"the bank's default {wacc_source}")
    above = a.discount_rate > wacc
    sec.text(f"折现率检验：折现率 {a.discount_rate:.2%} {'高于' if above else '未高于'}加权平均资本成本 WACC {wacc:.2%}（来源：{source_zh}）"
             + ("，符合《资产评估专家指引第12号》的要求。" if above else "，不符合《资产评估专家指引第12号》的要求，需复核。"),
             f"Discount-rate check: the rate {a.discount_rate:.2%} {'exceeds' if above else 'does not exceed'} the WACC {wacc:.2%} (from {source_en})"
             + (", as 资产评估专家指引第12号 asks." if above else ": 资产评估专家指引第12号 asks that it does; review required."))
    sec.table("income-revenue-table", c.assign(margin_source_label=c["margin_source"].map(terms.margin_source)), [
        PATENT, Column("revenue_base_rmb", "分摊基期收入", "Base revenue attributed", "money"),
        Column("allocation_share", "收入分摊比例", "Share of product revenue", "percent1"), Column("growth", "增长率", "Growth", "percent1"),
        Column("operating_margin", "营业利润率", "Operating margin", "percent"), Column("margin_source_label", "利润率来源", "Margin source"),
    ], caption_zh="收入与利润率（在用价值，实际采用值）", caption_en="Revenue and margin (value in use, as applied)")
    sec.table("income-parameters-table", c, [
        PATENT, Column("score", "评分", "Score", "number"),
        Column("sharing_low", "分成率下限", "Sharing low", "percent"), Column("sharing_high", "分成率上限", "Sharing high", "percent"),
        Column("sharing_position", "区间位置", "Position", "percent1"), Column("sharing_rate", "分成率", "Sharing rate", "percent"),
        Column("tax_rate", "所得税率", "Tax", "percent1"), Column("discount_rate", "折现率", "Discount rate", "percent"),
        Column("remaining_life_years", "剩余法定寿命（年）", "Legal life (y)", "years"),
        Column("economic_life_years", "经济寿命（年）", "Economic life (y)", "years"), Column("income_period_years", "收益期（年）", "Income period (y)", "years"),
    ], caption_zh="分成率、税率、折现率与期限（在用价值，实际采用值）", caption_en="Sharing rate, tax, discount rate and periods (value in use, as applied)")
    sec.table("income-values-table", c, [
        PATENT, Column("value_in_use_rmb", "在用价值", "Value in use", "money"),
        Column("value_in_use_p5_rmb", "在用价值 P5", "Value in use P5", "money"), Column("value_in_use_p95_rmb", "在用价值 P95", "Value in use P95", "money"),
        Column("market_participant_sharing_rate", "市场参与者分成率", "Market-participant sharing rate", "percent"),
        Column("market_participant_value_rmb", "市场参与者口径价值", "Market-participant value", "money"),
    ], caption_zh="在用价值与市场参与者口径", caption_en="Value in use and the market-participant restatement")
    flows = result.evidence["cash_flows"]
    use = flows[flows["basis"] == "value_in_use"].groupby("year")["present_value_rmb"].sum()
    sec.chart(Chart("chart-income-cash-flows", "bar", "收益法逐年现金流现值（在用价值，专利包合计）", "Present value of the yearly cash flows (value in use, package total)",
                    "评估基准日后第 t 年", "year t after the valuation date", "现值（元）", "present value (RMB)",
                    series=[{"name_zh": "现值", "name_en": "present value", "x": use.index.astype(int).tolist(), "y": use.round(2).tolist()}]))
    draws = result.evidence["value_in_use_draws"].sum(axis=0)
    sec.chart(Chart("chart-income-distribution", "hist", "在用价值的蒙特卡洛分布（专利包合计）", "Monte Carlo distribution of the value in use (package total)",
                    "在用价值（元）", "value in use (RMB)", "情景数", "scenarios",
                    series=[{"name_zh": "情景", "name_en": "scenarios", "values": np.round(draws, 2).tolist()}],
                    markers=[{"x": float(np.quantile(draws, q)), "label_zh": f"在用价值 P{round(100 * q)}", "label_en": f"value in use P{round(100 * q)}"}
                             for q in (0.05, 0.5, 0.95)]))
    sec.text(f"蒙特卡洛：{scenarios.n_draws:,} 个情景，随机种子 {scenarios.seed}（各专利共用情景，专利包价值为逐情景合计）；每个情景对下列假设施加标准正态冲击 z。",
             f"Monte Carlo: {scenarios.n_draws:,} scenarios, seed {scenarios.seed} (scenarios shared by all patents; a package's value is the per-scenario sum); "
             "each scenario moves the assumptions below by a standard-normal shock z.")
    mc = a.raw.get("monte_carlo") or {}
    shocks = pd.DataFrame([
        {"assumption": f"{zh} {en}", "sd": float(a.mc_sd[key]), "applied": how,
         "source": terms.reader_source((mc.get(key) or {}).get("source", "") if isinstance(mc.get(key), dict) else "")}
        for key, (zh, en, how) in SHOCKS.items() if key in a.mc_sd
    ], columns=["assumption", "sd", "applied", "source"])
    sec.table("income-shocks-table", shocks, [Column("assumption", "假设", "Assumption"), Column("sd", "标准差 sd", "Standard deviation", "number"),
                                              Column("applied", "施加方式（z 为标准正态冲击）", "How it applies (z a standard-normal shock)"),
                                              Column("source", "来源", "Source")],
              caption_zh="蒙特卡洛冲击", caption_en="The Monte Carlo's shocks")

    sens = result.evidence["sensitivity"]
    package = sens.groupby(["assumption", "step"], as_index=False, sort=False, dropna=False)[["value_low_rmb", "value_rmb", "value_high_rmb"]].sum()
    package["swing_rmb"] = (package["value_high_rmb"] - package["value_low_rmb"]).abs()
    package = package.sort_values("swing_rmb", ascending=False)
    multipliers = tuple(life.assumptions.tornado_multipliers) if life is not None else None
    names = package["assumption"].tolist()
    label_zh, label_en = zip(*(ASSUMPTION_LABELS.get(k, (terms.readable_code(k),) * 2)[:2] for k in names)) if names else ((), ())
    steps = [step_text(k, v, multipliers=multipliers) for k, v in zip(names, package["step"].tolist())]
    tornado = Section("sensitivity", "敏感性分析", "Sensitivity")
    tornado.text("每项假设单独上下调整（其余不变）后专利包在用价值的变化，按影响大小排序。",
                 "The package's value in use with each assumption moved down and up alone (others fixed), largest swing first.")
    top = package.head(10)
    tornado.chart(Chart("chart-tornado", "tornado", "敏感性（龙卷风图）：专利包在用价值", "Sensitivity (tornado): the package's value in use", "专利包在用价值（元）",
                        "package value in use (RMB)",
                        series=[{"labels": [f"{zh}\n{en} {step}" for zh, en, step in zip(label_zh, label_en, steps)][:10][::-1],
                                 "low": top["value_low_rmb"].round(2).tolist()[::-1], "high": top["value_high_rmb"].round(2).tolist()[::-1],
                                 "base": float(top["value_rmb"].iloc[0]) if len(top) else 0.0, "name_zh": "下调 / 上调", "name_en": "down / up"}]))
    tornado.table("sensitivity-table", {"label": [f"{zh} {en}" for zh, en in zip(label_zh, label_en)], "step_text": steps,
                                        **{k: package[k].tolist() for k in ("value_low_rmb", "value_rmb", "value_high_rmb", "swing_rmb")}}, [
        Column("label", "假设", "Assumption"), Column("step_text", "调整幅度", "Step"),
        Column("value_low_rmb", "下调后", "Down", "money"), Column("value_rmb", "基准", "Base", "money"), Column("value_high_rmb", "上调后", "Up", "money"),
        Column("swing_rmb", "影响幅度", "Swing", "money"),
    ])
    return [sec, tornado, income_appendix(result, frame=frame, mid_year=a.mid_year)]


def income_appendix(result, *, frame: pd.DataFrame, mid_year: bool) -> Section:
    """计算过程: per patent and year, the revenue, the year's weight W_t (and its parts where the life
    curves give them: fee survival S_t, obsolescence O_t, the share of the year in the legal term
    A_t) and the discount factor, common to both bases, and each basis's sharing rate, after-tax
    cash flow and present value, printed with the digits a reader needs to re-derive the values to
    the yuan."""
    flows = result.evidence["cash_flows"]
    use_in, mp_in = result.evidence["inputs"], result.evidence["market_participant_inputs"]
    parts = "fee_survival" in flows
    m = "t − 0.5" if mid_year else "t"
    weight_zh = "W_t = S_t × O_t × A_t（年费有效概率 × 未过时比例 × 年内落在法定期限内的比例）" if parts else "W_t = S_t × A_t（有效概率 × 年内比例）"
    weight_en = ("W_t = S_t × O_t × A_t (fee survival × share not yet obsolete × share of the year inside the legal term)" if parts
                 else "W_t = S_t × A_t (probability in force × share of the year)")
    appendix = Section("appendix-income", "计算过程：收益法逐年现金流", "Workings: the income approach year by year", part="appendix")
    appendix.text(f"每件专利逐年：税后现金流 = 分摊收入 × 分成率 × 权重 {weight_zh} ×（1 − 所得税率）；现值 = 税后现金流 × 折现系数，"
                  f"折现系数 = 1 ÷ (1 + 折现率)^({m})；现值合计即该口径的价值。市场参与者口径的现值合计为以收益法为依据的专利的市场价值。"
                  "比率保留六位小数，以便复算至 1 元以内。",
                  f"Each patent, year by year: after-tax cash flow = attributed revenue × sharing rate × weight {weight_en} × (1 − tax rate); present value "
                  f"= cash flow × discount factor, discount factor = 1 ÷ (1 + discount rate)^({m}); the present values add up to the value of that basis. "
                  "The market-participant sum is the market value of a patent whose market value rests on the income approach. Rates carry six "
                  "decimals so that a reader re-derives the figures to the yuan.")
    group_use, group_mp = ("在用价值", "value in use"), ("市场参与者口径", "market participant")
    if parts:
        weights = [Column("fee_survival", "有效概率 S_t", "In force S_t", "rate6"), Column("obsolescence", "未过时 O_t", "Not obsolete O_t", "rate6"),
                   Column("share_in_term", "期限内 A_t", "In term A_t", "rate6")]
    else:
        weights = [Column("survival", "有效概率 S_t", "In force S_t", "rate6"), Column("year_fraction", "年内比例 A_t", "Share of year A_t", "rate6")]
    columns = [
        Column("year", "年", "Year", "integer"), Column("income_rmb", "分摊收入", "Revenue attributed", "money2"), *weights,
        Column("weight", "权重 W_t", "Weight W_t", "rate6"), Column("discount_factor", "折现系数", "Discount factor", "rate6"),
        Column("sharing_rate_use", "分成率", "Sharing rate", "percent6", *group_use), Column("cash_flow_rmb_use", "税后现金流", "Cash flow", "money2", *group_use),
        Column("present_value_rmb_use", "现值", "Present value", "money2", *group_use),
        Column("sharing_rate_mp", "分成率", "Sharing rate", "percent6", *group_mp), Column("cash_flow_rmb_mp", "税后现金流", "Cash flow", "money2", *group_mp),
        Column("present_value_rmb_mp", "现值", "Present value", "money2", *group_mp),
    ]
    # each column of a patent's table: (basis, column of the flows); the sharing rate, cash flow and present value of both bases
    sources = {c.key: ("market_participant", c.key.removesuffix("_mp")) if c.key.endswith("_mp") else ("value_in_use", c.key.removesuffix("_use"))
               for c in columns[1:] if c.key.removesuffix("_use").removesuffix("_mp") in flows.columns}
    values = {name: flows[name].to_numpy(dtype=float) for name in {name for _, name in sources.values()}}
    year, basis = flows["year"].to_numpy(), flows["basis"].to_numpy()
    positions = flows.groupby("patent_id", sort=False).indices
    use = {k: use_in[k].to_numpy() for k in ("allocation_share", "revenue_base_rmb", "growth", "tax_rate", "operating_margin", "sharing_position", "discount_rate")}
    mp = {k: mp_in[k].to_numpy() for k in ("tax_rate", "operating_margin")}
    scheduled = use_in["income_source"].to_numpy() == "schedule" if "income_source" in use_in else np.zeros(len(use_in), bool)
    for i, pid in enumerate(frame["patent_id"]):
        rows = positions.get(pid, np.array([], dtype=np.intp))
        rows = {b: rows[basis[rows] == b] for b in ("value_in_use", "market_participant")}
        years = np.union1d(year[rows["value_in_use"]], year[rows["market_participant"]])  # the years of either basis, in order
        if not len(years):
            continue
        table = {"year": [*years.tolist(), "合计 total"]}
        for key, (b, name) in sources.items():
            column = np.full(len(years) + 1, np.nan)  # the last row: the total of the present values
            column[np.searchsorted(years, year[rows[b]])] = values[name][rows[b]]
            if name == "present_value_rmb":
                column[-1] = float(np.nansum(column[:-1]))
            table[key] = column.tolist()
        u = {k: float(v[i]) for k, v in use.items()}
        p = {k: float(v[i]) for k, v in mp.items()}
        revenue_zh = (f"逐年收入按申请的收入预测 × 分摊比例 {u['allocation_share']:.6%}" if scheduled[i] else
                      f"基期收入 ¥{u['revenue_base_rmb']:,.2f}（产品收入 × 分摊比例 {u['allocation_share']:.6%}），年增长率 {u['growth']:.6%}")
        revenue_en = (f"yearly revenue: the application's forecast × share {u['allocation_share']:.6%}" if scheduled[i] else
                      f"base revenue RMB {u['revenue_base_rmb']:,.2f} (product revenue × share {u['allocation_share']:.6%}), growth "
                      f"{u['growth']:.6%} a year")
        appendix.table(
            f"income-cash-flows-{pid}", table, columns,
            caption_zh=(f"{pid}：{revenue_zh}；所得税率：在用价值 {u['tax_rate']:.2%}、市场参与者 {p['tax_rate']:.2%}；营业利润率：在用价值 {u['operating_margin']:.4%}、"
                        f"市场参与者 {p['operating_margin']:.4%}；区间位置 {u['sharing_position']:.6%}；折现率 {u['discount_rate']:.4%}"),
            caption_en=(f"{revenue_en}; tax: value in use {u['tax_rate']:.2%}, market participant {p['tax_rate']:.2%}; margin: "
                        f"value in use {u['operating_margin']:.4%}, market participant {p['operating_margin']:.4%}; position "
                        f"{u['sharing_position']:.6%}; discount rate {u['discount_rate']:.4%}"))
    return appendix
