"""Evaluation results: how an item finds its span, what replaces what, a sender's projects, and
per-session and per-user aggregates that equal a recount whatever changed them (new results,
replaced ones, results carried in span events, a trace moving to another session)."""

from __future__ import annotations

import dataclasses

import pytest
from contract_kit import assert_lists_match_recount, every, span, span_id, trace_id, write

from spanloom.server.store.base import Store
from spanloom.server.store.evaluation_types import EvaluationInput


def _judge(store: Store, *items: EvaluationInput, projects: frozenset[str] | None = None):
    return store.insert_evaluations(list(items), projects).result(timeout=30)


def _result(name: str = "helpful", **fields: object) -> EvaluationInput:
    return EvaluationInput(name=name, source=fields.pop("source", "api"), **fields)  # type: ignore[arg-type]


@pytest.fixture
def judged(store: Store) -> Store:
    write(
        store,
        [
            span(1, 1, session_id="s1", user_id="u1"),
            span(1, 2, parent=1, start_ms=1, session_id="s1"),
            span(2, 1, start_ms=100, session_id="s1", user_id="u1"),
            span(3, 2, parent=1, start_ms=200, session_id="s2", user_id="u1"),  # its root is late
            span(4, 1, project="other", session_id="s1", user_id="u1"),
        ],
    )
    return store


def test_items_find_their_span_or_say_why_not(judged: Store):
    result = _judge(
        judged,
        _result(span_id=span_id(1002), trace_id=trace_id(1), score=0.9),  # by both ids
        _result(trace_id=trace_id(2), label="pass"),  # the root of a trace
        _result(span_id=span_id(1001), score=0.1),  # a span id alone
        _result(trace_id=trace_id(3), score=1.0),  # the root has not arrived
        _result(trace_id=trace_id(99), score=1.0),
        _result(span_id=span_id(5), trace_id=trace_id(1), score=1.0),
        _result(span_id=span_id(77777), score=1.0),
    )
    assert result.accepted == 3
    assert [(r.index, r.reason) for r in result.rejected] == [
        (3, "its root span has not arrived"),
        (4, f"no trace {trace_id(99)!r} is stored"),
        (5, f"no span {span_id(5)!r} in trace {trace_id(1)!r} is stored"),
        (6, f"no span {span_id(77777)!r} is stored"),
    ]
    detail = judged.get_trace(trace_id(1))
    assert detail is not None
    assert sorted((r.span_id, r.score) for r in detail.summary.evaluations) == [
        (span_id(1001), 0.1),
        (span_id(1002), 0.9),
    ]
    assert_lists_match_recount(judged)


def test_a_span_of_another_project_answers_as_an_unknown_one(judged: Store):
    scoped = frozenset({"p1"})
    outside = _judge(
        judged,
        _result(trace_id=trace_id(4), score=0.0),
        _result(span_id=span_id(4001), trace_id=trace_id(4), score=0.0),
        _result(span_id=span_id(4001), score=0.0),
        projects=scoped,
    )
    unknown = _judge(
        judged,
        _result(trace_id=trace_id(98), score=0.0),
        _result(span_id=span_id(98001), trace_id=trace_id(98), score=0.0),
        _result(span_id=span_id(98001), score=0.0),
        projects=scoped,
    )
    assert outside.accepted == unknown.accepted == 0
    assert [r.reason.replace(trace_id(4), "T").replace(span_id(4001), "S") for r in outside.rejected] == [
        r.reason.replace(trace_id(98), "T").replace(span_id(98001), "S") for r in unknown.rejected
    ]
    detail = judged.get_trace(trace_id(4))
    assert detail is not None and detail.summary.evaluations == []
    # The same span id in the sender's project and in another: only its own is seen.
    write(judged, [span(7, 1, project="p1", session_id="s7")])
    write(judged, [dataclasses.replace(span(8, 1, project="other"), span_id=span_id(7001))])
    assert _judge(judged, _result(span_id=span_id(7001), score=1.0), projects=scoped).accepted == 1
    [ambiguous] = _judge(judged, _result(span_id=span_id(7001), score=1.0)).rejected
    assert ambiguous.reason == "several traces have this span_id: give trace_id"


