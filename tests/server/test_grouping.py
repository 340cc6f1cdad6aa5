"""Spans become traces, sessions and users: through the real OTLP exporter and raw protobuf."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _server_kit import RunningServer, make_request, make_span, make_turn, new_span_id, new_trace_id
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import spanloom


@pytest.fixture
def provider(server: RunningServer) -> Iterator[TracerProvider]:
    """The SDK's pieces, exporting synchronously: when a span ends, its export has been answered."""
    tracer_provider = TracerProvider(resource=Resource.create({"project.name": "chat"}))
    tracer_provider.add_span_processor(spanloom.SessionSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.traces_endpoint)))
    yield tracer_provider
    tracer_provider.shutdown()


def test_real_exporter_groups_turns_into_sessions_and_users(server: RunningServer, provider: TracerProvider):
    tracer = spanloom.get_tracer("test", tracer_provider=provider)

    @tracer.llm
    def call_model(prompt: str) -> str:
        return f"echo: {prompt}"

    @tracer.tool
    def lookup(city: str) -> str:
        if city == "Atlantis":
            raise LookupError("no such city")
        return "sunny"

    @tracer.chain
    def answer(question: str) -> str:
        try:
            lookup("Atlantis" if "Atlantis" in question else "Paris")
        except LookupError:
            pass
        return call_model(question)

    with spanloom.using_attributes(
        session_id="s-alice", user_id="alice", tags=["beta"], metadata={"plan": "pro"}
    ):
        answer("weather in Paris?")
        answer("and in Atlantis?")
    with spanloom.using_attributes(session_id="s-bob", user_id="bob"):
        answer("hello")

    sessions = server.get_json("/api/sessions")["items"]
    assert {s["session_id"]: (s["user_id"], s["trace_count"]) for s in sessions} == {
        "s-alice": ("alice", 2),
        "s-bob": ("bob", 1),
    }
    alice = server.get_json("/api/sessions/s-alice")
    assert alice["project"] == "chat"
    assert [turn["input"] for turn in alice["turns"]] == ["weather in Paris?", "and in Atlantis?"]
    assert alice["first_input"] == "weather in Paris?"
    assert alice["last_output"] == "echo: and in Atlantis?"
    failing = alice["first_failing_turn"]
    assert (failing["index"], failing["trace_id"], failing["reason"]) == (
        1,
        alice["turns"][1]["trace_id"],
        "error",
    )
    # Its cursor opens the page that starts at it.
    page = server.get_json("/api/sessions/s-alice", cursor=failing["cursor"], limit=1)
    assert page["turns_offset"] == 1 and [t["trace_id"] for t in page["turns"]] == [failing["trace_id"]]
    assert alice["error_count"] == 1 and alice["tags"] == ["beta"] and alice["metadata"] == {"plan": "pro"}
    assert alice["latency_p95_ms"] >= alice["latency_p50_ms"] > 0

    users = {u["user_id"]: u for u in server.get_json("/api/users")["items"]}
    assert users["alice"]["session_count"] == 1 and users["alice"]["trace_count"] == 2
    assert users["alice"]["error_rate"] == 0.5
    alice_user = server.get_json("/api/users/alice")
    assert [s["session_id"] for s in alice_user["sessions"]["items"]] == ["s-alice"]

    trace = server.get_json(f"/api/traces/{alice['turns'][1]['trace_id']}")
    kinds = {span["name"]: span for span in trace["spans"]}
    assert set(kinds) == {"answer", "lookup", "call_model"}
    assert kinds["lookup"]["status"]["code"] == "ERROR"
    assert kinds["lookup"]["events"][0]["name"] == "exception"
    assert kinds["call_model"]["parent_span_id"] == kinds["answer"]["span_id"]
    assert kinds["answer"]["parent_span_id"] is None

    projects = server.get_json("/api/projects")["items"]
    assert projects == [
        {
            "name": "chat",
            "span_count": 9,
            "trace_count": 3,
            "session_count": 2,
            "user_count": 2,
            "first_span_time": projects[0]["first_span_time"],
            "last_span_time": projects[0]["last_span_time"],
        }
    ]


