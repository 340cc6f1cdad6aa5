"""The lists: every sort key in both orders, every filter, pages without gaps or repeats (also
while rows arrive), and cursors that only fit the list and sort they were made for."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from contract_kit import T0, every, span, write

from spanloom.server.store.base import (
    SESSION_SORT_KEYS,
    TRACE_SORT_KEYS,
    USER_SORT_KEYS,
    ListQuery,
    SessionSummary,
    Store,
    TraceSummary,
    UserSummary,
)
from spanloom.server.store.cursor import InvalidCursorError
from spanloom.server.store.evaluation_types import EvaluationInput

SESSION_VALUES: dict[str, Callable[[SessionSummary], Any]] = {
    "start_time": lambda s: s.start_time_ns,
    "last_activity": lambda s: s.end_time_ns,
    "turns": lambda s: s.trace_count,
    "tokens": lambda s: s.total_tokens,
    "cost": lambda s: s.cost,
    "latency": lambda s: s.latency_p50_ms,
    "errors": lambda s: s.error_count,
}
USER_VALUES: dict[str, Callable[[UserSummary], Any]] = {
    "last_seen": lambda u: u.last_seen_ns,
    "first_seen": lambda u: u.first_seen_ns,
    "sessions": lambda u: u.session_count,
    "traces": lambda u: u.trace_count,
    "tokens": lambda u: u.total_tokens,
    "cost": lambda u: u.cost,
    "errors": lambda u: u.error_count,
    "error_rate": lambda u: u.error_rate,
}
TRACE_VALUES: dict[str, Callable[[TraceSummary], Any]] = {
    "start_time": lambda t: t.start_time_ns,
    "latency": lambda t: t.latency_ms,
    "tokens": lambda t: t.total_tokens,
    "cost": lambda t: t.cost,
    "errors": lambda t: t.error_count,
    "spans": lambda t: t.span_count,
}


def test_the_sort_tables_cover_every_key():
    assert tuple(SESSION_VALUES) == SESSION_SORT_KEYS
    assert tuple(USER_VALUES) == USER_SORT_KEYS
    assert tuple(TRACE_VALUES) == TRACE_SORT_KEYS


@pytest.fixture
def filled(store: Store) -> Store:
    """16 sessions (8 ids, each in two projects) of four user ids, with ties in every sort key."""
    spans = []
    for index in range(24):
        project = "p2" if index % 3 == 0 else "p1"
        for turn in range(1 + index % 3):
            number = index * 10 + turn + 1
            spans.append(
                span(
                    number,
                    1,
                    project=project,
                    start_ms=(index // 2) * 1000 + turn * 100,  # pairs of sessions start together
                    duration_ms=10 * (1 + index % 4),
                    session_id=f"s{index % 8:02d}",  # each id in both projects: 16 sessions
                    user_id=f"u{index % 4}",
                    status_code="ERROR" if index % 5 == 0 and turn == 0 else "OK",
                    total_tokens=100 * (index % 4),
                    cost=0.01 * (index % 3),
                    input=f"question {index}.{turn}" + (" needle" if index == 7 else ""),
                    output=f"answer {index}.{turn}",
                    tags=["even" if index % 2 == 0 else "odd"],
                    metadata={"tier": "gold" if index % 5 == 0 else "free", "n": index},
                    span_kind="LLM" if index % 2 else "CHAIN",
                    model="gpt-4o" if index % 2 else None,
                )
            )
            spans.append(
                span(
                    number,
                    2,
                    parent=1,
                    project=project,
                    start_ms=(index // 2) * 1000 + turn * 100 + 1,
                    span_kind="TOOL" if index % 4 == 0 else "LLM",
                )
            )
    write(store, spans[: len(spans) // 2])
    write(store, spans[len(spans) // 2 :])
    return store


def _check_sorted(
    items: list[Any], value: Callable[[Any], Any], key: Callable[[Any], tuple], order: str
) -> None:
    keys = [(value(item), *key(item)) for item in items]
    assert keys == sorted(keys, reverse=order == "desc")
    assert len(set(map(key, items))) == len(items)  # no row twice


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("sort", SESSION_SORT_KEYS)
def test_sessions_sort_and_page(filled: Store, sort: str, order: str):
    query = ListQuery(sort=sort, order=order)  # type: ignore[arg-type]
    whole = filled.list_sessions(ListQuery(sort=sort, order=order, limit=1000)).items  # type: ignore[arg-type]
    paged = every(filled.list_sessions, query, limit=5)
    assert paged == whole and len(whole) == 16
    _check_sorted(paged, SESSION_VALUES[sort], lambda s: (s.project, s.session_id), order)


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("sort", USER_SORT_KEYS)
def test_users_sort_and_page(filled: Store, sort: str, order: str):
    query = ListQuery(sort=sort, order=order)  # type: ignore[arg-type]
    whole = filled.list_users(ListQuery(sort=sort, order=order, limit=1000)).items  # type: ignore[arg-type]
    paged = every(filled.list_users, query, limit=3)
    assert paged == whole and len(whole) == 8
    _check_sorted(paged, USER_VALUES[sort], lambda u: (u.project, u.user_id), order)


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("sort", TRACE_SORT_KEYS)
def test_traces_sort_and_page(filled: Store, sort: str, order: str):
    query = ListQuery(sort=sort, order=order)  # type: ignore[arg-type]
    whole = filled.list_traces(ListQuery(sort=sort, order=order, limit=1000)).items  # type: ignore[arg-type]
    paged = every(filled.list_traces, query, limit=7)
    assert paged == whole and len(whole) == 48
    _check_sorted(paged, TRACE_VALUES[sort], lambda t: (t.trace_id,), order)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_an_evaluation_puts_the_unjudged_last(filled: Store, order: str):
    sessions = every(filled.list_sessions)
    judged = sessions[:5]
    filled.insert_evaluations(
        [
            EvaluationInput(name="helpful", source="api", trace_id=turn.trace_id, score=index / 10)
            for index, session in enumerate(judged)
            for turn in (filled.get_session(session.project, session.session_id) or _missing()).turns[:1]
        ]
    ).result(timeout=30)
    for list_page, count in ((filled.list_sessions, len(sessions)), (filled.list_users, 8)):
        paged = every(list_page, ListQuery(sort="eval:helpful", order=order), limit=2)  # type: ignore[arg-type]
        assert len(paged) == count
        means = [item.evaluations["helpful"].mean_score for item in paged if "helpful" in item.evaluations]
        assert means == sorted(means, reverse=order == "desc") and means
        assert all("helpful" not in item.evaluations for item in paged[len(means) :])


def _missing() -> Any:
    raise AssertionError("a listed session must be found")


def test_session_filters(filled: Store):
    everything = every(filled.list_sessions)

    def matching(query: ListQuery, predicate: Callable[[SessionSummary], bool]) -> None:
        got = {(s.project, s.session_id) for s in every(filled.list_sessions, query)}
        assert got == {(s.project, s.session_id) for s in everything if predicate(s)}, query
        assert got, f"{query} should match something"

    matching(ListQuery(project="p2"), lambda s: s.project == "p2")
    matching(ListQuery(user_id="u1"), lambda s: s.user_id == "u1")
    matching(ListQuery(has_error=True), lambda s: s.error_count > 0)
    matching(ListQuery(has_error=False), lambda s: s.error_count == 0)
    matching(ListQuery(tags=["odd"]), lambda s: "odd" in s.tags)
    matching(ListQuery(metadata=[("tier", "gold")]), lambda s: s.metadata.get("tier") == "gold")
    matching(ListQuery(metadata=[("n", "7")]), lambda s: s.metadata.get("n") == 7)
    matching(ListQuery(q="NEEDLE"), lambda s: s.session_id == "s07" and s.project == "p1")
    matching(ListQuery(q="S05"), lambda s: s.session_id == "s05")
    start = T0 + 5_000_000_000
    matching(ListQuery(start_ns=start), lambda s: s.end_time_ns >= start)
    matching(ListQuery(end_ns=start), lambda s: s.start_time_ns <= start)
    assert every(filled.list_sessions, ListQuery(q="100%")) == []  # LIKE wildcards are literal


def test_user_and_trace_filters(filled: Store):
    users = every(filled.list_users)
    assert {(u.project, u.user_id) for u in every(filled.list_users, ListQuery(user_id="u1"))} == {
        ("p1", "u1"),
        ("p2", "u1"),
    }
    assert {u.user_id for u in every(filled.list_users, ListQuery(q="U3"))} == {"u3"}
    assert {(u.project, u.user_id) for u in every(filled.list_users, ListQuery(has_error=True))} == {
        (u.project, u.user_id) for u in users if u.error_count
    }
    traces = every(filled.list_traces)
    for query, predicate in (
        (ListQuery(session_id="s03"), lambda t: t.session_id == "s03"),
        (ListQuery(status="ERROR"), lambda t: t.status == "ERROR"),
        (ListQuery(project="p2", user_id="u0"), lambda t: t.project == "p2" and t.user_id == "u0"),
        (
            ListQuery(tags=["even"], metadata=[("tier", "gold")]),
            lambda t: "even" in t.tags and t.metadata["tier"] == "gold",
        ),
        (ListQuery(q="needle"), lambda t: "needle" in (t.input or "")),
    ):
        got = {t.trace_id for t in every(filled.list_traces, query)}
        assert got == {t.trace_id for t in traces if predicate(t)} and got, query
    with_tool = {t.trace_id for t in every(filled.list_traces, ListQuery(span_kind="TOOL"))}
    with_model = {t.trace_id for t in every(filled.list_traces, ListQuery(model="gpt-4o"))}
    assert with_tool and with_model and with_tool.isdisjoint(with_model)


def test_pages_stay_exact_while_rows_arrive(store: Store):
    for index in range(12):
        write(store, [span(index + 1, 1, start_ms=index * 1000, session_id=f"s{index:02d}")])
    first = store.list_sessions(ListQuery(sort="start_time", order="asc", limit=5))
    # Rows that sort before the cursor, or tie with it, must not shift the next pages.
    write(
        store,
        [
            span(100, 1, start_ms=-60_000, session_id="s-early"),
            span(101, 1, start_ms=4000, session_id="s-tie"),
        ],
    )
    rest = every(store.list_sessions, ListQuery(sort="start_time", order="asc", cursor=first.next_cursor))
    ids = [s.session_id for s in first.items + rest]
    assert ids == [f"s{i:02d}" for i in range(12)]


def test_a_cursor_fits_only_its_own_sort(filled: Store):
    page = filled.list_sessions(ListQuery(sort="cost", limit=2))
    assert page.next_cursor
    for list_page, query in (
        (filled.list_sessions, ListQuery(sort="turns", cursor=page.next_cursor)),
        (filled.list_sessions, ListQuery(sort="cost", cursor="garbage")),
        (
            filled.list_traces,
            ListQuery(sort="start_time", cursor=filled.list_sessions(ListQuery(limit=1)).next_cursor),
        ),
    ):
        with pytest.raises(InvalidCursorError):
            list_page(query)


def test_reads_never_change_the_query(filled: Store):
    query = ListQuery(project="p1", tags=["odd"], metadata=[("tier", "free")], limit=2, sort="eval:x")
    kept = copy.deepcopy(query)
    filled.list_sessions(query)
    filled.list_users(query)
    filled.list_traces(ListQuery(project="p1", limit=2))
    filled.get_user("p1", "u1", query)
    assert query == kept
