"""The JSON API's bodies are encoded off the event loop, and a trace's spans in bounded chunks, so
big reads do not hold up ingest (json_body.py). Checked by where and in what pieces the bytes are
made, never by timing."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from _server_kit import RunningServer, make_request, make_span, make_turn, new_span_id, new_trace_id

from spanloom.server.api import json_body, serialize
from spanloom.server.api.json_body import CHUNK_ITEMS, encode, stream_chunks


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class EncodeRecorder:
    """Wraps json_body.encode: for each call, whether it ran on a thread running an event loop,
    and how many items the value held when it was a list."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, int | None]] = []
        self._lock = threading.Lock()

    def __call__(self, value: Any) -> bytes:
        with self._lock:
            self.calls.append((_on_event_loop(), len(value) if isinstance(value, list) else None))
        return encode(value)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> EncodeRecorder:
    recording = EncodeRecorder()
    monkeypatch.setattr(json_body, "encode", recording)
    return recording


def test_chunks_join_into_the_whole_object_and_are_built_only_when_asked():
    built: list[int] = []

    def item_json(item: int) -> dict[str, int]:
        built.append(item)
        return {"n": item}

    items = list(range(25))
    pieces = stream_chunks(
        {"a": 1, "b": None}, "spans", items, item_json, {"next_cursor": "x"}, chunk_items=10
    )
    head = next(pieces)
    assert built == []  # the head is sent before any item is turned into JSON
    first_chunk = next(pieces)
    assert built == list(range(10))  # one chunk at a time
    rest = list(pieces)
    assert built == items
    whole = json.loads(b"".join([head, first_chunk, *rest]))
    assert whole == {"a": 1, "b": None, "spans": [{"n": n} for n in items], "next_cursor": "x"}
    assert list(whole) == ["a", "b", "spans", "next_cursor"]  # members in the order of the dict form


@pytest.mark.parametrize("count", [0, 1, 10, 11])
def test_chunks_of_any_count_and_empty_head_or_tail_are_valid_json(count: int):
    items = list(range(count))
    for head, tail in (({}, {}), ({"h": "é\u2028"}, {}), ({}, {"t": [1.5, float("nan")]})):
        text = b"".join(stream_chunks(head, "items", items, lambda n: n, tail, chunk_items=10))
        assert json.loads(text) == {**head, "items": items, **tail} | (
            {"t": [1.5, None]} if "t" in tail else {}  # NaN is null, as FastAPI writes it
        )


def test_trace_spans_are_encoded_off_the_event_loop_in_bounded_chunks(
    server: RunningServer, recorder: EncodeRecorder
):
    trace_id, root_id = new_trace_id(), new_span_id()
    spans = [make_span(trace_id, root_id, name="root", attributes={"input.value": "hi"})]
    spans += [
        make_span(trace_id, new_span_id(), root_id, f"child {n}", n, 1, {"tool.name": f"t{n}"})
        for n in range(CHUNK_ITEMS * 2 + 5)
    ]
    assert server.post_spans(make_request(spans)).status_code == 200

    response = server.get(f"/api/traces/{trace_id.hex()}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers.get("transfer-encoding") == "chunked"  # streamed, never whole in memory
    body = response.json()
    assert len(body["spans"]) == len(spans)
    assert body["next_cursor"] is None
    # The same JSON the dict form gives, member for member.
    detail = server.store.get_trace(trace_id.hex(), 1000)
    assert detail is not None
    assert body == json.loads(json.dumps(serialize.trace_detail_json(detail)))
    span_chunks = [size for _, size in recorder.calls if size is not None]
    assert span_chunks == [CHUNK_ITEMS, CHUNK_ITEMS, 6]
    assert not any(on_loop for on_loop, _ in recorder.calls), recorder.calls


def test_every_api_read_is_encoded_off_the_event_loop(server: RunningServer, recorder: EncodeRecorder):
    trace_id, spans = make_turn("s1", "u1", tool=True)
    assert server.post_spans(make_request(spans)).status_code == 200
    paths = [
        "/api/projects",
        "/api/sessions",
        "/api/sessions/s1",
        "/api/users",
        "/api/users/u1",
        "/api/traces",
        f"/api/traces/{trace_id.hex()}",
    ]
    for path in paths:
        before = len(recorder.calls)
        response = server.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert len(recorder.calls) > before, f"{path} was not encoded by json_body"
    assert not any(on_loop for on_loop, _ in recorder.calls), recorder.calls


def test_the_openapi_schema_still_describes_json_objects(server: RunningServer, tmp_path: Path):
    spec = server.get_json("/openapi.json")
    for path in ("/api/sessions", "/api/traces/{trace_id}", "/api/projects"):
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert content["application/json"]["schema"]["type"] == "object", (path, content)
