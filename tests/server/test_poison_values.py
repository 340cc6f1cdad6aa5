"""No value poisons a batch, and no crafted parameter reaches a 500 (issue: tenants apart on
writes, no value poisons a batch). Each case on a real server: values are cleaned or clamped at
normalization, sums saturate, a span that still cannot be stored is rejected alone while the rest
of its batch is stored, and crafted cursors and filters answer 400."""

from __future__ import annotations

import base64
import json

import pytest
from _server_kit import (
    RunningServer,
    make_request,
    make_span,
    make_turn,
    new_span_id,
    new_trace_id,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spanloom.server.ingest.normalize import MAX_TOKENS
from spanloom.server.store.sqlite import span_writes


@pytest.fixture(scope="module")
def store_backend() -> str:
    """SQLite only: these tests reach into the SQLite writer to make a value it cannot take."""
    return "sqlite"


LONE = "\\ud83d"  # as JSON.stringify writes half an emoji: six characters of JSON text
INT64_MAX = 2**63 - 1


def _answer(response) -> ExportTraceServiceResponse:
    assert response.status_code == 200, response.text[:300]
    return ExportTraceServiceResponse.FromString(response.content)


def _stored(server: RunningServer, trace_id: bytes) -> list[dict]:
    return server.get_json(f"/api/traces/{trace_id.hex()}")["spans"]


def test_lone_surrogates_in_json_text_are_replaced_not_a_503(server: RunningServer):
    trace_id = new_trace_id()
    attributes = {
        "session.id": "surrogates",
        "metadata": '{"note": "cut ' + LONE + ' emoji", "pair": "\\ud83d\\ude00"}',
        "tag.tags": '["a' + LONE + '"]',
        "langfuse.trace.tags": '["b' + LONE + '"]',
        "gen_ai.input.messages": '[{"role": "user", "content": "hi ' + LONE + '"}]',
        "gen_ai.output.messages": '[{"role": "assistant", "content": "yo ' + LONE + '"}]',
    }
    poisoned = make_span(trace_id, new_span_id(), attributes=attributes)
    _, others = make_turn("neighbour", "u", 10)
    answer = _answer(server.post_spans(make_request([poisoned, *others])))
    assert answer.partial_success.rejected_spans == 0
    [span] = _stored(server, trace_id)
    assert span["metadata"] == {"note": "cut \ufffd emoji", "pair": "😀"}
    assert span["tags"] == ["a\ufffd", "b\ufffd"]
    assert "hi \ufffd" in span["input"] and "yo \ufffd" in span["output"]
    assert server.get_json("/api/sessions", q="neighbour")["items"]
    # The row's JSON stays readable by the filters.
    assert server.get_json("/api/sessions", **{"metadata.note": "cut \ufffd emoji"})["items"]
    assert server.get_json("/api/traces", tag="a\ufffd")["items"]


def test_lone_surrogates_in_otlp_json_are_replaced(server: RunningServer):
    trace_hex = "ab" * 16
    body = (
        '{"resourceSpans": [{"resource": {"attributes": [{"key": "project.name", "value": {"stringValue": "p'
        + LONE
        + '"}}]}, "scopeSpans": [{"spans": [{"traceId": "'
        + trace_hex
        + '", "spanId": "'
        + "cd" * 8
        + '", "name": "x'
        + LONE
        + '", "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": [{"key": "session.id", '
        '"value": {"stringValue": "s\\udc00"}}]}]}]}]}'
    )
    response = server.client.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    trace = server.get_json(f"/api/traces/{trace_hex}")
    assert (trace["project"], trace["session_id"], trace["spans"][0]["name"]) == (
        "p\ufffd",
        "s\ufffd",
        "x\ufffd",
    )


def test_token_counts_are_clamped_and_negative_ones_refused(server: RunningServer):
    trace_id = new_trace_id()
    spans = [
        make_span(
            trace_id, new_span_id(), attributes={"session.id": "big", "llm.token_count.prompt": INT64_MAX}
        ),
        make_span(
            trace_id,
            new_span_id(),
            attributes={
                "session.id": "big",
                "llm.model_name": "gpt-4o",
                "llm.token_count.completion": 10**16,
            },
        ),
        make_span(
            trace_id, new_span_id(), attributes={"session.id": "big", "llm.token_count.prompt": -1_000_000}
        ),
    ]
    assert _answer(server.post_spans(make_request(spans))).partial_success.rejected_spans == 0
    stored = _stored(server, trace_id)
    counts = sorted((str(span["prompt_tokens"]), str(span["completion_tokens"])) for span in stored)
    assert counts == [(str(MAX_TOKENS), "None"), ("None", str(MAX_TOKENS)), ("None", "None")]
    assert max(span["cost"] or 0 for span in stored) > 0
    [session] = server.get_json("/api/sessions", q="big")["items"]
    assert session["cost"] >= 0 and session["total_tokens"] == 2 * MAX_TOKENS


def test_a_session_with_a_huge_count_still_takes_spans(server: RunningServer):
    """One accepted span with a count near 2**63 made every later batch of its session (or user)
    fail with 503 "integer overflow", on every retry: a remote way to drop another app's spans."""
    _, first = make_turn("victim", "victim-user", 0, extra={"llm.token_count.total": INT64_MAX - 100})
    assert _answer(server.post_spans(make_request(first))).partial_success.rejected_spans == 0
    for batch in range(1, 4):
        spans = []
        for turn in range(20):
            spans += make_turn(
                "victim", "victim-user", batch * 1000 + turn, extra={"llm.token_count.total": 10**12}
            )[1]
        assert _answer(server.post_spans(make_request(spans))).partial_success.rejected_spans == 0
    [session] = server.get_json("/api/sessions", q="victim")["items"]
    assert session["trace_count"] == 61 and 0 < session["total_tokens"] <= INT64_MAX
    [user] = server.get_json("/api/users", q="victim-user")["items"]
    assert user["trace_count"] == 61 and 0 < user["total_tokens"] <= INT64_MAX


def test_a_span_that_cannot_be_stored_is_rejected_alone(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
):
    """Whatever normalization misses: the store writes the batch half by half and rejects only the
    span that fails alone."""
    real_insert = span_writes.insert_spans

    def insert_refusing_poison(connection, rows, resources):
        if any(row[6] == "poison" for row in rows):  # row[6]: the span's name
            raise ValueError("a value this store cannot take")
        real_insert(connection, rows, resources)

    monkeypatch.setattr(span_writes, "insert_spans", insert_refusing_poison)
    trace_id = new_trace_id()
    spans = [
        make_span(trace_id, new_span_id(), name=f"ok-{n}", attributes={"session.id": "mixed"})
        for n in range(9)
    ]
    spans.insert(4, make_span(trace_id, new_span_id(), name="poison", attributes={"session.id": "mixed"}))
    answer = _answer(server.post_spans(make_request(spans)))
    assert answer.partial_success.rejected_spans == 1
    assert "could not be stored" in answer.partial_success.error_message
    assert sorted(span["name"] for span in _stored(server, trace_id)) == [f"ok-{n}" for n in range(9)]
    [session] = server.get_json("/api/sessions", q="mixed")["items"]
    assert session["trace_count"] == 1


# --- crafted parameters --------------------------------------------------------------------
def _cursor(*parts: object) -> str:
    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CRAFTED = {
    "huge": lambda sort, key: _cursor(sort, 10**30, *key),
    "negative": lambda sort, key: _cursor(sort, -(10**19), *key),
    "surrogate": lambda sort, key: base64.urlsafe_b64encode(
        json.dumps([sort, 1, *key[:-1], "x"]).replace('"x"', '"\\ud800"').encode()
    ).decode(),
}


@pytest.mark.parametrize("kind", sorted(CRAFTED))
@pytest.mark.parametrize(
    ("path", "sort", "key"),
    [
        ("/api/sessions", "start_time", ("p", "s")),
        ("/api/traces", "start_time", ("t",)),
        ("/api/users", "last_seen", ("p", "u")),
        ("/api/users/someone", "start_time", ("p", "s")),
        ("/sessions", "start_time", ("p", "s")),
        ("/traces", "start_time", ("t",)),
        ("/api/traces/" + "ab" * 16, "trace_spans", ("s",)),
    ],
)
def test_crafted_cursors_answer_400(
    server: RunningServer, path: str, sort: str, key: tuple[str, ...], kind: str
):
    _, spans = make_turn("someone-s", "someone", 0)
    server.post_spans(make_request(spans, {"project.name": "p"}))
    if path == "/api/traces/" + "ab" * 16:
        trace = make_span(bytes.fromhex("ab" * 16), new_span_id(), attributes={})
        server.post_spans(make_request([trace]))
    params = {"cursor": CRAFTED[kind](sort, key)}
    if path.startswith("/api/users/"):
        params["project"] = "p"
    response = server.client.get(path, params=params)
    assert response.status_code == 400, (path, kind, response.status_code, response.text[:200])
    if path.startswith("/api/"):
        assert response.json()["error"]["code"] == "bad_parameter"
        assert response.json()["error"]["message"].startswith("cursor")


@pytest.mark.parametrize("parameter", ["tag", "metadata.k"])
@pytest.mark.parametrize("path", ["/api/sessions", "/api/traces", "/sessions", "/traces"])
def test_a_thousand_filters_answer_400(server: RunningServer, path: str, parameter: str):
    response = server.client.get(path, params=[(parameter, "v")] * 1000)
    assert response.status_code == 400, response.text[:200]


@pytest.mark.parametrize("field", ["name", "label", "explanation"])
def test_a_lone_surrogate_in_an_evaluation_is_repaired_not_a_500(server: RunningServer, field: str):
    trace_id, spans = make_turn("judged", "u", 0)
    assert server.post_spans(make_request(spans)).status_code == 200
    item = {"trace_id": trace_id.hex(), "name": "helpful", "label": "pass", "explanation": "why"}
    body = json.dumps([item]).replace(f'"{item[field]}"', '"x\\ud800"')
    response = server.client.post(
        "/api/evaluations", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    [result] = server.get_json(f"/api/traces/{trace_id.hex()}")["evaluations"]
    assert result[field] == "x\ufffd"
