"""The CN life table re-estimated from a bank's CNIPA register export, the way ``ipvalue train``
does it (the same loader, labels, renewal model and :func:`~ipvalue.models.renewal.life_table_estimate`),
with each hazard's 90 % interval and the thin ages left unchanged."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ipvalue.calibration.estimate import ESTIMATE_COLUMNS, Settings
from ipvalue.config import load_yaml
from ipvalue.exceptions import InputError
from ipvalue.models.renewal import CNLifeTable, life_table_estimate
from ipvalue.training.experiment import load_register_training_data, renewal_model

logger = logging.getLogger(__name__)

__all__ = ["life_table_from_register"]

#: The renewal model a register export trains here: the CN annual-fee schedule and features of
#: ``experiments/renewal-cnipa-synthetic.yaml``.
RENEWAL_MODEL = {"kind": "renewal", "feature_spec": "renewal-cn-v1", "fee_schedule": "cn-annual", "params": {"min_child_samples": 100}}
#: Years from a fee's due date to its lapse's announcement in the export (the late period, the
#: notice and the gazette), as the shipped register experiment assumes: later stages are censored.
ANNOUNCEMENT_LAG_DAYS = 365


def life_table_from_register(register, patents, settings: Settings, *, exported_on=None, observed_until=None, data_dir=None,
                             life_table: str = "cn-life-table") -> tuple[pd.DataFrame, dict, dict]:
    """Hazards by patent type and filing anniversary from a register export.

    Parameters
    ----------
    register : str or Path
        The CNIPA legal-status export (the format ``ipvalue.io.read_register`` reads).
    patents : str or Path
        The bank's patent list joined to it by 申请号 (a PatentFrame file).
    settings : Settings
        ``minimum_n.life_table_at_risk``: an age with fewer patents at risk keeps the current hazard.
    exported_on : date-like, optional
        The export's date (default: its latest announcement date).
    observed_until : date-like, optional
        Fee stages due later are censored (default: ``exported_on`` minus a year).

    Returns
    -------
    rows : pandas.DataFrame
        One estimate row per type and age (columns of the estimates table).
    current, candidate : dict
        The life table in use and the estimated one, in the schema of ``cn-life-table.yaml``.
    """
    from ipvalue.io.register import read_register

    register, patents = Path(register), Path(patents)
    for what, path in (("register export", register), ("patent list", patents)):
        if not path.is_file():
            raise InputError(f"The {what} {str(path)!r} is not a file. Fix: give the path of the bank's file.")
    if exported_on is None:
        exported_on = read_register(register).events["event_date"].max()
    exported_on = pd.Timestamp(exported_on).normalize()
    observed_until = pd.Timestamp(observed_until).normalize() if observed_until is not None else exported_on - pd.Timedelta(days=ANNOUNCEMENT_LAG_DAYS)
    spec = {
        "_path": str(register.resolve().parent / "ipvalue-calibrate.yaml"), "name": "calibrate-register",
        "data": {"loader": "cnipa_register", "patents": str(patents.resolve()), "register": str(register.resolve()), "label": "fees_paid",
                 "exported_on": exported_on.strftime("%Y-%m-%d"), "observed_until": observed_until.strftime("%Y-%m-%d"), "origin": "bank register export"},
        "model": dict(RENEWAL_MODEL),
    }
    data = load_register_training_data(spec)
    model = renewal_model(spec, data_dir).fit(data, data["fees_paid"])
    need = settings.minimum_n["life_table_at_risk"]
    estimated = life_table_estimate(model, f"register export {register.name}, observed until {observed_until.date()}", min_rows=need)
    current_raw, _ = load_yaml(life_table)
    current = CNLifeTable.load(life_table)
    counts = model.stage_counts_.reset_index()
    counts["age"] = np.asarray(model.schedule_.due_years)[counts["stage"].astype(int).to_numpy() - 1].astype(int)
    counts = counts.set_index(["patent_type", "age"])
    candidate = copy.deepcopy(current_raw)
    candidate["method"] = estimated["method"] + "; ages with fewer patents at risk than the minimum keep the table in use"
    rows = []
    from scipy.stats import beta

    tail = (1 - settings.coverage) / 2
    for ptype, entry in estimated["types"].items():
        bands = []
        for band, hazard_now in zip(entry["bands"], current.hazards[ptype]):
            age = band["ages"][0]
            at_risk, lapses = (int(counts.at[(ptype, age), "rows"]), int(counts.at[(ptype, age), "lapses"])) if (ptype, age) in counts.index else (0, 0)
            thin = at_risk < need
            lo, hi = (beta.ppf([tail, 1 - tail], lapses + 0.5, at_risk - lapses + 0.5) if at_risk else (np.nan, np.nan))
            value = float(hazard_now) if thin else float(band["value"])
            source = f"unchanged ({at_risk} {ptype} patents at risk at age {age}, minimum {need})" if thin else band["source"]
            bands.append({"ages": [age, age], "value": round(value, 4), "source": source})
            rows.append(dict(zip(ESTIMATE_COLUMNS, [f"life_table.{ptype}.{age}", f"年费失效风险（{ptype}，第{age}年）", f"lapse hazard, {ptype}, anniversary {age}",
                                                    "cn-life-table", f"types.{ptype}.bands", "per year", float(hazard_now),
                                                    lapses / at_risk if at_risk else np.nan, lo, hi, at_risk, need,
                                                    "lapses / patents at risk at the fee due at that filing anniversary (as ipvalue train); Jeffreys interval",
                                                    not thin and abs(value - float(hazard_now)) > 1e-12, source,
                                                    bool(lo <= hazard_now <= hi) if at_risk else None])))
        candidate["types"].setdefault(ptype, {})["bands"] = bands
    return pd.DataFrame(rows, columns=ESTIMATE_COLUMNS), current_raw, candidate
