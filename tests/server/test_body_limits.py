"""Request bodies on a real server: every gzip member is decoded (trailing garbage refused), and
``POST /api/evaluations`` refuses an over-large body on its Content-Length and while streaming,
with the same reader as ``/v1/traces``."""

from __future__ import annotations

import gzip
import json
import socket

import pytest
from _server_kit import PROTOBUF, RunningServer, make_request, make_turn

GZIP_PROTOBUF = {**PROTOBUF, "Content-Encoding": "gzip"}
BODY_LIMIT = 16 * 1024 * 1024  # POST /api/evaluations


def stored_sessions(server: RunningServer) -> set[str]:
    return {item["session_id"] for item in server.get_json("/api/sessions", limit=1000)["items"]}


def test_every_gzip_member_is_stored(server: RunningServer):
    _, first = make_turn("s-member-1", "u")
    _, second = make_turn("s-member-2", "u")
    # Two requests serialized back to back are one valid request holding both (protobuf merges
    # repeated fields), and gzip(a) + gzip(b) is a valid gzip body meaning a + b.
    body = gzip.compress(make_request(first).SerializeToString()) + gzip.compress(
        make_request(second).SerializeToString()
    )
    response = server.client.post("/v1/traces", content=body, headers=GZIP_PROTOBUF)
    assert response.status_code == 200, response.text
    assert {"s-member-1", "s-member-2"} <= stored_sessions(server)


@pytest.mark.parametrize(
    "garbage",
    [b"\x00", b"\x00" * 64, b"trailing text after the stream", b"\x1f\x8b\x08"],
    ids=["one-zero", "zeros", "text", "half-a-header"],
)
def test_bytes_after_the_last_gzip_member_are_refused(server: RunningServer, garbage: bytes):
    _, spans = make_turn("s-garbage", "u")
    body = gzip.compress(make_request(spans).SerializeToString()) + garbage
    response = server.client.post("/v1/traces", content=body, headers=GZIP_PROTOBUF)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_encoding"
    assert "after the end of the gzip stream" in response.json()["error"]["message"]
    assert "s-garbage" not in stored_sessions(server)


def test_gzip_members_count_against_one_limit(tmp_path):
    from _server_kit import run_server

    with run_server(tmp_path / "small.db", max_body_bytes=64 * 1024) as server:
        member = gzip.compress(b"\x00" * 40_000)
        response = server.client.post("/v1/traces", content=member * 2, headers=GZIP_PROTOBUF)
        assert response.status_code == 413
        assert "after decompression" in response.json()["error"]["message"]


def _raw_request(server: RunningServer, head: bytes, body_chunks, timeout: float = 20.0) -> bytes:
    """Send `head`, then the chunks (stopping early if the server closes), and read the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking the rest: what we want
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
        return answer


def test_evaluations_refuse_a_large_declared_length_before_reading(server: RunningServer):
    # 400 MB announced, a few bytes sent: the 413 comes at once, the body is never awaited.
    head = (
        b"POST /api/evaluations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 400000000\r\n\r\n"
    )
    answer = _raw_request(server, head, [b"[" + b" " * 1000])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_evaluations_refuse_a_large_streamed_body_while_reading(server: RunningServer):
    # Chunked, no length, and never finished: the server must stop at its limit and answer,
    # not wait for an end that never comes while holding everything read.
    head = (
        b"POST /api/evaluations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * (1024 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = _raw_request(server, head, [chunk] * (BODY_LIMIT // len(piece) + 2))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_evaluations_take_gzip_like_ingest(server: RunningServer):
    body = gzip.compress(json.dumps([{"span_id": "ab" * 8, "name": "x", "score": 1}]).encode())
    response = server.client.post(
        "/api/evaluations",
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    # Parsed (the span is unknown, so nothing is stored): not a 400 for a binary body.
    assert response.status_code == 422, response.text
    assert "span" in response.json()["rejected"][0]["reason"]
    response = server.client.post(
        "/api/evaluations",
        content=b"[]",
        headers={"Content-Type": "application/json", "Content-Encoding": "br"},
    )
    assert response.status_code == 415
