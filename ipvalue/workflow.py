"""One workflow for every entry point: value an application, record it, report it.

``ipvalue value`` (the CLI), ``ipvalue demo`` and the service all call :func:`value_and_record`,
so the same controls hold in every path:

1. the borrower's open IP-pledge applications are read from the audit store (SQLite or
   PostgreSQL) for the ¥10M rule on total exposure; a store that cannot be read stops the
   valuation (never "this request only");
2. the application is valued by the pipeline (:func:`ipvalue.lending.value_application`);
3. the valuation is recorded in the chained audit store, and the reports (JSON with the report's
   sections, HTML, PDF) are written inside the same transaction: a failed record leaves no report,
   a failed report no record. A caller that renders elsewhere (the service renders off the
   request path, from the record) passes ``out_dir=None`` and its own ``while_recording`` step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ipvalue.audit import pledge_applications, recording
from ipvalue.config import sets_checked_against
from ipvalue.lending import LoanApplication, ValuationResult, value_application


@dataclass
class Recorded:
    """A recorded valuation: the result, where its reports were written, the store."""

    result: ValuationResult
    store: object
    paths: dict = field(default_factory=dict)


def value_and_record(app: LoanApplication, *, store=None, user: str, models=None, tracking_uri: str | None = None, data_dir=None,
                     out_dir: str | Path | None = None, pdf: bool | None = None, provenance: dict | None = None, while_recording=None) -> Recorded:
    """Value ``app``, record it in the audit ``store`` and write its reports (see the module docstring).

    Parameters
    ----------
    app : LoanApplication
    store : str or Path, optional
        The audit store (a SQLite path or a ``postgresql://`` URL); default ``$IPVALUE_AUDIT_DB``
        or ``audit/ipvalue-audit.db``.
    user : str
        Who values (the authenticated identity in the service; the CLI's user).
    models : dict, optional
        Loaded registered models by kind (a service keeps them loaded); else the application's
        are loaded.
    out_dir : str or Path, optional
        Where to write the reports (HTML, JSON, PDF); None writes none.
    pdf : bool, optional
        See :func:`ipvalue.report.write_reports`.
    provenance : dict, optional
        Added to the result's provenance before it is recorded (e.g. the user's role, the
        valuation it supersedes).
    while_recording : callable, optional
        ``f(result)`` run inside the audit transaction after the reports (e.g. the service stores
        the application as received): its failure rolls the record back.

    Raises
    ------
    AuditStoreError
        The store cannot be read or written: nothing is recorded or written.
    """
    applications = pledge_applications(store)
    with sets_checked_against(store):  # a promoted set is used only when this store records its promotion
        result = value_application(app, models=models, tracking_uri=tracking_uri, data_dir=data_dir, user=user, applications=applications)
    if provenance:
        result.provenance.update(provenance)
    paths: dict = {}
    with recording(result, store) as stored:
        if out_dir is not None:
            from ipvalue.report import write_reports

            paths = write_reports(result, out_dir, pdf=pdf)
        if while_recording is not None:
            while_recording(result)
    return Recorded(result, stored, paths)
