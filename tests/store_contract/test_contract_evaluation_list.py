"""The list of individual evaluation results (`list_evaluations`): one row per stored result on a
span, a turn or a session, with its trace's session and user; filters, scoping by project, pages
that partition the list, a replaced result shown once as it is now, and cursors checked."""

from __future__ import annotations

import dataclasses

import pytest
from contract_kit import T0, span, span_id, trace_id, write

from spanloom.server.store.base import ListQuery, Store
from spanloom.server.store.cursor import InvalidCursorError, encode_cursor
from spanloom.server.store.evaluation_list import EvaluationQuery, EvaluationResult
from spanloom.server.store.evaluation_types import EvaluationInput

SECOND = 1_000_000_000


def _judge(store: Store, *items: EvaluationInput) -> None:
    result = store.insert_evaluations(list(items)).result(timeout=30)
    assert not result.rejected, result.rejected


def _every(store: Store, query: EvaluationQuery | None = None, limit: int = 1000) -> list[EvaluationResult]:
    query = dataclasses.replace(query or EvaluationQuery(), limit=limit)
    items: list[EvaluationResult] = []
    while True:
        page = store.list_evaluations(query)
        assert len(page.items) <= limit
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        assert page.items, "a page with a next cursor must hold something"
        query = dataclasses.replace(query, cursor=page.next_cursor)


def _row(result: EvaluationResult) -> tuple[object, ...]:
    return (
        result.level,
        result.project,
        result.trace_id,
        result.span_id,
        result.session_id,
        result.user_id,
        result.name,
        result.source,
        result.score,
        result.label,
    )


@pytest.fixture
def judged(store: Store) -> Store:
    write(
        store,
        [
            span(1, 1, session_id="s1", user_id="u1"),
            span(1, 2, parent=1, start_ms=1, session_id="s1", user_id="u1"),
            span(2, 1, start_ms=100, session_id="s1", user_id="u1"),
            span(3, 1, start_ms=200, session_id="s2", user_id="u2"),
            span(5, 1, start_ms=300),  # a trace without a session
            span(4, 1, project="other", session_id="s1", user_id="u9"),
        ],
    )
    _judge(
        store,
        EvaluationInput("helpful", "api", span_id=span_id(1002), trace_id=trace_id(1), score=0.9, time_ns=T0),
        EvaluationInput("correct", "sdk", trace_id=trace_id(1), label="pass", time_ns=T0 + SECOND),
        EvaluationInput("helpful", "api", trace_id=trace_id(2), score=0.2, time_ns=T0 + 2 * SECOND),
        EvaluationInput("helpful", "server", trace_id=trace_id(3), score=0.7, time_ns=T0 + 3 * SECOND),
        EvaluationInput("helpful", "api", trace_id=trace_id(5), score=0.4, time_ns=T0 + 3 * SECOND),
        EvaluationInput(
            "feedback", "feedback", trace_id=trace_id(2), project="p1", key="fb-1", score=0.0, label="wrong",
            time_ns=T0 + 4 * SECOND,
        ),
        EvaluationInput(
            "resolved", "server", session_id="s1", project="p1", score=1.0, label="pass",
            explanation="done", time_ns=T0 + 5 * SECOND, details={"turns": [2]},
        ),
        EvaluationInput("resolved", "server", session_id="s1", project="other", score=0.0, time_ns=T0),
        EvaluationInput("helpful", "api", trace_id=trace_id(4), score=0.5, time_ns=T0 + 6 * SECOND),
    )  # fmt: skip
    return store


P1_ROWS = {
    ("span", "p1", trace_id(1), span_id(1002), "s1", "u1", "helpful", "api", 0.9, None),
    ("span", "p1", trace_id(1), span_id(1001), "s1", "u1", "correct", "sdk", None, "pass"),
    ("span", "p1", trace_id(2), span_id(2001), "s1", "u1", "helpful", "api", 0.2, None),
    ("span", "p1", trace_id(3), span_id(3001), "s2", "u2", "helpful", "server", 0.7, None),
    ("span", "p1", trace_id(5), span_id(5001), None, None, "helpful", "api", 0.4, None),
    ("trace", "p1", trace_id(2), None, "s1", "u1", "feedback", "feedback", 0.0, "wrong"),
    ("session", "p1", None, None, "s1", "u1", "resolved", "server", 1.0, "pass"),
}
OTHER_ROWS = {
    ("session", "other", None, None, "s1", "u9", "resolved", "server", 0.0, None),
    ("span", "other", trace_id(4), span_id(4001), "s1", "u9", "helpful", "api", 0.5, None),
}


def test_every_result_is_one_row_with_what_it_belongs_to(judged: Store):
    rows = _every(judged, EvaluationQuery(project="p1"))
    assert len(rows) == len(P1_ROWS)
    assert {_row(result) for result in rows} == P1_ROWS
    session_result = next(result for result in rows if result.level == "session")
    assert session_result.explanation == "done"
    assert session_result.details == {"turns": [2]}
    assert session_result.time_ns == T0 + 5 * SECOND
    assert session_result.passed
    feedback = next(result for result in rows if result.level == "trace")
    assert feedback.key == "fb-1"
    assert not feedback.passed
    # Results on traces first, then those on sessions.
    assert [result.level for result in rows][-1] == "session"


