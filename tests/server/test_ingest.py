"""POST /v1/traces: encodings, responses and every refusal (415, 413, 400, 503), plus API errors."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from _server_kit import (
    PROTOBUF,
    RunningServer,
    make_request,
    make_span,
    make_turn,
    new_span_id,
    new_trace_id,
    run_server,
    wait_for,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse


def otlp_json_body(trace_id: str, span_id: str, parent: str = "", **attributes: str) -> dict:
    """An OTLP/JSON request as the spec writes it: hex ids, enum ints, lowerCamel names."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "raw"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": parent,
                                "name": "json span",
                                "kind": 2,
                                "startTimeUnixNano": "1750000000000000000",
                                "endTimeUnixNano": "1750000000250000000",
                                "attributes": [
                                    {"key": key.replace("_", "."), "value": {"stringValue": value}}
                                    for key, value in attributes.items()
                                ]
                                + [{"key": "llm.token_count.prompt", "value": {"intValue": "12"}}],
                                "status": {"code": 2, "message": "boom"},
                                "events": [{"name": "exception", "timeUnixNano": "1750000000100000000"}],
                            }
                        ],
                    }
                ],
            }
        ]
    }


def test_otlp_json_with_hex_ids(server: RunningServer):
    body = otlp_json_body(
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", session_id="s-json", user_id="u"
    )
    response = server.client.post("/v1/traces", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    trace = server.get_json("/api/traces/5b8efff798038103d269b633813fc60c")
    span = trace["spans"][0]
    assert (span["span_id"], span["otel_kind"], span["status"]) == (
        "eee19b7ec3c1b174",
        "SERVER",
        {"code": "ERROR", "message": "boom"},
    )
    assert (trace["project"], trace["session_id"], trace["latency_ms"]) == ("json-svc", "s-json", 250.0)
    assert span["prompt_tokens"] == 12 and span["events"][0]["name"] == "exception"


def test_gzip_protobuf_and_a_protobuf_response(server: RunningServer):
    _, spans = make_turn("s-gz", "u-gz")
    body = gzip.compress(make_request(spans).SerializeToString())
    response = server.client.post(
        "/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert not parsed.HasField("partial_success")
    assert server.get_json("/api/sessions/s-gz")["trace_count"] == 1


def test_invalid_ids_are_rejected_in_partial_success(server: RunningServer):
    good = make_span(b"\x01" * 16, b"\x02" * 8, attributes={"session.id": "s-ok"})
    bad_trace = make_span(b"\x00" * 16, b"\x03" * 8)
    short_span = make_span(b"\x01" * 16, b"\x04" * 3)
    response = server.post_spans(make_request([good, bad_trace, short_span]))
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "trace_id" in partial.error_message and "span_id" in partial.error_message
    assert server.get_json("/api/sessions/s-ok")["trace_count"] == 1
    # In JSON, an id that is not hex rejects that span only.
    body = otlp_json_body("not-hex", "eee19b7ec3c1b174")
    response = server.client.post("/v1/traces", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": response.json()["partialSuccess"]["errorMessage"],
        }
    }


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Content-Type": "text/plain"}, "unsupported_media_type"),
        ({}, "unsupported_media_type"),
        ({**PROTOBUF, "Content-Encoding": "br"}, "unsupported_encoding"),
    ],
)
def test_415(server: RunningServer, headers: dict[str, str], code: str):
    response = server.client.post("/v1/traces", content=b"x", headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (b"\xff\xff\xff", PROTOBUF, "protobuf"),
        (b"{not json", {"Content-Type": "application/json"}, "JSON"),
        (b"[1, 2]", {"Content-Type": "application/json"}, "resourceSpans"),
        (b'{"resourceSpans": 3}', {"Content-Type": "application/json"}, "ExportTraceServiceRequest"),
        (b"not gzip at all", {**PROTOBUF, "Content-Encoding": "gzip"}, "gzip"),
        (gzip.compress(b"abc")[:-6], {**PROTOBUF, "Content-Encoding": "gzip"}, "ended"),
    ],
)
def test_400_undecodable(server: RunningServer, body: bytes, headers: dict[str, str], says: str):
    response = server.client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


