"""The eligibility checks of a pledge-loan application, each ``pass``, ``fail`` or
``needs_document`` with its reason in Chinese and English.

``needs_document``: the application can pass once it references the missing document
(``documents`` in the application: a co-owner's consent, a 专利权评价报告, the licence contract, a
fee prepayment receipt, the outcome of an invalidation). ``passed`` is True for ``pass`` only.

Register facts (pledges, licences, preservation, lapses and restorations, invalidation events)
come from the CNIPA legal-status export the application names (``register.file``,
:mod:`ipvalue.io.register`), combined with what the PatentFrame and ``registered_pledges`` say: a
pledge known to either source fails the check.

The ¥10M rule applies to the borrower's total IP-pledge exposure: this request plus the open
applications of the same borrower in the audit store (:func:`ipvalue.audit.pledge_applications`;
open = last decision "eligible" or "review required" and its term not ended at this valuation
date; borrowers compared with :func:`ipvalue.names.same_name`), so a loan split in two to stay
under the limit is refused. The boundary is the pledge policy's (inclusive by default: 民法典 第1259条).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ipvalue import terms
from ipvalue.io.register import register_status
from ipvalue.lending.application import LoanApplication
from ipvalue.lending.policy import within_internal_limit
from ipvalue.names import normalise_id, same_name

STATUSES = ("pass", "fail", "needs_document")
#: Decisions of a recorded application that keep it in the borrower's exposure (ipvalue.audit.OPEN_DECISIONS).
OPEN_DECISIONS = ("eligible", "review required")
CHECK_COLUMNS = ["scope", "check", "status", "passed", "reason_zh", "reason_en"]


def _rmb(amount: float) -> str:
    """RMB with cents where there are any: ¥9,999,999.99 is not written 10,000,000."""
    return f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"


def open_exposure(applications: pd.DataFrame | None, app: LoanApplication) -> pd.DataFrame:
    """The borrower's other open IP-pledge applications (rows of :func:`ipvalue.audit.pledge_applications`).

    Open: a different application id, the same borrower (:func:`~ipvalue.names.same_name`), last
    decision in :data:`OPEN_DECISIONS`, and valuation date + term after this valuation date.
    """
    if applications is None or len(applications) == 0:
        return pd.DataFrame(columns=["application_id", "borrower", "requested_amount_rmb", "decision", "matures_on"])
    a = applications.copy()
    a["matures_on"] = pd.to_datetime(a["valuation_date"], errors="coerce") + pd.to_timedelta(pd.to_numeric(a["term_years"], errors="coerce") * 365.25, unit="D")
    mine = same_name(app.borrower, a["borrower"].fillna("").astype(str)).to_numpy(dtype=bool)
    keep = (mine & a["decision"].isin(OPEN_DECISIONS).to_numpy() & (a["application_id"] != app.application_id).to_numpy()
            & ~(a["matures_on"] <= app.valuation_date).to_numpy())  # an unreadable maturity stays open: the cautious reading
    out = a.loc[keep, ["application_id", "borrower", "requested_amount_rmb", "decision", "matures_on"]]
    return out.assign(requested_amount_rmb=pd.to_numeric(out["requested_amount_rmb"], errors="coerce").fillna(0.0))


def eligibility_checks(app: LoanApplication, patents: pd.DataFrame, features: pd.DataFrame, policy: dict, out: pd.DataFrame, *, cap: float,
                       applications: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every eligibility check with its status and reason (Chinese and English).

    Parameters
    ----------
    app : LoanApplication
    patents, features : pandas.DataFrame
        The application's PatentFrame and its feature matrix (same index).
    policy : dict
        The pledge policy (``remaining_life_buffer_years`` is the buffer after the term, years).
    out : pandas.DataFrame
        The valuation's per-patent table (``income_period_years``: remaining economic life
        bounded by the legal life, years).
    cap : float
        The loan cap (RMB).
    applications : pandas.DataFrame, optional
        :func:`ipvalue.audit.pledge_applications` of the bank's audit store. None: the store was
        not consulted, which the exposure check says (only this request counted).

    Returns
    -------
    pandas.DataFrame
        ``scope`` ('application' or a patent id), ``check``, ``status`` (pass / fail /
        needs_document), ``passed`` (status == 'pass'), ``reason_zh``, ``reason_en``.
    """
    vd = app.valuation_date
    rows = []

    def add(scope, check, status, reason_zh, reason_en):
        status = ("pass" if status else "fail") if isinstance(status, (bool, np.bool_)) else status
        rows.append({"scope": scope, "check": check, "status": status, "passed": status == "pass", "reason_zh": reason_zh, "reason_en": reason_en})

    amount = app.requested_amount_rmb
    limit = float(policy["internal_valuation_limit_rmb"]["value"])
    inclusive = policy["internal_valuation_limit_rmb"].get("inclusive", True)
    ok = within_internal_limit(amount, policy)
    bound_zh, bound_en = ("以下（含本数）", "or less") if inclusive else ("以下（不含本数）", "under")
    add("application", "amount_within_internal_limit", ok,
        f"申请金额 {_rmb(amount)} 元，内部评估适用于 {limit / 1e4:,.0f} 万元{bound_zh}" + ("" if ok else "：需外部评估，内部评估路径不适用"),
        f"requested {_rmb(amount)} RMB; the internal route covers loans of {_rmb(limit)} RMB {bound_en}" + ("" if ok else ": external appraisal required"))
    others = open_exposure(applications, app)
    total = amount + float(others["requested_amount_rmb"].sum())
    ok = within_internal_limit(total, policy)
    listed = "、".join(f"{r.application_id} {_rmb(r.requested_amount_rmb)} 元" for r in others.itertuples())
    listed_en = ", ".join(f"{r.application_id} {_rmb(r.requested_amount_rmb)} RMB" for r in others.itertuples())
    if applications is None:  # an unknown total exposure never passes: the store must be read
        ok = False
        zh, en = "未查询审计库，借款人总敞口未知", "the audit store was not consulted: the borrower's total exposure is unknown"
    else:
        zh = f"同一借款人未结知识产权质押申请：{listed or '无'}"
        en = f"open IP-pledge applications of the same borrower: {listed_en or 'none'}"
    add("application", "total_exposure_within_internal_limit", ok,
        f"知识产权质押融资总敞口 {_rmb(total)} 元（{zh}），内部评估适用于 {limit / 1e4:,.0f} 万元{bound_zh}" + ("" if ok else "：拆分贷款不改变总敞口，需外部评估"),
        f"total IP-pledge exposure {_rmb(total)} RMB ({en}); the internal route covers {_rmb(limit)} RMB {bound_en}" + ("" if ok else ": splitting a loan does not lower the exposure; external appraisal required"))
    max_term = float(policy["max_term_years"]["value"])
    add("application", "term_within_policy", app.term_years <= max_term, f"贷款期限 {app.term_years:g} 年（上限 {max_term:g} 年）", f"term {app.term_years:g} years (policy maximum {max_term:g})")
    add("application", "requested_within_loan_cap", amount <= cap, f"申请金额 {amount / 1e4:,.2f} 万元，质押可贷上限 {cap / 1e4:,.2f} 万元",
        f"requested {_rmb(amount)} RMB against a loan cap of {_rmb(round(cap, 2))} RMB")
    today = pd.Timestamp.today().normalize()
    plausible = vd <= today + pd.Timedelta(days=1) and (patents["filing_date"] <= vd).all()
    add("application", "valuation_date_plausible", plausible,
        f"评估基准日 {vd.date()}" + ("" if plausible else "：晚于今日或早于专利申请日"),
        f"valuation date {vd.date()}" + ("" if plausible else ": in the future, or before a patent's filing date"))

    buffer = float(policy["remaining_life_buffer_years"]["value"])
    warn_days = int(policy["fee_due_warning_days"]["value"])
    need = app.term_years + buffer
    needed_until = vd + pd.DateOffset(days=int(round(need * 365.25)))
    pledged = {normalise_id(p) for p in app.registered_pledges}
    reg = register_status(app.register, patents, as_of=vd) if app.register is not None else None
    docs = pd.DataFrame([d.__dict__ for d in app.documents], columns=["patent_id", "kind", "reference", "co_owner", "paid_until"])
    references: dict = {}  # (patent, kind) -> the documents' references, in the application's order
    for d in app.documents:
        references.setdefault((d.patent_id, d.kind), []).append(d.reference)
    for i, p in patents.iterrows():  # a handful of patents per application: clarity over vectorising
        pid, f = p["patent_id"], features.loc[i]
        mine = docs[docs["patent_id"] == pid]

        def refs(kind):
            return "、".join(references.get((pid, kind), ()))

        r = reg.loc[i] if reg is not None else None
        alive = f["is_lapsed"] == 0 and f["is_expired"] == 0 and f["is_granted"] == 1
        register_lapsed = r is not None and r["register_status"] == "lapsed"
        registered = r is not None and pd.notna(r["register_status"])
        status_zh = (f"法律状态 {terms.zh(terms.LEGAL_STATUSES, p['legal_status'])}"
                     + (f"；登记簿 {terms.zh(terms.LEGAL_STATUSES, r['register_status'])}（{r['register_status_date'].date()}）" if registered else ""))
        status_en = (f"status {terms.en(terms.LEGAL_STATUSES, p['legal_status'])}"
                     + (f"; register {terms.en(terms.LEGAL_STATUSES, r['register_status'])} since {r['register_status_date'].date()}" if registered else ""))
        in_force = alive and p["legal_status"] == "in_force" and not register_lapsed
        extract = refs("register_extract")
        evidence = reg is not None and bool(r["in_register"]) or bool(extract)
        add(pid, "right_in_force", ("pass" if evidence else "needs_document") if in_force else "fail",
            status_zh + ("，已授权有效" if in_force else "，权利未授权或已终止")
            + ("" if not in_force or evidence else "；仅有申请人提供的数据：需提供国家知识产权局法律状态导出或专利登记簿副本")
            + (f"（登记簿副本 {extract}）" if extract else ""),
            status_en + (": granted and in force" if in_force else ": not granted, lapsed or expired")
            + ("" if not in_force or evidence else "; only the applicant's own data: supply the CNIPA legal-status export or a register extract (专利登记簿副本)")
            + (f" (register extract {extract})" if extract else ""))
        if reg is not None:
            found, unknown = bool(r["in_register"]), r["unknown_codes"]
            add(pid, "register_extract", "pass" if found and not unknown else "needs_document",
                (f"登记簿事件 {r['register_events']} 条" if found else "登记簿导出中无此专利（申请号未匹配）：需补充登记簿信息")
                + (f"；未知事件代码 {unknown}：需核对国家知识产权局代码表" if unknown else ""),
                (f"{r['register_events']} register event(s)" if found else "not in the register export (application number not matched): supply its register extract")
                + (f"; unknown event code(s) {unknown}: check them against CNIPA's code table" if unknown else ""))

        owners = [a.strip() for a in str(p["applicants"] or "").split(";") if a.strip()]
        is_borrower = same_name(app.borrower, pd.Series(owners, dtype=str)).to_numpy(dtype=bool) if owners else np.array([], dtype=bool)
        add(pid, "owner_is_borrower", bool(is_borrower.any()), f"权利人：{p['applicants']}", f"owners: {p['applicants']}")
        co_owners = [o for o, b in zip(owners, is_borrower) if not b]
        consented = mine.loc[mine["kind"] == "co_owner_consent", "co_owner"]
        missing = [o for o in co_owners if not (len(consented) and same_name(o, consented.astype(str)).any())]
        if not co_owners:
            add(pid, "co_owner_consent", "pass", "单独所有，无共有人", "sole owner: no co-owner")
        else:
            add(pid, "co_owner_consent", "needs_document" if missing else "pass",
                f"共有人 {'、'.join(co_owners)}；专利法第14条：共有专利出质须经全体共有人同意" + (f"；缺少 {'、'.join(missing)} 的书面同意" if missing else f"；同意书 {refs('co_owner_consent')}"),
                f"co-owners {', '.join(co_owners)}; a co-owned patent's pledge needs every co-owner's consent (专利法 第14条)"
                + (f"; consent missing from {', '.join(missing)}" if missing else f"; consents {refs('co_owner_consent')}"))

        reg_pledges = int(r["active_pledges"]) if r is not None else 0
        is_pledged = normalise_id(pid) in pledged or reg_pledges > 0
        add(pid, "not_already_pledged", "fail" if is_pledged else "pass" if evidence else "needs_document",
            "已有质押登记" + ("（登记簿：质押登记生效未注销）" if reg_pledges else "") if is_pledged
            else "登记簿无有效质押登记" if evidence else "未见质押登记，但无登记簿证据：需提供法律状态导出或登记簿副本",
            "an active pledge registration exists" + (" (register: PE01 without a later release)" if reg_pledges else "") if is_pledged
            else "no active pledge registration on the register" if evidence else "no pledge known, but no register evidence: supply the legal-status export or a register extract")
        if reg is not None:
            frozen = bool(r["preservation_in_force"])
            add(pid, "no_preservation", not frozen, "存在有效的保全登记（权利被冻结）" if frozen else "无有效保全", "a preservation (保全) is in force: the right is frozen" if frozen else "no preservation in force")
            exclusive, sole, ordinary = int(r["exclusive_licences"]), int(r["sole_licences"]), int(r["ordinary_licences"])
            contract = refs("licence_contract")
            if exclusive:
                add(pid, "exclusive_licence", "pass" if contract else "needs_document",
                    f"存在有效的独占许可 {exclusive} 项：许可期内权利人自身不得实施，收益应以许可费计，处置时受让方承继许可，质押价值相应降低（本估值未自动调整，须复核收益法参数）"
                    + (f"；许可合同 {contract}" if contract else "；需提供许可合同（许可费、期限、被许可人意见）"),
                    f"{exclusive} exclusive licence(s) in force: the owner may not work the patent, income is the royalty, a buyer takes the patent "
                    "subject to the licence, so the pledge value is lower (not adjusted automatically: review the income approach's inputs)"
                    + (f"; licence contract {contract}" if contract else "; supply the licence contract (royalty, term, licensee)"))
            elif sole or ordinary:
                add(pid, "exclusive_licence", "pass", f"有效许可：排他 {sole} 项、普通 {ordinary} 项（权利人可自行实施；处置时受让方承继许可）",
                    f"licences in force: {sole} sole, {ordinary} ordinary (the owner may still work the patent; a buyer takes it subject to them)")
            else:
                add(pid, "exclusive_licence", "pass", "无有效许可备案", "no licence on record")
            invalid = int(r["invalidation_events"])
            if invalid:
                outcome = refs("invalidation_outcome")
                add(pid, "invalidation_resolved", "pass" if outcome else "needs_document",
                    f"登记簿有无效宣告相关事件 {invalid} 条" + (f"；结果文件 {outcome}" if outcome else "：需提供无效宣告审查决定或结案证明"),
                    f"{invalid} invalidation event(s) on the register" + (f"; outcome {outcome}" if outcome else ": supply the invalidation decision or proof the case is closed"))
        if p["patent_type"] in ("utility_model", "design"):
            report = refs("evaluation_report")
            kind_zh, kind_en = terms.PATENT_TYPES[p["patent_type"]]
            add(pid, "evaluation_report", "pass" if report else "needs_document",
                f"{kind_zh}未经实质审查：需专利权评价报告（专利法第66条）" + (f"，编号 {report}" if report else "，未提供"),
                f"a {kind_en} is not substantively examined: a 专利权评价报告 is needed (专利法 第66条)" + (f": {report}" if report else ": none referenced"))

        life = float(f["remaining_life_years"])
        add(pid, "life_covers_term", life >= need, f"剩余法定有效期 {life:.1f} 年，需覆盖贷款期限加缓冲 {need:g} 年", f"remaining legal life {life:.1f} years against term plus buffer {need:g}")
        in_force = float(out.loc[i, "expected_in_force_years"]) if "expected_in_force_years" in out else float(out.loc[i, "income_period_years"])
        add(pid, "in_force_covers_term", in_force >= need,
            f"预期有效期 {in_force:.1f} 年（年费失效风险；已预缴期间不计），需覆盖贷款期限加缓冲 {need:g} 年",
            f"expected period in force {in_force:.1f} years (fee-lapse risk; none while fees are prepaid) against term plus buffer {need:g}")
        paid = p["fees_paid_until"]
        current = pd.notna(paid) and paid >= vd
        due_soon = current and (paid - vd).days <= warn_days
        add(pid, "annual_fees_current", current,
            "年费缴纳信息缺失" if pd.isna(paid) else f"年费已缴至 {paid.date()}" + ("（即将到期，建议质押期内预缴）" if due_soon else ""),
            "no fee information" if pd.isna(paid) else f"fees paid until {paid.date()}" + (" (falls due soon: prepay during the pledge)" if due_soon else ""))
        sources = [paid, r["register_fees_paid_until"] if r is not None else pd.NaT, *mine.loc[mine["kind"] == "fee_prepayment", "paid_until"]]
        through = max((d for d in sources if pd.notna(d)), default=pd.NaT)
        if register_lapsed:
            through = pd.NaT  # fees unpaid on the register: nothing is paid through the term
        ok = pd.notna(through) and through >= needed_until
        add(pid, "fees_paid_through_term", "pass" if ok else "needs_document" if current and not register_lapsed else "fail",
            f"年费需缴至 {needed_until.date()}（贷款期限加缓冲 {need:g} 年）；" + (f"已缴至 {through.date()}" if pd.notna(through) else "无缴费记录")
            + ("" if ok else "：需提供预缴凭证") + (f"（预缴凭证 {refs('fee_prepayment')}）" if refs("fee_prepayment") else ""),
            f"fees must be paid until {needed_until.date()} (term plus buffer {need:g} years); " + (f"paid until {through.date()}" if pd.notna(through) else "no payment on record")
            + ("" if ok else ": supply the prepayment receipt") + (f" (prepayment {refs('fee_prepayment')})" if refs("fee_prepayment") else ""))
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)
