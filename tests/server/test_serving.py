"""The server as `spanloom serve` runs it: request headers have a deadline, idle keep-alive
connections close, and connections past the limit are answered 503."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _server_kit import RunningServer, run_server, wait_for

from spanloom.server.serving import ServeLimits

PARTIAL_REQUEST = b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"


def address(server: RunningServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


@contextmanager
def sockets(server: RunningServer, count: int, first_bytes: bytes = b"") -> Iterator[list[socket.socket]]:
    opened = []
    try:
        for _ in range(count):
            sock = socket.create_connection(address(server), timeout=10)
            if first_bytes:
                sock.sendall(first_bytes)
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def readable(sock: socket.socket, timeout: float = 0) -> bool:
    # poll, not select: a thousand sockets have descriptors past select's limit of 1024.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (what it sent before closing is read and dropped)."""
    try:
        while readable(sock):
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and Content-Length bytes of body) from a kept-alive socket."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return answer


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_thousand_incomplete_requests_are_closed_at_the_header_deadline(tmp_path: Path):
    limits = ServeLimits(header_timeout_seconds=1.0, max_connections=5000)
    with run_server(tmp_path / "slow.db", limits=limits) as server:
        with sockets(server, 1000, PARTIAL_REQUEST) as slow:
            # Served meanwhile: the stalled connections hold no worker.
            assert server.get("/api/sessions").status_code == 200
            wait_for(lambda: all(closed_by_server(sock) for sock in slow), timeout=30, what="all closed")
        assert server.get("/api/sessions").status_code == 200


def test_a_partial_request_gets_408_and_a_silent_connection_is_just_closed(tmp_path: Path):
    limits = ServeLimits(header_timeout_seconds=0.5)
    with (
        run_server(tmp_path / "408.db", limits=limits) as server,
        sockets(server, 1, PARTIAL_REQUEST) as (partial,),
        sockets(server, 1) as (silent,),
    ):
        answer = read_all(partial)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer.lower()
        assert read_all(silent) == b""


def test_dripping_header_bytes_does_not_extend_the_deadline(tmp_path: Path):
    limits = ServeLimits(header_timeout_seconds=1.0)
    with run_server(tmp_path / "drip.db", limits=limits) as server, sockets(server, 1) as (sock,):
        sent = 0
        # A byte every 50 ms would take over 4 s: the deadline is on the whole header, not per byte.
        for byte in PARTIAL_REQUEST:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            if readable(sock, 0.05):
                break  # the server answered
        assert sent < len(PARTIAL_REQUEST)
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_a_keep_alive_connection_idle_past_the_header_deadline_is_still_served(tmp_path: Path):
    # Between requests the keep-alive timeout applies; the header deadline starts at the next byte.
    limits = ServeLimits(header_timeout_seconds=0.5, keep_alive_seconds=5)
    with run_server(tmp_path / "keep.db", limits=limits) as server, sockets(server, 1) as (sock,):
        for _ in range(2):
            sock.sendall(b"GET /api/sessions HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
            # Idle for longer than the header deadline (the thing under test is elapsed time).
            assert not readable(sock, 1.0)


def test_idle_keep_alive_connections_are_closed(tmp_path: Path):
    limits = ServeLimits(header_timeout_seconds=30, keep_alive_seconds=1)
    with run_server(tmp_path / "idle.db", limits=limits) as server, sockets(server, 1) as (sock,):
        sock.sendall(b"GET /api/sessions HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_all(sock)  # returns once the server closes the idle connection
        assert answer.startswith(b"HTTP/1.1 200 ")


def test_requests_past_the_connection_limit_get_503(tmp_path: Path):
    limits = ServeLimits(header_timeout_seconds=30, max_connections=20)
    with run_server(tmp_path / "limit.db", limits=limits) as server, sockets(server, 20, PARTIAL_REQUEST):
        response = httpx.get(f"{server.url}/api/sessions")
        assert response.status_code == 503
        assert response.headers["connection"] == "close"
