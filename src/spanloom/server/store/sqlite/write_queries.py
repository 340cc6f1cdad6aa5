"""SQL of the write path: span inserts and rollup rows. One function per statement, values bound.

Statements that read many traces at once take their ids as one JSON array parameter
(`json_each(?)`): one statement per transaction instead of one per trace.

Rows go in as multi-row statements and many-row reads come back in one step (`statements`, which
says why); the rows of spans are built before the writer takes them (`span_rows`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from spanloom.server.store.sqlite.statements import (
    execute_values,
    fetch_in_one_step,
    to_json,
    upsert_statement,
)

_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, project, session_id, user_id, name, otel_kind, span_kind,"
    " start_ns, end_ns, status_code, status_message, model, prompt_tokens, completion_tokens,"
    " total_tokens, cost, has_input, has_output, input_key, input_at, output_key, output_at, tags,"
    " metadata, input, output, attributes, events, resource"
)
_INSERT_SPANS = f"INSERT OR IGNORE INTO spans ({_SPAN_COLUMNS})"


def insert_spans(connection: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert spans; one already stored under (trace_id, span_id) is kept as it is (a retry, or
    a second copy in the same batch: rows go in in order)."""
    if rows:
        execute_values(connection, _INSERT_SPANS, len(rows[0]), rows)


