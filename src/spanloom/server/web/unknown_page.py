"""The answer to a URL no route matches: an HTML page in the dashboard's layout for a browser,
the JSON error for everyone else.

A browser says it wants HTML (``Accept: text/html``); API clients, exporters and probes do not.
Paths that only machines read (the JSON API, OTLP ingest, probes, metrics, the OpenAPI document,
static files) always answer JSON, whatever the Accept header: a script that sends a browser's
headers still gets an error it can parse.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from spanloom.server.web.chrome import chrome
from spanloom.server.web.render import Links, render

MACHINE_PREFIXES = ("/api/", "/v1/", "/static/", "/docs/assets/")
MACHINE_PATHS = frozenset({"/api", "/v1", "/metrics", "/healthz", "/readyz", "/openapi.json"})


def wants_page(request: Request) -> bool:
    """True when the caller is a browser asking for a page (not a machine path)."""
    path = request.scope["path"]
    if path in MACHINE_PATHS or path.startswith(MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "").lower()


def unknown_page(request: Request) -> Response:
    """404 in the dashboard's layout, with the requested path (escaped) and the ways back."""
    store = request.app.state.store
    context = {
        **chrome(request, store, "", Links(request).path("web_sessions")),
        "path": request.scope["path"],
    }
    return render(request, "page_not_found.html", context, status_code=404)
