"""Who is calling: an API token (``Authorization: Bearer <token>``) or the officers' page's
session cookie (a server-side session of its own, :mod:`ipvalue.service.sessions`), mapped to an
:class:`~ipvalue.audit.Identity` (name, role, branch) by the audit store. 401 without a valid
token or session, 403 when the role may not do the action.

The identity is found once per request: the request guard (:mod:`ipvalue.service.guard`)
authenticates requests with a body before reading it and keeps the identity in the request's
state; :func:`identity_of` reuses it.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ipvalue.audit import Identity, authenticate, authenticate_digest

#: The page's session cookie (a session id, never the API token).
COOKIE = "ipvalue_session"
#: Where the OpenAPI document names the bearer scheme (``securitySchemes``).
bearer = HTTPBearer(auto_error=False, description="An API token from 'ipvalue users add' (or POST /v1/users by an admin).")
_UNSET = object()


def authenticate_scope(headers: dict, cookies: dict, service) -> tuple[Identity | None, str]:
    """The identity of a request from its headers (a bearer token) or its session cookie, and how
    (``"token"``, ``"session"`` or ``""``)."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        return authenticate(token, service.settings.audit_db), "token"
    session = cookies.get(COOKIE)
    if session:
        digest = service.sessions.token_of(session)
        return (authenticate_digest(digest, service.settings.audit_db) if digest else None), "session"
    return None, ""


def identity_of(request: Request) -> Identity | None:
    """The authenticated identity of a request, or None (found once per request)."""
    found = getattr(request.state, "identity", _UNSET)
    if found is _UNSET:
        found, how = authenticate_scope(request.headers, request.cookies, request.app.state.service)
        request.state.identity, request.state.authenticated_by = found, how
    return found


def require(*roles: str):
    """A FastAPI dependency: the caller's identity, if it has one of ``roles`` (any role when none given)."""

    def dependency(request: Request, _: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Identity:
        who = identity_of(request)
        if who is None:
            raise HTTPException(401, "Authentication required: send 'Authorization: Bearer <token>' (create one with 'ipvalue users add NAME --role ROLE').",
                                headers={"WWW-Authenticate": "Bearer"})
        if roles and who.role not in roles:
            raise HTTPException(403, f"User {who.name!r} has role {who.role!r}; this action needs role {' or '.join(roles)}.")
        return who

    return dependency
