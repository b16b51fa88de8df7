"""What readers see for the package's codes: every enum a report, a page or a message shows, in
Chinese and English (``{code: (zh, en)}``). Code stays in the data (JSON, audit records); readers
get these words."""

from __future__ import annotations

import re

DECISIONS = {
    "eligible": ("符合内部评估质押条件", "eligible"),
    "review required": ("需复核签批", "review required"),
    "documents required": ("需补充材料", "documents required"),
    "not eligible": ("不符合条件", "not eligible"),
    "external appraisal required": ("需外部评估", "external appraisal required"),
}
CHECK_STATUSES = {"pass": ("通过", "pass"), "fail": ("未通过", "fail"), "needs_document": ("需补充材料", "document needed")}
CHECKS = {
    "amount_within_internal_limit": ("贷款金额在内部评估限额内", "loan amount within the internal-valuation limit"),
    "total_exposure_within_internal_limit": ("借款人总敞口在内部评估限额内", "borrower's total exposure within the limit"),
    "term_within_policy": ("贷款期限符合政策", "term within policy"),
    "requested_within_loan_cap": ("申请金额不超过可贷上限", "request within the loan cap"),
    "valuation_date_plausible": ("评估基准日合理", "valuation date plausible"),
    "right_in_force": ("专利权有效", "right in force"),
    "register_extract": ("登记簿信息", "register extract"),
    "owner_is_borrower": ("权利人为借款人", "owner is the borrower"),
    "co_owner_consent": ("共有人同意", "co-owners' consent"),
    "not_already_pledged": ("未重复质押", "not already pledged"),
    "no_preservation": ("无保全", "no preservation"),
    "exclusive_licence": ("独占许可", "exclusive licence"),
    "invalidation_resolved": ("无效宣告已结案", "invalidation resolved"),
    "evaluation_report": ("专利权评价报告", "evaluation report"),
    "life_covers_term": ("剩余法定寿命覆盖贷款期限", "legal life covers the term"),
    "in_force_covers_term": ("预期有效期覆盖贷款期限", "expected period in force covers the term"),
    "annual_fees_current": ("年费已缴", "annual fees current"),
    "fees_paid_through_term": ("年费缴至贷款期满", "fees paid through the term"),
}
PATENT_TYPES = {"invention": ("发明", "invention"), "utility_model": ("实用新型", "utility model"), "design": ("外观设计", "design")}
LEGAL_STATUSES = {
    "in_force": ("有效", "in force"), "pending": ("审查中", "pending"), "lapsed": ("未缴年费终止", "lapsed"), "expired": ("期限届满", "expired"),
    "invalidated": ("被宣告无效", "invalidated"), "withdrawn": ("撤回", "withdrawn"), "rejected": ("驳回", "rejected"), "unknown": ("不明", "unknown"),
}
ROLES = {
    "primary": ("市场价值候选", "market-value candidate"), "cross_check": ("交叉核对", "cross-check"), "floor": ("下限参考", "floor"),
    "information": ("仅供参考", "for information"), "none": ("无结果", "no figure"),
}
DOCUMENT_KINDS = {
    "co_owner_consent": ("共有人同意书", "co-owner's consent"), "evaluation_report": ("专利权评价报告", "evaluation report"),
    "licence_contract": ("许可合同", "licence contract"), "fee_prepayment": ("年费预缴凭证", "fee prepayment receipt"),
    "invalidation_outcome": ("无效宣告结果", "invalidation outcome"), "register_extract": ("专利登记簿副本", "register extract"),
}
LIFE_SOURCES = {
    "renewal_model": ("续费模型预期有效期", "renewal model: expected period in force"),
    "application": ("申请资料", "the application"),
    "assumption_default": ("假设集默认值（待校准）", "assumption set default (to calibrate)"),
    "override": ("信贷员调整", "officer override"),
    "life_curves": ("经济寿命曲线", "economic-life curves"),
    "obsolescence_curve": ("技术领域过时曲线（待校准）", "obsolescence curve of the technology field (to calibrate)"),
    "legal_life": ("剩余法定寿命", "the remaining legal life"),
    "cn_life_table": ("中国专利年费生存表（待校准）", "CN life table (to calibrate)"),
    "none": ("无失效风险数据", "no lapse data"),
}
CAP_BASIS = {"disposal view": ("处置视角", "the disposal view"), "pledge rate": ("质押率上限", "the pledge-rate limit")}
OVERRIDE_FIELDS = {"sharing_rate": ("分成率", "sharing rate"), "economic_life_years": ("经济寿命（年）", "economic life (years)"),
                   "internal_value_rmb": ("市场价值（元）", "market value (RMB)")}

