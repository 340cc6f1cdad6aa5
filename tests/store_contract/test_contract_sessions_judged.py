"""Conversations judged as conversations: end users' feedback on a turn or a session (also before
the spans arrive), results on a whole session, sessions ended and reopened, and which sessions
are due for their session evaluators. Every aggregate stays equal to the recount."""

from __future__ import annotations

from collections.abc import Callable

from contract_kit import T0, assert_lists_match_recount, every, span, trace_id, write

from spanloom.server.store.base import ListQuery, Store
from spanloom.server.store.evaluation_types import FEEDBACK, EvaluationInput

MS = 1_000_000


def _judge(store: Store, *items: EvaluationInput, projects: frozenset[str] | None = None):
    return store.insert_evaluations(list(items), projects).result(timeout=30)


def _feedback(key: str, score: float, **target: object) -> EvaluationInput:
    return EvaluationInput(name=FEEDBACK, source="feedback", key=key, score=score, **target)  # type: ignore[arg-type]


def _conversation(store: Store) -> None:
    write(
        store,
        [
            span(1, 1, start_ms=0, session_id="s", user_id="u", input="hi", output="hello"),
            span(2, 1, start_ms=100, session_id="s", user_id="u", input="again", output="sure"),
            span(3, 1, start_ms=200, session_id="other", user_id="u"),
        ],
    )


def test_feedback_on_turns_counts_each_id_once(store: Store):
    _conversation(store)
    result = _judge(
        store,
        _feedback("f1", 1, trace_id=trace_id(1)),
        _feedback("f2", -1, trace_id=trace_id(1)),
        _feedback("f3", -1, trace_id=trace_id(2)),
    )
    assert (result.accepted, result.rejected) == (3, [])
    _judge(store, _feedback("f3", 1, trace_id=trace_id(2)))  # the same id again: replaced
    _judge(store, _feedback("f3", 1, trace_id=trace_id(2)))  # and again: nothing changes
    session = store.get_session("p1", "s")
    assert session is not None
    feedback = session.summary.evaluations[FEEDBACK]
    assert (feedback.count, feedback.pass_rate) == (3, 2 / 3)
    turn = session.turns[0]
    assert sorted((r.key, r.score, r.span_id) for r in turn.evaluations) == [("f1", 1, ""), ("f2", -1, "")]
    negative = every(store.list_sessions, ListQuery(has_negative_feedback=True))
    assert [s.session_id for s in negative] == ["s"]
    assert [s.session_id for s in every(store.list_sessions, ListQuery(has_negative_feedback=False))] == [
        "other"
    ]
    assert {t.trace_id for t in every(store.list_traces, ListQuery(has_negative_feedback=True))} == {
        trace_id(1)
    }
    assert [u.user_id for u in every(store.list_users, ListQuery(has_negative_feedback=True))] == ["u"]
    assert_lists_match_recount(store)


def test_feedback_before_its_spans_counts_when_they_arrive(open_contract_store: Callable[[], Store]):
    store = open_contract_store()
    early = _judge(store, _feedback("f1", -1, trace_id=trace_id(7), project="p1"))
    assert early.accepted == 1
    # Of another project than the trace will be: never counted there.
    assert _judge(store, _feedback("x", -1, trace_id=trace_id(8), project="elsewhere")).accepted == 1
    assert _judge(store, _feedback("f9", 1, trace_id=trace_id(9))).rejected  # no project, no trace
    _judge(store, _feedback("f10", -1, trace_id=trace_id(10), project="p1"))
    write(store, [span(10, 1, session_id="soon", user_id="v")])  # in the same run
    soon = store.get_session("p1", "soon")
    assert soon is not None and soon.summary.evaluations[FEEDBACK].count == 1
    store.close()
    store = open_contract_store()  # what waits survives a restart
    write(
        store, [span(7, 2, parent=1, start_ms=5, session_id="late", user_id="v"), span(8, 1, session_id="z")]
    )
    session = store.get_session("p1", "late")
    assert session is not None and session.summary.evaluations[FEEDBACK].count == 1
    user = store.get_user("p1", "v")
    assert user is not None and user.summary.evaluations[FEEDBACK].pass_rate == 0.0
    other = store.get_session("p1", "z")
    assert other is not None and other.summary.evaluations == {}
    detail = store.get_trace(trace_id(8))
    assert detail is not None and detail.summary.evaluations == []
    assert_lists_match_recount(store)


def test_results_on_a_session_count_for_it_and_its_user(store: Store):
    _conversation(store)
    result = _judge(
        store,
        EvaluationInput(
            name="resolved",
            source="server",
            session_id="s",
            score=0.0,
            label="unresolved",
            explanation="asked twice",
            details={"turns": [1, 2]},
        ),
        _feedback("sf", 1, session_id="s", project="p1"),
        EvaluationInput(name="resolved", source="server", session_id="nope", score=1.0),
    )
    assert result.accepted == 2
    assert [r.reason for r in result.rejected] == ["no session 'nope' is stored"]
    session = store.get_session("p1", "s")
    assert session is not None
    assert [(r.name, r.label, r.details) for r in session.results] == [
        ("feedback", None, {}),
        ("resolved", "unresolved", {"turns": [1, 2]}),
    ]
    assert session.summary.evaluations["resolved"].pass_rate == 0.0
    ranked = every(store.list_sessions, ListQuery(sort="eval:resolved", order="asc"))
    assert ranked[0].session_id == "s"
    user = store.get_user("p1", "u")
    assert user is not None and user.summary.evaluations["resolved"].count == 1
    assert_lists_match_recount(store)


