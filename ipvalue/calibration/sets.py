"""Calibrated sets as candidates: a new version of each set the calibration changes, in the schema
of the set in use, whose changed numbers cite the calibration run and the ledger's hash, with a
diff against the version in use and the gates it was computed with.

A candidate is written to a candidates folder, never where valuations read sets. It carries a
``governance`` block (``status: candidate``, the run, the ledger hash, the gates, the set it was
calibrated from, who calibrated it) for the promotion step: a validator promotes it (signed and
audited, :mod:`ipvalue.calibration.promote`) before a valuation may use it; the loader of the
bank's sets refuses a candidate (:func:`ipvalue.config.check_governance`).
"""

from __future__ import annotations

import copy
import difflib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from ipvalue.calibration.estimate import SetsInUse
from ipvalue.methods.income.assumptions import PREMIUMS

__all__ = ["Candidate", "candidate_sets", "check_loads"]


@dataclass
class Candidate:
    """One candidate set: its content, the set it replaces, the changed numbers and the diff."""

    name: str
    version: int
    content: dict
    current: dict
    changes: pd.DataFrame  # path, current, candidate, source
    diff: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-v{self.version}.yaml"

    def text(self) -> str:
        header = (f"# CANDIDATE set written by ipvalue calibrate (run {self.content['governance']['calibration_run']}); not for valuations\n"
                  f"# until a validator promotes it. Calibrated from {self.content['governance']['calibrated_from']} (comments of that file are in it).\n")
        return header + dump(self.content)


def dump(content: dict) -> str:
    return yaml.safe_dump(content, allow_unicode=True, sort_keys=False, width=120)


def _cite(row, run_id: str, ledger_hash: str, previous_source: str) -> str:
    previous = " ".join(str(previous_source or "").split())
    previous = previous if len(previous) <= 160 else previous[:157] + "..."
    return (f"calibrated by ipvalue calibrate, MLflow run {run_id}, pilot ledger sha256 {ledger_hash[:16]}: {row.method}; "
            f"estimate {row.estimate:.4g}, 90 % interval [{row.low:.4g}, {row.high:.4g}], n = {row.n} (minimum {row.min_n}). "
            f"Was {row.current:.4g}: {previous}")


def _get(raw: dict, path: str) -> dict:
    """The node at dotted ``path`` ({} when absent or not a mapping)."""
    node = raw
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _set(raw: dict, path: str, value: float, source: str) -> None:
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    old = node.get(last)
    node[last] = {**(old if isinstance(old, dict) else {}), "value": round(float(value), 4), "source": source}


def candidate_sets(estimates: pd.DataFrame, sets: SetsInUse, *, run_id: str, ledger_hash: str, gates: dict, extra: dict | None = None,
                   calibrated_by: str | None = None) -> list[Candidate]:
    """The candidate of every set with a changed estimate (see the module notes).

    Parameters
    ----------
    estimates : pandas.DataFrame
        :func:`~ipvalue.calibration.estimate.estimate_coefficients`'s table.
    sets : SetsInUse
    run_id, ledger_hash : str
        Cited in every changed number's ``source`` and in the ``governance`` block.
    gates : dict
        ``{gate: passed}`` of the back-test, stored with each candidate.
    extra : dict, optional
        ``{name: (current content, candidate content)}`` of sets calibrated elsewhere (the life table).
    calibrated_by : str, optional
        The authenticated user who ran the calibration (recorded; the promotion refuses them).
    """
    originals = {sets.income.name: sets.income_raw, sets.disposal.name: sets.disposal_raw, sets.policy_name: sets.policy}
    changed = estimates[estimates["changed"] & estimates["set"].isin(originals)]
    out = []
    for set_key, rows in changed.groupby("set", sort=False):
        current = originals[set_key]
        content = copy.deepcopy(current)
        for row in rows.itertuples(index=False):
            if row.key == "premium_total":
                _scale_premiums(content, current, row, run_id, ledger_hash)
            elif row.key.startswith("position_"):
                mapping = content.setdefault("sharing_rate", {}).setdefault("position_mapping", {})
                mapping.setdefault("note", "position in the sharing range = intercept + slope × scorecard total / 100, clipped to [0, 1] "
                                           "(without this block: total / 100)")
                part = row.path.rsplit(".", 1)[1]
                previous = (current.get("sharing_rate", {}).get("position_mapping", {}).get(part) or {}).get("source", "scorecard total / 100 (intercept 0, slope 1)")
                mapping[part] = {"value": round(float(row.estimate), 4), "source": _cite(row, run_id, ledger_hash, previous)}
            else:
                previous = _get(current, row.path).get("source", "")
                _set(content, row.path, row.estimate, _cite(row, run_id, ledger_hash, previous))
        out.append(_candidate(current, content, run_id, ledger_hash, gates, calibrated_by))
    for current, content in (extra or {}).values():
        out.append(_candidate(current, content, run_id, ledger_hash, gates, calibrated_by))
    return out


