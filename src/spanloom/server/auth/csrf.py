"""Cross-site request forgery on writes authenticated by the dashboard's login cookie.

SameSite=Strict keeps the cookie off requests started by other *sites*, but every port of the
same host is the same site: a page on ``http://127.0.0.1:3000`` could make a logged-in browser
``POST /api/evaluations`` to ``http://127.0.0.1:4318`` with the cookie attached (a text/plain
body needs no preflight). So a write that rests on the cookie must show it comes from this
server's own origin: an ``Origin`` header equal to the origin the request was sent to, or the
session's CSRF token in ``X-CSRF-Token``. Browsers send ``Origin`` on every cross-origin request
and on same-origin POSTs; a write with neither is refused. Writes with a key in a header are not
affected: a page cannot make a browser add one.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from spanloom.server.auth.sessions import LoginSession

CSRF_HEADER = "x-csrf-token"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in; None when it does not parse."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    scheme = scheme.lower()
    if not parts.hostname or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def own_origin(connection: HTTPConnection) -> tuple[str, str, int] | None:
    """The origin the request was sent to: its scheme (https behind a trusted TLS proxy) and Host."""
    host = connection.headers.get("host")
    return _origin(connection.url.scheme, host) if host else None


def sent_from_own_origin(connection: HTTPConnection) -> bool:
    header = connection.headers.get("origin")
    if not header or header == "null":
        return False
    scheme, _, netloc = header.partition("://")
    if not netloc or "/" in netloc:
        return False
    origin = _origin(scheme, netloc)
    return origin is not None and origin == own_origin(connection)


def cookie_write_allowed(connection: HTTPConnection, session: LoginSession) -> bool:
    """Whether a write authenticated by `session`'s cookie comes from this server's own pages."""
    token = connection.headers.get(CSRF_HEADER)
    if token is not None and hmac.compare_digest(
        token.encode("utf-8", "surrogatepass"), session.csrf_token.encode()
    ):
        return True
    return sent_from_own_origin(connection)
