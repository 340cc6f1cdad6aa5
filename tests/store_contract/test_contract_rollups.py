"""Rollups equal a recount from the stored spans, whatever the arrival order: any permutation of a
set of spans, split into any batches, some sent twice, gives the lists a recount computes, and the
same lists one in-order batch gives. A late root moves its trace to the session and user it names."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from contract_kit import assert_lists_match_recount, every, open_fresh, span, trace_id, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spanloom.server.store.base import ListQuery, SpanRecord, Store

SESSIONS = st.sampled_from([None, "s1", "s2", "s3"])
USERS = st.sampled_from([None, "u1", "u2"])


@st.composite
def traces(draw: st.DrawFn) -> list[SpanRecord]:
    spans: list[SpanRecord] = []
    for number in range(1, draw(st.integers(1, 6)) + 1):
        project = draw(st.sampled_from(["p1", "p2"]))  # the same ids in two projects stay apart
        count = draw(st.integers(1, 4))
        has_root = draw(st.booleans()) or count == 1
        for index in range(1, count + 1):
            parent = None if index == 1 else draw(st.integers(1, index - 1))
            if index == 1 and not has_root:
                parent = 999  # the root never arrives
            spans.append(
                span(
                    number,
                    index,
                    parent=parent,
                    project=project,
                    start_ms=draw(st.integers(0, 20)),
                    duration_ms=draw(st.integers(0, 30)),
                    span_kind=draw(st.sampled_from(["LLM", "CHAIN", "TOOL"])),
                    session_id=draw(SESSIONS),
                    user_id=draw(USERS),
                    status_code=draw(st.sampled_from(["UNSET", "OK", "ERROR"])),
                    total_tokens=draw(st.one_of(st.none(), st.integers(0, 500))),
                    cost=draw(st.sampled_from([None, 0.1, 0.2, 0.3, 1e-7])),
                    input=draw(st.sampled_from([None, f"in-{number}-{index}"])),
                    output=draw(st.sampled_from([None, f"out-{number}-{index}"])),
                    tags=draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True)),
                    metadata=draw(
                        st.dictionaries(st.sampled_from(["k", "m"]), st.integers(0, 2), max_size=1)
                    ),
                )
            )
    return spans


@contextmanager
def _one_batch_and_batches(
    backend: str, spans: list[SpanRecord], batches: list[list[SpanRecord]]
) -> Iterator[tuple[Store, Store]]:
    """Two fresh stores: the first given `spans` in one batch, the second `batches` in order."""
    with (
        tempfile.TemporaryDirectory() as whole,
        tempfile.TemporaryDirectory() as parts,
        open_fresh(backend, Path(whole)) as expected,
        open_fresh(backend, Path(parts)) as store,
    ):
        write(expected, spans)
        for batch in batches:
            write(store, batch)
        yield expected, store


def _lists(store: Store) -> tuple[list, list, list]:
    return every(store.list_traces), every(store.list_sessions), every(store.list_users)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spans=traces(), data=st.data())
def test_any_arrival_order_gives_the_recount(backend: str, spans: list[SpanRecord], data: st.DataObject):
    arrival = data.draw(st.permutations(spans))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrival)), max_size=4)))
    batches = [
        arrival[low:high] for low, high in zip([0, *cuts], [*cuts, len(arrival)], strict=True) if high > low
    ]
    retried = data.draw(st.lists(st.sampled_from(batches), max_size=2))
    with _one_batch_and_batches(backend, spans, [*batches, *retried]) as (expected, store):
        assert_lists_match_recount(store)
        assert _lists(store) == _lists(expected)


def test_a_traces_cost_is_the_same_whatever_order_its_spans_came_in(backend: str):
    # 0.1 + 0.2 + 0.3 and 0.3 + 0.2 + 0.1 differ in the last bit as floats.
    costs = [0.1, 0.2, 0.3]
    spans = [
        span(1, number, parent=None if number == 1 else 1, cost=cost) for number, cost in enumerate(costs, 1)
    ]
    with (
        tempfile.TemporaryDirectory() as forward,
        tempfile.TemporaryDirectory() as backward,
        open_fresh(backend, Path(forward)) as first,
        open_fresh(backend, Path(backward)) as second,
    ):
        for one in spans:
            write(first, [one])
        for one in reversed(spans):
            write(second, [one])
        assert every(first.list_traces)[0].cost == every(second.list_traces)[0].cost == 0.6


def test_a_late_root_moves_its_trace_to_the_session_and_user_it_names(store: Store):
    child = span(1, 2, parent=1, start_ms=5, session_id="child-session", user_id="child-user", cost=0.5)
    write(store, [child, span(2, 1, session_id="child-session", user_id="child-user", cost=0.25)])
    assert {s.session_id: s.trace_count for s in every(store.list_sessions)} == {"child-session": 2}
    root = span(1, 1, session_id="root-session", user_id="root-user", cost=0.5, input="q", output="a")
    write(store, [root])
    sessions = {s.session_id: (s.trace_count, s.cost, s.user_id) for s in every(store.list_sessions)}
    assert sessions == {"child-session": (1, 0.25, "child-user"), "root-session": (1, 1.0, "root-user")}
    users = {u.user_id: (u.trace_count, u.session_count) for u in every(store.list_users)}
    assert users == {"child-user": (1, 1), "root-user": (1, 1)}
    detail = store.get_trace(trace_id(1))
    assert detail is not None and detail.summary.root_span_id == root.span_id
    assert (detail.summary.input, detail.summary.output) == ("q", "a")
    assert_lists_match_recount(store)


def test_turns_arriving_one_after_another_give_the_recount(backend: str):
    """A conversation's turns one per batch, each after the last ended (what ingest mostly
    sees): the first user, first input, last output and labels follow the turns in order, as
    when the session's turns came at once, and as when a later batch overlaps the stored turns."""
    turns = [
        # (start ms, spans of the turn as (fields)), the first turn naming no user and no input
        (0, [{"tags": ["a"], "metadata": {"k": 1}, "output": "a1"}]),
        (100, [{"user_id": "u1", "input": "q2", "tags": ["b", "a"], "metadata": {"k": 2, "m": 3}}]),
        (200, [{"user_id": "u2", "output": "a3"}, {"user_id": "u2", "input": "tool in"}]),
        (300, [{"user_id": "u1", "output": "a4"}]),
    ]
    spans = [
        span(
            number * 10 + 1,
            index + 1,
            parent=None if index == 0 else 1,
            start_ms=start + index,
            duration_ms=50,
            session_id=session_id,
            **fields,
        )
        for session_id, offset in (("s", 0), ("t", 1))
        for number, (start, parts) in enumerate(turns, start=offset * 100)
        for index, fields in enumerate(parts)
    ]
    by_turn: dict[str, list[SpanRecord]] = {}
    for one in spans:
        by_turn.setdefault(one.trace_id, []).append(one)
    s1, s2, s3, s4, t1, t2, t3, t4 = by_turn.values()
    # Session "t"'s first turn comes after its second (so before the stored turns ended), and its
    # last two together.
    with _one_batch_and_batches(backend, spans, [s1, s2, s3, s4, t2, t1, t3 + t4]) as (expected, store):
        assert_lists_match_recount(store)
        lists = _lists(store)
        assert lists == _lists(expected)
        _, sessions, users = lists
    for session in sessions:
        assert (session.user_id, session.first_input, session.last_output) == ("u1", "q2", "a4")
        assert (session.tags, session.metadata, session.trace_count) == (["a", "b"], {"k": 1, "m": 3}, 4)
    assert {user.user_id: (user.trace_count, user.session_count) for user in users} == {
        "u1": (4, 2),
        "u2": (2, 2),
    }


