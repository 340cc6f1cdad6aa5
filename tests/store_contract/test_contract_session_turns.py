"""`list_session_turns`: every turn of many sessions at once (an export's read), equal to what
`get_session` and `get_trace` give one session and one trace at a time."""

from __future__ import annotations

from contract_kit import WAIT_SECONDS, span, trace_id, write

from spanloom.server.store.base import SpanRecord, Store
from spanloom.server.store.evaluation_types import EvaluationInput


def _conversations(store: Store) -> None:
    spans: list[SpanRecord] = []
    # s1: three turns, each a CHAIN root with an LLM call; the second also calls a tool.
    for turn in range(3):
        number = 10 + turn
        spans += [
            span(
                number,
                1,
                start_ms=turn * 1000,
                duration_ms=50,
                session_id="s1",
                user_id="u1",
                span_kind="CHAIN",
                input=f"q{turn}",
                output=f"a{turn}",
            ),
            span(
                number,
                2,
                parent=1,
                start_ms=turn * 1000 + 5,
                duration_ms=30,
                session_id="s1",
                span_kind="LLM",
                attributes={
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": f"q{turn}",
                },
            ),
        ]
        if turn == 1:
            spans.append(
                span(
                    number,
                    3,
                    parent=1,
                    start_ms=turn * 1000 + 40,
                    duration_ms=5,
                    session_id="s1",
                    span_kind="TOOL",
                    name="lookup",
                    output="42",
                )
            )
    # s2: two turns, started before s1's (order follows time, not ids).
    spans += [
        span(20 + turn, 1, start_ms=-5000 + turn * 100, session_id="s2", span_kind="LLM", input=f"s2-q{turn}")
        for turn in range(2)
    ]
    # the same session id in another project: apart.
    spans.append(span(30, 1, project="p2", session_id="s1", span_kind="LLM", input="other"))
    write(store, spans)
    store.insert_evaluations(
        [EvaluationInput(name="helpful", source="api", trace_id=trace_id(11), score=0.5)]
    ).result(timeout=WAIT_SECONDS)


def test_turns_of_many_sessions_equal_each_sessions_own(store: Store):
    _conversations(store)
    found = store.list_session_turns("p1", ["s2", "nobody", "s1"])
    assert [(entry.project, entry.session_id) for entry in found] == [("p1", "s2"), ("p1", "s1")]
    for entry in found:
        detail = store.get_session("p1", entry.session_id)
        assert detail is not None
        assert entry.turns == detail.turns
        assert entry.spans == {}  # not asked for
    s1 = found[1]
    assert [turn.trace_id for turn in s1.turns] == [trace_id(10), trace_id(11), trace_id(12)]
    assert [(result.name, result.score) for result in s1.turns[1].evaluations] == [("helpful", 0.5)]
    other = store.list_session_turns("p2", ["s1"])
    assert [turn.input for turn in other[0].turns] == ["other"]
    assert store.list_session_turns("p1", []) == []
    assert store.list_session_turns("nowhere", ["s1"]) == []


def test_with_spans_gives_each_turns_llm_and_tool_spans_whole(store: Store):
    _conversations(store)
    (s1,) = store.list_session_turns("p1", ["s1"], with_spans=True)
    for turn in s1.turns:
        trace = store.get_trace(turn.trace_id)
        assert trace is not None
        wanted = [item for item in trace.spans if item.span_kind in ("LLM", "TOOL")]
        assert s1.spans[turn.trace_id] == wanted
    assert [item.span_kind for item in s1.spans[trace_id(11)]] == ["LLM", "TOOL"]
    assert s1.spans[trace_id(10)][0].attributes["llm.input_messages.0.message.content"] == "q0"
