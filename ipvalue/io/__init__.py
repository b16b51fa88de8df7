"""Input and output: patent tables, column mappings, public reference data, atomic writes."""

from ipvalue.io.public import (
    default_data_dir,
    load_ipc_concordance,
    load_oce_claims,
    load_oce_litigation,
    load_oecd_cohorts,
    load_university_maintenance,
)
from ipvalue.io.tables import (
    ColumnMapping,
    detect_encoding,
    neutralise_formulas,
    read_patents,
    read_table,
    sweep_temporary_files,
    write_atomic,
    write_text_atomic,
)
from ipvalue.temporary import remove_temporary_files_on_sigterm

__all__ = [
    "ColumnMapping",
    "default_data_dir",
    "detect_encoding",
    "load_ipc_concordance",
    "load_oce_claims",
    "load_oce_litigation",
    "load_oecd_cohorts",
    "load_university_maintenance",
    "neutralise_formulas",
    "read_patents",
    "read_table",
    "remove_temporary_files_on_sigterm",
    "sweep_temporary_files",
    "write_atomic",
    "write_text_atomic",
]
