"""Cross-origin writes from a browser front end: ``POST /api/feedback`` and
``POST /api/sessions/{id}/end`` only, and only from the origins in SPANLOOM_CORS_ORIGINS.

A chat page served from the app's own origin calls spanloom's `logFeedback` / `endSession` in the
browser; the browser lets it only when the server answers its preflight for that origin. No
origin is allowed unless configured, and no other path ever gets CORS headers, so a page
elsewhere still cannot read traces, sessions or users from a browser that can reach the server.
Cookies are never allowed cross-origin (the request authenticates with its key header), so the
dashboard's login cannot be used from another site.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

BROWSER_WRITES = re.compile(r"/api/feedback|/api/sessions/[^/]+/end")


class BrowserWritesCors:
    """Starlette's CORSMiddleware around the browser-facing writes; everything else untouched.

    It runs outside the key check, so a preflight (which carries no key) is answered here."""

    def __init__(self, app: ASGIApp, origins: Collection[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
            allow_credentials=False,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and BROWSER_WRITES.fullmatch(scope["path"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def parse_origins(raw: str) -> tuple[str, ...]:
    """ "https://app.example, http://localhost:3000" as origins; ValueError for anything that is
    not scheme://host[:port] (or "*")."""
    origins = tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s?#]+", origin):
            raise ValueError(
                f"SPANLOOM_CORS_ORIGINS: expected origins like https://app.example, got {origin!r}"
            )
    return origins
