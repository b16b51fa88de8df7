"""Input and output: patent tables (bounded reads), column mappings, public reference data, atomic
and private (0600) writes. :func:`ipvalue.io.bounded.read_patents_bounded` parses an untrusted
upload in a worker under a memory limit (imported from its module: it starts processes)."""

from ipvalue.io.public import (
    default_data_dir,
    load_ipc_concordance,
    load_oce_claims,
    load_oce_litigation,
    load_oecd_cohorts,
    load_university_maintenance,
)
from ipvalue.io.tables import (
    DEFAULT_LIMITS,
    UPLOAD_LIMITS,
    ColumnMapping,
    ReadLimits,
    check_encoding,
    detect_encoding,
    neutralise_formulas,
    open_private,
    private_folder,
    read_patents,
    read_table,
    sweep_temporary_files,
    write_atomic,
    write_bytes_atomic,
    write_text_atomic,
)
from ipvalue.temporary import remove_temporary_files_on_sigterm

__all__ = [
    "DEFAULT_LIMITS",
    "UPLOAD_LIMITS",
    "ColumnMapping",
    "ReadLimits",
    "check_encoding",
    "default_data_dir",
    "detect_encoding",
    "load_ipc_concordance",
    "load_oce_claims",
    "load_oce_litigation",
    "load_oecd_cohorts",
    "load_university_maintenance",
    "neutralise_formulas",
    "open_private",
    "private_folder",
    "read_patents",
    "read_table",
    "remove_temporary_files_on_sigterm",
    "sweep_temporary_files",
    "write_atomic",
    "write_bytes_atomic",
    "write_text_atomic",
]
