"""SQL of the read path for traces: the list, one trace, a session's turns, span counts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import FailingTurns, ListQuery, Page, TraceSummary
from spanloom.server.store.evaluation_types import FEEDBACK
from spanloom.server.store.json_values import from_json, to_json
from spanloom.server.store.sqlite import evaluation_reads
from spanloom.server.store.sqlite.list_paging import Conditions, ListShape, Sort, like, page
from spanloom.server.store.sqlite.search_terms import CANDIDATE, match_expression
from spanloom.server.store.sqlite.span_text import TRACE_INPUT, TRACE_OUTPUT

_COLUMNS = (
    "t.trace_id, t.project, t.session_id, t.user_id, t.root_span_id, t.name, t.span_kind, t.start_ns,"
    f" t.end_ns, t.latency_ms, t.span_count, t.error_count, t.total_tokens, t.cost, t.status, {TRACE_INPUT},"
    f" {TRACE_OUTPUT}, t.tags, t.metadata"
)


def _trace(row: tuple[Any, ...]) -> TraceSummary:
    (
        trace_id,
        project,
        session_id,
        user_id,
        root_span_id,
        name,
        span_kind,
        start_ns,
        end_ns,
        latency_ms,
        span_count,
        error_count,
        total_tokens,
        cost,
        status,
        input_text,
        output_text,
        tags,
        metadata,
    ) = row
    return TraceSummary(
        trace_id=trace_id,
        project=project,
        session_id=session_id,
        user_id=user_id,
        root_span_id=root_span_id,
        name=name,
        span_kind=span_kind,
        start_time_ns=start_ns,
        end_time_ns=end_ns,
        latency_ms=latency_ms,
        span_count=span_count,
        error_count=error_count,
        total_tokens=total_tokens,
        cost=cost,
        status=status,
        input=input_text,
        output=output_text,
        tags=from_json(tags),
        metadata=from_json(metadata),
    )


TRACES = ListShape(
    select=f"SELECT {_COLUMNS} FROM traces t",
    sorts={
        "start_time": Sort("t.start_ns", "start_time_ns"),
        "latency": Sort("t.latency_ms", "latency_ms"),
        "tokens": Sort("t.total_tokens", "total_tokens"),
        "cost": Sort("t.cost", "cost"),
        "errors": Sort("t.error_count", "error_count"),
        "spans": Sort("t.span_count", "span_count"),
    },
    key_columns=("t.trace_id",),
    key_attributes=("trace_id",),
    make=_trace,
)


def _with_evaluations(connection: sqlite3.Connection, traces: list[TraceSummary]) -> None:
    found = evaluation_reads.select_trace_results(connection, [trace.trace_id for trace in traces])
    for trace in traces:
        trace.evaluations = found.get(trace.trace_id, [])


def list_traces(connection: sqlite3.Connection, query: ListQuery) -> Page[TraceSummary]:
    conditions = Conditions()
    conditions.add_set(
        (
            ("t.project = ?", query.project),
            ("t.user_id = ?", query.user_id),
            ("t.session_id = ?", query.session_id),
            ("t.end_ns >= ?", query.start_ns),
            ("t.start_ns <= ?", query.end_ns),
            ("t.status = ?", query.status),
            (
                "EXISTS (SELECT 1 FROM spans sp WHERE sp.trace_id = t.trace_id AND sp.span_kind = ?)",
                query.span_kind,
            ),
            ("EXISTS (SELECT 1 FROM spans sp WHERE sp.trace_id = t.trace_id AND sp.model = ?)", query.model),
        )
    )
    conditions.add_common("t", query)
    if query.has_negative_feedback is not None:
        conditions.add(
            ("" if query.has_negative_feedback else "NOT ")
            + "EXISTS (SELECT 1 FROM evaluations nf WHERE nf.trace_id = t.trace_id AND nf.source = ?"
            " AND NOT nf.passed)",
            FEEDBACK,
        )
    if query.q:
        pattern, match = like(query.q), match_expression(query.q)
        # The texts are read only for traces the index says may hold `q` (when it is long enough
        # to ask): the LIKE decides, the index only spares reading every text.
        candidate, candidate_params = (f"{CANDIDATE} AND ", [match]) if match else ("", [])
        conditions.add(
            f"(t.trace_id LIKE ? ESCAPE '\\' OR t.name LIKE ? ESCAPE '\\'"
            f" OR ({candidate}({TRACE_INPUT} LIKE ? ESCAPE '\\' OR {TRACE_OUTPUT} LIKE ? ESCAPE '\\')))",
            pattern,
            pattern,
            *candidate_params,
            pattern,
            pattern,
        )
    return page(connection, TRACES, conditions, query)


def select_trace(connection: sqlite3.Connection, trace_id: str) -> TraceSummary | None:
    row = connection.execute(f"{TRACES.select} WHERE t.trace_id = ?", (trace_id,)).fetchone()
    if row is None:
        return None
    summary = _trace(row)
    _with_evaluations(connection, [summary])
    return summary


_IN_SESSION = "FROM traces t INDEXED BY traces_by_session WHERE t.project = ? AND t.session_id = ?"


def select_session_turns(
    connection: sqlite3.Connection,
    project: str,
    session_id: str,
    limit: int | None = None,
    after: tuple[int, str] | None = None,
    before: tuple[int, str] | None = None,
) -> list[TraceSummary]:
    """Turns of the session in (start, trace id) order with their evaluation results: all of
    them, or `limit` from `after` (inclusive) on, or the `limit` right before `before`."""
    bounds = ""
    params: list[object] = [project, session_id]
    if after is not None:
        bounds = " AND (t.start_ns, t.trace_id) >= (?, ?)"
        params.extend(after)
    elif before is not None:
        bounds = " AND (t.start_ns, t.trace_id) < (?, ?)"
        params.extend(before)
    direction = "DESC" if before is not None else "ASC"
    tail = f" ORDER BY t.start_ns {direction}, t.trace_id {direction}"
    if limit is not None:
        tail += " LIMIT ?"
        params.append(limit)
    rows = connection.execute(f"SELECT {_COLUMNS} {_IN_SESSION}{bounds}{tail}", params).fetchall()
    if before is not None:
        rows.reverse()
    turns = [_trace(row) for row in rows]
    _with_evaluations(connection, turns)
    return turns


def select_turns_of_sessions(
    connection: sqlite3.Connection, project: str, session_ids: Sequence[str]
) -> list[TraceSummary]:
    """Every turn of these sessions, by (session, start, trace id), with their evaluation
    results: one index range of traces_by_session per session."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM traces t INDEXED BY traces_by_session WHERE t.project = ?"
        " AND t.session_id IN (SELECT value FROM json_each(?))"
        " ORDER BY t.session_id, t.start_ns, t.trace_id",
        (project, to_json(list(session_ids))),
    ).fetchall()
    turns = [_trace(row) for row in rows]
    _with_evaluations(connection, turns)
    return turns


