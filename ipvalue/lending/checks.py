"""The eligibility checks of a pledge-loan application, each pass or fail with its reason in
Chinese and English."""

from __future__ import annotations

import pandas as pd

from ipvalue.lending.application import LoanApplication


def eligibility_checks(app: LoanApplication, patents: pd.DataFrame, features: pd.DataFrame, policy: dict, out: pd.DataFrame) -> pd.DataFrame:
    """Every eligibility check, pass or fail, with its reason (Chinese and English)."""
    vd = app.valuation_date
    rows = []

    def add(scope, check, passed, reason_zh, reason_en):
        rows.append({"scope": scope, "check": check, "passed": bool(passed), "reason_zh": reason_zh, "reason_en": reason_en})

    limit = float(policy["internal_valuation_limit_rmb"]["value"])
    add("application", "amount_under_internal_limit", app.requested_amount_rmb < limit,
        f"申请金额 {app.requested_amount_rmb / 1e4:,.0f} 万元{'低于' if app.requested_amount_rmb < limit else '不低于'} {limit / 1e4:,.0f} 万元" + ("" if app.requested_amount_rmb < limit else "：需外部评估，内部评估路径不适用"),
        f"requested {app.requested_amount_rmb:,.0f} RMB is {'under' if app.requested_amount_rmb < limit else 'not under'} {limit:,.0f}" + ("" if app.requested_amount_rmb < limit else ": external appraisal required, the internal route does not apply"))
    max_term = float(policy["max_term_years"]["value"])
    add("application", "term_within_policy", app.term_years <= max_term, f"贷款期限 {app.term_years:g} 年（上限 {max_term:g} 年）", f"term {app.term_years:g} years (policy maximum {max_term:g})")
    cap = float(out["pledge_value_rmb"].sum())
    add("application", "requested_within_loan_cap", app.requested_amount_rmb <= cap, f"申请金额 {app.requested_amount_rmb / 1e4:,.1f} 万元，质押可贷上限 {cap / 1e4:,.1f} 万元",
        f"requested {app.requested_amount_rmb:,.0f} RMB against a loan cap of {cap:,.0f} RMB")
    buffer = float(policy["remaining_life_buffer_years"]["value"])
    warn_days = int(policy["fee_due_warning_days"]["value"])
    borrower = app.borrower.strip().lower()
    for i, p in patents.iterrows():  # a handful of patents per application: clarity over vectorising
        pid, f = p["patent_id"], features.loc[i]
        alive = f["is_lapsed"] == 0 and f["is_expired"] == 0 and f["is_granted"] == 1
        add(pid, "right_in_force", alive and p["legal_status"] == "in_force",
            f"法律状态 {p['legal_status']}{'，已授权有效' if alive else '，权利未授权或已终止'}", f"status {p['legal_status']}: {'granted and in force' if alive else 'not granted, lapsed or expired'}")
        owners = [a.strip().lower() for a in str(p["applicants"] or "").split(";") if a.strip()]
        add(pid, "owner_is_borrower", borrower in owners, f"权利人：{p['applicants']}", f"owners: {p['applicants']}")
        pledged = pid in app.registered_pledges
        add(pid, "not_already_pledged", not pledged, "已有质押登记" if pledged else "无有效质押登记", "an active pledge registration exists" if pledged else "no active pledge registration")
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
