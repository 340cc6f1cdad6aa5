"""``/login`` and ``/logout``: the dashboard's sign-in with a read key.

- CSRF: the login form is protected by a double-submit token (a random value in a cookie and the
  same value in a hidden field, compared in constant time); logout by the session's own token,
  rendered into the page's logout form. Both cookies are SameSite=Strict as well.
- The session cookie is opaque (see auth/sessions.py), HttpOnly, SameSite=Strict, and Secure
  unless the page is served over plain http on a loopback address (where browsers would drop a
  Secure cookie, and nothing leaves the machine). Behind a TLS proxy the scheme is https, so the
  cookie is Secure.
- ``next`` is followed only when it is a path on this server: no scheme, no host, no ``//``.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from spanloom.server.auth.middleware import Auth, client_address
from spanloom.server.auth.sessions import (
    DEFAULT_TTL_SECONDS,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    new_token,
)
from spanloom.server.web.render import SECURITY_HEADERS, environment

router = APIRouter(include_in_schema=False)

DEFAULT_NEXT = "/sessions"
MAX_FORM_BYTES = 8192  # a key and two tokens; anything larger is not this form


def safe_next(raw: str | None) -> str:
    """`raw` if it is a local path (``/traces?x=1``), else the sessions page."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return DEFAULT_NEXT
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in raw):
        return DEFAULT_NEXT
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return raw


def _secure(request: Request) -> bool:
    if request.url.scheme == "https":
        return True
    server = request.scope.get("server")
    host = server[0] if server else ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def _auth(request: Request) -> Auth | None:
    return getattr(request.app.state, "auth", None)


def _login_page(request: Request, next_path: str, error: str | None = None, status: int = 200) -> Response:
    token = new_token()
    html = environment.get_template("login.html").render(csrf_token=token, next=next_path, error=error)
    response = HTMLResponse(
        html, status_code=status, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"}
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip
    return response


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=8)
    except ValueError:  # more fields than this form has: not this form
        return {}
    return {name: values[0] for name, values in fields.items()}


@router.get("/login", name="web_login")
def login_form(request: Request, next: str | None = None) -> Response:
    if _auth(request) is None:
        return RedirectResponse(safe_next(next), status_code=302)
    return _login_page(request, safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    auth = _auth(request)
    form = await _form(request)
    next_path = safe_next(form.get("next"))
    if auth is None:
        return RedirectResponse(next_path, status_code=303)
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    form_token = form.get("csrf_token", "")
    if not cookie_token or not hmac.compare_digest(cookie_token.encode(), form_token.encode()):
        return _login_page(request, next_path, "The form expired; please sign in again.", 403)
    address = client_address(request)
    wait = auth.throttle.retry_after(address)
    if wait is not None:
        response = _login_page(
            request, next_path, f"Too many wrong keys from here; try again in {wait} s.", 429
        )
        response.headers["Retry-After"] = str(wait)
        return response
    principal = auth.keys.lookup(form.get("key", ""))
    if principal is None:
        auth.throttle.failed(address)
    if principal is None or not principal.can_read:
        # One message for a wrong key and an ingest-only key: the form is no key oracle.
        return _login_page(request, next_path, "That key was not accepted.", 401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, auth.sessions.create(principal), max_age=DEFAULT_TTL_SECONDS, path="/",
        httponly=True, samesite="strict", secure=_secure(request),
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", httponly=True, samesite="strict")
    return response


@router.post("/logout", name="web_logout")
async def logout(request: Request) -> Response:
    auth = _auth(request)
    form = await _form(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    session = auth.sessions.get(token) if auth is not None else None
    if auth is not None and session is not None:
        if not hmac.compare_digest(session.csrf_token.encode(), form.get("csrf_token", "").encode()):
            return Response("cross-site logout refused", status_code=403, media_type="text/plain")
        auth.sessions.delete(token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )
    return response
