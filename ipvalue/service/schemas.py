"""The API's request and response models for the OpenAPI document (pydantic), and its error shape.

The application's request model is generated from the one table of fields,
:data:`~ipvalue.lending.application.APPLICATION_FIELDS` (so there is still one source); the
requests are validated by the same code as the CLI's (:meth:`LoanApplication.from_dict`), which
checks every field's JSON type at once and then each field's domain. Errors are 422 with
``errors: [{field, message, fix}]`` (every type error of a request at once; domain errors one at a
time, in the order the fields are read) and ``detail`` (the same as one sentence).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ipvalue.lending import OVERRIDABLE
from ipvalue.lending.application import APPLICATION_FIELDS

_PYTHON = {"string": str, "number": float, "object": dict[str, Any], "array": list[Any]}


def _application_model() -> type[BaseModel]:
    fields = {}
    for name, (kind, required, text) in APPLICATION_FIELDS.items():
        attribute = name + "_" if hasattr(BaseModel, name) else name  # 'register' is a BaseModel method: the JSON name is an alias
        fields[attribute] = (_PYTHON[kind], Field(... if required else None, description=text, alias=name if attribute != name else None))
    return create_model("LoanApplication", __config__=ConfigDict(extra="forbid", strict=True), **fields)


#: ``POST /v1/valuations``: a pledge-loan application (the fields of ``ipvalue value``'s file).
LoanApplicationIn = _application_model()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OverrideIn(_Strict):
    """An officer's override of the latest version (the officer is the signed-in user)."""

    patent_id: str = Field(description="The patent the override applies to.")
    field: str = Field(description="What is overridden: " + ", ".join(OVERRIDABLE) + ".")
    value: float = Field(description="The officer's value (a fraction, years or RMB, by field).")
    reason: str = Field(description="Why: required, written.")


class SignOffIn(_Strict):
    """A reviewer's sign-off of the latest, "review required" version."""

    reason: str = Field(description="Why the valuation may stand: required, written.")


class ScoreIn(_Strict):
    """A small book to score with the served value model."""

    patents: list[dict[str, Any]] = Field(description="Patent records (PatentFrame or CNIPA / incoPat headers), 1 to 1,000.")
    explain: str = Field("none", description="'none' (default) or 'all' (SHAP in log value per row).")


class PromotionIn(_Strict):
    """Move a registry alias to a version whose gates passed."""

    model_uri: str = Field(description="models:/NAME/VERSION to move the alias to.")
    reason: str = Field(description="Why the model is approved (the validation report's conclusion).")
    alias: str = Field("champion", description="Alias to move: champion or challenger.")


class UserIn(_Strict):
    """A user to issue a token for (admins)."""

    name: str = Field(description="Letters, digits, '.', '_', '@', '-' (recorded in the audit trail).")
    role: str = Field(description="officer, reviewer, validator or admin (one role per name).")
    branch: str = Field("head-office", description="The branch whose applications the user sees and acts on.")


class Problem(BaseModel):
    """One thing wrong with a request."""

    field: str = Field(description="The field (dotted path), or '' for the request as a whole.")
    message: str
    fix: str


class ErrorOut(BaseModel):
    """An error answer: ``detail`` in one sentence, ``errors`` one per field."""

    detail: str
    errors: list[Problem] = []
    latest_valuation_id: str | None = Field(None, description="On a 409 for a version that is no longer the latest: the live one.")
    reference: str | None = Field(None, description="On a 5xx: the reference of the details in the server's log.")


class Links(BaseModel):
    self: str
    report: str
    overrides: str
    sign_off: str
    page: str


class Summary(BaseModel):
    """The decision and the value chain (the JSON has more: every figure with its value type)."""

    model_config = ConfigDict(extra="allow")
    decision: str
    eligible: bool
    market_value_rmb: float
    collateral_value_rmb: float
    loan_cap_rmb: float
    requested_amount_rmb: float
    review_required: bool
    review: dict[str, Any] | None = None
    figures_hash: str


class ValuationOut(BaseModel):
    """A recorded valuation (as ``ipvalue value`` writes its JSON) with its links."""

    model_config = ConfigDict(extra="allow")
    valuation_id: str
    application_id: str
    summary: Summary
    patents: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    overrides: list[dict[str, Any]]
    provenance: dict[str, Any]
    live: bool | None = Field(None, description="Whether this is the application's latest version (the one acts apply to).")
    latest_valuation_id: str | None = None
    links: Links


class QueueItem(BaseModel):
    valuation_id: str
    application_id: str
    valued_at: str
    user: str
    decision: str
    branch: str
    act: str
    supersedes: str | None
    internal_value_rmb: float
    loan_cap_rmb: float


class QueueOut(BaseModel):
    """A page of a work queue."""

    items: list[QueueItem]
    total: int
    limit: int
    offset: int
    branch: str


class UploadOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    upload_id: str
    patents: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]


class ServedModel(BaseModel):
    uri: str
    name: str
    alias: str | None
    version: str
    run_id: str
    data_origin: str


class ModelsOut(BaseModel):
    models: list[ServedModel]
    configuration: dict[str, Any] | None = None


class ScoreOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    scored: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]


class UserOut(BaseModel):
    name: str
    role: str
    branch: str
    token: str = Field(description="Shown once; only its hash is kept.")