def test_ids_only_on_a_child_span(server: RunningServer):
    trace_id, spans = make_turn("s1", "u1", ids_on_child_only=True)
    assert server.post_spans(make_request(spans)).status_code == 200
    trace = server.get_json(f"/api/traces/{trace_id.hex()}")
    assert (trace["session_id"], trace["user_id"]) == ("s1", "u1")
    assert server.get_json("/api/sessions/s1")["trace_count"] == 1
    assert server.get_json("/api/users/u1")["trace_count"] == 1


@pytest.mark.parametrize(
    "session_key", ["session.id", "gen_ai.conversation.id", "langfuse.session.id", "session_id"]
)
@pytest.mark.parametrize("user_key", ["user.id", "enduser.id", "langfuse.user.id", "user_id"])
def test_ids_from_each_alias(server: RunningServer, session_key: str, user_key: str):
    trace_id, span_id = new_trace_id(), new_span_id()
    span = make_span(trace_id, span_id, attributes={session_key: "s-alias", user_key: "u-alias"})
    assert server.post_spans(make_request([span])).status_code == 200
    assert server.get_json("/api/sessions/s-alias")["user_id"] == "u-alias"
    assert server.get_json("/api/users/u-alias")["session_count"] == 1


def test_spans_before_their_parents(server: RunningServer):
    trace_id, root_id, child_id, grandchild_id = new_trace_id(), new_span_id(), new_span_id(), new_span_id()
    grandchild = make_span(trace_id, grandchild_id, child_id, "tool", 20, 5, {"session.id": "s-child"})
    child = make_span(trace_id, child_id, root_id, "llm", 10, 50, {"llm.token_count.total": 7}, error=True)
    root = make_span(
        trace_id,
        root_id,
        name="root",
        duration_ms=100,
        attributes={"session.id": "s-root", "user.id": "u1", "input.value": "q", "output.value": "a"},
    )
    assert server.post_spans(make_request([grandchild])).status_code == 200
    # Before the root arrives, the trace is in the session its spans named.
    assert server.get_json(f"/api/traces/{trace_id.hex()}")["session_id"] == "s-child"
    assert server.post_spans(make_request([child])).status_code == 200
    assert server.post_spans(make_request([root])).status_code == 200

    trace = server.get_json(f"/api/traces/{trace_id.hex()}")
    # The root's session wins, and the session the trace left behind is gone.
    assert (trace["session_id"], trace["user_id"], trace["root_span_id"]) == ("s-root", "u1", root_id.hex())
    assert (trace["span_count"], trace["error_count"], trace["total_tokens"]) == (3, 1, 7)
    assert (trace["input"], trace["output"], trace["latency_ms"]) == ("q", "a", 100.0)
    assert server.get("/api/sessions/s-child").status_code == 404
    session = server.get_json("/api/sessions/s-root")
    assert (session["trace_count"], session["error_count"], session["total_tokens"]) == (1, 1, 7)
    assert session["first_input"] == "q" and session["latency_p50_ms"] == 100.0
    assert server.get_json("/api/users/u1")["trace_count"] == 1


def test_a_retried_batch_is_not_duplicated(server: RunningServer):
    request = make_request([span for turn in range(3) for span in make_turn("s1", "u1", turn * 1000)[1]])
    for _ in range(3):
        assert server.post_spans(request).status_code == 200
    assert server.get_json("/api/projects")["items"][0]["span_count"] == 6
    session = server.get_json("/api/sessions/s1")
    assert (session["trace_count"], session["total_tokens"]) == (3, 360)
    assert server.get_json("/api/users/u1")["trace_count"] == 3


def test_a_trace_without_session_is_listed_but_makes_no_session(server: RunningServer):
    trace_id, spans = make_turn(None, None)
    assert server.post_spans(make_request(spans, {"service.name": "svc"})).status_code == 200
    assert server.get_json("/api/sessions")["items"] == []
    assert server.get_json("/api/users")["items"] == []
    traces = server.get_json("/api/traces")["items"]
    assert [(t["trace_id"], t["project"]) for t in traces] == [(trace_id.hex(), "svc")]