def count_turns_before(
    connection: sqlite3.Connection, project: str, session_id: str, turn: tuple[int, str]
) -> int:
    """How many of the session's turns come before `turn` (start, trace id): an index range count."""
    (count,) = connection.execute(
        f"SELECT COUNT(*) {_IN_SESSION} AND (t.start_ns, t.trace_id) < (?, ?)", (project, session_id, *turn)
    ).fetchone()
    return int(count)


_FAILED_RESULT = "EXISTS (SELECT 1 FROM evaluations e WHERE e.trace_id = t.trace_id AND NOT e.passed)"


def select_failing_turns(connection: sqlite3.Connection, project: str, session_id: str) -> FailingTurns:
    """Each of the three over the session's index range (a turn fails on an error or on a result
    that did not pass: `base.turn_failed`, here in SQL)."""
    (count,) = connection.execute(
        f"SELECT COUNT(*) {_IN_SESSION} AND (t.error_count > 0 OR {_FAILED_RESULT})", (project, session_id)
    ).fetchone()
    if not count:
        return FailingTurns(0, None, None)
    by_error = connection.execute(
        f"SELECT t.start_ns, t.trace_id {_IN_SESSION} AND t.error_count > 0"
        " ORDER BY t.start_ns, t.trace_id LIMIT 1",
        (project, session_id),
    ).fetchone()
    by_result = connection.execute(
        f"SELECT t.start_ns, t.trace_id {_IN_SESSION} AND {_FAILED_RESULT}"
        " ORDER BY t.start_ns, t.trace_id LIMIT 1",
        (project, session_id),
    ).fetchone()
    return FailingTurns(
        int(count), tuple(by_error) if by_error else None, tuple(by_result) if by_result else None
    )


def select_trace_span_counts(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> dict[str, int]:
    """trace id -> stored span count, for those of these traces that have a row."""
    rows = connection.execute(
        "SELECT trace_id, span_count FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()
    return dict(rows)
