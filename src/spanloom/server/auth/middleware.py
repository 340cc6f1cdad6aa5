"""The one gate every request passes when keys are configured (pure ASGI: bodies stream through).

- ``POST /v1/traces`` needs a key with the ingest role, as ``Authorization: Bearer KEY`` or ``X-API-Key``.
- ``/api/...`` needs a read key, by header or by the dashboard's login cookie; writes there
  (``POST /api/evaluations``) need the ingest role, like ``/v1/traces``, and, when they rest on
  the cookie, must come from this server's own origin (see csrf.py).
- Pages need the same; a browser without either is sent to ``/login?next=...``.
- The docs (``/docs`` and its files), ``/openapi.json``, ``/login``, ``/logout`` and ``/static/...`` are
  open: they hold no data.

A missing or wrong key answers the same 401 whatever the path or its parameters, so a caller
without a key learns nothing about which projects, traces or sessions exist. An address that sent
too many wrong keys is answered 429 until its window passes (see throttle.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from spanloom.server.auth.csrf import cookie_write_allowed
from spanloom.server.auth.keys import KeyRing, Principal
from spanloom.server.auth.sessions import SESSION_COOKIE, LoginSession, LoginSessions
from spanloom.server.auth.throttle import FailedKeyThrottle
from spanloom.server.errors import error_response

OPEN_PATHS = frozenset({"/openapi.json", "/docs", "/login", "/logout"})
OPEN_PREFIXES = ("/static/", "/docs/assets/")
INGEST_PATH = "/v1/traces"
API_PREFIX = "/api/"


@dataclass(frozen=True)
class Auth:
    """What the app keeps in `app.state.auth` when keys are configured."""

    keys: KeyRing
    sessions: LoginSessions
    throttle: FailedKeyThrottle = field(default_factory=FailedKeyThrottle)


def client_address(connection: HTTPConnection) -> str:
    """The caller's address, as the server sees it (behind a trusted proxy, the forwarded one)."""
    client = connection.client
    return client.host if client is not None else "unknown"


def too_many_wrong_keys(retry_after: int) -> Response:
    return error_response(
        429,
        "too_many_wrong_keys",
        "too many wrong keys from this address; try again later",
        {"Retry-After": str(retry_after)},
    )


def presented_key(connection: HTTPConnection) -> str | None:
    """The key in ``Authorization: Bearer`` or ``X-API-Key``; None when neither header is there."""
    authorization = connection.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""
    return connection.headers.get("x-api-key")


def _unauthorized() -> Response:
    response = error_response(401, "unauthorized", "a valid API key is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="spanloom"'
    return response


def _forbidden(action: str) -> Response:
    return error_response(403, "forbidden", f"this key may not {action}")


class AuthMiddleware:
    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    def _principal(
        self, connection: HTTPConnection, key: str | None, allow_cookie: bool
    ) -> tuple[Principal | None, LoginSession | None]:
        """Who is asking: by the key header (`key`) first, else (pages and API) by login cookie."""
        if key is not None:
            # A header wins over a cookie: a wrong key is refused even in a logged-in browser.
            principal = self.auth.keys.lookup(key)
            if principal is None:
                self.auth.throttle.failed(client_address(connection))
            return principal, None
        if allow_cookie:
            session = self.auth.sessions.get(connection.cookies.get(SESSION_COOKIE, ""))
            if session is not None:
                return session.principal, session
        return None, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        key = presented_key(connection)
        if key is not None:
            wait = self.auth.throttle.retry_after(client_address(connection))
            if wait is not None:
                await too_many_wrong_keys(wait)(scope, receive, send)
                return
        is_ingest = path == INGEST_PATH
        is_api_write = path.startswith(API_PREFIX) and scope["method"] not in ("GET", "HEAD", "OPTIONS")
        principal, login_session = self._principal(connection, key, allow_cookie=not is_ingest)
        response: Response | None = None
        if principal is None:
            is_page = not is_ingest and not path.startswith(API_PREFIX)
            if is_page and scope["method"] in ("GET", "HEAD"):
                target = path + (
                    f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
                )
                response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=302)
            else:
                response = _unauthorized()
        elif is_ingest and not principal.can_ingest:
            response = _forbidden("send spans")
        elif is_api_write and not principal.can_ingest:
            response = _forbidden("write")
        elif (
            is_api_write and login_session is not None and not cookie_write_allowed(connection, login_session)
        ):
            response = error_response(
                403,
                "cross_site_write",
                "a write signed in with the dashboard's cookie must come from this server's own pages "
                "(a matching Origin header, or the session's X-CSRF-Token); API clients send a key",
            )
        elif not is_ingest and not is_api_write and not principal.can_read:
            response = _forbidden("read traces")
        if response is not None:
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["login_session"] = login_session
        await self.app(scope, receive, send)
