"""One workflow for every entry point: value an application, record it, report it; and the acts
on a recorded valuation (an officer's override, a reviewer's sign-off).

``ipvalue value`` and ``ipvalue review`` (the CLI), ``ipvalue demo`` and the service all call
:func:`value_and_record` (and :func:`sign_off`), so the same controls hold in every path:

1. **Who acts** is an authenticated :class:`~ipvalue.audit.Identity` (an API token: the service's
   bearer token, the CLI's ``$IPVALUE_TOKEN`` or token file), with its role and branch; officers
   value and override, reviewers sign off (:data:`ACT_ROLES`); an application belongs to the
   branch that first valued it, and only that branch's users act on it.
2. **Exposure without a window**: the borrower's open IP-pledge applications are read from the
   audit store (SQLite or PostgreSQL) for the ¥10M rule on total exposure, the application is
   valued, and then, *under the chain lock* (the audit transaction), the borrower's applications
   are read again: if another writer recorded one meanwhile, the application is valued again
   there, with what is recorded now, and that valuation is recorded (other writers wait for it).
   A store that cannot be read stops the valuation (never "this request only").
3. **One live valuation per application**: every record names the version it ``supersedes``
   (the application's latest, read under the lock); an override or a sign-off names the version
   it acts on and is refused (:class:`VersionConflict`, with the latest id) unless that is still
   the latest when it is recorded, so of 20 parallel overrides of one version one is recorded.
   Overrides carry forward: an application's overrides are each either the acting officer's or
   one recorded on its latest version, unchanged.
4. **Four eyes** (审贷分离): a sign-off is a reviewer's act on a "review required" version, by a
   reviewer who is none of the officers on the application's chain (whoever valued or overrode
   it); it binds to the figures' hash of the version approved and holds only while the
   re-valuation gives the same figures, so any later change (an override, another model) lapses
   it. Material overrides (:func:`ipvalue.lending.policy.material_overrides`) need one.
5. **Idempotency**: a request key (a hash of the user and the client's ``Idempotency-Key``) is
   recorded with the valuation; the same key again finds it (:class:`DuplicateRequest`), under
   the lock, so a retry never records twice.
6. The valuation is recorded in the chained audit store, and the reports (JSON with the report's
   sections, HTML, PDF) are written inside the same transaction: a failed record leaves no report,
   a failed report no record. A caller that renders elsewhere (the service renders off the
   request path, from the record) passes ``out_dir=None`` and its own ``while_recording`` step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ipvalue.audit import (
    Identity,
    application_versions,
    borrowers_since,
    chain_head,
    find_request,
    pledge_applications,
    read_valuation,
    recording,
    store_exists,
    version_overrides,
)
from ipvalue.config import sets_checked_against
from ipvalue.exceptions import InputError
from ipvalue.lending import LoanApplication, ValuationResult, value_application
from ipvalue.names import same_name

#: Which role performs each act on an application.
ACT_ROLES = {"valuation": "officer", "override": "officer", "sign-off": "reviewer"}


class Conflict(InputError):
    """The request does not fit the application's recorded state (HTTP 409; the CLI's exit 3)."""


class VersionConflict(Conflict):
    """The act names a version that is no longer the application's latest; ``latest`` is the live one."""

    def __init__(self, message: str, latest: str | None):
        super().__init__(message)
        self.latest = latest


class DuplicateRequest(Conflict):
    """A request key already recorded: ``valuation_id`` is the first request's valuation and
    ``same_body`` says whether this request's body is the same."""

    def __init__(self, valuation_id: str, same_body: bool):
        super().__init__(f"This request key was used for valuation {valuation_id}" + ("" if same_body else " with another body"))
        self.valuation_id, self.same_body = valuation_id, same_body


class NotPermitted(InputError):
    """The acting user may not do this (wrong role, another branch, or the four-eyes rule)."""


class NotFound(InputError):
    """No recorded valuation with that id (or not in the acting user's branch): HTTP 404."""


@dataclass
class Recorded:
    """A recorded valuation: the result, where its reports were written, the store, and the
    result's JSON text as recorded (``result_json``: an answer sent on as it is)."""

    result: ValuationResult
    store: object
    paths: dict = field(default_factory=dict)
    result_json: str = ""


def request_key(identity: Identity, key: str) -> str:
    """What the store keeps for a client's idempotency key: SHA-256 of the user and the key (a
    key is the client's, so one user's key never finds another's request)."""
    return hashlib.sha256(f"{identity.name}\n{key}".encode()).hexdigest()


