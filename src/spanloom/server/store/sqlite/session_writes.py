"""SQL of the write path on `sessions`: recounting sessions from their traces, and writing them.

A session's rollup is recounted from the covering index traces_by_session by three statements
for all the sessions of a project in a transaction, which leave the per-turn work to SQLite (C,
without the GIL) and bring into Python only what it cannot do cheaply: fetching every turn's
columns to add them up in Python cost a third of the writer's time once sessions had a few dozen
turns. (One statement with window functions for turn order and percentiles was four times slower
still.) The totals and the latencies come from one pass over the sessions' index ranges (they
were two statements over the same ranges). Each statement takes one project and its session ids
as a JSON array.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite.span_text import TRACE_INPUT, TRACE_OUTPUT
from spanloom.server.store.sqlite.statements import (
    execute_values,
    fetch_in_one_step,
    saturated_sum,
    upsert_statement,
)

_IN_SESSIONS = (
    "FROM traces INDEXED BY traces_by_session"
    " WHERE project = ? AND session_id IN (SELECT value FROM json_each(?))"
)


class SessionTotals(NamedTuple):
    session_id: str
    trace_count: int
    start_ns: int
    end_ns: int
    total_tokens: int
    cost_nanos: int
    error_count: int  # turns with a failed span
    labeled: int  # some turn has tags or metadata
    # The latency of every turn, in no order, as one text: a latency (integer nanoseconds over
    # 1e6) has at most 15 significant digits below 11 days, so the text SQLite writes reads back
    # as the very same float.
    latencies: str

    def latency_list(self) -> list[float]:
        return list(map(float, self.latencies.split(",")))


class SessionFirsts(NamedTuple):
    session_id: str
    user_id: str | None  # the first user a turn names
    first_input_trace: str | None
    last_output_trace: str | None


class SessionRow(NamedTuple):
    project: str
    session_id: str
    user_id: str | None
    trace_count: int
    start_ns: int
    end_ns: int
    total_tokens: int
    cost: float
    cost_nanos: int
    error_count: int
    latency_p50_ms: float
    latency_p95_ms: float
    first_input_trace: str | None
    last_output_trace: str | None
    # What the sessions list shows of those texts (turn_previews.py): kept here, a few hundred
    # bytes, so that a list page reads no span.
    first_input_preview: str | None
    last_output_preview: str | None
    tags: str  # JSON
    metadata: str  # JSON


_UPSERT_SESSION = upsert_statement("sessions", SessionRow._fields, key_columns=2)
# What a new turn changes in a stored session. SQLite rewrites an index on UPDATE only when a
# column it holds is in the SET list (not when its value changed), so a session whose other
# columns stay as stored is written with these alone: its start, project, user and replay_of
# (metadata) indexes are left untouched, and the replay index's expression is not evaluated.
_TURN_COLUMNS = (
    "trace_count",
    "end_ns",
    "total_tokens",
    "cost",
    "cost_nanos",
    "error_count",
    "latency_p50_ms",
    "latency_p95_ms",
    "last_output_trace",
    "last_output_preview",
)
_HEAD_COLUMNS = tuple(column for column in SessionRow._fields[2:] if column not in _TURN_COLUMNS)
_head = operator.attrgetter(*_HEAD_COLUMNS)
# The whole row still goes in: SQLite checks the NOT NULL columns of the row to insert before it
# finds the conflict.
_UPDATE_TURNS = (
    _UPSERT_SESSION[0],
    upsert_statement("sessions", (*SessionRow._fields[:2], *_TURN_COLUMNS), key_columns=2)[1],
)


def select_session_totals(
    connection: sqlite3.Connection, project: str, session_ids: Sequence[str]
) -> list[SessionTotals]:
    """The totals of those of these sessions that have traces."""
    rows = fetch_in_one_step(
        connection,
        f"SELECT session_id, COUNT(*), MIN(start_ns), MAX(end_ns), {saturated_sum('total_tokens')},"
        f" {saturated_sum('cost_nanos')}, SUM(error_count > 0), MAX(labeled), group_concat(latency_ms)"
        f" {_IN_SESSIONS} GROUP BY session_id",
        (project, to_json(list(session_ids))),
        len(SessionTotals._fields),
    )
    return [SessionTotals._make(row) for row in rows]


# Each an index seek into the session's turns in order (start, trace id): no sort, no scan.
_TURNS = "FROM traces INDEXED BY traces_by_session WHERE project = ?1 AND session_id = j.value"


def select_session_firsts(
    connection: sqlite3.Connection, project: str, session_ids: Sequence[str]
) -> dict[str, SessionFirsts]:
    """Of each of these sessions: the first user named, and the first turn with an input and the
    last with an output (None where there is none), by session id."""
    rows = fetch_in_one_step(
        connection,
        "SELECT j.value,"
        f" (SELECT user_id {_TURNS} AND user_id <> '' ORDER BY start_ns, trace_id LIMIT 1),"
        f" (SELECT trace_id {_TURNS} AND has_input ORDER BY start_ns, trace_id LIMIT 1),"
        f" (SELECT trace_id {_TURNS} AND has_output ORDER BY start_ns DESC, trace_id DESC LIMIT 1)"
        " FROM json_each(?2) AS j",
        (project, to_json(list(session_ids))),
        len(SessionFirsts._fields),
    )
    return {row[0]: SessionFirsts._make(row) for row in rows}


def select_stored_sessions(
    connection: sqlite3.Connection, project: str, session_ids: Sequence[str]
) -> dict[str, SessionRow]:
    """The stored rows of those of these sessions that have one, by session id."""
    # Not fetch_in_one_step: its JSON keeps 15 digits of a REAL, and these rows are exact.
    rows = connection.execute(
        f"SELECT {', '.join(SessionRow._fields)} FROM sessions"
        " WHERE project = ? AND session_id IN (SELECT value FROM json_each(?))",
        (project, to_json(list(session_ids))),
    )
    return {row[1]: SessionRow._make(row) for row in rows}


def select_trace_texts(
    connection: sqlite3.Connection, output: bool, trace_ids: Sequence[str]
) -> dict[str, str | None]:
    """The input (or, `output`, the output) of each of these traces, whole, by trace id. Row by
    row: the texts can be long, and packing them into one JSON value (fetch_in_one_step) would
    escape and parse every byte."""
    rows = connection.execute(
        f"SELECT t.trace_id, {TRACE_OUTPUT if output else TRACE_INPUT} FROM traces t"
        " WHERE t.trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()
    return dict(rows)


def select_session_user_counts(
    connection: sqlite3.Connection, project: str, pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str, int]]:
    """(session id, user id, traces of the session naming the user) for these pairs."""
    return fetch_in_one_step(  # rows of three columns, as selected
        connection,
        "SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),"
        " (SELECT COUNT(*) FROM traces INDEXED BY traces_by_session WHERE project = ?1"
        " AND session_id = json_extract(j.value, '$[0]') AND user_id = json_extract(j.value, '$[1]'))"
        " FROM json_each(?2) AS j",
        (project, to_json([list(pair) for pair in pairs])),
        3,
    )


def select_session_labels(
    connection: sqlite3.Connection, project: str, session_id: str
) -> list[tuple[str, str]]:
    """(tags, metadata) of the session's traces that have any, in turn order."""
    return connection.execute(
        "SELECT tags, metadata FROM traces WHERE project = ? AND session_id = ? AND labeled"
        " ORDER BY start_ns, trace_id",
        (project, session_id),
    ).fetchall()


