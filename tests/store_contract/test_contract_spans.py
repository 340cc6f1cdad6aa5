"""Spans in and out: what is written reads back whole, a retried batch never duplicates, and every
way of reading a trace's spans (whole, paged, outline, by id, the span list) agrees."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import pytest
from contract_kit import T0, every, span, span_id, trace_id, write

from spanloom.server.store.base import ListQuery, SpanRecord, Store
from spanloom.server.store.cursor import InvalidCursorError
from spanloom.server.store.evaluation_types import EvaluationInput


def rich_span() -> SpanRecord:
    return span(
        1,
        1,
        project="p1",
        session_id="s1",
        user_id="u1",
        otel_kind="SERVER",
        span_kind="LLM",
        status_code="ERROR",
        status_message="boom",
        model="gpt-4o",
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        cost=0.000123,
        input="the question",
        output="the answer",
        metadata={"plan": "pro", "n": 3, "nested": {"a": [1, 2]}},
        tags=["beta", "vip"],
        attributes={"input.value": "the question", "llm.model_name": "gpt-4o", "z": 1.5, "flag": True},
        events=[{"name": "exception", "time_ns": T0 + 5, "attributes": {"exception.message": "boom"}}],
        resource={"service.name": "app", "project.name": "p1"},
    )


def test_a_span_reads_back_as_it_was_written(store: Store):
    sent = rich_span()
    kept = copy.deepcopy(sent)
    result = write(store, [sent])
    assert (result.accepted, result.rejected) == (1, 0)
    assert sent == kept  # the store does not change what it is given
    detail = store.get_trace(sent.trace_id)
    assert detail is not None and detail.spans == [kept]
    assert store.get_spans(sent.trace_id, [sent.span_id, span_id(999)]) == [kept]
    assert store.list_spans(ListQuery()).items == [kept]


def test_written_spans_survive_a_restart(open_contract_store: Callable[[], Store]):
    store = open_contract_store()
    write(store, [rich_span()])
    store.close()
    again = open_contract_store()
    detail = again.get_trace(trace_id(1))
    assert detail is not None and detail.spans == [rich_span()]


def test_a_retried_batch_never_duplicates(store: Store):
    batch = [
        span(1, n, parent=None if n == 1 else 1, session_id="s", user_id="u", cost=0.1) for n in range(1, 6)
    ]
    for _ in range(3):
        assert write(store, batch).accepted == 5
    # Half again, with a changed copy: the stored span is kept as it was first written.
    write(store, [dataclasses.replace(batch[2], name="second copy"), *batch[:2]])
    assert store.count_spans(ListQuery()) == 5
    detail = store.get_trace(trace_id(1))
    assert detail is not None
    assert [s.span_id for s in detail.spans] == [s.span_id for s in batch]
    assert detail.spans[2].name == batch[2].name
    assert detail.summary.span_count == 5
    assert store.count_trace_spans([trace_id(1), trace_id(2)]) == {trace_id(1): 5, trace_id(2): 0}
    [session] = store.list_sessions(ListQuery()).items
    assert session.trace_count == 1 and session.cost == pytest.approx(0.5)


def test_trace_pages_partition_its_spans(store: Store):
    spans = [span(7, n, parent=None if n == 1 else 1, start_ms=(n * 37) % 50) for n in range(1, 26)]
    write(store, spans)
    whole = store.get_trace(trace_id(7))
    assert whole is not None and whole.next_cursor is None
    assert [s.span_id for s in whole.spans] == [
        s.span_id for s in sorted(spans, key=lambda s: (s.start_time_ns, s.span_id))
    ]
    seen: list[SpanRecord] = []
    cursor = None
    pages = 0
    while True:
        page = store.get_trace(trace_id(7), limit=10, cursor=cursor)
        assert page is not None and len(page.spans) <= 10
        assert page.spans == sorted(page.spans, key=lambda s: (s.start_time_ns, s.span_id))
        seen += page.spans
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert sorted(s.span_id for s in seen) == sorted(s.span_id for s in spans)
    with pytest.raises(InvalidCursorError):
        store.get_trace(trace_id(7), limit=10, cursor="not-a-cursor")


def test_the_outline_has_every_span_without_its_texts(store: Store):
    write(store, [rich_span(), span(1, 2, parent=1, input="x" * 1000, attributes={"k": "v"})])
    outline = store.get_trace_outline(trace_id(1))
    assert outline is not None and len(outline.spans) == 2
    for item in outline.spans:
        assert item.input is None and item.output is None and item.attributes == {} and item.events == []
    assert outline.spans[0].model == "gpt-4o" and outline.spans[0].status_code == "ERROR"
    assert store.get_trace_outline(trace_id(404)) is None
    assert store.get_trace(trace_id(404)) is None


def test_the_span_list_pages_in_its_stated_order_with_filters(store: Store):
    spans = [
        span(
            trace,
            n,
            parent=None if n == 1 else 1,
            project=f"p{trace % 2}",
            start_ms=trace * 7 + n,
            span_kind="LLM" if n % 2 else "TOOL",
        )
        for trace in range(1, 13)
        for n in range(1, 5)
    ]
    write(store, spans[::2])
    write(store, spans[1::2])
    listed = every(store.list_spans, ListQuery(), limit=5)
    order = [(s.project, s.start_time_ns, s.trace_id, s.span_id) for s in listed]
    assert order == sorted(order) and len(order) == len(set(order)) == len(spans)
    for query in (
        ListQuery(project="p1"),
        ListQuery(span_kind="TOOL"),
        ListQuery(project="p0", span_kind="LLM", start_ns=T0 + 30_000_000, end_ns=T0 + 60_000_000),
    ):
        wanted = {
            (s.trace_id, s.span_id)
            for s in spans
            if query.project in (None, s.project)
            and query.span_kind in (None, s.span_kind)
            and (query.start_ns is None or s.start_time_ns >= query.start_ns)
            and (query.end_ns is None or s.start_time_ns <= query.end_ns)
        }
        got = [(s.trace_id, s.span_id) for s in every(store.list_spans, query, limit=3)]
        assert set(got) == wanted and len(got) == len(wanted), query
        assert store.count_spans(query) == len(wanted)


def test_spans_stored_while_a_client_pages_never_repeat_one(store: Store):
    write(store, [span(1, n, start_ms=n) for n in range(1, 11)])
    first = store.list_spans(ListQuery(limit=4))
    # Earlier and later spans arrive between two pages.
    write(store, [span(2, 1, start_ms=-5), span(2, 2, start_ms=100)])
    rest = every(store.list_spans, ListQuery(cursor=first.next_cursor), limit=4) if first.next_cursor else []
    keys = [(s.trace_id, s.span_id) for s in first.items + rest]
    assert len(keys) == len(set(keys))
    assert {(trace_id(1), span_id(1000 + n)) for n in range(1, 11)} <= set(keys)


def test_a_sessions_turns_page_both_ways(store: Store):
    """A session's turns come `limit` at a time, forwards and back, each page in time order and
    numbered by its offset; the first failing turn is found over the whole session."""
    turns = 23
    write(
        store,
        [
            span(
                number,
                1,
                start_ms=number * 10,
                session_id="long",
                status_code="ERROR" if number == 17 else "OK",
            )
            for number in range(1, turns + 1)
        ],
    )
    whole = store.get_session("p1", "long")
    assert whole is not None and len(whole.turns) == turns and whole.next_cursor is None
    order = [turn.trace_id for turn in whole.turns]
    assert whole.first_failing is not None
    assert (whole.first_failing.index, whole.first_failing.reason) == (16, "error")
    assert whole.first_failing.trace_id == trace_id(17)
    seen, cursor, offsets = [], None, []
    while True:
        page = store.get_session("p1", "long", limit=5, cursor=cursor)
        assert page is not None and 1 <= len(page.turns) <= 5
        offsets.append(page.first_turn_index)
        assert [turn.trace_id for turn in page.turns] == order[
            page.first_turn_index : page.first_turn_index + len(page.turns)
        ]
        assert set(page.tool_calls) <= {turn.trace_id for turn in page.turns}
        assert page.first_failing == whole.first_failing
        seen += page.turns
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert offsets == [0, 5, 10, 15, 20] and [turn.trace_id for turn in seen] == order
    # Back from the last page: the pages before it, in order, to the first.
    backwards, cursor = [], page.previous_cursor
    while cursor:
        older = store.get_session("p1", "long", limit=5, cursor=cursor)
        assert older is not None
        backwards.append(older.first_turn_index)
        cursor = older.previous_cursor
    assert backwards == [15, 10, 5, 0]
    at_failure = store.get_session("p1", "long", limit=5, cursor=whole.first_failing.cursor)
    assert at_failure is not None and at_failure.first_turn_index == 16
    assert at_failure.turns[0].trace_id == trace_id(17)
    assert at_failure.next_cursor is not None and at_failure.previous_cursor is not None
    with pytest.raises(InvalidCursorError):
        store.get_session("p1", "long", limit=5, cursor="garbage")


def test_a_failing_evaluation_marks_a_turn_too(store: Store):
    write(store, [span(number, 1, start_ms=number, session_id="judged") for number in range(1, 6)])
    whole = store.get_session("p1", "judged")
    assert whole is not None and whole.first_failing is None
    store.insert_evaluations(
        [EvaluationInput(name="ok", source="api", trace_id=trace_id(4), label="fail")]
    ).result(timeout=30)
    store.insert_evaluations(
        [EvaluationInput(name="ok", source="api", trace_id=trace_id(2), label="pass")]
    ).result(timeout=30)
    judged = store.get_session("p1", "judged", limit=2)
    assert judged is not None and judged.first_failing is not None
    assert (judged.first_failing.index, judged.first_failing.reason) == (3, "evaluation")
    # Read whole (one page holds every turn), the same turn.
    for whole_read in (store.get_session("p1", "judged"), store.get_session("p1", "judged", limit=5)):
        assert whole_read is not None and whole_read.next_cursor is None
        assert whole_read.first_failing == judged.first_failing


def test_each_turns_tool_spans_and_a_read_without_them(store: Store):
    """Every turn's tool spans, turns hours apart with other sessions' spans between them; a read
    with tool_calls=False gives the same session without them."""
    hour_ms = 3_600_000
    spans = []
    for number in range(1, 5):
        start = number * hour_ms
        spans += [
            span(number, 1, start_ms=start, duration_ms=50, session_id="tools", span_kind="AGENT"),
            span(
                number,
                2,
                parent=1,
                start_ms=start + 1,
                session_id="tools",
                span_kind="TOOL",
                input=f"q{number}",
            ),
            span(number, 3, parent=1, start_ms=start + 20, session_id="tools", span_kind="TOOL"),
            span(100 + number, 1, start_ms=start + 5, session_id="other", span_kind="TOOL"),
        ]
    spans.append(span(2, 4, parent=1, start_ms=2 * hour_ms + 30, session_id="tools", span_kind="LLM"))
    write(store, spans)
    detail = store.get_session("p1", "tools")
    assert detail is not None
    assert {trace: [s.span_id for s in calls] for trace, calls in detail.tool_calls.items()} == {
        trace_id(number): [span_id(number * 1000 + 2), span_id(number * 1000 + 3)] for number in range(1, 5)
    }
    assert [calls[0].input for calls in detail.tool_calls.values()] == ["q1", "q2", "q3", "q4"]
    without = store.get_session("p1", "tools", tool_calls=False)
    assert without is not None and without.tool_calls == {}
    assert dataclasses.replace(without, tool_calls=detail.tool_calls) == detail


def test_where_it_breaks_is_the_first_error_and_every_failing_turn_counts(store: Store):
    """A latency judge fails every turn and turn 4 has a real error: four failing turns, the
    break at the error (turn 4), the first evaluation failure (turn 1) beside it."""
    write(
        store,
        [
            span(number, 1, start_ms=number, session_id="slow", status_code="ERROR" if number == 4 else "OK")
            for number in range(1, 5)
        ],
    )
    store.insert_evaluations(
        [
            EvaluationInput(name="latency", source="api", trace_id=trace_id(n), label="fail")
            for n in range(1, 5)
        ]
    ).result(timeout=30)
    detail = store.get_session("p1", "slow", limit=2)
    assert detail is not None and detail.failing_turn_count == 4
    assert detail.first_failing is not None and detail.first_evaluation_failure is not None
    assert (detail.first_failing.index, detail.first_failing.reason) == (3, "error")
    assert detail.first_failing.trace_id == trace_id(4)
    assert (detail.first_evaluation_failure.index, detail.first_evaluation_failure.trace_id) == (
        0,
        trace_id(1),
    )
    at_break = store.get_session("p1", "slow", limit=2, cursor=detail.first_failing.cursor)
    assert at_break is not None and at_break.turns[0].trace_id == trace_id(4)
    assert detail.summary.error_count == 1
    write(store, [span(9, 1, start_ms=9, session_id="fine")])
    fine = store.get_session("p1", "fine")
    assert fine is not None
    assert (fine.failing_turn_count, fine.first_failing, fine.first_evaluation_failure) == (0, None, None)


def test_long_texts_several_spans_share_read_back_whole(store: Store):
    """An agent's answer is its model call's answer, a tool's input its caller's: a store may keep
    such a text once, but every read gives every span its own."""
    question, answer = "q " * 300, "the answer " * 200
    first = [
        span(1, 1, start_ms=0, session_id="s", input=question, output=answer),
        span(1, 2, parent=1, start_ms=1, input=question, output=answer, span_kind="LLM"),
        span(1, 3, parent=1, start_ms=2, input=question, output="short", span_kind="TOOL"),
    ]
    write(store, first)
    # A retry of part of it with a new span carrying the same texts, and the same again.
    later = span(1, 4, parent=1, start_ms=3, input=question, output=answer, span_kind="TOOL")
    write(store, [first[1], later])
    write(store, [first[2], later])
    detail = store.get_trace(trace_id(1))
    assert detail is not None
    assert [(s.input, s.output) for s in detail.spans] == [
        (question, answer),
        (question, answer),
        (question, "short"),
        (question, answer),
    ]
    assert [(s.input, s.output) for s in store.get_spans(trace_id(1), [later.span_id, first[1].span_id])] == [
        (question, answer),
        (question, answer),
    ]
    for page in (store.get_trace(trace_id(1), limit=1), store.list_spans(ListQuery(limit=1))):
        assert (
            page is not None and (page.items if hasattr(page, "items") else page.spans)[0].output is not None
        )
    assert all(s.output in (answer, "short") for s in every(store.list_spans, limit=1))
    session = store.get_session("p1", "s")
    assert session is not None
    assert (session.summary.first_input, session.summary.last_output) == (question, answer)
    assert [t.output for t in session.turns] == [answer]
    assert session.tool_calls[trace_id(1)][-1].input == question
    assert [s.session_id for s in every(store.list_sessions, ListQuery(q="the answer the"))] == ["s"]