def value_and_record(app: LoanApplication, *, store=None, identity: Identity, authenticated_by: str = "api token", models=None,
                     tracking_uri: str | None = None, data_dir=None, out_dir: str | Path | None = None, pdf: bool | None = None,
                     provenance: dict | None = None, while_recording=None, act: str = "valuation", acts_on: str | None = None,
                     request: tuple[str, str] | None = None, accept=None) -> Recorded:
    """Value ``app``, record it in the audit ``store`` and write its reports (see the module docstring).

    Parameters
    ----------
    app : LoanApplication
    store : str or Path, optional
        The audit store (a SQLite path or a ``postgresql://`` URL); default ``$IPVALUE_AUDIT_DB``
        or ``audit/ipvalue-audit.db``.
    identity : Identity
        Who acts, authenticated (name, role, branch).
    authenticated_by : str, default="api token"
        How (recorded in the provenance, e.g. ``"api token ($IPVALUE_TOKEN); os user wang"``).
    models : dict, optional
        Loaded registered models by kind (a service keeps them loaded); else the application's
        are loaded.
    out_dir : str or Path, optional
        Where to write the reports (HTML, JSON, PDF); None writes none.
    pdf : bool, optional
        See :func:`ipvalue.report.write_reports`.
    provenance : dict, optional
        Added to the result's provenance before it is recorded.
    while_recording : callable, optional
        ``f(result)`` run inside the audit transaction after the reports (e.g. the service stores
        the application as received): its failure rolls the record back.
    act : {'valuation', 'override', 'sign-off'}, default='valuation'
    acts_on : str, optional
        The version an override or sign-off acts on: it must be the application's latest when the
        record is written (else :class:`VersionConflict`). A valuation supersedes the latest.
    request : (str, str), optional
        ``(request key, SHA-256 of the request body)`` (:func:`request_key`): a key recorded
        before raises :class:`DuplicateRequest`, before valuing and again under the lock.
    accept : callable, optional
        ``accept(result)`` before recording; raises to refuse (a sign-off whose figures changed).

    Raises
    ------
    AuditStoreError
        The store cannot be read or written: nothing is recorded or written.
    NotPermitted, VersionConflict, DuplicateRequest, Conflict
        The act is refused; nothing is written.
    """
    _check_role(identity, act)
    if request is not None and (found := find_request(request[0], store)) is not None:
        raise DuplicateRequest(found["valuation_id"], found["request_sha256"] == request[1])
    versions = application_versions(app.application_id, store) if store_exists(store) else None
    _check_versions(app, versions, identity, act=act, acts_on=acts_on)
    _check_override_officers(app, versions, identity, store)
    head = chain_head(store)
    applications = pledge_applications(store)

    def valued(applications):
        with sets_checked_against(store):  # a promoted set is used only when this store records its promotion
            result = value_application(app, models=models, tracking_uri=tracking_uri, data_dir=data_dir, user=identity.name, applications=applications)
        result.provenance.update({"user_role": identity.role, "branch": identity.branch, "authenticated_by": authenticated_by, "act": act,
                                  **(provenance or {})})
        if request is not None:
            result.provenance.update({"request_key": request[0], "request_sha256": request[1]})
        if accept is not None:
            accept(result)
        return result

    final = {"result": valued(applications)}

    def guard(con):
        if request is not None and (found := find_request(request[0], connection=con)) is not None:
            raise DuplicateRequest(found["valuation_id"], found["request_sha256"] == request[1])
        now = application_versions(app.application_id, connection=con)
        _check_versions(app, now, identity, act=act, acts_on=acts_on)
        if _borrowers_changed(borrowers_since(head, store, connection=con), app):
            # another writer recorded one of the borrower's applications since the read: value again, under the lock,
            # with what is recorded now (other writers wait for this one valuation)
            final["result"] = valued(pledge_applications(store, connection=con))
        final["result"].provenance["supersedes"] = str(now["valuation_id"].iloc[-1]) if len(now) else ""
        return final["result"]

    paths: dict = {}
    written: dict = {}
    with recording(final["result"], store, guard=guard, written=written) as stored:
        result = final["result"]
        if out_dir is not None:
            from ipvalue.report import write_reports

            paths = write_reports(result, out_dir, pdf=pdf)
        if while_recording is not None:
            while_recording(result)
    return Recorded(result, stored, paths, written["result_json"])


