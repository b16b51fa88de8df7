"""The audit store's valuations as the pilot ledger's tables (``ipvalue audit export``), so a bank's
own valuations feed ``ipvalue calibrate``; the bank then fills in what happened (the amount lent,
the outcome, the disposal, any external appraisal and its deals).

Read from each recorded result's JSON (the latest valuation of each application, in chain order):

``loans``
    one row per application (``loan_id`` = the application id): the valuation's id, date, user
    (``officer``) and the branch the store records for that user (or the one given); the main
    patent type and the number of patents in force; the term and the requested amount (to be
    replaced by the amount lent); value in use, market value (its P10 from the disposal view:
    collateral value at the quantile ÷ the realisation factor), collateral value and cap; the
    risk-sharing scheme and the bank's share; the methods' central values the reconciliation
    compared (the income approach restated for a market participant, the market and cost
    approaches, the value model where it was a market-value candidate); the package's score and
    sharing position (weighted as below), the discount rate; the set versions used;
    ``outcome = open``.
``cash_flows``
    the market-participant income approach of each loan whose market value rests on it, from the
    report's appendix (``income-cash-flows-table``: each patent's yearly after-tax cash flow and
    discount factor) and its parameters (``income-parameters-table``: each patent's sharing range):
    per patent and year ``low = cash flow × ρ / (ρ + p (1 − ρ))`` and ``high = low / ρ``, with ρ the
    bottom of the sharing range over its top (the profit split's ratio; an officer's sharing rate
    gives ``low = high``) and ``p`` the patent's position; summed over the patents of the package,
    with the period ``t`` from the discount factor (``(1 + r)^-t``). The package's position is the
    patents' positions weighted by ``Σ_t (high − low) (1 + r)^-t``, so ``V(p, r)`` of the ledger
    gives back the recorded market value.
``overrides``
    each officer's override, with the valuation, the date and the field.

Rows say where they come from (``data_origin``: the export and the store).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.audit import read_audit_table, store_display, store_exists
from ipvalue.calibration.ledger import SCHEMA, write_ledger
from ipvalue.config import load_yaml
from ipvalue.exceptions import AuditStoreError

logger = logging.getLogger(__name__)

__all__ = ["LedgerExport", "export_ledger", "ledger_from_audit"]

#: The market value's basis in the ledger, by the reconciliation's basis method.
BASIS = {"income": "income_market_participant", "market": "market_approach", "cost": "cost_approach", "ml": "value_model"}


@dataclass
class LedgerExport:
    """What :func:`export_ledger` wrote: the tables, their paths, and what the bank must fill in."""

    tables: dict
    paths: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def __str__(self) -> str:
        counts = ", ".join(f"{t} {len(f):,}" for t, f in self.tables.items())
        return "\n".join([f"台账导出 ledger export: {counts}", *(f"  note: {n}" for n in self.notes)])


def _table(result: dict, table_id: str) -> pd.DataFrame:
    for section in (result.get("report") or {}).get("sections", []):
        for table in section.get("tables", []):
            if table["id"] == table_id:
                return pd.DataFrame(table["rows"], columns=[c["key"] for c in table["columns"]])
    return pd.DataFrame()


def _cash_flows(result: dict, patents: pd.DataFrame) -> tuple[pd.DataFrame, dict] | None:
    """The package's yearly low / high cash flows and its score, position and discount rate; None
    when the report lacks the income approach's tables."""
    params = _table(result, "income-parameters-table")
    per_patent_flows = [_table(result, f"income-cash-flows-{pid}").assign(patent_id=pid) for pid in patents["patent_id"]]
    per_patent_flows = [f for f in per_patent_flows if "cash_flow_rmb_mp" in f]
    if params.empty or len(per_patent_flows) < len(patents):
        return None
    flows = pd.concat(per_patent_flows, ignore_index=True)
    flows = flows[pd.to_numeric(flows["year"], errors="coerce").notna()]  # each table ends with its total row
    flows = flows.rename(columns={"cash_flow_rmb_mp": "cash_flow_rmb"})
    params = params.set_index("patent_id")
    flows["sharing_position"] = params["sharing_position"].reindex(flows["patent_id"]).to_numpy(float)
    low_share, high_share = params["sharing_low"].reindex(flows["patent_id"]).to_numpy(float), params["sharing_high"].reindex(flows["patent_id"]).to_numpy(float)
    rho = np.divide(low_share, high_share, out=np.ones_like(low_share), where=high_share > 0)
    p = flows["sharing_position"].to_numpy(float)
    cf = flows["cash_flow_rmb"].to_numpy(float)
    flows["low"] = cf * rho / (rho + p * (1 - rho))
    flows["high"] = flows["low"] / rho
    rate = params["discount_rate"].reindex(flows["patent_id"]).to_numpy(float)
    flows["t"] = np.round(-np.log(flows["discount_factor"].to_numpy(float)) / np.log1p(rate), 6)
    flows["spread_pv"] = (flows["high"] - flows["low"]) * flows["discount_factor"]
    flows["pv"] = cf * flows["discount_factor"]
    per_patent = flows.groupby("patent_id").agg(spread=("spread_pv", "sum"), pv=("pv", "sum"), position=("sharing_position", "first"))
    score = patents.set_index("patent_id")["score"].reindex(per_patent.index)
    weights = per_patent["spread"].where(per_patent["spread"] > 0, 0.0)
    package = {
        "sharing_position": float(np.average(per_patent["position"], weights=weights)) if weights.sum() > 0 else float(per_patent["position"].mean()),
        "score": float(np.average(score, weights=per_patent["pv"])) if per_patent["pv"].sum() > 0 else float(score.mean()),
        "discount_rate": float(np.average(params["discount_rate"].reindex(per_patent.index), weights=per_patent["pv"]))
        if per_patent["pv"].sum() > 0 else float(params["discount_rate"].mean()),
    }
    yearly = flows.groupby("t", as_index=False)[["low", "high"]].sum().rename(columns={"t": "year", "low": "cash_flow_low_rmb", "high": "cash_flow_high_rmb"})
    return yearly, package


