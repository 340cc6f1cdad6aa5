"""SQL of the write path: span inserts and rollup rows. One function per statement, values bound."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from spanloom.server.store.base import SpanRecord


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def span_row(span: SpanRecord) -> tuple[Any, ...]:
    return (
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.project,
        span.session_id,
        span.user_id,
        span.name,
        span.otel_kind,
        span.span_kind,
        span.start_time_ns,
        span.end_time_ns,
        span.status_code,
        span.status_message,
        span.model,
        span.prompt_tokens,
        span.completion_tokens,
        span.total_tokens,
        span.cost,
        _json(span.tags),
        _json(span.metadata),
        span.input,
        span.output,
        _json(span.attributes),
        _json(span.events),
        _json(span.resource),
    )


def insert_spans(connection: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert spans; one already stored under (trace_id, span_id) is kept as it is (a retry)."""
    connection.executemany(
        "INSERT OR IGNORE INTO spans (trace_id, span_id, parent_span_id, project, session_id, user_id,"
        " name, otel_kind, span_kind, start_ns, end_ns, status_code, status_message, model,"
        " prompt_tokens, completion_tokens, total_tokens, cost, tags, metadata, input, output,"
        " attributes, events, resource)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


# Columns of select_trace_spans, in order (the small ones only: no input/output text).
TRACE_SPAN_COLUMNS = (
    "span_id",
    "parent_span_id",
    "project",
    "session_id",
    "user_id",
    "name",
    "span_kind",
    "start_ns",
    "end_ns",
    "status_code",
    "total_tokens",
    "cost",
    "tags",
    "metadata",
    "has_input",
    "has_output",
)


def select_trace_spans(connection: sqlite3.Connection, trace_id: str) -> list[tuple[Any, ...]]:
    return connection.execute(
        "SELECT span_id, parent_span_id, project, session_id, user_id, name, span_kind, start_ns, end_ns,"
        " status_code, total_tokens, cost, tags, metadata, input IS NOT NULL, output IS NOT NULL"
        " FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id",
        (trace_id,),
    ).fetchall()


def select_span_input(connection: sqlite3.Connection, trace_id: str, span_id: str) -> str | None:
    row = connection.execute(
        "SELECT input FROM spans WHERE trace_id = ? AND span_id = ?", (trace_id, span_id)
    ).fetchone()
    return row[0] if row else None


def select_span_output(connection: sqlite3.Connection, trace_id: str, span_id: str) -> str | None:
    row = connection.execute(
        "SELECT output FROM spans WHERE trace_id = ? AND span_id = ?", (trace_id, span_id)
    ).fetchone()
    return row[0] if row else None


def select_trace_owner(connection: sqlite3.Connection, trace_id: str) -> tuple[str | None, str | None] | None:
    """The (session_id, user_id) a trace's rollup names now, or None if it has no rollup yet."""
    return connection.execute(
        "SELECT session_id, user_id FROM traces WHERE trace_id = ?", (trace_id,)
    ).fetchone()


def replace_trace(connection: sqlite3.Connection, row: Sequence[Any]) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO traces (trace_id, project, session_id, user_id, root_span_id, name,"
        " span_kind, start_ns, end_ns, latency_ms, span_count, error_count, total_tokens, cost, status,"
        " tags, metadata, input, output)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )


# Columns of select_session_traces, in order.
SESSION_TRACE_COLUMNS = (
    "trace_id",
    "project",
    "user_id",
    "start_ns",
    "end_ns",
    "latency_ms",
    "total_tokens",
    "cost",
    "error_count",
    "tags",
    "metadata",
    "has_input",
    "has_output",
)


def select_session_traces(connection: sqlite3.Connection, session_id: str) -> list[tuple[Any, ...]]:
    return connection.execute(
        "SELECT trace_id, project, user_id, start_ns, end_ns, latency_ms, total_tokens, cost, error_count,"
        " tags, metadata, input IS NOT NULL, output IS NOT NULL"
        " FROM traces WHERE session_id = ? ORDER BY start_ns, trace_id",
        (session_id,),
    ).fetchall()


def select_trace_input(connection: sqlite3.Connection, trace_id: str) -> str | None:
    row = connection.execute("SELECT input FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
    return row[0] if row else None


def select_trace_output(connection: sqlite3.Connection, trace_id: str) -> str | None:
    row = connection.execute("SELECT output FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
    return row[0] if row else None


def replace_session(connection: sqlite3.Connection, row: Sequence[Any]) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO sessions (session_id, project, user_id, trace_count, start_ns, end_ns,"
        " total_tokens, cost, error_count, latency_p50_ms, latency_p95_ms, tags, metadata, first_input,"
        " last_output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )


def delete_session(connection: sqlite3.Connection, session_id: str) -> None:
    connection.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))


def select_user_totals(connection: sqlite3.Connection, user_id: str) -> tuple[Any, ...]:
    """(traces, sessions, tokens, cost, failing traces, first start, last end) over the user's traces."""
    return connection.execute(
        "SELECT COUNT(*), COUNT(DISTINCT session_id), COALESCE(SUM(total_tokens), 0),"
        " COALESCE(SUM(cost), 0.0), COALESCE(SUM(error_count > 0), 0), MIN(start_ns), MAX(end_ns)"
        " FROM traces WHERE user_id = ?",
        (user_id,),
    ).fetchone()


def select_user_first_project(connection: sqlite3.Connection, user_id: str) -> str | None:
    row = connection.execute(
        "SELECT project FROM traces WHERE user_id = ? ORDER BY start_ns LIMIT 1", (user_id,)
    ).fetchone()
    return row[0] if row else None


def replace_user(connection: sqlite3.Connection, row: Sequence[Any]) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO users (user_id, project, session_count, trace_count, total_tokens, cost,"
        " error_count, first_seen_ns, last_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )


def delete_user(connection: sqlite3.Connection, user_id: str) -> None:
    connection.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
