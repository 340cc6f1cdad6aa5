"""Rendering a page: the Jinja environment, links, security headers and the static files.

Autoescape is on for every template, whatever its name, and no filter here marks text safe:
whatever a span carries is written into the page as text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from spanloom.server.web.format import FILTERS
from spanloom.server.web.trend_view import TREND_FILTERS
from spanloom.server.web.turn_view import TURN_FILTERS

_HERE = Path(__file__).parent
# No inline script or style anywhere: every script and stylesheet is a file under /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# Read once: the set of files is fixed at build time, so a request can only name one of these.
STATIC_FILES: dict[str, tuple[bytes, str]] = {
    path.name: (path.read_bytes(), _STATIC_TYPES[path.suffix])
    for path in sorted((_HERE / "static").iterdir())
    if path.suffix in _STATIC_TYPES
}
# A content hash in each static URL: browsers may cache the files, and a new version gets a new URL.
_STATIC_VERSIONS = {name: hashlib.sha256(body).hexdigest()[:12] for name, (body, _) in STATIC_FILES.items()}

environment = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,  # a typo in a template fails the tests instead of printing nothing
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(FILTERS)
environment.filters.update(TURN_FILTERS)
environment.filters.update(TREND_FILTERS)


def static_url(name: str) -> str:
    return f"/static/{quote(name)}?v={_STATIC_VERSIONS[name]}"


environment.globals["static_url"] = static_url


class Links:
    """URLs for one request. Ids go into paths percent-encoded (``/``, ``?``, ``#`` included) and
    values into query strings through urlencode, so no id or filter can change a link's shape."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.project = (request.query_params.get("project") or "").strip()

    def path(self, name: str, **ids: str) -> str:
        # The page routes take `{id:path}`, whose convertor inserts the value as given: quoting
        # it here (safe="") keeps a "/" in an id from reading as a path separator.
        return str(self._request.app.url_path_for(name, **{key: quote(v, safe="") for key, v in ids.items()}))

    def session(self, project: str, session_id: str) -> str:
        """A session's page: its id is only unique inside its project, so the link names both."""
        return _with_query(self.path("web_session", session_id=session_id), [("project", project)])

    def user(self, project: str, user_id: str) -> str:
        return _with_query(self.path("web_user", user_id=user_id), [("project", project)])

    def trace(self, trace_id: str, anchor: str = "") -> str:
        return self.path("web_trace", trace_id=trace_id) + (f"#{quote(anchor)}" if anchor else "")

    def list(self, name: str, **params: Any) -> str:
        """A list page with these filters (and the current project unless one is given)."""
        if self.project and "project" not in params:
            params["project"] = self.project
        return _with_query(self.path(name), [(key, value) for key, value in params.items()])

    def here(self, **changes: Any) -> str:
        """This page's URL with `changes` applied; paging restarts unless a cursor is given."""
        dropped = {*changes, "cursor"}
        current = self._request.query_params.multi_items()
        items = [(key, value) for key, value in current if key not in dropped]
        return _with_query(page_path(self._request), items + list(changes.items()))


def page_path(request: Request) -> str:
    """The requested path, fit for a link: the ASGI server's decoded path, encoded again.

    Not `request.url.path`: a session id may hold `%`, which it leaves decoded, and `?` or `#`,
    which it also leaves so before Starlette 1.8 (the newest on Python 3.10)."""
    return quote(request.scope["path"])


def _with_query(path: str, items: list[tuple[str, Any]]) -> str:
    kept = [(key, str(value)) for key, value in items if value is not None and value != ""]
    return f"{path}?{urlencode(kept)}" if kept else path


def render(
    request: Request, template: str, context: Mapping[str, Any], status_code: int = 200
) -> HTMLResponse:
    # Which price table priced the costs, said in every page's footer (set by create_app).
    price_table = getattr(request.app.state, "price_table", None)
    html = environment.get_template(template).render(
        request=request, links=Links(request), price_table=price_table, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def static_response(name: str) -> Response:
    body, media_type = STATIC_FILES[name]
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"}
    return Response(body, media_type=media_type, headers=headers)
