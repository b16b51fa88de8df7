"""The API documentation, served by the service itself: ``/openapi.json``, ``/docs`` (Swagger UI)
and ``/redoc`` (ReDoc), for authenticated users only (a bearer token, or the page's session:
sign in on ``/ui`` first), and switched off with ``ipvalue serve --no-docs``.

The Swagger UI and ReDoc assets come from the ``fastapi-offline`` package (MIT; Swagger UI is
Apache-2.0, ReDoc MIT), read from its installed files: nothing is fetched from a CDN, so the pages
work on a bank's offline network. Swagger UI is started by a script file of ipvalue's own
(``static/swagger-init.js``), so the pages need no inline script.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ipvalue.service.auth import require
from ipvalue.service.core import NotFound

#: The assets served under /docs/assets/ and the package each comes from.
ASSETS = {"swagger-ui-bundle.js": "fastapi_offline", "swagger-ui.css": "fastapi_offline", "redoc.standalone.js": "fastapi_offline",
          "favicon.png": "fastapi_offline", "swagger-init.js": "ipvalue.service"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}

router = APIRouter(include_in_schema=False)


def _asset(name: str) -> bytes:
    return (resources.files(ASSETS[name]) / "static" / name).read_bytes()


@router.get("/openapi.json")
def openapi(request: Request, who=Depends(require())):
    return JSONResponse(request.app.openapi())


@router.get("/docs", response_class=HTMLResponse)
def swagger(who=Depends(require())):
    return HTMLResponse("<!doctype html><html><head><meta charset='utf-8'><title>ipvalue API</title>"
                        "<link rel='stylesheet' href='/docs/assets/swagger-ui.css'><link rel='icon' href='/docs/assets/favicon.png'></head>"
                        "<body><div id='swagger-ui'></div><script src='/docs/assets/swagger-ui-bundle.js'></script>"
                        "<script src='/docs/assets/swagger-init.js'></script></body></html>")


@router.get("/redoc", response_class=HTMLResponse)
def redoc(who=Depends(require())):
    return HTMLResponse("<!doctype html><html><head><meta charset='utf-8'><title>ipvalue API</title>"
                        "<link rel='icon' href='/docs/assets/favicon.png'></head><body><redoc spec-url='/openapi.json'></redoc>"
                        "<script src='/docs/assets/redoc.standalone.js'></script></body></html>")


@router.get("/docs/assets/{name}")
def asset(name: str):
    if name not in ASSETS:
        raise NotFound(f"No asset {name!r}.")
    return Response(_asset(name), media_type=_TYPES[name[name.rindex("."):]])
