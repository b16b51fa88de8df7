"""The override log: how often officers overrode the model, in which direction, by how much."""

from __future__ import annotations

import pandas as pd

from ipvalue.audit import read_audit_table


def override_summary(audit_db=None) -> pd.DataFrame:
    """How often officers overrode the model, in which direction, by how much (per field)."""
    valuations, overrides = read_audit_table("valuations", audit_db), read_audit_table("overrides", audit_db)
    if overrides.empty:
        return pd.DataFrame([{"field": "all", "overrides": 0, "valuations": len(valuations), "share_of_valuations": 0.0}])
    change = overrides["override_value"] / overrides["model_value"].where(overrides["model_value"] != 0) - 1
    overrides = overrides.assign(change=change, up=change > 0, down=change < 0)
    table = overrides.groupby("field").agg(
        overrides=("field", "size"), valuations_with_override=("valuation_id", "nunique"), up=("up", "sum"), down=("down", "sum"),
        mean_relative_change=("change", "mean"), median_relative_change=("change", "median"), officers=("officer", "nunique"),
    ).reset_index()
    table["share_of_valuations"] = table["valuations_with_override"] / max(len(valuations), 1)
    return table
