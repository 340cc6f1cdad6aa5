"""Projects are tenants. The same session and user ids in two projects are two sessions and two
users; a trace belongs to the project that first stored it, and a later span naming another
project never re-labels it."""

from __future__ import annotations

from contract_kit import assert_lists_match_recount, every, span, trace_id, write

from spanloom.server.store.base import ListQuery, Store
from spanloom.server.store.evaluation_types import EvaluationInput


def _two_projects(store: Store) -> None:
    """conv-1 / alice in both projects, with different turns, texts and costs."""
    write(
        store,
        [
            span(
                1,
                1,
                project="shop",
                session_id="conv-1",
                user_id="alice",
                input="shop q1",
                output="shop a1",
                cost=0.1,
            ),
            span(
                2,
                1,
                project="shop",
                start_ms=100,
                session_id="conv-1",
                user_id="alice",
                input="shop q2",
                cost=0.1,
            ),
            span(3, 1, project="shop", start_ms=200, session_id="shop-only", user_id="bob"),
        ],
    )
    write(
        store,
        [
            span(
                11,
                1,
                project="support",
                start_ms=50,
                session_id="conv-1",
                user_id="alice",
                input="support q",
                output="support a",
                cost=0.7,
                status_code="ERROR",
            ),
        ],
    )


def test_the_same_ids_in_two_projects_stay_apart(store: Store):
    _two_projects(store)
    sessions = {(s.project, s.session_id): s for s in every(store.list_sessions)}
    assert set(sessions) == {("shop", "conv-1"), ("shop", "shop-only"), ("support", "conv-1")}
    shop, support = sessions[("shop", "conv-1")], sessions[("support", "conv-1")]
    assert (shop.trace_count, shop.first_input, shop.error_count) == (2, "shop q1", 0)
    assert (support.trace_count, support.first_input, support.error_count) == (1, "support q", 1)
    detail = store.get_session("support", "conv-1")
    assert detail is not None
    assert [turn.input for turn in detail.turns] == ["support q"]  # nothing of shop's
    assert {turn.project for turn in detail.turns} == {"support"}
    users = {(u.project, u.user_id): u for u in every(store.list_users)}
    assert set(users) == {("shop", "alice"), ("shop", "bob"), ("support", "alice")}
    assert (users[("shop", "alice")].trace_count, users[("support", "alice")].trace_count) == (2, 1)
    alice = store.get_user("support", "alice")
    assert alice is not None and [s.session_id for s in alice.sessions.items] == ["conv-1"]
    assert {s.project for s in alice.sessions.items} == {"support"}
    assert store.find_session_projects("conv-1") == ["shop", "support"]
    assert store.find_session_projects("shop-only") == ["shop"]
    assert store.find_session_projects("nobody") == []
    assert store.find_user_projects("alice") == ["shop", "support"]
    assert store.get_session("support", "shop-only") is None
    assert store.get_user("support", "bob") is None
    assert_lists_match_recount(store)


def test_lists_filter_by_project(store: Store):
    _two_projects(store)
    assert [s.session_id for s in every(store.list_sessions, ListQuery(project="support"))] == ["conv-1"]
    assert {u.user_id for u in every(store.list_users, ListQuery(project="shop"))} == {"alice", "bob"}
    assert {t.trace_id for t in every(store.list_traces, ListQuery(project="support"))} == {trace_id(11)}
    shop_sessions = every(store.list_sessions, ListQuery(project="shop", user_id="alice"))
    assert [s.session_id for s in shop_sessions] == ["conv-1"]
    projects = {p.name: p for p in store.list_projects()}
    assert (projects["shop"].session_count, projects["shop"].user_count, projects["shop"].trace_count) == (
        2,
        2,
        3,
    )
    assert (projects["support"].session_count, projects["support"].span_count) == (1, 1)