def test_a_trace_leaving_its_last_session_removes_it(store: Store):
    write(store, [span(1, 2, parent=1, session_id="gone", user_id="gone-user")])
    write(store, [span(1, 1, session_id="kept", user_id="kept-user")])
    assert [s.session_id for s in every(store.list_sessions)] == ["kept"]
    assert [u.user_id for u in every(store.list_users)] == ["kept-user"]
    assert store.get_session("p1", "gone") is None and store.get_user("p1", "gone-user") is None


def test_costs_and_tokens_add_up_exactly(store: Store):
    # 0.1 + 0.2 is not 0.3 in floating point: totals are kept in integer nano-dollars.
    write(
        store,
        [
            span(n, 1, session_id="s", user_id="u", cost=0.1 * (n % 3 + 1), total_tokens=n)
            for n in range(1, 31)
        ],
    )
    assert_lists_match_recount(store)
    [session] = every(store.list_sessions)
    assert session.total_tokens == sum(range(1, 31))
    assert session.cost == round(sum(round(0.1 * (n % 3 + 1) * 1e9) for n in range(1, 31))) / 1e9


def test_session_figures_and_percentiles(store: Store):
    for number, latency in enumerate((10, 20, 30, 40, 1000), start=1):
        write(
            store, [span(number, 1, start_ms=number * 100, duration_ms=latency, session_id="s", user_id="u")]
        )
    [session] = every(store.list_sessions, ListQuery(project="p1"))
    assert session.latency_p50_ms == 30
    assert session.latency_p95_ms == pytest.approx(40 + (1000 - 40) * 0.8)
    assert session.trace_count == 5
    assert_lists_match_recount(store)


def test_sums_past_64_bits_saturate_instead_of_failing(store: Store):
    """Whatever a span says, a store keeps taking spans: totals stop at the 64-bit limit."""
    huge = 2**63 - 100
    for number in range(1, 4):
        result = write(
            store, [span(number, 1, start_ms=number, session_id="s", user_id="u", total_tokens=huge)]
        )
        assert result.accepted == 1
    write(store, [span(9, 1, start_ms=9, session_id="s", user_id="u", total_tokens=5)])
    [session] = every(store.list_sessions)
    [user] = every(store.list_users)
    assert session.trace_count == user.trace_count == 4
    assert session.total_tokens == user.total_tokens == 2**63 - 1