def test_a_project_never_sees_another_and_no_project_sees_all(judged: Store):
    assert {_row(result) for result in _every(judged, EvaluationQuery(project="other"))} == OTHER_ROWS
    assert {_row(result) for result in _every(judged)} == P1_ROWS | OTHER_ROWS
    assert _every(judged, EvaluationQuery(project="nobody")) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (EvaluationQuery(name="helpful"), {row for row in P1_ROWS if row[6] == "helpful"}),
        (EvaluationQuery(source="server"), {row for row in P1_ROWS if row[7] == "server"}),
        (EvaluationQuery(session_id="s1"), {row for row in P1_ROWS if row[4] == "s1"}),
        (EvaluationQuery(session_id="s2"), {row for row in P1_ROWS if row[4] == "s2"}),
        (EvaluationQuery(trace_id=trace_id(2)), {row for row in P1_ROWS if row[2] == trace_id(2)}),
        (EvaluationQuery(span_id=span_id(1002)), {row for row in P1_ROWS if row[3] == span_id(1002)}),
        (
            EvaluationQuery(session_id="s1", name="resolved"),
            {row for row in P1_ROWS if row[4] == "s1" and row[6] == "resolved"},
        ),
        # Both bounds inclusive, on the time the result was recorded.
        (
            EvaluationQuery(start_ns=T0 + SECOND, end_ns=T0 + 3 * SECOND),
            {row for row in P1_ROWS if row[6] in ("correct", "helpful") and row[8] != 0.9},
        ),
        (EvaluationQuery(start_ns=T0 + 5 * SECOND), {row for row in P1_ROWS if row[0] == "session"}),
        (EvaluationQuery(end_ns=T0 - 1), set()),
    ],
    ids=["name", "source", "session", "other-session", "trace", "span", "session-and-name", "range",
         "start", "end"],
)  # fmt: skip
def test_filters_keep_only_what_matches(judged: Store, query: EvaluationQuery, expected: set):
    query = dataclasses.replace(query, project="p1")
    if query.end_ns != T0 - 1:
        assert expected, "a filter that keeps nothing here would prove nothing"
    rows = _every(judged, query)
    assert {_row(result) for result in rows} == expected
    assert len(rows) == len(expected)


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 8])
def test_pages_partition_the_results(judged: Store, limit: int):
    whole = judged.list_evaluations(EvaluationQuery(limit=1000))
    assert whole.next_cursor is None
    paged = _every(judged, limit=limit)
    assert paged == whole.items
    keys = [(r.level, r.project, r.trace_id, r.span_id, r.session_id, r.name, r.source, r.key) for r in paged]
    assert len(keys) == len(set(keys)) == len(P1_ROWS | OTHER_ROWS)


def test_a_result_stored_while_paging_shows_at_most_once(judged: Store):
    first = judged.list_evaluations(EvaluationQuery(project="p1", limit=3))
    assert first.next_cursor is not None
    _judge(judged, EvaluationInput("late", "api", trace_id=trace_id(5), score=1.0))
    rest = _every(judged, EvaluationQuery(project="p1", cursor=first.next_cursor), limit=2)
    names = [result.name for result in [*first.items, *rest]]
    assert names.count("late") <= 1
    assert len(names) == len(P1_ROWS) + names.count("late")


def test_a_replaced_result_shows_once_with_its_latest_value(judged: Store):
    _judge(
        judged,
        EvaluationInput("helpful", "api", trace_id=trace_id(2), score=0.8, time_ns=T0 + 9 * SECOND),
        EvaluationInput(
            "resolved", "server", session_id="s1", project="p1", score=0.25, time_ns=T0 + 9 * SECOND
        ),
    )
    rows = _every(judged, EvaluationQuery(project="p1", session_id="s1"), limit=2)
    helpful = [r for r in rows if r.trace_id == trace_id(2) and r.name == "helpful"]
    resolved = [r for r in rows if r.level == "session"]
    assert [(r.score, r.time_ns) for r in helpful] == [(0.8, T0 + 9 * SECOND)]
    assert [(r.score, r.time_ns) for r in resolved] == [(0.25, T0 + 9 * SECOND)]
    assert len(rows) == len({row for row in P1_ROWS if row[4] == "s1"})


def test_feedback_waiting_for_its_trace_is_listed_once_the_trace_arrives(judged: Store):
    _judge(
        judged,
        EvaluationInput("feedback", "feedback", trace_id=trace_id(7), project="p1", key="early", score=1.0),
    )
    assert not [r for r in _every(judged, EvaluationQuery(project="p1")) if r.key == "early"]
    write(judged, [span(7, 1, start_ms=400, session_id="s3", user_id="u3")])
    (early,) = [r for r in _every(judged, EvaluationQuery(project="p1")) if r.key == "early"]
    assert (early.level, early.trace_id, early.session_id, early.user_id) == (
        "trace",
        trace_id(7),
        "s3",
        "u3",
    )


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        encode_cursor("start_time", 5, ("p1",)),
        encode_cursor("evaluations", 2, ("p1", "a", "b", "c", "d", "e")),
        encode_cursor("evaluations", 1, ("p1", "s1", "resolved", "server", "", "not empty")),
        encode_cursor("evaluations", 0.0, ("p1", "a", "b", "c", "d", "e")),
        encode_cursor("evaluations", 0, ("p1", "a", "b")),
    ],
)
def test_a_cursor_this_list_did_not_make_is_refused(judged: Store, cursor: str):
    with pytest.raises(InvalidCursorError):
        judged.list_evaluations(EvaluationQuery(project="p1", cursor=cursor))


def test_a_cursor_of_the_span_list_is_refused(judged: Store):
    spans = judged.list_spans(ListQuery(project="p1", limit=1))
    assert spans.next_cursor is not None
    with pytest.raises(InvalidCursorError):
        judged.list_evaluations(EvaluationQuery(project="p1", cursor=spans.next_cursor))
