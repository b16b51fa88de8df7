"""The eligibility checks of a pledge-loan application, each pass or fail with its reason in
Chinese and English."""

from __future__ import annotations

import pandas as pd

from ipvalue.lending.application import LoanApplication
from ipvalue.lending.policy import within_internal_limit
from ipvalue.names import normalise_id, same_name


def _rmb(amount: float) -> str:
    """RMB with cents where there are any: ¥9,999,999.99 is not written 10,000,000."""
    return f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"


def eligibility_checks(app: LoanApplication, patents: pd.DataFrame, features: pd.DataFrame, policy: dict, out: pd.DataFrame, *, cap: float) -> pd.DataFrame:
    """Every eligibility check, pass or fail, with its reason (Chinese and English).

    ``out`` is the valuation's per-patent table (``internal_value_rmb``); ``cap`` the loan cap (RMB).
    """
    vd = app.valuation_date
    rows = []

    def add(scope, check, passed, reason_zh, reason_en):
        rows.append({"scope": scope, "check": check, "passed": bool(passed), "reason_zh": reason_zh, "reason_en": reason_en})

    amount = app.requested_amount_rmb
    limit = float(policy["internal_valuation_limit_rmb"]["value"])
    inclusive = policy["internal_valuation_limit_rmb"].get("inclusive", True)
    ok = within_internal_limit(amount, policy)
    bound_zh, bound_en = ("以下（含本数）", "or less") if inclusive else ("以下（不含本数）", "under")
    add("application", "amount_within_internal_limit", ok,
        f"申请金额 {_rmb(amount)} 元，内部评估适用于 {limit / 1e4:,.0f} 万元{bound_zh}" + ("" if ok else "：需外部评估，内部评估路径不适用"),
        f"requested {_rmb(amount)} RMB; the internal route covers loans of {_rmb(limit)} RMB {bound_en}" + ("" if ok else ": external appraisal required"))
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
    pledged = {normalise_id(p) for p in app.registered_pledges}
    for i, p in patents.iterrows():  # a handful of patents per application: clarity over vectorising
        pid, f = p["patent_id"], features.loc[i]
        alive = f["is_lapsed"] == 0 and f["is_expired"] == 0 and f["is_granted"] == 1
        add(pid, "right_in_force", alive and p["legal_status"] == "in_force",
            f"法律状态 {p['legal_status']}{'，已授权有效' if alive else '，权利未授权或已终止'}", f"status {p['legal_status']}: {'granted and in force' if alive else 'not granted, lapsed or expired'}")
        owners = [a for a in str(p["applicants"] or "").split(";") if a.strip()]
        is_owner = bool(owners) and bool(same_name(app.borrower, pd.Series(owners)).any())
        add(pid, "owner_is_borrower", is_owner, f"权利人：{p['applicants']}", f"owners: {p['applicants']}")
        is_pledged = normalise_id(pid) in pledged
        add(pid, "not_already_pledged", not is_pledged, "已有质押登记" if is_pledged else "无有效质押登记", "an active pledge registration exists" if is_pledged else "no active pledge registration")
        need = app.term_years + buffer
        life = float(f["remaining_life_years"])
        add(pid, "life_covers_term", life >= need, f"剩余有效期 {life:.1f} 年，需覆盖贷款期限加缓冲 {need:g} 年", f"remaining life {life:.1f} years against term plus buffer {need:g}")
        paid = p["fees_paid_until"]
        current = pd.notna(paid) and paid >= vd
        due_soon = current and (paid - vd).days <= warn_days
        add(pid, "annual_fees_current", current,
            "年费缴纳信息缺失" if pd.isna(paid) else f"年费已缴至 {paid.date()}" + ("（即将到期，建议质押期内预缴）" if due_soon else ""),
            "no fee information" if pd.isna(paid) else f"fees paid until {paid.date()}" + (" (falls due soon: prepay during the pledge)" if due_soon else ""))
    return pd.DataFrame(rows)