def ledger_from_audit(store=None, *, branch: str | None = None) -> LedgerExport:
    """The ledger's ``loans``, ``cash_flows`` and ``overrides`` tables from the audit store's
    recorded valuations (see the module notes).

    Parameters
    ----------
    store : str or Path, optional
        The audit store (default ``$IPVALUE_AUDIT_DB`` or ``audit/ipvalue-audit.db``).
    branch : str, optional
        The branch of every valuation whose user's branch the store does not record.

    Returns
    -------
    LedgerExport
    """
    if not store_exists(store):
        raise AuditStoreError(f"Audit store {store_display(store)!r} does not exist. Fix: point --audit-db / $IPVALUE_AUDIT_DB at the bank's store.")
    valuations = read_audit_table("valuations", store)
    chain = read_audit_table("audit_chain", store)
    valuations = valuations.merge(chain[["seq", "valuation_id"]].dropna(), on="valuation_id").sort_values("seq")
    latest = valuations.drop_duplicates("application_id", keep="last")
    users = read_audit_table("users", store)
    branches = users.drop_duplicates("name", keep="last").set_index("name")["branch"].dropna().to_dict() if "branch" in users else {}
    schemes = {spec.get("label"): code for code, spec in load_yaml("risk-sharing")[0]["schemes"].items()}
    origin = f"ipvalue audit export of {store_display(store)}"
    loans, cash_flows, overrides, notes = [], [], [], []
    skipped = []
    for row in latest.itertuples(index=False):
        result = json.loads(row.result_json)
        s, prov = result["summary"], result.get("provenance", {})
        patents = pd.DataFrame(result["patents"])
        live = patents[(patents["register_status"] == "in_force") & (patents["market_value_rmb"] > 0)]
        if live.empty or not s.get("market_value_rmb"):
            skipped.append(row.application_id)
            continue
        officer = str(row.user)
        loan_branch = branches.get(officer) or branch
        bases = set(live["basis_method"])  # a package valued partly on comparables is not recomputable from its cash flows
        if len(bases) == 1 and bases <= set(BASIS):
            basis = BASIS[next(iter(bases))]
        else:
            basis = BASIS["market"] if "market" in bases else BASIS["cost"]
        main_type = live.groupby("patent_type")["market_value_rmb"].sum().idxmax()
        packages = pd.DataFrame(result.get("packages") or [])
        p10 = np.nan
        if len(packages) and not packages.get("collateral_value_bounded", pd.Series(False)).astype(bool).any():
            p10 = float((packages["collateral_value_q_rmb"] / packages["realisation_factor"]).sum())
        values = _table(result, "income-values-table")
        mp = values.set_index("patent_id")["market_participant_value_rmb"].reindex(live["patent_id"]) if len(values) else pd.Series(dtype=float)
        method = {"income_value_rmb": float(mp.sum()) if len(mp) and mp.notna().all() else np.nan}
        for name, column in (("market", "market_approach_rmb"), ("cost", "cost_value_rmb")):
            method[column] = float(live[f"method_{name}_rmb"].sum()) if f"method_{name}_rmb" in live and live[f"method_{name}_rmb"].notna().all() else np.nan
        candidate_ml = "ml_role" in live and (live["ml_role"] == "market-value candidate").all()
        method["ml_value_rmb"] = float(live["method_ml_rmb"].sum()) if candidate_ml and "method_ml_rmb" in live else np.nan
        loan = {
            "loan_id": row.application_id, "branch": loan_branch, "officer": officer, "valuation_id": row.valuation_id,
            "valuation_date": s["valuation_date"], "patent_type": main_type, "n_patents": float(len(live)), "term_years": s["term_years"],
            "loan_amount_rmb": s["requested_amount_rmb"], "value_in_use_rmb": s.get("value_in_use_rmb"), "market_value_rmb": s["market_value_rmb"],
            "market_value_p10_rmb": p10 if p10 <= s["market_value_rmb"] else np.nan, "market_value_basis": basis,
            "collateral_value_rmb": min(s["collateral_value_rmb"], s["market_value_rmb"]), "loan_cap_rmb": s["loan_cap_rmb"],
            "risk_sharing": schemes.get(s.get("risk_sharing_scheme")), "bank_share": s.get("bank_share_of_loss"), **method,
            "score": float(np.average(live["score"], weights=live["market_value_rmb"])), "outcome": "open",
            "assumption_set": prov.get("assumption_set"), "disposal_set": prov.get("disposal_assumption_set"), "pledge_policy": prov.get("pledge_policy"),
            "data_origin": origin,
        }
        flows = _cash_flows(result, live) if basis == BASIS["income"] else None
        if flows is not None:
            yearly, package = flows
            loan.update(package)
            cash_flows.append(yearly.assign(loan_id=row.application_id, data_origin=origin))
        loans.append(loan)
        for o in result.get("overrides") or []:
            overrides.append({"valuation_id": row.valuation_id, "loan_id": row.application_id, "officer": o["officer"],
                              "branch": branches.get(o["officer"]) or loan_branch, "date": s["valuation_date"], "field": o["field"],
                              "model_value": o["model_value"], "override_value": o["override_value"], "patent_id": o["patent_id"], "reason": o["reason"],
                              "data_origin": origin})
    if skipped:
        notes.append(f"{len(skipped)} valuation(s) with no right in force left out (no market value to calibrate): {skipped[:5]}")
    loans = pd.DataFrame(loans, columns=[c.name for c in SCHEMA["loans"]])  # every column, so the bank fills in outcomes and disposals
    if len(loans) and loans["branch"].isna().any():
        notes.append(f"{int(loans['branch'].isna().sum())} loan(s) without a branch: the store records no branch for their user; fill in 'branch' "
                     "(or export with --branch)")
    if len(loans) and loans["risk_sharing"].isna().any():
        notes.append("a risk-sharing scheme the shipped table does not name: fill in 'risk_sharing'")
    notes.append("fill in what happened: the amount lent (loan_amount_rmb holds the amount requested), outcome, default and disposal, any external "
                 "appraisal; add the bank's deals (deals.csv)")
    flows = pd.concat(cash_flows, ignore_index=True)[["loan_id", "year", "cash_flow_low_rmb", "cash_flow_high_rmb", "data_origin"]] if cash_flows else \
        pd.DataFrame(columns=["loan_id", "year", "cash_flow_low_rmb", "cash_flow_high_rmb", "data_origin"])
    return LedgerExport({"loans": loans, "cash_flows": flows, "overrides": pd.DataFrame(overrides, columns=[c.name for c in SCHEMA["overrides"]])}, notes=notes)


def export_ledger(out, store=None, *, branch: str | None = None) -> LedgerExport:
    """Write :func:`ledger_from_audit`'s tables as a ledger folder (``loans.csv``, ``cash_flows.csv``,
    ``overrides.csv``) or, for a path ending ``.xlsx``, one workbook; returns the export with its paths."""
    export = ledger_from_audit(store, branch=branch)
    path = write_ledger({name: frame for name, frame in export.tables.items() if len(frame) or name == "loans"}, out)
    export.paths = {name: (Path(path) / f"{name}.csv" if Path(path).is_dir() else Path(path)) for name in export.tables}
    logger.info("ledger export of %s: %s", store_display(store), {t: len(f) for t, f in export.tables.items()})
    return export
