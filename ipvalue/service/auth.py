"""Who is calling: an API token (``Authorization: Bearer <token>``, or the officer page's
HttpOnly cookie) mapped to an :class:`~ipvalue.audit.Identity` by the audit store. 401 without a
valid token, 403 when the role may not do the action."""

from __future__ import annotations

from fastapi import HTTPException, Request

from ipvalue.audit import Identity, authenticate

COOKIE = "ipvalue_token"


def identity_of(request: Request) -> Identity | None:
    """The authenticated identity of a request, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        token = request.cookies.get(COOKIE, "")
    return authenticate(token.strip(), request.app.state.service.settings.audit_db) if token else None


def require(*roles: str):
    """A FastAPI dependency: the caller's identity, if it has one of ``roles`` (any role when none given)."""

    def dependency(request: Request) -> Identity:
        who = identity_of(request)
        if who is None:
            raise HTTPException(401, "Authentication required: send 'Authorization: Bearer <token>' (create one with 'ipvalue users add NAME --role ROLE').",
                                headers={"WWW-Authenticate": "Bearer"})
        if roles and who.role not in roles:
            raise HTTPException(403, f"User {who.name!r} has role {who.role!r}; this action needs role {' or '.join(roles)}.")
        return who

    return dependency
