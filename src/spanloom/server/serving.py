"""How `spanloom serve` runs uvicorn: connection limits, timeouts and which proxies to believe.

One function builds the uvicorn configuration, so the command and the tests run the same server.

- Request headers must arrive within `header_timeout_seconds` of the connection opening (or of the
  first byte of a later request on it), else the connection is closed (see header_timeout.py).
- An idle keep-alive connection is closed after `keep_alive_seconds`.
- At most `max_connections` connections are served at once: past it a request is answered 503
  ``Service Unavailable`` with ``Connection: close`` (uvicorn's ``limit_concurrency``).
- Request headers larger than h11's 16 KiB are a 400.
- ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the addresses in
  `forwarded_allow_ips`; by default from none. uvicorn's own default believes them from loopback,
  which let any local process pick the client address that the wrong-key throttle counts: forty
  wrong keys under forty made-up addresses were never throttled, and made-up failures under
  someone else's address locked that address out.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from spanloom.server.header_timeout import HeaderTimeoutProtocol
from spanloom.server.log_format import log_config


@dataclass(frozen=True)
class ServeLimits:
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: int = 5
    max_connections: int = 1000
    # Comma-separated addresses or networks of trusted reverse proxies, or "*"; None trusts none.
    forwarded_allow_ips: str | None = None


def uvicorn_config(
    app: Any,
    host: str,
    port: int,
    limits: ServeLimits = ServeLimits(),
    log_level: str = "info",
    log_format: str = "text",
) -> uvicorn.Config:
    trusted = (limits.forwarded_allow_ips or "").strip() or None
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(log_format, log_level),
        http=HeaderTimeoutProtocol.with_timeout(limits.header_timeout_seconds),
        timeout_keep_alive=limits.keep_alive_seconds,
        limit_concurrency=limits.max_connections,
        proxy_headers=trusted is not None,
        forwarded_allow_ips=trusted,
    )


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, calling `on_listening(port)` once its socket is bound: with ``--port 0``
    that is the port the system picked, which only exists from then on."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        bound = [sock for server in getattr(self, "servers", []) for sock in server.sockets or ()]
        if self.started and bound:
            self._on_listening(bound[0].getsockname()[1])