def test_a_result_replaces_the_same_name_and_source(judged: Store):
    _judge(judged, _result(trace_id=trace_id(1), score=0.2))
    _judge(judged, _result(trace_id=trace_id(1), score=0.8))  # replaces
    _judge(judged, _result(trace_id=trace_id(1), score=0.4, source="server"))  # another source: kept beside
    _judge(judged, _result(trace_id=trace_id(1), score=0.8))  # the same again: nothing changes
    detail = judged.get_trace(trace_id(1))
    assert detail is not None
    assert sorted((r.source, r.score) for r in detail.summary.evaluations) == [("api", 0.8), ("server", 0.4)]
    session = judged.get_session("p1", "s1")
    assert session is not None
    aggregate = session.summary.evaluations["helpful"]
    assert (aggregate.count, aggregate.mean_score, aggregate.pass_rate) == (2, pytest.approx(0.6), 0.5)
    assert_lists_match_recount(judged)


def test_results_in_span_events_count_like_the_others(store: Store):
    event = {
        "name": "evaluation",
        "time_ns": 1,
        "attributes": {"evaluation.name": "tone", "evaluation.score": 0.25, "evaluation.label": "rude"},
    }
    write(store, [span(1, 1, session_id="s", user_id="u", events=[event])])
    write(store, [span(1, 1, session_id="s", user_id="u", events=[event])])  # retried: counted once
    session = store.get_session("p1", "s")
    assert session is not None and session.summary.evaluations["tone"].count == 1
    assert session.summary.evaluations["tone"].pass_rate == 0.0  # the label "rude" fails
    assert_lists_match_recount(store)


def test_results_follow_a_trace_to_its_new_session_and_user(judged: Store):
    _judge(judged, _result(span_id=span_id(3002), trace_id=trace_id(3), score=0.3))
    assert judged.get_session("p1", "s2") is not None
    write(judged, [span(3, 1, start_ms=200, session_id="s9", user_id="u9")])  # the late root
    moved = judged.get_session("p1", "s9")
    assert moved is not None and moved.summary.evaluations["helpful"].count == 1
    assert judged.get_session("p1", "s2") is None
    u9, u1 = judged.get_user("p1", "u9"), judged.get_user("p1", "u1")
    assert u9 is not None and u9.summary.evaluations["helpful"].count == 1
    assert u1 is not None and "helpful" not in u1.summary.evaluations
    assert_lists_match_recount(judged)


def test_the_summary_groups_worst_first(judged: Store):
    _judge(
        judged,
        _result(trace_id=trace_id(1), score=0.9),
        _result(trace_id=trace_id(2), score=0.1),
        _result(trace_id=trace_id(4), score=0.5),
        _result("tone", trace_id=trace_id(1), label="pass"),
    )
    sessions = judged.summarize_evaluations("session", name="helpful")
    assert [(g.project, g.key, g.aggregate.count) for g in sessions] == [("p1", "s1", 2), ("other", "s1", 1)]
    assert sessions[0].worst is not None and sessions[0].worst.score == 0.1
    users = judged.summarize_evaluations("user", project="p1")
    assert {(g.project, g.key, g.name) for g in users} == {("p1", "u1", "helpful"), ("p1", "u1", "tone")}
    projects = judged.summarize_evaluations("project", name="helpful")
    # Equal means (0.5): the lower pass rate first.
    assert [(g.project, g.key, g.aggregate.count) for g in projects] == [
        ("p1", "p1", 2),
        ("other", "other", 1),
    ]
    assert judged.list_evaluation_names() == ["helpful", "tone"]
    assert judged.list_evaluation_names("other") == ["helpful"]
    assert [s.session_id for s in every(judged.list_sessions)]  # the lists still read
