"""The one gate every request passes when keys are configured (pure ASGI: bodies stream through).

- ``POST /v1/traces`` needs a key with the ingest role, as ``Authorization: Bearer KEY`` or ``X-API-Key``.
- ``/api/...`` needs a read key, by header or by the dashboard's login cookie; writes there
  (``POST /api/evaluations``) need the ingest role, like ``/v1/traces``, and, when they rest on
  the cookie, must come from this server's own origin (see csrf.py).
- Pages need the same; a browser without either is sent to ``/login?next=...``.
- ``/metrics`` needs an admin key for every project (the figures are the whole server's); a
  caller without one gets 401, never the login page.
- The docs (``/docs`` and its files), ``/openapi.json``, ``/login``, ``/logout``, ``/static/...``
  and the probes ``/healthz`` and ``/readyz`` are open: they hold no data.

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

# /healthz and /readyz: probes carry no keys, and the answers hold no data.
OPEN_PATHS = frozenset({"/openapi.json", "/docs", "/login", "/logout", "/healthz", "/readyz"})
OPEN_PREFIXES = ("/static/", "/docs/assets/")
INGEST_PATH = "/v1/traces"
METRICS_PATH = "/metrics"
API_PREFIX = "/api/"


class TooManyWrongKeysError(Exception):
    """The address presented too many wrong keys lately: wait `retry_after` whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many wrong keys; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Auth:
    """What the app keeps in `app.state.auth` when keys are configured."""

    keys: KeyRing
    sessions: LoginSessions
    throttle: FailedKeyThrottle = field(default_factory=FailedKeyThrottle)

    def principal_for_key(self, key: str, address: str) -> Principal | None:
        """The principal of a presented key, or None for a wrong key (counted against `address`).
        Raises TooManyWrongKeysError, without looking at the key, while `address` is held back.
        Every transport's key check goes through here (HTTP headers, gRPC metadata)."""
        wait = self.throttle.retry_after(address)
        if wait is not None:
            raise TooManyWrongKeysError(wait)
        principal = self.keys.lookup(key)
        if principal is None:
            self.throttle.failed(address)
        return principal


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


def key_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    """The key in ``Authorization: Bearer KEY`` or else ``X-API-Key``; None when neither is there
    (an Authorization of another scheme presents an empty, so wrong, key)."""
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""
    return api_key


def presented_key(connection: HTTPConnection) -> str | None:
    return key_from_headers(connection.headers.get("authorization"), connection.headers.get("x-api-key"))


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
        """Who is asking: by the key header (`key`) first, else (pages and API) by login cookie.
        Raises TooManyWrongKeysError when the caller's address is held back."""
        if key is not None:
            # A header wins over a cookie: a wrong key is refused even in a logged-in browser.
            return self.auth.principal_for_key(key, client_address(connection)), None
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
        is_ingest = path == INGEST_PATH
        is_api_write = path.startswith(API_PREFIX) and scope["method"] not in ("GET", "HEAD", "OPTIONS")
        try:
            principal, login_session = self._principal(connection, key, allow_cookie=not is_ingest)
        except TooManyWrongKeysError as held_back:
            await too_many_wrong_keys(held_back.retry_after)(scope, receive, send)
            return
        response: Response | None = None
        if principal is None:
            is_page = not is_ingest and not path.startswith(API_PREFIX) and path != METRICS_PATH
            if is_page and scope["method"] in ("GET", "HEAD"):
                target = path + (
                    f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
                )
                response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=302)
            else:
                response = _unauthorized()
        elif is_ingest and not principal.can_ingest:
            response = _forbidden("send spans")
        elif path == METRICS_PATH and not principal.is_admin:
            response = _forbidden("read the server's metrics (an admin key for every project may)")
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
