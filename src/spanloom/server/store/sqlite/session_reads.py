"""SQL of the read path for sessions: the list, one session, and where an id exists."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from spanloom.server.store.base import ListQuery, Page, SessionSummary
from spanloom.server.store.sqlite import evaluation_reads
from spanloom.server.store.sqlite.list_paging import Conditions, ListShape, Sort, eval_sort, like, page
from spanloom.server.store.sqlite.trace_reads import TRACE_INPUT, TRACE_OUTPUT, span_text

_FIRST_INPUT = span_text("input", "t.input_span_id")
_LAST_OUTPUT = span_text("output", "t.output_span_id")
_COLUMNS = (
    "s.project, s.session_id, s.user_id, s.trace_count,"
    # The texts live once, on the spans they came from (through the trace's input/output span):
    # session and trace rows stay small, so rewriting them as turns arrive stays cheap.
    f" (SELECT {_FIRST_INPUT} FROM traces t WHERE t.trace_id = s.first_input_trace),"
    f" (SELECT {_LAST_OUTPUT} FROM traces t WHERE t.trace_id = s.last_output_trace),"
    " s.start_ns, s.end_ns,"
    " s.total_tokens, s.cost, s.error_count, s.latency_p50_ms, s.latency_p95_ms, s.tags, s.metadata"
)


def _session(row: tuple[Any, ...]) -> SessionSummary:
    (
        project,
        session_id,
        user_id,
        trace_count,
        first_input,
        last_output,
        start_ns,
        end_ns,
        total_tokens,
        cost,
        error_count,
        latency_p50_ms,
        latency_p95_ms,
        tags,
        metadata,
    ) = row
    return SessionSummary(
        session_id=session_id,
        project=project,
        user_id=user_id,
        trace_count=trace_count,
        first_input=first_input,
        last_output=last_output,
        start_time_ns=start_ns,
        end_time_ns=end_ns,
        total_tokens=total_tokens,
        cost=cost,
        error_count=error_count,
        latency_p50_ms=latency_p50_ms,
        latency_p95_ms=latency_p95_ms,
        tags=json.loads(tags),
        metadata=json.loads(metadata),
    )


SESSIONS = ListShape(
    select=f"SELECT {_COLUMNS} FROM sessions s",
    sorts={
        "start_time": Sort("s.start_ns", "start_time_ns"),
        "last_activity": Sort("s.end_ns", "end_time_ns"),
        "turns": Sort("s.trace_count", "trace_count"),
        "tokens": Sort("s.total_tokens", "total_tokens"),
        "cost": Sort("s.cost", "cost"),
        "latency": Sort("s.latency_p50_ms", "latency_p50_ms"),
        "errors": Sort("s.error_count", "error_count"),
    },
    key_columns=("s.project", "s.session_id"),
    key_attributes=("project", "session_id"),
    make=_session,
)


def with_evaluations(connection: sqlite3.Connection) -> Callable[[list[SessionSummary]], None]:
    """Fills in each session's evaluation aggregates, in one query."""

    def enrich(items: list[SessionSummary]) -> None:
        found = evaluation_reads.select_session_aggregates(
            connection, [(item.project, item.session_id) for item in items]
        )
        for item in items:
            item.evaluations = found.get((item.project, item.session_id), {})

    return enrich


def list_sessions(connection: sqlite3.Connection, query: ListQuery) -> Page[SessionSummary]:
    conditions = Conditions()
    conditions.add_set(
        (
            ("s.project = ?", query.project),
            ("s.user_id = ?", query.user_id),
            ("s.end_ns >= ?", query.start_ns),
            ("s.start_ns <= ?", query.end_ns),
        )
    )
    conditions.add_common("s", query)
    if query.q:
        conditions.add(
            "(s.session_id LIKE ? ESCAPE '\\' OR s.user_id LIKE ? ESCAPE '\\'"
            " OR EXISTS (SELECT 1 FROM traces t WHERE t.project = s.project AND t.session_id = s.session_id"
            f" AND ({TRACE_INPUT} LIKE ? ESCAPE '\\' OR {TRACE_OUTPUT} LIKE ? ESCAPE '\\')))",
            *[like(query.q)] * 4,
        )
    sorts, join, join_params = eval_sort(
        query, SESSIONS.sorts, "session_evaluations", ("project", "session_id"), SESSIONS.key_columns
    )
    return page(
        connection, SESSIONS, conditions, query, sorts, join, join_params, with_evaluations(connection)
    )


def select_session(connection: sqlite3.Connection, project: str, session_id: str) -> SessionSummary | None:
    row = connection.execute(
        f"{SESSIONS.select} WHERE s.project = ? AND s.session_id = ?", (project, session_id)
    ).fetchone()
    if row is None:
        return None
    summary = _session(row)
    with_evaluations(connection)([summary])
    return summary


def select_session_projects(connection: sqlite3.Connection, session_id: str) -> list[str]:
    """The projects with a session of this id, by name (an index seek per project)."""
    rows = connection.execute(
        "SELECT project FROM sessions WHERE session_id = ? ORDER BY project", (session_id,)
    ).fetchall()
    return [row[0] for row in rows]
