"""SQL of the list of individual evaluation results (`Store.list_evaluations`), in the order
evaluation_list.py gives: results on spans and turns by the evaluations table's primary key,
then results on sessions by the session_results table's. A page is read from its cursor on along
that key (the other filters are written `+column` so no index of theirs replaces it), or, for one
session, from that session's traces (traces_by_session) and sorted: a session's results are few.

Only results on stored traces are listed: feedback waiting for its trace's spans is not yet a
result of the project (it counts nowhere until they arrive), as in the other backends. Every value
is a bound parameter; the SQL text is fixed here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import Page
from spanloom.server.store.evaluation_list import (
    EvaluationQuery,
    EvaluationResult,
    evaluation_page,
    result_on_session,
    result_on_trace,
)

_TRACE_COLUMNS = (
    "SELECT e.project, e.trace_id, e.span_id, e.name, e.source, e.result_key, e.score, e.label,"
    " e.explanation, e.time_ns, e.details, t.session_id, t.user_id"
)
_BY_KEY = (
    f"{_TRACE_COLUMNS} FROM evaluations e JOIN traces t ON t.trace_id = e.trace_id AND t.project = e.project"
)
# CROSS JOIN keeps traces the outer loop: the session's few traces first, then their results.
_BY_SESSION = (
    f"{_TRACE_COLUMNS} FROM traces t CROSS JOIN evaluations e"
    " ON e.trace_id = t.trace_id AND +e.project = t.project"
)
_TRACE_ORDER = " ORDER BY e.trace_id, e.span_id, e.name, e.source, e.result_key LIMIT ?"
_ON_SESSIONS = (
    "SELECT r.project, r.session_id, r.name, r.source, r.result_key, r.score, r.label, r.explanation,"
    " r.time_ns, r.details, s.user_id FROM session_results r"
    " LEFT JOIN sessions s ON s.project = r.project AND s.session_id = r.session_id"
)
_SESSION_ORDER = " ORDER BY r.project, r.session_id, r.name, r.source, r.result_key LIMIT ?"


def _where(filters: Sequence[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """The WHERE of the (fragment, value) pairs whose value is not None."""
    given = [(fragment, value) for fragment, value in filters if value is not None]
    if not given:
        return "", []
    return " WHERE " + " AND ".join(fragment for fragment, _ in given), [value for _, value in given]


def _on_traces(
    connection: sqlite3.Connection, query: EvaluationQuery, after: tuple[str, ...] | None, limit: int
) -> list[EvaluationResult]:
    filters: list[tuple[str, Any]] = [
        ("+e.project = ?", query.project),
        ("+e.name = ?", query.name),
        ("+e.source = ?", query.source),
        ("e.trace_id = ?", query.trace_id),
        ("+e.span_id = ?", query.span_id),
        ("+e.time_ns >= ?", query.start_ns),
        ("+e.time_ns <= ?", query.end_ns),
    ]
    select = _BY_KEY
    if query.session_id is not None:
        select = _BY_SESSION
        filters.append(("t.session_id = ?", query.session_id))
        # The session's projects through sessions_by_id when no project is named.
        filters.append(
            ("t.project = ?", query.project)
            if query.project is not None
            else ("t.project IN (SELECT project FROM sessions WHERE session_id = ?)", query.session_id)
        )
    where, params = _where(filters)
    if after is not None:
        where += " AND " if where else " WHERE "
        where += "(e.trace_id, e.span_id, e.name, e.source, e.result_key) > (?, ?, ?, ?, ?)"
        params.extend(after)
    rows = connection.execute(select + where + _TRACE_ORDER, (*params, limit)).fetchall()
    return [result_on_trace(*row) for row in rows]


def _on_sessions(
    connection: sqlite3.Connection, query: EvaluationQuery, after: tuple[str, ...] | None, limit: int
) -> list[EvaluationResult]:
    filters: list[tuple[str, Any]] = [
        ("r.project = ?", query.project),
        ("r.session_id = ?", query.session_id),
        ("r.name = ?", query.name),
        ("r.source = ?", query.source),
        ("r.time_ns >= ?", query.start_ns),
        ("r.time_ns <= ?", query.end_ns),
    ]
    where, params = _where(filters)
    if after is not None:
        where += " AND " if where else " WHERE "
        where += "(r.project, r.session_id, r.name, r.source, r.result_key) > (?, ?, ?, ?, ?)"
        params.extend(after)
    rows = connection.execute(_ON_SESSIONS + where + _SESSION_ORDER, (*params, limit)).fetchall()
    return [result_on_session(*row) for row in rows]


def list_evaluations(connection: sqlite3.Connection, query: EvaluationQuery) -> Page[EvaluationResult]:
    return evaluation_page(
        query,
        lambda part_query, after, limit: _on_traces(connection, part_query, after, limit),
        lambda part_query, after, limit: _on_sessions(connection, part_query, after, limit),
    )