def upsert_sessions(connection: sqlite3.Connection, rows: Iterable[SessionRow]) -> None:
    execute_values(connection, _UPSERT_SESSION[0], len(SessionRow._fields), rows, _UPSERT_SESSION[1])


def write_sessions(
    connection: sqlite3.Connection, rows: Sequence[SessionRow], stored: Mapping[str, SessionRow]
) -> None:
    """Write these rows of one project's sessions, `stored` their rows as they are now: those
    whose columns other than a turn's (`_TURN_COLUMNS`) equal the stored row's in those alone,
    the others whole."""
    turns, whole = [], []
    for row in rows:
        kept = stored.get(row.session_id)
        if kept is not None and _head(row) == _head(kept):
            turns.append(row)
        else:
            whole.append(row)
    upsert_sessions(connection, whole)
    execute_values(connection, _UPDATE_TURNS[0], len(SessionRow._fields), turns, _UPDATE_TURNS[1])


def delete_sessions(connection: sqlite3.Connection, project: str, session_ids: Iterable[str]) -> None:
    connection.executemany(
        "DELETE FROM sessions WHERE project = ? AND session_id = ?",
        [(project, session_id) for session_id in session_ids],
    )


class SessionTexts(NamedTuple):
    project: str
    session_id: str
    first_input: str | None
    last_output: str | None


def select_session_texts(
    connection: sqlite3.Connection, after: tuple[str, str], limit: int
) -> list[SessionTexts]:
    """Up to `limit` sessions after `after` in (project, session id) order, with their first
    input and last output whole: the schema 11 upgrade writes their previews a chunk at a time."""
    rows = connection.execute(
        f"SELECT s.project, s.session_id, (SELECT {TRACE_INPUT} FROM traces t WHERE t.trace_id ="
        f" s.first_input_trace), (SELECT {TRACE_OUTPUT} FROM traces t WHERE t.trace_id = s.last_output_trace)"
        " FROM sessions s WHERE (s.project, s.session_id) > (?, ?) ORDER BY s.project, s.session_id LIMIT ?",
        (*after, limit),
    ).fetchall()
    return [SessionTexts._make(row) for row in rows]


def write_previews(
    connection: sqlite3.Connection, previews: Iterable[tuple[str | None, str | None, str, str]]
) -> None:
    """(first input preview, last output preview, project, session id) of sessions."""
    connection.executemany(
        "UPDATE sessions SET first_input_preview = ?, last_output_preview = ?"
        " WHERE project = ? AND session_id = ?",
        previews,
    )


def select_session_keys(
    connection: sqlite3.Connection, after: tuple[str, str], limit: int
) -> list[tuple[str, str]]:
    """Up to `limit` distinct (project, session id) of the traces after `after`, in order: the
    migration rebuilds sessions a chunk at a time."""
    return connection.execute(
        "SELECT DISTINCT project, session_id FROM traces INDEXED BY traces_by_session"
        " WHERE session_id IS NOT NULL AND (project, session_id) > (?, ?)"
        " ORDER BY project, session_id LIMIT ?",
        (*after, limit),
    ).fetchall()