def test_a_user_sessions_page_is_the_users_own_whatever_the_query_says(store: Store):
    _two_projects(store)
    query = ListQuery(project="support", user_id="bob", limit=1)
    user = store.get_user("shop", "alice", query)
    assert user is not None
    assert [(s.project, s.session_id) for s in user.sessions.items] == [("shop", "conv-1")]
    assert (query.project, query.user_id, query.limit) == ("support", "bob", 1)  # not changed


def test_a_span_naming_another_project_never_relabels_a_trace(store: Store):
    write(store, [span(5, 2, parent=1, project="support", start_ms=10, session_id="victim", user_id="v")])
    # Another project's key sends an earlier root for the same trace.
    result = write(store, [span(5, 1, project="shop", session_id="hijack", user_id="h")], frozenset({"shop"}))
    assert (result.accepted, result.rejected) == (0, 1) and result.reasons
    detail = store.get_trace(trace_id(5))
    assert detail is not None and detail.summary.project == "support"
    assert [s.span_id for s in detail.spans] == [span(5, 2, parent=1).span_id]
    assert store.get_session("support", "victim") is not None
    assert store.get_session("shop", "hijack") is None
    assert [p.name for p in store.list_projects()] == ["support"]
    assert_lists_match_recount(store)


def test_a_sender_of_any_project_adds_to_a_trace_under_the_trace_project(store: Store):
    """One app whose services report different project names (no keys, or an admin key): the
    spans join the trace, as spans of the trace's project."""
    write(store, [span(6, 2, parent=1, project="api", start_ms=10, session_id="s")])
    result = write(store, [span(6, 1, project="web", session_id="s", input="q")])
    assert (result.accepted, result.rejected) == (1, 0)
    assert [s.project for s in result.written] == ["api"]
    detail = store.get_trace(trace_id(6))
    assert detail is not None and {s.project for s in detail.spans} == {"api"}
    assert detail.summary.input == "q"
    assert [p.name for p in store.list_projects()] == ["api"]
    assert_lists_match_recount(store)


def test_a_new_trace_takes_its_head_span_project(store: Store):
    result = write(
        store,
        [
            span(8, 2, parent=1, project="b", start_ms=5),
            span(8, 1, project="a"),
            span(8, 3, parent=1, project="c"),
        ],
    )
    assert (result.accepted, result.rejected) == (3, 0)
    detail = store.get_trace(trace_id(8))
    assert detail is not None and {s.project for s in detail.spans} == {"a"}


def test_two_requests_racing_for_a_new_trace_have_one_winner(store: Store):
    first = store.insert_spans([span(9, 1, project="a", session_id="s")], frozenset({"a"}))
    second = store.insert_spans([span(9, 2, parent=1, project="b", session_id="s")], frozenset({"b"}))
    results = [first.result(timeout=30), second.result(timeout=30)]
    assert sorted((r.accepted, r.rejected) for r in results) == [(0, 1), (1, 0)]
    detail = store.get_trace(trace_id(9))
    assert detail is not None and len(detail.spans) == 1
    assert_lists_match_recount(store)


def test_results_stay_in_their_trace_project(store: Store):
    _two_projects(store)
    store.insert_evaluations(
        [EvaluationInput(name="helpful", source="api", trace_id=trace_id(11), score=0.2)]
    ).result(timeout=30)
    support = store.get_session("support", "conv-1")
    shop = store.get_session("shop", "conv-1")
    assert support is not None and shop is not None
    assert support.summary.evaluations["helpful"].count == 1
    assert shop.summary.evaluations == {}
    support_alice, shop_alice = store.get_user("support", "alice"), store.get_user("shop", "alice")
    assert support_alice is not None and shop_alice is not None
    assert "helpful" in support_alice.summary.evaluations and shop_alice.summary.evaluations == {}
    groups = store.summarize_evaluations("session")
    assert [(g.project, g.key) for g in groups] == [("support", "conv-1")]
    assert store.list_evaluation_names("shop") == [] and store.list_evaluation_names("support") == ["helpful"]