@pytest.fixture
def small_server(tmp_path: Path):
    with run_server(tmp_path / "small.db", max_body_bytes=64 * 1024) as running:
        yield running


def test_413_plain_and_streamed(small_server: RunningServer):
    body = b"\x00" * (64 * 1024 + 1)
    response = small_server.client.post("/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 413
    # Without Content-Length (chunked), the limit holds while reading.
    response = small_server.client.post(
        "/v1/traces", content=iter([body[:40_000], body[40_000:]]), headers=PROTOBUF
    )
    assert response.status_code == 413


def test_413_gzip_bomb(small_server: RunningServer):
    bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024))  # 50 MiB of zeros in ~50 KiB
    assert len(bomb) < 64 * 1024
    response = small_server.client.post(
        "/v1/traces", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "after decompression" in response.json()["error"]["message"]


def test_503_when_the_writer_is_blocked(tmp_path: Path):
    db = tmp_path / "busy.db"
    with run_server(db, write_queue_size=1) as server:
        # Another connection holds the write lock: our writer waits inside BEGIN IMMEDIATE.
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        responses: list[httpx.Response] = []

        def send(index: int) -> None:
            _, spans = make_turn(f"s-busy-{index}", "u")
            with httpx.Client(base_url=server.url, timeout=30) as client:
                body = make_request(spans).SerializeToString()
                responses.append(client.post("/v1/traces", content=body, headers=PROTOBUF))

        senders = [threading.Thread(target=send, args=(index,)) for index in range(8)]
        try:
            for thread in senders:
                thread.start()
            # At most one batch is stuck in the writer and one request waits in the queue of
            # one: the others are refused at once, while the writer is still blocked.
            wait_for(lambda: sum(r.status_code == 503 for r in responses) >= 4, what="503 answers")
            busy = next(r for r in responses if r.status_code == 503)
            assert busy.headers["Retry-After"] == "1"
            assert busy.json()["error"]["code"] == "busy"
            # Reads do not wait for the stuck writer.
            assert server.get("/api/sessions").status_code == 200
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        for thread in senders:
            thread.join(timeout=30)
        statuses = [r.status_code for r in responses]
        assert set(statuses) == {200, 503}
        # Every 200 was committed; nothing refused was written.
        sessions = server.get_json("/api/sessions", limit=1000)["items"]
        assert len(sessions) == statuses.count(200)


@pytest.mark.parametrize(
    "path",
    ["/api/sessions/nope", "/api/users/nope", "/api/traces/00000000000000000000000000000001", "/api/nothing"],
)
def test_404_as_json(server: RunningServer, path: str):
    response = server.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/sessions", {"sort": "name"}, "sort"),
        ("/api/sessions", {"order": "up"}, "order"),
        ("/api/sessions", {"limit": "0"}, "limit"),
        ("/api/sessions", {"limit": "many"}, "limit"),
        ("/api/sessions", {"cursor": "garbage!"}, "cursor"),
        ("/api/sessions", {"has_error": "maybe"}, "has_error"),
        ("/api/sessions", {"start": "yesterday"}, "start"),
        ("/api/sessions", {"start": "1e400"}, "start"),
        ("/api/sessions", {"end": "-inf"}, "end"),
        ("/api/users", {"start": "1e300"}, "start"),
        ("/api/traces", {"start": "1e12"}, "start"),
        ("/api/traces", {"end": "9999-12-31T23:59:59"}, "end"),
        ("/api/users", {"sort": "start_time"}, "sort"),
        ("/api/traces", {"status": "FINE"}, "status"),
        ("/api/traces", {"metadata.": "x"}, "metadata."),
        ("/api/users/u", {"limit": "-1"}, "limit"),
        ("/api/traces/00000000000000000000000000000001", {"limit": "0"}, "limit"),
        ("/api/traces/00000000000000000000000000000001", {"limit": "10001"}, "limit"),
        ("/api/traces/00000000000000000000000000000001", {"cursor": "garbage!"}, "cursor"),
    ],
)
def test_400_names_the_bad_parameter(
    server: RunningServer, path: str, params: dict[str, str], parameter: str
):
    response = server.get(path, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_parameter" and error["message"].startswith(f"{parameter}:")


def test_a_cursor_for_another_sort_is_refused(server: RunningServer):
    for index in range(3):
        _, spans = make_turn(f"s{index}", "u", index * 1000)
        server.post_spans(make_request(spans))
    cursor = server.get_json("/api/sessions", limit=1, sort="cost")["next_cursor"]
    response = server.get("/api/sessions", cursor=cursor, sort="turns")
    assert response.status_code == 400 and "sort=cost" in response.json()["error"]["message"]


def test_a_trace_comes_a_page_at_a_time(server: RunningServer):
    trace_id, root = new_trace_id(), new_span_id()
    spans = [make_span(trace_id, root, name="root", duration_ms=1_000)]
    # Start times run against span-id order, so page boundaries and start order differ.
    spans += [make_span(trace_id, new_span_id(), root, f"step-{i}", 900 - i * 30, 5) for i in range(24)]
    assert server.post_spans(make_request(spans)).status_code == 200
    path = f"/api/traces/{trace_id.hex()}"
    whole = server.get_json(path)
    assert len(whole["spans"]) == 25 and whole["next_cursor"] is None and whole["span_count"] == 25
    assert [s["start_time"] for s in whole["spans"]] == sorted(s["start_time"] for s in whole["spans"])
    pages, cursor = [], None
    while True:
        page = server.get_json(path, limit=10, **({"cursor": cursor} if cursor else {}))
        pages.append(page["spans"])
        assert [s["start_time"] for s in page["spans"]] == sorted(s["start_time"] for s in page["spans"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [10, 10, 5]
    ids = [span["span_id"] for page in pages for span in page]
    assert sorted(ids) == sorted(span["span_id"] for span in whole["spans"])
    # A cursor of another list is not one of this trace's pages.
    _, turn = make_turn("s", "u")
    server.post_spans(make_request(turn))
    _, more = make_turn("s2", "u", 1_000)
    server.post_spans(make_request(more))
    foreign = server.get_json("/api/sessions", limit=1)["next_cursor"]
    response = server.get(path, cursor=foreign)
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("cursor:")


def test_openapi_and_docs(server: RunningServer):
    spec = server.get_json("/openapi.json")
    assert {"/v1/traces", "/api/sessions", "/api/sessions/{session_id}", "/api/traces/{trace_id}"} <= set(
        spec["paths"]
    )
    parameters = {p["name"] for p in spec["paths"]["/api/traces"]["get"]["parameters"]}
    assert {"project", "sort", "cursor", "session_id", "span_kind", "model", "status"} <= parameters
    assert server.get("/docs").status_code == 200
    assert server.client.get("/", follow_redirects=False).headers["location"] == "/sessions"


def test_api_key_when_configured(tmp_path: Path):
    with run_server(tmp_path / "key.db", api_key="sekret") as server:
        assert server.get("/api/sessions").status_code == 401
        ok = server.client.get("/api/sessions", headers={"Authorization": "Bearer sekret"})
        assert ok.status_code == 200
        _, spans = make_turn("s", "u")
        body = make_request(spans).SerializeToString()
        assert server.client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 401
        response = server.client.post("/v1/traces", content=body, headers={**PROTOBUF, "X-API-Key": "sekret"})
        assert response.status_code == 200
        assert server.get("/openapi.json").status_code == 200


def test_json_ingest_response_is_json_even_for_an_empty_request(server: RunningServer):
    response = server.client.post(
        "/v1/traces", content=json.dumps({}), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200 and response.json() == {}
