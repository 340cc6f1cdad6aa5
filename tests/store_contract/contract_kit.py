"""What the contract tests share: span builders, paging through a list, and the recount.

The recount computes every trace, session and user figure from the spans the store returns
(`list_spans`) and the results it holds per trace (`get_trace`), by the rules the `Store`
protocol documents, in plain Python: never from a backend's SQL. A store is right when its lists
and details equal this recount.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from tests.chdb_kit import chdb_url

from spanloom.server.store.base import (
    InsertResult,
    ListQuery,
    Page,
    ProjectSummary,
    SessionSummary,
    SpanRecord,
    Store,
    TraceSummary,
    UserSummary,
)
from spanloom.server.store.evaluation_types import EvaluationAggregate, EvaluationRecord
from spanloom.server.store.turn_previews import input_preview, output_preview
from spanloom.server.store.url import open_store

_T = TypeVar("_T")
# Every backend the contract runs against. To add one, name it here and say in `store_url` how a
# test opens a fresh store of it: a backend is done when the whole suite passes on it.
BACKENDS = ("sqlite", "chdb")
WAIT_SECONDS = 30
T0 = 1_760_000_000_000_000_000  # a moment in 2025, in nanoseconds


def store_url(backend: str, directory: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{directory / 'contract.db'}"
    if backend == "chdb":
        return chdb_url(directory)
    raise AssertionError(f"no way to open a {backend} store in the contract tests")


@contextmanager
def open_fresh(backend: str, directory: Path) -> Iterator[Store]:
    store = open_store(store_url(backend, directory))
    try:
        yield store
    finally:
        store.close()


def trace_id(number: int) -> str:
    return f"{number:032x}"


def span_id(number: int) -> str:
    return f"{number:016x}"


def span(
    trace: int,
    number: int,
    *,
    parent: int | None = None,
    project: str = "p1",
    start_ms: float = 0,
    duration_ms: float = 10,
    **fields: Any,
) -> SpanRecord:
    """Span `number` of trace `trace` (`parent`: the parent span's number, None for a root)."""
    start = T0 + int(start_ms * 1_000_000)
    return SpanRecord(
        trace_id=trace_id(trace),
        span_id=span_id(trace * 1000 + number),
        parent_span_id=None if parent is None else span_id(trace * 1000 + parent),
        name=fields.pop("name", f"span-{number}"),
        project=project,
        start_time_ns=start,
        end_time_ns=start + int(duration_ms * 1_000_000),
        **fields,
    )


def write(store: Store, spans: Sequence[SpanRecord], projects: frozenset[str] | None = None) -> InsertResult:
    return store.insert_spans(spans, projects).result(timeout=WAIT_SECONDS)


def every(
    list_page: Callable[[ListQuery], Page[_T]], query: ListQuery | None = None, limit: int = 7
) -> list[_T]:
    """Every item of a list from `query`'s cursor on, a page of `limit` at a time."""
    query = replace(query or ListQuery(), limit=limit)
    items: list[_T] = []
    while True:
        page = list_page(query)
        assert len(page.items) <= limit
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        assert page.items, "a page with a next cursor must not be empty"
        query = replace(query, cursor=page.next_cursor)


# --- the recount ----------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 for no values."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def merged_labels(spans_or_traces: Iterable[Any]) -> tuple[list[str], dict[str, Any]]:
    """Tags: the union in order. Metadata: merged, the first to name a key wins."""
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    for item in spans_or_traces:
        tags.extend(tag for tag in item.tags if tag not in tags)
        for key, value in item.metadata.items():
            metadata.setdefault(key, value)
    return tags, metadata


def aggregate(results: Sequence[EvaluationRecord]) -> EvaluationAggregate:
    """Count, mean score over the scored results (summed as integer millionths, as documented),
    pass rate."""
    scored = [result.score for result in results if result.score is not None]
    micros = sum(round(score * 1_000_000) for score in scored)
    passed = sum(result.passed for result in results)
    return EvaluationAggregate(
        len(results), micros / 1e6 / len(scored) if scored else None, passed / len(results)
    )


def aggregates(results: Iterable[EvaluationRecord]) -> dict[str, EvaluationAggregate]:
    by_name: dict[str, list[EvaluationRecord]] = {}
    for result in results:
        by_name.setdefault(result.name, []).append(result)
    return {name: aggregate(found) for name, found in sorted(by_name.items())}


@dataclass
class Recount:
    traces: dict[str, TraceSummary]
    sessions: dict[tuple[str, str], SessionSummary]
    users: dict[tuple[str, str], UserSummary]
    spans: list[SpanRecord] = field(default_factory=list)


def recount_trace(trace: str, spans: list[SpanRecord], results: list[EvaluationRecord]) -> TraceSummary:
    rows = sorted(spans, key=lambda span: (span.start_time_ns, span.span_id))
    ids = {row.span_id for row in rows}
    root = next((row for row in rows if row.parent_span_id is None), None)
    # Until the root arrives, the earliest span whose parent is missing stands in for it.
    head = root or next((row for row in rows if row.parent_span_id not in ids), rows[0])
    ordered = [head, *(row for row in rows if row is not head)]
    with_input = next((row for row in ordered if row.input is not None), None)
    if head.output is not None:
        with_output: SpanRecord | None = head
    else:
        outputs = [row for row in rows if row.output is not None]
        with_output = max(outputs, key=lambda row: row.end_time_ns) if outputs else None
    start = min(row.start_time_ns for row in rows)
    end = max(row.end_time_ns for row in rows)
    errors = sum(row.status_code == "ERROR" for row in rows)
    cost = math.fsum(row.cost or 0.0 for row in rows)
    tags, metadata = merged_labels(ordered)
    projects = {row.project for row in rows}
    assert len(projects) == 1, f"trace {trace}: spans of several projects {projects}"
    return TraceSummary(
        trace_id=trace,
        project=head.project,
        session_id=next((row.session_id for row in ordered if row.session_id), None),
        user_id=next((row.user_id for row in ordered if row.user_id), None),
        root_span_id=root.span_id if root else None,
        name=head.name,
        span_kind=head.span_kind,
        start_time_ns=start,
        end_time_ns=end,
        latency_ms=((root.end_time_ns - root.start_time_ns) if root else end - start) / 1e6,
        span_count=len(rows),
        error_count=errors,
        total_tokens=sum(row.total_tokens or 0 for row in rows),
        cost=cost,
        status="ERROR" if errors else head.status_code,
        input=with_input.input if with_input else None,
        output=with_output.output if with_output else None,
        tags=tags,
        metadata=metadata,
        evaluations=sorted(results, key=lambda result: (result.name, result.source, result.span_id)),
    )


def _nanos(cost: float) -> int:
    return round(cost * 1e9)


def recount_session(
    project: str, session: str, turns: list[TraceSummary], own: Sequence[EvaluationRecord] = ()
) -> SessionSummary:
    """`own`: the results on the session itself."""
    turns = sorted(turns, key=lambda turn: (turn.start_time_ns, turn.trace_id))
    latencies = sorted(turn.latency_ms for turn in turns)
    tags, metadata = merged_labels(turns)
    nanos = sum(_nanos(turn.cost) for turn in turns)
    return SessionSummary(
        session_id=session,
        project=project,
        user_id=next((turn.user_id for turn in turns if turn.user_id), None),
        trace_count=len(turns),
        first_input=next((turn.input for turn in turns if turn.input is not None), None),
        last_output=next((turn.output for turn in reversed(turns) if turn.output is not None), None),
        start_time_ns=min(turn.start_time_ns for turn in turns),
        end_time_ns=max(turn.end_time_ns for turn in turns),
        total_tokens=sum(turn.total_tokens for turn in turns),
        cost=nanos / 1e9,
        error_count=sum(turn.error_count > 0 for turn in turns),
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
        tags=tags,
        metadata=metadata,
        evaluations=aggregates([*(result for turn in turns for result in turn.evaluations), *own]),
    )


def recount_user(
    project: str, user: str, traces: list[TraceSummary], own: Sequence[EvaluationRecord] = ()
) -> UserSummary:
    """`own`: the results on the sessions whose user this is."""
    nanos = sum(_nanos(trace.cost) for trace in traces)
    return UserSummary(
        user_id=user,
        project=project,
        session_count=len({trace.session_id for trace in traces if trace.session_id}),
        trace_count=len(traces),
        total_tokens=sum(trace.total_tokens for trace in traces),
        cost=nanos / 1e9,
        error_count=sum(trace.error_count > 0 for trace in traces),
        first_seen_ns=min(trace.start_time_ns for trace in traces),
        last_seen_ns=max(trace.end_time_ns for trace in traces),
        evaluations=aggregates([*(result for trace in traces for result in trace.evaluations), *own]),
    )


def recount(store: Store) -> Recount:
    """Every figure, from the spans `list_spans` pages through and each trace's results."""
    spans = every(store.list_spans, limit=97)
    by_trace: dict[str, list[SpanRecord]] = {}
    for stored in spans:
        by_trace.setdefault(stored.trace_id, []).append(stored)
    traces = {}
    for trace, members in by_trace.items():
        detail = store.get_trace(trace)
        assert detail is not None, (
            f"list_spans returned spans of trace {trace}, which get_trace does not know"
        )
        traces[trace] = recount_trace(trace, members, detail.summary.evaluations)
    sessions: dict[tuple[str, str], list[TraceSummary]] = {}
    users: dict[tuple[str, str], list[TraceSummary]] = {}
    for trace in traces.values():
        if trace.session_id:
            sessions.setdefault((trace.project, trace.session_id), []).append(trace)
        if trace.user_id:
            users.setdefault((trace.project, trace.user_id), []).append(trace)
    recounted = {}
    own: dict[tuple[str, str], list[EvaluationRecord]] = {}  # results on sessions, by their user
    for key, turns in sessions.items():
        detail = store.get_session(*key, limit=1)
        assert detail is not None, f"session {key} has traces but get_session does not know it"
        session = recounted[key] = recount_session(*key, turns, detail.results)
        if session.user_id:
            own.setdefault((key[0], session.user_id), []).extend(detail.results)
    return Recount(
        traces=traces,
        sessions=recounted,
        users={key: recount_user(*key, members, own.get(key, ())) for key, members in users.items()},
        spans=spans,
    )


def assert_lists_match_recount(store: Store) -> Recount:
    """The store's trace, session and user lists (every page) and details equal the recount."""
    expected = recount(store)
    stored_traces = {trace.trace_id: trace for trace in every(store.list_traces)}
    assert stored_traces.keys() == expected.traces.keys()
    for trace, summary in stored_traces.items():
        detail = store.get_trace(trace)
        assert detail is not None
        summary = replace(summary, evaluations=detail.summary.evaluations)
        assert summary == expected.traces[trace], trace
    stored_sessions = {(item.project, item.session_id): item for item in every(store.list_sessions)}
    assert stored_sessions.keys() == expected.sessions.keys()
    for key, summary in stored_sessions.items():
        whole = expected.sessions[key]
        # A list shows previews of the texts; one session shows them whole.
        previews = replace(
            whole, first_input=input_preview(whole.first_input), last_output=output_preview(whole.last_output)
        )
        assert summary == previews, key
        session = store.get_session(*key)
        assert session is not None and session.summary == whole
        assert [turn.trace_id for turn in session.turns] == [
            trace.trace_id
            for trace in sorted(expected.traces.values(), key=lambda t: (t.start_time_ns, t.trace_id))
            if (trace.project, trace.session_id) == key
        ]
    projects: dict[str, list[TraceSummary]] = {}
    for trace in expected.traces.values():
        projects.setdefault(trace.project, []).append(trace)
    assert store.list_projects() == [
        ProjectSummary(
            name=name,
            span_count=sum(trace.span_count for trace in traces),
            trace_count=len(traces),
            session_count=sum(key[0] == name for key in expected.sessions),
            user_count=sum(key[0] == name for key in expected.users),
            first_span_time_ns=min(trace.start_time_ns for trace in traces),
            last_span_time_ns=max(trace.end_time_ns for trace in traces),
        )
        for name, traces in sorted(projects.items())
    ]
    stored_users = {(item.project, item.user_id): item for item in every(store.list_users)}
    assert stored_users.keys() == expected.users.keys()
    for key, summary in stored_users.items():
        assert summary == expected.users[key], key
        user = store.get_user(*key)
        assert user is not None and user.summary == summary
    return expected
