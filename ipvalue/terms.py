"""What readers see for the package's codes: every enum a report, a page or a message shows, in
Chinese and English (``{code: (zh, en)}``). Code stays in the data (JSON, audit records); readers
get these words."""

from __future__ import annotations

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


def zh(table: dict, code) -> str:
    """The Chinese word for ``code`` in ``table`` (the code itself when unknown)."""
    return table.get(code, (str(code), str(code)))[0]


def en(table: dict, code) -> str:
    return table.get(code, (str(code), str(code)))[1]


def both(table: dict, code) -> str:
    """'中文 English' for ``code``."""
    z, e = table.get(code, (str(code), str(code)))
    return z if z == e else f"{z} {e}"