def _scale_premiums(content: dict, current: dict, row, run_id: str, ledger_hash: str) -> None:
    """The premiums scaled in proportion so that they total the calibrated premium (the risk-free
    rate is the market's yield and stays); all in the market premium when they total 0 now."""
    rates = content.setdefault("discount_rate", {})
    values = {p: float((current.get("discount_rate", {}).get(p) or {}).get("value", 0.0)) for p in PREMIUMS}
    total = sum(values.values())
    for p in PREMIUMS:
        share = values[p] / total if total > 0 else float(p == "market_premium")
        if share == 0:
            continue
        previous = (current.get("discount_rate", {}).get(p) or {}).get("source", "")
        rates[p] = {"value": round(row.estimate * share, 4),
                    "source": f"{share:.0%} of the calibrated premium total (kept in proportion); " + _cite(row, run_id, ledger_hash, previous)}


def _candidate(current: dict, content: dict, run_id: str, ledger_hash: str, gates: dict, calibrated_by: str | None) -> Candidate:
    name = str(current.get("name"))
    version = int(current.get("version", 0)) + 1 if str(current.get("version", "0")).isdigit() else 1
    content["version"] = version
    content["governance"] = {
        "status": "candidate", "calibration_run": run_id, "ledger_sha256": ledger_hash, "calibrated_from": f"{name}-v{current.get('version')}",
        "gates": {k: bool(v) for k, v in gates.items()}, "gates_passed": bool(gates) and all(gates.values()), "calibrated_by": calibrated_by,
        "promoted_by": None,
    }
    changes = _changes(current, content)
    diff = "".join(difflib.unified_diff(dump(current).splitlines(True), dump(content).splitlines(True),
                                        fromfile=f"{name}-v{current.get('version')} (in use)", tofile=f"{name}-v{version} (candidate)"))
    return Candidate(name, version, content, current, changes, diff)


def check_loads(content: dict) -> None:
    """Check that a candidate loads through the loader valuations use for its kind of set (income
    approach, disposal, pledge policy, CN life table), as a candidate (:func:`ipvalue.config.reading_candidates`).

    Raises
    ------
    AssumptionError, SpecError
        What the set's loader refuses.
    """
    from ipvalue.config import reading_candidates
    from ipvalue.lending.disposal import DisposalAssumptions
    from ipvalue.lending.policy import load_pledge_policy
    from ipvalue.methods.income.assumptions import IncomeAssumptions
    from ipvalue.models.renewal import CNLifeTable

    with tempfile.TemporaryDirectory() as tmp, reading_candidates():
        path = Path(tmp) / f"{content.get('name', 'candidate')}.yaml"
        path.write_text(dump(content), encoding="utf-8")
        if "discount_rate" in content:
            IncomeAssumptions.load(str(path))
        elif "forced_sale_discount" in content:
            DisposalAssumptions.load(str(path))
        elif "pledge_rate" in content:
            load_pledge_policy(str(path))
        elif "types" in content:
            CNLifeTable.load(str(path))


def _changes(current: dict, content: dict, prefix: str = "") -> pd.DataFrame:
    """Every ``value`` that differs between the two (path, current, candidate, source)."""
    rows = []

    def walk(a, b, path):
        if isinstance(b, dict) and "value" in b and not isinstance(b["value"], (dict, list)):
            old = a.get("value") if isinstance(a, dict) else None
            if old != b["value"]:
                rows.append({"path": path, "current": old, "candidate": b["value"], "source": b.get("source", "")})
            return
        if isinstance(b, dict):
            for k, v in b.items():
                if k != "governance":
                    walk(a.get(k, {}) if isinstance(a, dict) else {}, v, f"{path}.{k}" if path else str(k))
        elif isinstance(b, list):
            for i, v in enumerate(b):
                walk(a[i] if isinstance(a, list) and i < len(a) else {}, v, f"{path}[{i}]")

    walk(current, content, prefix)
    return pd.DataFrame(rows, columns=["path", "current", "candidate", "source"])