RISK_PARTIES = {
    "compensation_fund": ("风险补偿基金", "compensation fund"), "bank": ("银行", "bank"), "insurer": ("保险机构", "insurer"),
    "bank_or_guarantor": ("银行或担保机构", "bank or guarantor"), "disposal_fund_or_appraiser": ("处置基金或评估机构", "disposal fund or appraiser"),
    "government": ("政府", "government"), "ip_service_firm": ("知识产权服务机构", "IP service firm"), "guarantor": ("担保机构", "guarantor"),
}
PREMIUMS = {"technology_premium": ("技术风险溢价", "technology risk premium"), "market_premium": ("市场风险溢价", "market risk premium"),
            "funding_premium": ("资金风险溢价", "funding risk premium"), "management_premium": ("管理风险溢价", "management risk premium")}
MODELS = {"renewal": ("续费模型", "renewal model"), "value": ("价值模型", "value model")}
#: The bases the income approach values on.
INCOME_BASES = {"value_in_use": ("在用价值", "value in use"), "market_participant": ("市场参与者口径", "market participant")}
COMPARABLE_KINDS = {"transfer": ("转让", "transfer"), "auction": ("拍卖", "auction"), "licence_fixed_fee": ("固定费用许可", "fixed-fee licence"),
                    "licence_running_royalty": ("提成许可", "running-royalty licence")}
#: Readable names of the provenance record's keys (the report's 溯源 appendix).
PROVENANCE = {
    "feature_spec": ("特征规格", "feature specification"), "feature_spec_hash": ("特征规格哈希", "feature specification hash"),
    "valuation_date": ("评估基准日", "valuation date"), "references": ("参照数据", "reference data"),
    "scorecard": ("评分卡", "scorecard"), "scorecard_hash": ("评分卡哈希", "scorecard hash"),
    "renewal_model": ("续费模型", "renewal model"), "renewal_model_version": ("续费模型版本", "renewal model version"),
    "renewal_run_id": ("续费模型训练运行编号", "renewal model training run"), "renewal_headline_zh": ("续费模型主要输出（中文）", "renewal model headline (Chinese)"),
    "renewal_headline_en": ("续费模型主要输出（英文）", "renewal model headline (English)"),
    "assumption_set": ("收益法假设集", "income assumption set"), "assumption_set_hash": ("收益法假设集哈希", "income assumption set hash"),
    "assumption_origin": ("收益法假设集来源", "income assumption set origin"),
    "industry_margin_set": ("行业利润率基准", "industry margin benchmarks"), "industry_margin_set_hash": ("行业利润率基准哈希", "industry margin benchmarks hash"),
    "wacc": ("加权平均资本成本 WACC", "weighted average cost of capital (WACC)"), "wacc_source": ("WACC 来源", "WACC source"),
    "market_assumption_set": ("市场法假设集", "market assumption set"), "market_assumption_set_hash": ("市场法假设集哈希", "market assumption set hash"),
    "comparables_hash": ("可比交易文件哈希", "comparables file hash"), "time_adjustment": ("时间调整", "time adjustment"),
    "n_comparables_used": ("采用的可比交易数", "comparables used"), "n_comparables_excluded": ("排除的可比交易数", "comparables left out"),
    "cost_assumption_set": ("成本法假设集", "cost assumption set"), "cost_assumption_set_hash": ("成本法假设集哈希", "cost assumption set hash"),
    "cost_valuation_year": ("成本法评估年度", "cost approach valuation year"),
    "ml_value_set": ("价值模型设置", "value model settings"), "ml_value_set_hash": ("价值模型设置哈希", "value model settings hash"),
    "value_model": ("价值模型", "value model"), "value_model_version": ("价值模型版本", "value model version"),
    "value_run_id": ("价值模型训练运行编号", "value model training run"), "value_model_labels": ("价值模型训练标签", "value model training labels"),
    "monte_carlo_seed": ("蒙特卡洛随机种子", "Monte Carlo seed"), "monte_carlo_draws": ("蒙特卡洛情景数", "Monte Carlo scenarios"),
    "pledge_policy": ("质押政策", "pledge policy"), "pledge_policy_hash": ("质押政策哈希", "pledge policy hash"),
    "risk_sharing_hash": ("风险分担方案哈希", "risk-sharing schemes hash"), "input_hash": ("申请输入哈希", "application input hash"),
    "ipvalue_version": ("软件版本", "software version"), "reconciliation_rules": ("调和规则", "reconciliation rules"),
    "reconciliation_rules_hash": ("调和规则哈希", "reconciliation rules hash"), "disposal_assumption_set": ("处置假设集", "disposal assumption set"),
    "disposal_assumption_set_hash": ("处置假设集哈希", "disposal assumption set hash"), "user": ("评估人员", "prepared by"),
    "valued_at": ("评估时间", "valued at"), "life_curves": ("经济寿命曲线", "economic-life curves"),
    "life_curves_hash": ("经济寿命曲线哈希", "economic-life curves hash"), "life_table": ("年费生存表", "annual-fee life table"),
    "life_table_hash": ("年费生存表哈希", "annual-fee life table hash"),
}
#: Where an operating margin came from (the income approach's ``margin_source``), by its opening words.
MARGIN_SOURCES = {"financial statements": ("财务报表", "financial statements"), "sector assumption": ("行业假设", "sector assumption"),
                  "industry benchmark (market participant)": ("行业利润率基准（市场参与者）", "industry benchmark (market participant)")}


