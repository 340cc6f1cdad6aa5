"""uvicorn's h11 protocol with a deadline for request headers.

uvicorn (0.29 to at least 0.55) times out idle keep-alive connections, but a connection that is
opened and then sends nothing, or sends its request line and headers a byte at a time, is kept
for as long as the client likes: a thousand such connections hold a thousand sockets and count
against the connection limit forever (slowloris). Here a timer starts when a connection opens, and
again when the first byte of a later request arrives; it is cancelled once the request's headers
are complete. When it fires the connection is closed, after a ``408 Request Timeout`` if part of
a request had arrived (a connection that sent nothing is closed silently, as idle keep-alive
connections are).

The request body is not under this deadline: it is read by the app, bounded in size, and the
number of connections is bounded by ``limit_concurrency``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_TIMEOUT_MESSAGE = b"the request headers did not arrive in time"
REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_MESSAGE)).encode() + b"\r\n\r\n" + _TIMEOUT_MESSAGE
)


class HeaderTimeoutProtocol(H11Protocol):
    """Closes a connection whose request headers take longer than `header_timeout_seconds`."""

    header_timeout_seconds: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._bytes_of_this_request = False

    @classmethod
    def with_timeout(cls, seconds: float) -> type[HeaderTimeoutProtocol]:
        """A subclass with its own deadline (uvicorn takes a protocol class, not an instance)."""
        return type(cls.__name__, (cls,), {"header_timeout_seconds": seconds})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._bytes_of_this_request = True
        self._follow_headers()

    def on_response_complete(self) -> None:
        self._bytes_of_this_request = False
        super().on_response_complete()
        # Pipelined bytes of the next request may already be buffered and parsed by now; if not,
        # uvicorn's keep-alive timer runs until the next byte, and the deadline starts then.
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow_headers(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._header_timer is None:
                self._arm()
        else:
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._bytes_of_this_request:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()
