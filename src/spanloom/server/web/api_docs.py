"""``/docs``: the API's Swagger UI, served from this server with the dashboard's security headers.

FastAPI's own page loads Swagger UI from a CDN, unpinned and without Subresource Integrity, and
starts it with an inline script, so it could run whatever that CDN served, on the dashboard's
origin. Here the page is a template of ours, the Swagger UI files come from the installed
`fastapi-offline` package (read once at import: a request can only name one of them), and the
script that starts Swagger UI is a file under /static, so the Content-Security-Policy of the pages
(no inline script, nothing from other origins) holds on /docs too.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from spanloom.server.errors import HttpError
from spanloom.server.web.render import SECURITY_HEADERS, environment

router = APIRouter(include_in_schema=False)

ASSETS_PATH = "/docs/assets/"
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
_ASSETS: dict[str, bytes] = {
    name: (files("fastapi_offline") / "static" / name).read_bytes() for name in _TYPES
}
# A content hash in each URL: browsers may cache the files, and a new version gets a new URL.
_VERSIONS = {name: hashlib.sha256(body).hexdigest()[:12] for name, body in _ASSETS.items()}


def asset_url(name: str) -> str:
    return f"{ASSETS_PATH}{name}?v={_VERSIONS[name]}"


@router.get("/docs")
def api_docs() -> HTMLResponse:
    html = environment.get_template("api_docs.html").render(asset_url=asset_url, openapi_url="/openapi.json")
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get(ASSETS_PATH + "{name}")
def api_docs_asset(name: str) -> Response:
    body = _ASSETS.get(name)
    if body is None:
        raise HttpError(404, "not_found", f"no docs asset {name!r}")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"}
    return Response(body, media_type=_TYPES[name], headers=headers)