def zh(table: dict, code) -> str:
    """The Chinese word for ``code`` in ``table`` (the code itself when unknown)."""
    return table.get(code, (str(code), str(code)))[0]


def en(table: dict, code) -> str:
    return table.get(code, (str(code), str(code)))[1]


def both(table: dict, code) -> str:
    """'中文 English' for ``code``."""
    z, e = table.get(code, (str(code), str(code)))
    return z if z == e else f"{z} {e}"


def readable_code(code) -> str:
    """A code no table knows, as words: ``ip_service_firm`` → ``ip service firm``."""
    return str(code).replace("_", " ")


def both_or_words(table: dict, code) -> str:
    """'中文 English' for a known code, the code as words for an unknown one (a bank's own party or key)."""
    return both(table, code) if code in table else readable_code(code)


def margin_source(text) -> str:
    """Where an operating margin came from, in Chinese with the English beside it:
    'financial statements 2023-2025' → '财务报表 2023-2025 financial statements'."""
    text = str(text or "")
    for opening, (z, e) in MARGIN_SOURCES.items():
        if text.startswith(opening):
            rest = text[len(opening):].strip()
            return f"{z} {rest} {e}".replace("  ", " ") if rest else f"{z} {e}"
    return text


_INTERNAL = re.compile(r"\bDOMAIN\.md\b|\bissue \d+\b", re.IGNORECASE)
_INTERNAL_ITEM = re.compile(r"(?:^|\s*[;,]\s*)(?:see\s+)?(?:DOMAIN\.md|issue \d+)(?::[^;]*)?", re.IGNORECASE)
_SNAKE = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")


def reader_source(text) -> str:
    """An assumption's source as a reader sees it: the bank's words without pointers to the
    project's own working documents (its design notes and tracker entries, :data:`_INTERNAL`),
    which a reader of the report does not have, and configuration keys written as words; a
    source opening with "default to calibrate" says 待校准 in Chinese first.

    >>> reader_source('30 % of value (经济日报, 2021-01); see remaining_life_buffer_years')
    '30 % of value (经济日报, 2021-01); see remaining life buffer years'
    """
    text = " ".join(str(text or "").split())
    out, i = [], 0
    while i < len(text):  # each parenthesised aside: drop the pointers to internal documents inside it, or all of it
        if text[i] != "(":
            out.append(text[i])
            i += 1
            continue
        depth, j = 0, i
        while j < len(text):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        inner = text[i + 1:j]
        if _INTERNAL.search(inner):
            inner = _INTERNAL_ITEM.sub("", inner).strip(" ;,")
        if inner:
            out.append(f"({inner})")
        i = j + 1
    cleaned = _INTERNAL_ITEM.sub("", "".join(out))
    cleaned = _SNAKE.sub(lambda m: m.group(0).replace("_", " "), cleaned)
    cleaned = re.sub(r"\s+([;,.])", r"\1", re.sub(r" {2,}", " ", cleaned)).strip(" ;,")
    if cleaned.lower().startswith("default to calibrate"):
        cleaned = "待校准 " + cleaned
    return cleaned
