"""The request guard: what every request passes before the application reads it (an ASGI
middleware, so nothing of a body is read before these checks).

For a request with a body (POST, PUT, PATCH, DELETE):

1. **Same site** (CSRF): a post from the page (``/ui/...``), or any write authenticated by the
   page's session cookie, must carry an ``Origin`` (or ``Referer``) of this service's own origin;
   a cross-site form post is 403.
2. **Authentication first**: the bearer token or the session is checked from the headers (the
   sign-in form excepted); without one the answer is 401 and the body is never read.
3. **Size from the headers**: a ``Content-Length`` above the route's limit is 413 before reading;
   a body without one (chunked) is read up to the limit and cut there (413).

Every response carries ``Content-Security-Policy``, ``X-Frame-Options: DENY``,
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` and ``Cache-Control:
no-store`` (pages, reports and API answers hold credit data).
"""

from __future__ import annotations

import json
import logging
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from ipvalue.service.auth import authenticate_scope

logger = logging.getLogger(__name__)

#: Largest body of a JSON request (bytes): an application file's limit.
JSON_LIMIT = 1_000_000
#: Largest body of an upload (bytes): the export's limit and the multipart framing.
UPLOAD_LIMIT = 20_000_000 + 64_000
#: Largest body of the sign-in form (bytes).
LOGIN_LIMIT = 8_192
#: Posts that need no authentication (the sign-in form: it brings the token).
PUBLIC_POSTS = ("/ui/login",)
#: The page's and the API's content policy: no script at all, styles and images inline only.
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: The API documentation's policy: its scripts and styles from this service only.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            "worker-src 'self' blob:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def body_limit(path: str) -> int:
    """The largest body a route reads (bytes)."""
    if path in ("/v1/uploads", "/ui/upload", "/ui/valuations", "/ui/application-file"):  # the page's forms carry files
        return UPLOAD_LIMIT
    if path in PUBLIC_POSTS:
        return LOGIN_LIMIT
    return JSON_LIMIT


class RequestGuard:
    """The ASGI middleware (see the module docstring). ``service`` is the app's
    :class:`~ipvalue.service.core.ValuationService` (its users and sessions)."""

    def __init__(self, app, service):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = _with_security_headers(scope, send)
        if scope["method"] not in _UNSAFE:
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        cookies = _cookies(headers.get("cookie", ""))
        bearer = headers.get("authorization", "").lower().startswith("bearer ")
        if (path.startswith("/ui/") or (not bearer and cookies)) and not _same_origin(scope, headers):
            logger.warning("refused a cross-site %s %s (origin %r, referer %r)", scope["method"], path, headers.get("origin"), headers.get("referer"))
            return await _answer(send, 403, path, "This form must be sent from the service's own page (the request came from another site). "
                                                  "Fix: open the page at this service's address and send it from there.")
        if path not in PUBLIC_POSTS:
            who, how = await run_in_threadpool(authenticate_scope, headers, cookies, self.service)
            if who is None:
                return await _answer(send, 401, path, "Authentication required: send 'Authorization: Bearer <token>' (create one with "
                                                      "'ipvalue users add NAME --role ROLE'), or sign in on the page.")
            state = scope.setdefault("state", {})
            state["identity"], state["authenticated_by"] = who, how
        limit = body_limit(path)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return await _answer(send, 400, path, f"The Content-Length header must be a whole number. Got {length[:20]!r}.")
            if int(length) > limit:
                return await _answer(send, 413, path, f"The request body is {int(length):,} bytes, above the {limit:,} this route accepts. "
                                                      "Fix: upload exports up to 20 MB (POST /v1/uploads) and name them in 'patents.file'.")
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > limit:
                return await _answer(send, 413, path, f"The request body is above the {limit:,} bytes this route accepts (cut there). "
                                                      "Fix: send a smaller body.")
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _cookies(text: str) -> dict:
    jar = SimpleCookie()
    try:
        jar.load(text)
    except CookieError:
        return {}
    return {k: v.value for k, v in jar.items()}


def _same_origin(scope, headers: dict) -> bool:
    """Whether the request's Origin (else Referer) is this service's own origin (scheme and host
    as the client addressed it; behind the proxy, ``X-Forwarded-Proto`` and ``Host`` set them)."""
    source = headers.get("origin") or headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme == scope.get("scheme", "http") and parts.netloc.lower() == headers.get("host", "").lower()


async def _answer(send, status: int, path: str, detail: str) -> None:
    """A complete response sent by the guard itself (the application never saw the request)."""
    extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
    if path.startswith("/ui/"):
        body = (f"<!doctype html><meta charset='utf-8'><title>ipvalue</title><p id='error'>{_html(detail)}</p>"
                "<p><a href='/ui'>登录 Sign in</a></p>").encode("utf-8")
        kind = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"detail": detail, "errors": [{"field": "", "message": detail.split(" Fix: ")[0], "fix": detail.partition(" Fix: ")[2]}]},
                          ensure_ascii=False).encode("utf-8")
        kind = b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()), (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": body})


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;").replace('"', "&quot;")


def _with_security_headers(scope, send):
    docs = scope["path"] in ("/docs", "/redoc") or scope["path"].startswith("/docs/assets/")
    policy = (DOCS_CSP if docs else PAGE_CSP).encode()

    async def wrapped(message):
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            added = [(b"content-security-policy", policy), (b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                     (b"referrer-policy", b"same-origin"), (b"cache-control", b"no-store")]
            message = {**message, "headers": [*message.get("headers", []), *[(k, v) for k, v in added if k not in present]]}
        await send(message)

    return wrapped
