"""Retention deletes whole sessions whose last turn is older than their project's cutoff, and
traces without a session by their own time; everything else stays, and every figure left equals
a recount of what is left."""

from __future__ import annotations

from contract_kit import T0, assert_lists_match_recount, every, span, trace_id, write

from spanloom.server.store.base import ListQuery, Retention, Store
from spanloom.server.store.evaluation_types import EvaluationInput

MS = 1_000_000


def _fill(store: Store) -> None:
    """Per project: an old session, a session that started old but is still going, a recent
    one, old and recent traces without a session; users spread over them; some results."""
    for project, base in (("shop", 0), ("support", 100)):
        write(
            store,
            [
                span(base + 1, 1, project=project, start_ms=0, session_id="old", user_id="u1", cost=0.1),
                span(base + 2, 1, project=project, start_ms=10, session_id="old", user_id="u2"),
                span(base + 2, 2, parent=1, project=project, start_ms=11, session_id="old"),
                span(base + 3, 1, project=project, start_ms=20, session_id="ongoing", user_id="u1"),
                span(base + 4, 1, project=project, start_ms=5_000, session_id="ongoing", user_id="u1"),
                span(base + 5, 1, project=project, start_ms=6_000, session_id="recent", user_id="u3"),
                span(base + 6, 1, project=project, start_ms=30, user_id="u2"),  # old, no session
                span(base + 7, 1, project=project, start_ms=7_000),  # recent, no session
            ],
        )
        store.insert_evaluations(
            [
                EvaluationInput(name="ok", source="api", trace_id=trace_id(base + 1), score=0.1),
                EvaluationInput(name="ok", source="api", trace_id=trace_id(base + 3), score=0.9),
            ]
        ).result(timeout=30)


def _drain(store: Store, retention: Retention, limit: int) -> tuple[int, int, int]:
    totals = [0, 0, 0]
    while True:
        result = store.delete_expired(retention, limit).result(timeout=30)
        totals = [totals[0] + result.sessions, totals[1] + result.traces, totals[2] + result.spans]
        if not result.more:
            return totals[0], totals[1], totals[2]


def test_expired_sessions_go_whole_and_the_figures_stay_a_recount(store: Store):
    _fill(store)
    # Everything that ended before T0 + 1 s has expired, in every project.
    assert _drain(store, Retention(default_cutoff=T0 + 1_000 * MS), limit=1) == (2, 6, 8)
    sessions = {(s.project, s.session_id) for s in every(store.list_sessions)}
    assert sessions == {(p, name) for p in ("shop", "support") for name in ("ongoing", "recent")}
    ongoing = store.get_session("shop", "ongoing")
    assert ongoing is not None and ongoing.summary.trace_count == 2  # an old first turn stays
    assert store.get_trace(trace_id(6)) is None and store.get_trace(trace_id(7)) is not None
    assert store.get_trace(trace_id(1)) is None
    assert {(u.project, u.user_id) for u in every(store.list_users)} == {
        (p, u) for p in ("shop", "support") for u in ("u1", "u3")
    }
    u1 = store.get_user("shop", "u1")
    assert u1 is not None and u1.summary.evaluations["ok"].count == 1  # the old result went
    assert store.count_spans(ListQuery()) == 2 * 4
    assert_lists_match_recount(store)
    assert store.delete_expired(Retention(default_cutoff=T0 + 1_000 * MS)).result(timeout=30).sessions == 0


def test_a_project_keeps_its_own_cutoff(store: Store):
    _fill(store)
    retention = Retention(cutoffs={"support": T0 - 1}, default_cutoff=T0 + 10_000 * MS)
    _drain(store, retention, limit=100)
    assert {s.project for s in every(store.list_sessions)} == {"support"}
    assert len(every(store.list_sessions, ListQuery(project="support"))) == 3
    assert [p.name for p in store.list_projects()] == ["support"]
    assert_lists_match_recount(store)


def test_nothing_expires_without_a_cutoff(store: Store):
    _fill(store)
    result = store.delete_expired(Retention()).result(timeout=30)
    assert (result.sessions, result.traces, result.spans, result.more) == (0, 0, 0, False)
    assert len(every(store.list_sessions)) == 6