def sign_off(valuation_id: str, app: LoanApplication, *, reason: str, identity: Identity, store=None, **options) -> Recorded:
    """A reviewer's sign-off of the "review required" version ``valuation_id``: the application is
    valued again with the review, bound to the approved figures' hash, and recorded as the version
    that supersedes it (decided "eligible" when nothing else fails).

    Parameters
    ----------
    valuation_id : str
        The version approved: the application's latest.
    app : LoanApplication
        The application as valued in that version (its input hash must match the record's).
    reason : str
        Why the valuation may stand (written).
    identity : Identity
        The reviewer: role reviewer, the application's branch, and none of the officers who valued
        or overrode the application (审贷分离).
    **options
        As :func:`value_and_record` takes them (models, out_dir, request, ...).

    Raises
    ------
    NotFound, NotPermitted, VersionConflict, Conflict
        Unknown version; a reviewer on the chain, another branch or role; not the latest version;
        not "review required", another application, or figures that changed since (the sign-off
        would lapse at once: value again, then review the new figures).
    """
    _check_role(identity, "sign-off")
    if not isinstance(reason, str) or not reason.strip():
        raise InputError("A sign-off needs a written 'reason'. Fix: say why the valuation may stand (e.g. the methods' disagreement is explained).")
    recorded = _recorded(valuation_id, store, identity)
    summary = recorded["summary"]
    if summary.get("decision") != "review required":
        raise Conflict(f"Valuation {valuation_id!r} is {summary.get('decision')!r}: only a 'review required' valuation is signed off.")
    if recorded["provenance"].get("input_hash") != app.input_hash or recorded["application_id"] != app.application_id:
        raise Conflict(f"The application given is not the one valued in {valuation_id!r} (its input hash differs). "
                       "Fix: give the application file exactly as it was valued.")
    versions = application_versions(app.application_id, store)
    chain = _officers_on_chain(versions, store)
    if identity.name in chain:
        raise NotPermitted(f"{identity.name!r} valued or overrode application {app.application_id} and so may not sign it off (审贷分离: the "
                           f"reviewer differs from every officer on the valuation, here {sorted(chain)}). Fix: another reviewer signs off.")
    review = {"reviewer": identity.name, "reason": reason.strip(), "signed_valuation_id": valuation_id, "figures_hash": summary.get("figures_hash")}

    def accept(result):
        if result.summary.get("review") is None:
            raise Conflict(f"The figures of valuation {valuation_id!r} changed when it was valued again (another model version, the borrower's "
                           "exposure or the register): the sign-off would lapse at once. Fix: value the application again and review the new figures.")

    return value_and_record(replace(app, review=review), store=store, identity=identity, act="sign-off", acts_on=valuation_id, accept=accept, **options)


def _recorded(valuation_id: str, store, identity: Identity) -> dict:
    """The recorded valuation's JSON, if the acting user's branch may see it."""
    import json

    row = read_valuation(valuation_id, store) if store_exists(store) else None
    if row is None or row["branch"] != identity.branch:
        raise NotFound(f"No valuation {valuation_id!r} is recorded for branch {identity.branch!r}.")
    return json.loads(row["result_json"])


def _check_role(identity: Identity, act: str) -> None:
    role = ACT_ROLES[act]
    if identity.role != role:
        raise NotPermitted(f"User {identity.name!r} has role {identity.role!r}; {'a ' + act if act != 'override' else 'an override'} needs role {role}.")


def _check_versions(app: LoanApplication, versions: pd.DataFrame | None, identity: Identity, *, act: str, acts_on: str | None) -> None:
    """The application's branch is the acting user's; an act on a version names the latest."""
    if versions is None or not len(versions):
        if acts_on is not None:
            raise NotFound(f"No valuation {acts_on!r} is recorded for branch {identity.branch!r}.")
        return
    if versions["branch"].iloc[-1] != identity.branch:
        raise NotPermitted(f"Application {app.application_id} is another branch's. Fix: choose another application id, or ask that branch.")
    latest = str(versions["valuation_id"].iloc[-1])
    if acts_on is not None and acts_on != latest:
        if acts_on not in set(versions["valuation_id"]):
            raise NotFound(f"Valuation {acts_on!r} is not a version of application {app.application_id}.")
        raise VersionConflict(f"Valuation {acts_on!r} is no longer the latest version of application {app.application_id}: {latest!r} is. "
                              f"Fix: look at {latest!r} and act on it.", latest)


def _officers_on_chain(versions: pd.DataFrame | None, store) -> set[str]:
    """Everyone who valued or overrode the application (any version)."""
    if versions is None or not len(versions):
        return set()
    preparers = set(versions.loc[versions["act"] != "sign-off", "user"].astype(str))
    return preparers | set(version_overrides(versions["valuation_id"], store)["officer"].astype(str))


def _check_override_officers(app: LoanApplication, versions: pd.DataFrame | None, identity: Identity, store) -> None:
    """Each override is the acting officer's, or carried forward unchanged from the latest version."""
    if not app.overrides:
        return
    carried = set()
    if versions is not None and len(versions):
        latest = version_overrides([versions["valuation_id"].iloc[-1]], store)
        carried = {(r.patent_id, r.field, float(r.override_value), r.reason, r.officer) for r in latest.itertuples()}
    for i, o in enumerate(app.overrides):
        if (o.patent_id, o.field, float(o.value), o.reason, o.officer) in carried:
            continue
        if o.officer != identity.name or identity.role != "officer":
            raise NotPermitted(f"overrides[{i}] ({o.field} of {o.patent_id}) is by {o.officer!r}, but the signed-in user is {identity.name!r} "
                               f"({identity.role}). Fix: an override is made by the signed-in officer; another officer's override carries forward "
                               "only as it was recorded on the application's latest version.")


def _borrowers_changed(since: pd.DataFrame, app: LoanApplication) -> bool:
    """Whether a valuation recorded since the read is another application of the same borrower."""
    if not len(since):
        return False
    mine = same_name(app.borrower, since["borrower"].fillna("").astype(str)).to_numpy(dtype=bool)
    return bool((mine & (since["application_id"] != app.application_id).to_numpy()).any())
