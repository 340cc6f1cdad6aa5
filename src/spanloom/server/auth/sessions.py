"""Dashboard login sessions: an opaque random token in a cookie, the principal kept server-side.

The cookie carries 256 random bits and nothing else, so it reveals no key and cannot be forged;
the server keeps only the token's SHA-256. Logging out deletes the entry, so a copied cookie stops
working at once. Sessions live in memory: a restart logs everyone out, which is acceptable for a
dashboard and keeps keys out of the database.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from spanloom.server.auth.keys import Principal

SESSION_COOKIE = "spanloom_session"
LOGIN_CSRF_COOKIE = "spanloom_login_csrf"
DEFAULT_TTL_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000  # oldest first out: a login flood cannot grow memory without bound


@dataclass(frozen=True)
class LoginSession:
    principal: Principal
    csrf_token: str  # for the forms a logged-in page posts (logout)
    expires_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class LoginSessions:
    def __init__(self, ttl_seconds: float = DEFAULT_TTL_SECONDS, max_sessions: int = MAX_SESSIONS) -> None:
        self._ttl = ttl_seconds
        self._max = max_sessions
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, LoginSession] = OrderedDict()

    def create(self, principal: Principal) -> str:
        """A new session for `principal`; returns the cookie value."""
        token = new_token()
        session = LoginSession(principal, new_token(), time.monotonic() + self._ttl)
        with self._lock:
            self._sessions[_hash(token)] = session
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
        return token

    def get(self, token: str) -> LoginSession | None:
        if not token:
            return None
        key = _hash(token)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires_at < time.monotonic():
                del self._sessions[key]
                return None
        return session

    def delete(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(_hash(token), None)