def test_a_sessions_results_follow_it_to_another_user(store: Store):
    write(store, [span(1, 2, parent=1, start_ms=5, session_id="s", user_id="first")])
    _judge(store, EvaluationInput(name="resolved", source="server", session_id="s", score=1.0))
    write(
        store, [span(1, 1, start_ms=0, session_id="s", user_id="second")]
    )  # the late root names another user
    second, first = store.get_user("p1", "second"), store.get_user("p1", "first")
    assert second is not None and second.summary.evaluations["resolved"].count == 1
    assert first is None
    assert_lists_match_recount(store)


def test_results_on_a_session_before_its_spans(store: Store):
    _judge(store, _feedback("early", -1, session_id="soon", project="p1"))
    write(store, [span(4, 1, session_id="soon", user_id="w")])
    session = store.get_session("p1", "soon")
    assert session is not None and session.summary.evaluations[FEEDBACK].count == 1
    user = store.get_user("p1", "w")
    assert user is not None and user.summary.evaluations[FEEDBACK].count == 1
    assert_lists_match_recount(store)


def test_ended_sessions_reopen_with_a_new_turn(store: Store):
    _conversation(store)
    store.end_session("p1", "s", T0 + 150 * MS).result(timeout=30)
    store.end_session("p1", "before-its-spans", T0 + 10_000 * MS).result(timeout=30)
    ended = store.get_session("p1", "s")
    assert ended is not None and ended.summary.ended
    idle_before = T0 + 1_000 * MS  # "other" ended at 210 ms: idle; nothing is active
    by_status = {
        status: {
            s.session_id
            for s in every(store.list_sessions, ListQuery(session_status=status, idle_before_ns=idle_before))
        }
        for status in ("ended", "idle", "active")
    }
    assert by_status == {"ended": {"s"}, "idle": {"other"}, "active": set()}
    write(store, [span(5, 1, start_ms=300, session_id="s", user_id="u")])  # a turn after the end
    reopened = store.get_session("p1", "s")
    assert reopened is not None and not reopened.summary.ended
    assert reopened.summary.status(idle_before) == "idle"
    assert reopened.summary.status(T0) == "active"
    write(store, [span(6, 1, start_ms=400, session_id="before-its-spans")])
    marked = store.get_session("p1", "before-its-spans")
    assert marked is not None and marked.summary.ended
    # A span can end its session too.
    write(store, [span(9, 1, start_ms=500, session_id="by-span", attributes={"session.ended": True})])
    by_span = store.get_session("p1", "by-span")
    assert by_span is not None and by_span.summary.ended


def test_sessions_due_for_judging(store: Store):
    _conversation(store)
    store.end_session("p1", "s", T0 + 500 * MS).result(timeout=30)
    # Only "s" is ended; with an idle cut-off before every turn, "other" is not due yet.
    assert store.sessions_to_judge(T0) == [("p1", "s", T0 + 110 * MS)]
    due = store.sessions_to_judge(T0 + 1_000 * MS)
    assert [(project, session) for project, session, _ in due] == [("p1", "s"), ("p1", "other")]
    for project, session, end_ns in due:
        store.mark_judged(project, session, end_ns).result(timeout=30)
    assert store.sessions_to_judge(T0 + 1_000 * MS) == []
    write(store, [span(5, 1, start_ms=300, session_id="other", user_id="u")])  # a new turn: due again
    assert [key[1] for key in store.sessions_to_judge(T0 + 1_000 * MS)] == ["other"]


def test_a_thumb_is_its_score_whatever_its_label(store: Store):
    # A label on feedback says what it is about; the thumb is the score (a label alone decides
    # as for any result).
    _conversation(store)
    _judge(
        store,
        EvaluationInput(
            name=FEEDBACK, source="feedback", key="up", score=1, label="thanks", trace_id=trace_id(1)
        ),
        EvaluationInput(
            name=FEEDBACK, source="feedback", key="down", score=-1, label="pass", trace_id=trace_id(2)
        ),
        EvaluationInput(
            name=FEEDBACK, source="feedback", key="word", label="good", session_id="s", project="p1"
        ),
    )
    session = store.get_session("p1", "s")
    assert session is not None
    assert [(r.key, r.passed) for t in session.turns for r in t.evaluations] == [
        ("up", True),
        ("down", False),
    ]
    assert [(r.key, r.passed) for r in session.results] == [("word", True)]
    feedback = session.summary.evaluations[FEEDBACK]
    assert (feedback.count, feedback.pass_rate) == (3, 2 / 3)
    assert [s.session_id for s in every(store.list_sessions, ListQuery(has_negative_feedback=True))] == ["s"]
    assert_lists_match_recount(store)
