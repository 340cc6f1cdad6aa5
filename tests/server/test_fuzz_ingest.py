"""Fuzzing ``POST /v1/traces`` with hypothesis: random bytes, truncated and corrupted protobuf,
OTLP/JSON with wrong types and invalid ids, odd times, cyclic parents, duplicate span ids, huge
strings, deep nesting.

For every case: no 5xx, the server keeps running, and a valid batch sent right after the bad one
is stored intact (read back through the API). Whatever a bad case did get stored must still
render (trace page and API). The default budget is small; ``-m slow`` runs the long versions.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from _server_kit import (
    PROTOBUF,
    RunningServer,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
    run_server,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from spanloom.server.ingest.normalize import MAX_TOKENS

JSON = {"Content-Type": "application/json"}
GZIP = {"Content-Encoding": "gzip"}
FAST_EXAMPLES = int(os.environ.get("SPANLOOM_FUZZ_EXAMPLES", "60"))
SLOW_EXAMPLES = 1000
_COMMON = {
    "deadline": None,
    "derandomize": False,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}
FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # Small limits, so the limit paths (413, truncation, per-trace) are fuzzed too.
    with run_server(
        tmp_path_factory.mktemp("fuzz") / "fuzz.db",
        max_body_bytes=2 * 1024 * 1024,
        max_spans_per_request=200,
        max_attribute_value_bytes=4096,
        max_attributes_per_span=64,
        max_spans_per_trace=150,
    ) as running:
        FIGURES.clear()  # the figures count what this server was sent
        yield running
    print(f"\nfuzz figures: {dict(sorted(FIGURES.items()))}")


# The batches sent after each case go to their own session and project, apart from the fuzzed
# corpus: a truncated or corrupted copy of _VALID_BODY can still decode, and lands in "fuzz".
SURVIVORS = "fuzz-survivors"


# --- strategies: protobuf ---
def _valid_request(session_id: str = SURVIVORS) -> tuple[ExportTraceServiceRequest, bytes, list[bytes]]:
    trace_id, root = new_trace_id(), new_span_id()
    children = [new_span_id(), new_span_id()]
    root_attributes = {"session.id": session_id, "input.value": "hi"}
    spans = [make_span(trace_id, root, name="root", attributes=root_attributes)]
    spans += [
        make_span(trace_id, child, root, f"child-{n}", n, 1, {"n": n}) for n, child in enumerate(children)
    ]
    return make_request(spans, resource={"project.name": session_id}), trace_id, [root, *children]


_VALID_BODY = _valid_request("fuzz")[0].SerializeToString()

ids = st.one_of(st.binary(min_size=0, max_size=20), st.binary(min_size=16, max_size=16), st.just(bytes(16)))
span_ids = st.one_of(st.binary(min_size=0, max_size=10), st.binary(min_size=8, max_size=8), st.just(bytes(8)))
times = st.integers(min_value=0, max_value=2**64 - 1)
texts = st.one_of(
    st.text(max_size=200), st.just("x" * 20_000), st.just("\u202e\x00<script>alert(1)</script>")
)


@st.composite
def any_values(draw: st.DrawFn, depth: int = 0) -> AnyValue:
    kind = draw(st.sampled_from(["s", "i", "d", "b", "bytes", "array", "kv"] if depth < 6 else ["s", "i"]))
    if kind == "s":
        return AnyValue(string_value=draw(texts))
    if kind == "i":
        return AnyValue(int_value=draw(st.integers(-(2**63), 2**63 - 1)))
    if kind == "d":
        return AnyValue(double_value=draw(st.floats(allow_nan=True, allow_infinity=True)))
    if kind == "b":
        return AnyValue(bool_value=draw(st.booleans()))
    if kind == "bytes":
        return AnyValue(bytes_value=draw(st.binary(max_size=100)))
    value = AnyValue()
    items = draw(st.lists(any_values(depth + 1), max_size=3))
    if kind == "array":
        value.array_value.values.extend(items)
    else:
        value.kvlist_value.values.extend(KeyValue(key=f"k{n}", value=item) for n, item in enumerate(items))
    return value


@st.composite
def odd_requests(draw: st.DrawFn) -> bytes:
    """Well-formed protobuf with hostile content: bad ids, reversed times, loops, duplicates."""
    trace_pool = draw(st.lists(ids, min_size=1, max_size=3))
    span_pool = draw(st.lists(span_ids, min_size=1, max_size=6))  # a small pool: duplicates and cycles
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 3))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="project.name", value=AnyValue(string_value=draw(texts)))
        scope = resource_spans.scope_spans.add()
        for _ in range(draw(st.integers(0, 8))):
            attributes = [
                KeyValue(
                    key=draw(st.sampled_from(["input.value", "session.id", "user.id", "metadata", "x"])),
                    value=draw(any_values()),
                )
                for _ in range(draw(st.integers(0, 4)))
            ]
            scope.spans.append(
                Span(
                    trace_id=draw(st.sampled_from(trace_pool)),
                    span_id=draw(st.sampled_from(span_pool)),
                    parent_span_id=draw(st.sampled_from([b"", *span_pool])),
                    name=draw(texts),
                    kind=draw(st.integers(0, 2**31 - 1)),
                    start_time_unix_nano=draw(times),
                    end_time_unix_nano=draw(times),
                    attributes=attributes,
                    status=Status(code=draw(st.integers(0, 5)), message=draw(texts)),
                )
            )
    return request.SerializeToString()


def _corrupt(body: bytes, draw: st.DrawFn) -> bytes:
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def protobuf_bodies(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    kind = draw(st.sampled_from(["random", "truncated", "corrupted", "odd", "many_spans"]))
    if kind == "random":
        body = draw(st.binary(max_size=4096))
    elif kind == "truncated":
        body = _VALID_BODY[: draw(st.integers(0, len(_VALID_BODY) - 1))]
    elif kind == "corrupted":
        body = _corrupt(_VALID_BODY, draw)
    elif kind == "odd":
        body = draw(odd_requests())
    else:  # past the per-request limit
        trace_id = new_trace_id()
        body = make_request([make_span(trace_id, new_span_id()) for _ in range(draw(st.integers(190, 260)))])
        body = body.SerializeToString()
    return f"protobuf:{kind}", PROTOBUF, body


# --- strategies: JSON ---
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=40)
)
any_json = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
hex_ids = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF", max_size=40), st.text(max_size=40), any_json, st.just("0" * 32)
)
json_times = st.one_of(
    st.integers(-(2**65), 2**65), st.text(max_size=25), st.floats(allow_nan=False), any_json
)
json_values = st.one_of(
    st.fixed_dictionaries({"stringValue": st.one_of(st.text(max_size=100), any_json)}),
    st.fixed_dictionaries({"intValue": st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=20))}),
    st.fixed_dictionaries({"boolValue": any_json}),
    st.fixed_dictionaries({"bytesValue": st.text(max_size=20)}),
    any_json,
)
json_spans = st.fixed_dictionaries(
    {"traceId": hex_ids, "spanId": hex_ids},
    optional={
        "parentSpanId": hex_ids,
        "name": st.one_of(st.text(max_size=50), any_json),
        "kind": st.one_of(st.integers(-5, 2**40), st.text(max_size=20), any_json),
        "startTimeUnixNano": json_times,
        "endTimeUnixNano": json_times,
        "attributes": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"key": st.one_of(st.text(max_size=20), any_json), "value": json_values}
                ),
                max_size=4,
            ),
            any_json,
        ),
        "status": any_json,
        "events": any_json,
        "links": any_json,
    },
)
json_requests = st.fixed_dictionaries(
    {
        "resourceSpans": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "scopeSpans": st.one_of(
                            st.lists(
                                st.fixed_dictionaries({"spans": st.lists(json_spans, max_size=5)}), max_size=2
                            ),
                            any_json,
                        )
                    },
                    optional={"resource": any_json},
                ),
                max_size=2,
            ),
            any_json,
        )
    }
)


@st.composite
def json_bodies(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    kind = draw(st.sampled_from(["otlp_shaped", "any_json", "deep", "not_json", "huge_string"]))
    if kind == "otlp_shaped":
        body = json.dumps(draw(json_requests)).encode()
    elif kind == "any_json":
        body = json.dumps(draw(any_json)).encode()
    elif kind == "deep":
        depth = draw(st.integers(100, 200_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        body = (opener * depth + "1" + closer * depth).encode()
    elif kind == "not_json":
        body = draw(st.binary(max_size=2048))
    else:
        value = "y" * draw(st.integers(10_000, 1_500_000))
        span = {
            "traceId": "ab" * 16,
            "spanId": "cd" * 8,
            "name": value,
            "attributes": [{"key": "k", "value": {"stringValue": value}}],
        }
        body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    return f"json:{kind}", JSON, body


@st.composite
def gzip_bodies(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    """A body (valid or not) as one or more gzip members, maybe cut short or with bytes after it."""
    kind, content_type, plain = draw(st.one_of(st.just(("valid", PROTOBUF, _VALID_BODY)), protobuf_bodies()))
    # Positions are drawn in a fixed range and scaled: some bodies hold random ids, so their
    # lengths (compressed, at least) vary between runs, and hypothesis must draw the same way.
    cuts = sorted(n * len(plain) // 1024 for n in draw(st.lists(st.integers(0, 1024), max_size=3)))
    pieces = [plain[start:end] for start, end in zip([0, *cuts], [*cuts, len(plain)], strict=True)]
    levels = draw(st.lists(st.integers(0, 9), min_size=len(pieces), max_size=len(pieces)))
    body = b"".join(gzip.compress(piece, level, mtime=0) for piece, level in zip(pieces, levels, strict=True))
    ending = draw(st.sampled_from(["whole", "garbage", "zeros", "cut"]))
    if ending == "garbage":
        body += draw(st.binary(min_size=1, max_size=40))
    elif ending == "zeros":
        body += bytes(draw(st.integers(1, 16)))
    elif ending == "cut":
        body = body[: draw(st.integers(0, 1023)) * len(body) // 1024]
    return f"gzip:{len(pieces)}-members:{ending}:{kind.split(':')[-1]}", {**content_type, **GZIP}, body


def _valid_batch_survives(server: RunningServer) -> None:
    request, trace_id, span_ids = _valid_request()
    response = server.post_spans(request)
    assert response.status_code == 200, response.text
    detail = server.get_json(f"/api/traces/{trace_id.hex()}")
    stored = {span["span_id"]: span for span in detail["spans"]}
    assert set(stored) == {span_id.hex() for span_id in span_ids}
    root, *children = span_ids
    assert stored[root.hex()]["parent_span_id"] is None and stored[root.hex()]["input"] == "hi"
    for n, child in enumerate(children):
        assert stored[child.hex()]["parent_span_id"] == root.hex()
        assert stored[child.hex()]["attributes"] == {"n": n}
    assert detail["span_count"] == 3 and detail["session_id"] == SURVIVORS
    FIGURES["valid_batches_stored"] += 1
    FIGURES["valid_spans_stored"] += 3


def _stored_traces_render(server: RunningServer, content_type: dict[str, str], body: bytes) -> None:
    """Whatever a bad-but-accepted request stored can be read and rendered."""
    if content_type is not PROTOBUF:
        return
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    trace_ids = {
        span.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans
    }
    for trace_id in sorted(trace_ids)[:2]:
        for path in (f"/api/traces/{trace_id}", f"/traces/{trace_id}"):
            assert server.client.get(path).status_code < 500, path
            FIGURES["pages_checked"] += 1


def _one_case(server: RunningServer, case: tuple[str, dict[str, str], bytes]) -> None:
    kind, content_type, body = case
    response = server.client.post("/v1/traces", content=body, headers=content_type)
    FIGURES[f"{kind}:{response.status_code}"] += 1
    FIGURES["cases"] += 1
    assert response.status_code in (200, 400, 413), (kind, response.status_code, response.text[:300])
    assert response.headers.get("content-type", "").split(";")[0] in (
        "application/json",
        "application/x-protobuf",
    )
    if response.status_code == 200:
        if content_type.get("Content-Encoding") == "gzip":
            # Accepted: every member was decoded (gzip.decompress reads them all, as the server must).
            body = gzip.decompress(body)
            content_type = PROTOBUF
        _stored_traces_render(server, content_type, body)
    _valid_batch_survives(server)


FAST = settings(max_examples=FAST_EXAMPLES, **_COMMON)
SLOW = settings(max_examples=SLOW_EXAMPLES, **_COMMON)
bodies = st.one_of(protobuf_bodies(), json_bodies(), gzip_bodies())


@FAST
@given(case=protobuf_bodies())
def test_protobuf_bodies_never_break_ingest(server: RunningServer, case: tuple[str, dict[str, str], bytes]):
    _one_case(server, case)


@FAST
@given(case=json_bodies())
def test_json_bodies_never_break_ingest(server: RunningServer, case: tuple[str, dict[str, str], bytes]):
    _one_case(server, case)


@FAST
@given(case=gzip_bodies())
def test_gzip_bodies_never_break_ingest(server: RunningServer, case: tuple[str, dict[str, str], bytes]):
    _one_case(server, case)


@pytest.mark.slow
@SLOW
@given(case=bodies)
def test_fuzz_ingest_long_run(server: RunningServer, case: tuple[str, dict[str, str], bytes]):
    _one_case(server, case)


def test_the_server_survived_and_counts_add_up(server: RunningServer):
    """After whatever this module sent before (or nothing, run alone): still up, and every valid
    batch sent after a case is there, once."""
    _valid_batch_survives(server)
    assert server.get("/api/projects").status_code == 200
    session = server.get_json(f"/api/sessions/{SURVIVORS}", project=SURVIVORS, limit=500)
    assert session["trace_count"] == FIGURES["valid_batches_stored"]
    assert len({turn["trace_id"] for turn in session["turns"]}) == FIGURES["valid_batches_stored"]
    assert sum(turn["span_count"] for turn in session["turns"]) == FIGURES["valid_spans_stored"]
    FIGURES["final_check"] += 1


def test_known_hostile_bodies(server: RunningServer, tmp_path: Path):
    """Fixed cases hypothesis may not draw every run: each must answer without a 5xx."""
    deep_json = b"[" * 100_000 + b"]" * 100_000
    # An attribute value 3,000 maps deep, written by hand (json.dumps would recurse too).
    depth = 3_000
    nested = (
        '{"kvlistValue": {"values": [{"key": "k", "value": ' * depth + '{"stringValue": "x"}' + "}]}}" * depth
    )
    span = '{"traceId": "' + "ab" * 16 + '", "spanId": "' + "cd" * 8 + '", "attributes": '
    span += '[{"key": "a", "value": ' + nested + "}]}"
    deep_value = ('{"resourceSpans": [{"scopeSpans": [{"spans": [' + span + "]}]}]}").encode()
    for content_type, body in ((JSON, deep_json), (JSON, deep_value), (PROTOBUF, b"\x0a" * 100_000)):
        response = server.client.post("/v1/traces", content=body, headers=content_type)
        assert response.status_code == 400, response.text[:200]
        _valid_batch_survives(server)


def test_numbers_past_int64_are_clamped_not_a_503(server: RunningServer):
    """Found by the long run: fixed64 times past 2**63 made the store fail (a 503 exporters retry)."""
    trace_id, span_id = new_trace_id(), new_span_id()
    span = make_span(trace_id, span_id, attributes={"llm.token_count.prompt": "9" * 25})
    span.start_time_unix_nano = span.end_time_unix_nano = 2**64 - 1
    span.attributes.add(key="llm.token_count.completion", value=AnyValue(double_value=float("inf")))
    assert server.post_spans(make_request([span])).status_code == 200
    stored = server.get_json(f"/api/traces/{trace_id.hex()}")["spans"][0]
    # Counts are clamped to MAX_TOKENS (far below 2**63, so sums of them stay in range too).
    assert stored["prompt_tokens"] == MAX_TOKENS and stored["completion_tokens"] is None
    assert server.client.get(f"/traces/{trace_id.hex()}").status_code == 200
    _valid_batch_survives(server)


def test_digits_int_cannot_read_are_not_taken_for_numbers(server: RunningServer):
    """'²' is a digit to str.isdigit but not to int(), and int() refuses more than 4,300 digits:
    either, in a message index, a token count or a query parameter, once failed the whole
    request with a 500."""
    trace_id = new_trace_id()
    attributes = {
        "llm.input_messages.².message.content": "superscript index",
        f"llm.input_messages.{'1' * 5000}.message.role": "user",
        "llm.input_messages.0.message.contents.².message_content.text": "part",
        f"llm.output_messages.0.message.tool_calls.{'7' * 5000}.tool_call.id": "call",
        "llm.token_count.prompt": "²",
        "llm.token_count.completion": "٣",  # Arabic-Indic three: a decimal int() reads
    }
    span = make_span(trace_id, new_span_id(), attributes=attributes)
    assert server.post_spans(make_request([span])).status_code == 200
    stored = server.get_json(f"/api/traces/{trace_id.hex()}")["spans"][0]
    assert stored["prompt_tokens"] is None and stored["completion_tokens"] == 3
    assert server.client.get(f"/traces/{trace_id.hex()}").status_code == 200
    for path, params in (
        ("/api/sessions", {"limit": "²"}),
        ("/api/sessions", {"limit": "1" * 5000}),
        (f"/api/traces/{trace_id.hex()}", {"limit": "²"}),
        (f"/traces/{trace_id.hex()}", {"offset": "²"}),
        ("/sessions", {"limit": "1" * 5000}),
    ):
        assert server.client.get(path, params=params).status_code == 400, (path, params)
    _valid_batch_survives(server)


def test_json_nested_too_deep_is_kept_as_text_or_refused(server: RunningServer):
    """Python's JSON parser recurses: text nested a thousand levels deep raised RecursionError,
    which `except ValueError` let through. In a span's metadata, tags or messages that failed the
    whole request; in an evaluation body or a cursor, the request."""
    deep = "[" * 5_000 + "]" * 5_000
    deep_object = '{"k": ' * 100 + "1" + "}" * 100  # valid, but deeper than anything we keep
    trace_id = new_trace_id()
    attributes = {
        "metadata": deep_object,
        "tag.tags": deep,
        "gen_ai.input.messages": deep,
        "input.value": deep,
        "output.value": deep_object,
        "session.id": "deep-session",
    }
    span = make_span(trace_id, new_span_id(), attributes=attributes)
    assert server.post_spans(make_request([span])).status_code == 200
    stored = server.get_json(f"/api/traces/{trace_id.hex()}")["spans"][0]
    assert stored["metadata"] == {} and stored["attributes"]["metadata"] == deep_object
    for path in (f"/traces/{trace_id.hex()}", "/sessions/deep-session", "/sessions"):
        assert server.client.get(path).status_code == 200, path
    response = server.client.post(
        "/api/evaluations", content=deep, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_body"
    cursor = base64.urlsafe_b64encode(deep.encode()).decode().rstrip("=")
    assert server.client.get("/api/sessions", params={"cursor": cursor}).status_code == 400
    _valid_batch_survives(server)


def test_ids_holding_nul_still_group(server: RunningServer):
    """SQLite's JSON functions end a string at NUL, and the store looks ids up in bulk through
    them: a session id holding NUL got no session row, a user id holding one was recounted from
    nothing at each batch. NUL in ids (and tags) is stored as U+FFFD."""
    for batch in range(2):
        span = make_span(
            new_trace_id(),
            new_span_id(),
            start_ms=batch * 1000,
            attributes={"session.id": "chat\x00one", "user.id": "user\x00", "tag.tags": ["t\x00"]},
        )
        assert server.post_spans(make_request([span])).status_code == 200
    sessions = server.get_json("/api/sessions", q="chat")["items"]
    assert [(s["session_id"], s["trace_count"]) for s in sessions] == [("chat\ufffdone", 2)]
    user = server.get_json("/api/users/user\ufffd")
    assert user["trace_count"] == 2 and user["session_count"] == 1
    assert server.get_json("/api/traces", tag="t\ufffd")["items"]


def test_nan_and_infinity_are_stored_as_valid_json(server: RunningServer):
    """NaN and Infinity are not JSON: written into a stored row they made SQLite's JSON functions
    fail (the metadata and tag filters answered 500). They are stored as OTLP/JSON spells them."""
    trace_id = new_trace_id()
    span = make_span(
        trace_id,
        new_span_id(),
        attributes={"session.id": "nan-session", "metadata": '{"a": NaN, "b": 1e400}', "tag.tags": '["x"]'},
    )
    span.attributes.add(key="weird.double", value=AnyValue(double_value=float("nan")))
    span.attributes.add(key="langfuse.trace.metadata.c", value=AnyValue(double_value=float("-inf")))
    assert server.post_spans(make_request([span])).status_code == 200
    stored = server.get_json(f"/api/traces/{trace_id.hex()}")["spans"][0]
    assert stored["metadata"] == {"a": "NaN", "b": "Infinity", "c": "-Infinity"}
    assert stored["attributes"]["weird.double"] == "NaN"
    for path, params in (
        ("/api/sessions", {"metadata.a": "NaN"}),
        ("/api/traces", {"metadata.b": "1"}),
        ("/api/sessions", {"tag": "x"}),
        ("/sessions", {"metadata.a": "1"}),
        ("/sessions/nan-session", {}),
        (f"/traces/{trace_id.hex()}", {}),
    ):
        assert server.client.get(path, params=params).status_code == 200, (path, params)
    assert [s["session_id"] for s in server.get_json("/api/sessions", **{"metadata.a": "NaN"})["items"]] == [
        "nan-session"
    ]
    _valid_batch_survives(server)