def select_stored_spans(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """The small columns of every span of these traces, by trace then (start, span id): the
    layout of `trace_rollup.SpanFacts` with the trace id first."""
    return connection.execute(
        "SELECT trace_id, span_id, parent_span_id, project, session_id, user_id, name, span_kind,"
        " start_ns, end_ns, status_code, total_tokens, cost, tags, metadata, has_input, has_output"
        " FROM spans WHERE trace_id IN (SELECT value FROM json_each(?))"
        " ORDER BY trace_id, start_ns, span_id",
        (to_json(list(trace_ids)),),
    ).fetchall()


# The columns of a trace row in order, without the input/output span ids at its end.
TRACE_COLUMNS = (
    "trace_id",
    "project",
    "session_id",
    "user_id",
    "root_span_id",
    "name",
    "span_kind",
    "start_ns",
    "end_ns",
    "latency_ms",
    "span_count",
    "error_count",
    "total_tokens",
    "cost",
    "cost_nanos",
    "status",
    "has_input",
    "has_output",
    "labeled",
    "tags",
    "metadata",
)
_UPSERT_TRACE = upsert_statement("traces", (*TRACE_COLUMNS, "input_span_id", "output_span_id"))


def select_traces(connection: sqlite3.Connection, trace_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """The stored rows (TRACE_COLUMNS) of those of these traces that have one."""
    return connection.execute(
        f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()


def select_trace_span_counts(
    connection: sqlite3.Connection, trace_ids: Sequence[str]
) -> list[tuple[str, int]]:
    """(trace id, stored span count) of those of these traces that have a row (ingest's budget)."""
    return connection.execute(
        "SELECT trace_id, span_count FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()


def upsert_traces(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Write trace rows (TRACE_COLUMNS plus input_span_id, output_span_id)."""
    execute_values(connection, _UPSERT_TRACE[0], len(TRACE_COLUMNS) + 2, rows, _UPSERT_TRACE[1])


# A session's rollup is recounted from the covering index traces_by_session by four statements
# for all the sessions of a transaction, which leave the per-turn work to SQLite (C, without the
# GIL) and bring into Python only what it cannot do cheaply: fetching every turn's columns to add
# them up in Python cost a third of the writer's time once sessions had a few dozen turns. (One
# statement with window functions for turn order and percentiles was four times slower still.)
_IN_SESSIONS = "FROM traces INDEXED BY traces_by_session WHERE session_id IN (SELECT value FROM json_each(?))"
SESSION_TOTAL_COLUMNS = (
    "session_id",
    "trace_count",
    "start_ns",
    "end_ns",
    "total_tokens",
    "cost_nanos",
    "error_count",
    "labeled",
)


def select_session_totals(
    connection: sqlite3.Connection, session_ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """SESSION_TOTAL_COLUMNS of those of these sessions that have traces."""
    return fetch_in_one_step(
        connection,
        "SELECT session_id, COUNT(*), MIN(start_ns), MAX(end_ns), SUM(total_tokens), SUM(cost_nanos),"
        f" SUM(error_count > 0), MAX(labeled) {_IN_SESSIONS} GROUP BY session_id",
        (to_json(list(session_ids)),),
        len(SESSION_TOTAL_COLUMNS),
    )


def select_session_latencies(
    connection: sqlite3.Connection, session_ids: Sequence[str]
) -> dict[str, list[float]]:
    """The latency of every trace of these sessions, by session. Each session's come as one text
    (a latency, integer nanoseconds over 1e6, has at most 15 significant digits below 11 days,
    so the text SQLite writes reads back as the very same float)."""
    rows = fetch_in_one_step(
        connection,
        f"SELECT session_id, group_concat(latency_ms) {_IN_SESSIONS} GROUP BY session_id",
        (to_json(list(session_ids)),),
        2,
    )
    return {session_id: [float(text) for text in latencies.split(",")] for session_id, latencies in rows}


# Each an index seek into the session's turns in order (start, trace id): no sort, no scan.
_TURNS = "FROM traces INDEXED BY traces_by_session WHERE session_id = j.value"
SESSION_FIRST_COLUMNS = ("session_id", "project", "user_id", "first_input_trace", "last_output_trace")


def select_session_firsts(
    connection: sqlite3.Connection, session_ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """SESSION_FIRST_COLUMNS of each of these sessions: the first turn's project, the first user
    named, the first turn with an input and the last with an output (None where there is none)."""
    return fetch_in_one_step(
        connection,
        f"SELECT j.value, (SELECT project {_TURNS} ORDER BY start_ns, trace_id LIMIT 1),"
        f" (SELECT user_id {_TURNS} AND user_id <> '' ORDER BY start_ns, trace_id LIMIT 1),"
        f" (SELECT trace_id {_TURNS} AND has_input ORDER BY start_ns, trace_id LIMIT 1),"
        f" (SELECT trace_id {_TURNS} AND has_output ORDER BY start_ns DESC, trace_id DESC LIMIT 1)"
        " FROM json_each(?) AS j",
        (to_json(list(session_ids)),),
        len(SESSION_FIRST_COLUMNS),
    )


def select_session_user_counts(
    connection: sqlite3.Connection, pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str, int]]:
    """(session id, user id, traces of the session naming the user) for these pairs."""
    return fetch_in_one_step(  # type: ignore[return-value]
        connection,
        "SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),"
        " (SELECT COUNT(*) FROM traces INDEXED BY traces_by_session"
        " WHERE session_id = json_extract(j.value, '$[0]') AND user_id = json_extract(j.value, '$[1]'))"
        " FROM json_each(?) AS j",
        (to_json([list(pair) for pair in pairs]),),
        3,
    )


def select_session_labels(connection: sqlite3.Connection, session_id: str) -> list[tuple[str, str]]:
    """(tags, metadata) of the session's traces that have any, in turn order."""
    return connection.execute(
        "SELECT tags, metadata FROM traces WHERE session_id = ? AND labeled ORDER BY start_ns, trace_id",
        (session_id,),
    ).fetchall()


# The columns of a session row, in order.
SESSION_COLUMNS = (
    "session_id",
    "project",
    "user_id",
    "trace_count",
    "start_ns",
    "end_ns",
    "total_tokens",
    "cost",
    "cost_nanos",
    "error_count",
    "latency_p50_ms",
    "latency_p95_ms",
    "first_input_trace",
    "last_output_trace",
    "tags",
    "metadata",
)
_UPSERT_SESSION = upsert_statement("sessions", SESSION_COLUMNS)


def select_session(connection: sqlite3.Connection, session_id: str) -> tuple[Any, ...] | None:
    return connection.execute(
        f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE session_id = ?", (session_id,)
    ).fetchone()


def upsert_sessions(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    execute_values(connection, _UPSERT_SESSION[0], len(SESSION_COLUMNS), rows, _UPSERT_SESSION[1])


def delete_sessions(connection: sqlite3.Connection, session_ids: Iterable[str]) -> None:
    connection.executemany("DELETE FROM sessions WHERE session_id = ?", [(id_,) for id_ in session_ids])


# The columns of a user row, in order.
USER_COLUMNS = (
    "user_id",
    "project",
    "session_count",
    "trace_count",
    "total_tokens",
    "cost",
    "cost_nanos",
    "error_count",
    "first_seen_ns",
    "last_seen_ns",
    "first_trace_id",
)
_UPSERT_USER = upsert_statement("users", USER_COLUMNS)


def select_users(connection: sqlite3.Connection, user_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """The stored rows (USER_COLUMNS) of these users. Their `cost` may come rounded to 15 digits:
    the writer recomputes it from the exact `cost_nanos`."""
    return fetch_in_one_step(
        connection,
        f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE user_id IN (SELECT value FROM json_each(?))",
        (to_json(list(user_ids)),),
        len(USER_COLUMNS),
    )


def select_user_totals(connection: sqlite3.Connection, user_id: str) -> tuple[Any, ...]:
    """(traces, sessions, tokens, cost nanos, failing traces, first start, last end) of a user."""
    return connection.execute(
        "SELECT COUNT(*), COUNT(DISTINCT session_id), COALESCE(SUM(total_tokens), 0),"
        " COALESCE(SUM(cost_nanos), 0), COALESCE(SUM(error_count > 0), 0), MIN(start_ns), MAX(end_ns)"
        " FROM traces WHERE user_id = ?",
        (user_id,),
    ).fetchone()


def select_user_first_trace(connection: sqlite3.Connection, user_id: str) -> tuple[str, str] | None:
    """(trace_id, project) of the user's first trace by (start, trace id)."""
    return connection.execute(
        "SELECT trace_id, project FROM traces WHERE user_id = ? ORDER BY start_ns, trace_id LIMIT 1",
        (user_id,),
    ).fetchone()


def upsert_users(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    execute_values(connection, _UPSERT_USER[0], len(USER_COLUMNS), rows, _UPSERT_USER[1])


def delete_user(connection: sqlite3.Connection, user_id: str) -> None:
    connection.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
