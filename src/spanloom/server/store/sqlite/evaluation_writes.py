"""SQL of the write path of evaluation results: finding the span a result judges, writing results,
and the per-session (recounted) and per-user (delta) aggregate rows. One function per statement;
values are bound parameters, lists of ids one JSON array (`json_each(?)`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

from spanloom.server.store.json_values import to_json


class TraceOwner(NamedTuple):
    project: str
    session_id: str | None
    user_id: str | None
    root_span_id: str | None


class EvaluationRow(NamedTuple):
    trace_id: str
    span_id: str  # '' for a result on the whole trace (feedback on a turn)
    name: str
    source: str
    result_key: str
    project: str
    score: float | None
    label: str | None
    passed: int
    time_ns: int
    explanation: str | None
    details: str  # JSON: e.g. who gave a feedback

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What a result replaces a stored one by: (trace, span, name, source, key)."""
        return self.trace_id, self.span_id, self.name, self.source, self.result_key


class SessionResultRow(NamedTuple):
    project: str
    session_id: str
    name: str
    source: str
    result_key: str
    score: float | None
    label: str | None
    passed: int
    time_ns: int
    explanation: str | None
    details: str  # JSON

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return self.project, self.session_id, self.name, self.source, self.result_key


class SessionAggregateRow(NamedTuple):
    name: str
    result_count: int
    scored: int
    score_micros: int
    passed: int
    mean_score: float | None
    worst_trace_id: str | None
    worst_span_id: str | None


class UserAggregateRow(NamedTuple):
    project: str
    user_id: str
    name: str
    result_count: int
    scored: int
    score_micros: int
    passed: int
    mean_score: float | None


# --- resolving the span a result judges ---
def select_trace_owners(connection: sqlite3.Connection, trace_ids: Iterable[str]) -> dict[str, TraceOwner]:
    """trace id -> its project, session, user and root span, for the stored traces among these."""
    rows = connection.execute(
        "SELECT trace_id, project, session_id, user_id, root_span_id FROM traces"
        " WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()
    return {row[0]: TraceOwner._make(row[1:]) for row in rows}


def select_stored_spans(
    connection: sqlite3.Connection, keys: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those of these (trace id, span id) that are stored: a primary-key seek each."""
    rows = connection.execute(
        "SELECT trace_id, span_id FROM spans WHERE (trace_id, span_id) IN"
        " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
        (to_json([list(key) for key in keys]),),
    ).fetchall()
    return set(rows)


def select_traces_of_span_ids(
    connection: sqlite3.Connection, span_ids: Iterable[str]
) -> list[tuple[str, str, str]]:
    """(span id, trace id, project) of stored spans with these ids. There is no span_id index (see
    the schema): this scans the primary-key index (trace_id, span_id), a few dozen bytes per span,
    not the span rows; INDEXED BY keeps the planner from scanning the table instead."""
    return connection.execute(
        "SELECT s.span_id, s.trace_id, t.project FROM spans s INDEXED BY sqlite_autoindex_spans_1"
        " JOIN traces t ON t.trace_id = s.trace_id WHERE s.span_id IN (SELECT value FROM json_each(?))",
        (to_json(list(span_ids)),),
    ).fetchall()


# --- results ---
_UPSERT_EVALUATION = (
    f"INSERT INTO evaluations ({', '.join(EvaluationRow._fields)}) VALUES ({', '.join('?' * 12)})"
    " ON CONFLICT (trace_id, span_id, name, source, result_key) DO UPDATE SET project = excluded.project,"
    " score = excluded.score, label = excluded.label, passed = excluded.passed,"
    " time_ns = excluded.time_ns, explanation = excluded.explanation, details = excluded.details"
)


def select_evaluations_of_traces(
    connection: sqlite3.Connection, trace_ids: Iterable[str]
) -> list[EvaluationRow]:
    rows = connection.execute(
        f"SELECT {', '.join(EvaluationRow._fields)} FROM evaluations"
        " WHERE trace_id IN (SELECT value FROM json_each(?))",
        (to_json(list(trace_ids)),),
    ).fetchall()
    return [EvaluationRow._make(row) for row in rows]


def upsert_evaluations(connection: sqlite3.Connection, rows: Iterable[EvaluationRow]) -> None:
    connection.executemany(_UPSERT_EVALUATION, rows)


# --- session aggregates (recounted) ---
def select_session_results(
    connection: sqlite3.Connection, project: str, session_id: str
) -> list[tuple[str, str, str, float | None, int]]:
    """(trace_id, span_id, name, score, passed) of every result on the session's traces, and on
    the session itself (with empty trace and span ids)."""
    return connection.execute(
        "SELECT e.trace_id, e.span_id, e.name, e.score, e.passed FROM traces t INDEXED BY traces_by_session"
        " JOIN evaluations e ON e.trace_id = t.trace_id WHERE t.project = ?1 AND t.session_id = ?2"
        " UNION ALL SELECT '', '', name, score, passed FROM session_results"
        " WHERE project = ?1 AND session_id = ?2",
        (project, session_id),
    ).fetchall()


def replace_session_aggregates(
    connection: sqlite3.Connection, project: str, session_id: str, rows: Iterable[SessionAggregateRow]
) -> None:
    connection.execute(
        "DELETE FROM session_evaluations WHERE project = ? AND session_id = ?", (project, session_id)
    )
    connection.executemany(
        "INSERT INTO session_evaluations (project, session_id, name, result_count, scored, score_micros,"
        " passed, mean_score, worst_trace_id, worst_span_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(project, session_id, *row) for row in rows],
    )


# --- user aggregates (deltas) ---
def select_user_aggregates(
    connection: sqlite3.Connection, project: str, user_ids: Iterable[str]
) -> list[UserAggregateRow]:
    rows = connection.execute(
        f"SELECT {', '.join(UserAggregateRow._fields)} FROM user_evaluations"
        " WHERE project = ? AND user_id IN (SELECT value FROM json_each(?))",
        (project, to_json(list(user_ids))),
    ).fetchall()
    return [UserAggregateRow._make(row) for row in rows]


def upsert_user_aggregates(connection: sqlite3.Connection, rows: Iterable[UserAggregateRow]) -> None:
    connection.executemany(
        f"INSERT INTO user_evaluations ({', '.join(UserAggregateRow._fields)})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (project, user_id, name) DO UPDATE SET result_count = excluded.result_count,"
        " scored = excluded.scored, score_micros = excluded.score_micros, passed = excluded.passed,"
        " mean_score = excluded.mean_score",
        rows,
    )


def delete_user_aggregates(connection: sqlite3.Connection, keys: Iterable[tuple[str, str, str]]) -> None:
    """keys: (project, user_id, name)."""
    connection.executemany(
        "DELETE FROM user_evaluations WHERE project = ? AND user_id = ? AND name = ?", keys
    )


def select_results_of_user(
    connection: sqlite3.Connection, project: str, user_id: str
) -> list[tuple[str, float | None, int]]:
    """(name, score, passed) of every result on the user's traces and on their sessions."""
    return connection.execute(
        "SELECT e.name, e.score, e.passed FROM traces t INDEXED BY traces_by_user"
        " JOIN evaluations e ON e.trace_id = t.trace_id WHERE t.project = ?1 AND t.user_id = ?2"
        " UNION ALL SELECT r.name, r.score, r.passed FROM sessions s INDEXED BY sessions_by_user"
        " JOIN session_results r ON r.project = s.project AND r.session_id = s.session_id"
        " WHERE s.project = ?1 AND s.user_id = ?2",
        (project, user_id),
    ).fetchall()


def delete_user_aggregates_of(connection: sqlite3.Connection, project: str, user_id: str) -> None:
    connection.execute("DELETE FROM user_evaluations WHERE project = ? AND user_id = ?", (project, user_id))


def select_session_projects(connection: sqlite3.Connection, session_id: str) -> list[str]:
    return [
        row[0]
        for row in connection.execute("SELECT project FROM sessions WHERE session_id = ?", (session_id,))
    ]


def select_user_results(connection: sqlite3.Connection) -> Iterable[tuple[str, str, str, float | None, int]]:
    """(project, user_id, name, score, passed) of every result on a trace naming a user: the
    migration adds the user aggregates up from these."""
    return connection.execute(
        "SELECT t.project, t.user_id, e.name, e.score, e.passed FROM evaluations e"
        " JOIN traces t ON t.trace_id = e.trace_id WHERE t.user_id IS NOT NULL AND t.user_id <> ''"
    )


def select_evaluated_session_keys(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    """(project, session id) of every session with a result on one of its traces."""
    return connection.execute(
        "SELECT DISTINCT t.project, t.session_id FROM evaluations e JOIN traces t ON t.trace_id = e.trace_id"
        " WHERE t.session_id IS NOT NULL ORDER BY 1, 2"
    ).fetchall()


def clear_aggregates(connection: sqlite3.Connection) -> None:
    connection.execute("DELETE FROM session_evaluations")
    connection.execute("DELETE FROM user_evaluations")


# --- results on sessions ---
_UPSERT_SESSION_RESULT = (
    f"INSERT INTO session_results ({', '.join(SessionResultRow._fields)}) VALUES ({', '.join('?' * 11)})"
    " ON CONFLICT (project, session_id, name, source, result_key) DO UPDATE SET score = excluded.score,"
    " label = excluded.label, passed = excluded.passed, time_ns = excluded.time_ns,"
    " explanation = excluded.explanation, details = excluded.details"
)


def select_session_result_rows(
    connection: sqlite3.Connection, keys: Iterable[tuple[str, str]]
) -> list[SessionResultRow]:
    """Every result on these (project, session id)."""
    rows = connection.execute(
        f"SELECT {', '.join(SessionResultRow._fields)} FROM session_results WHERE (project, session_id) IN"
        " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
        (to_json([list(key) for key in keys]),),
    ).fetchall()
    return [SessionResultRow._make(row) for row in rows]


def upsert_session_results(connection: sqlite3.Connection, rows: Iterable[SessionResultRow]) -> None:
    connection.executemany(_UPSERT_SESSION_RESULT, rows)


def select_judged_sessions(
    connection: sqlite3.Connection, keys: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those of these (project, session id) that have results of their own."""
    rows = connection.execute(
        "SELECT DISTINCT project, session_id FROM session_results WHERE (project, session_id) IN"
        " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
        (to_json([list(key) for key in keys]),),
    ).fetchall()
    return {(project, session_id) for project, session_id in rows}


def select_session_users(
    connection: sqlite3.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str | None]:
    """(project, session id) -> the session's user, for those of these sessions stored."""
    rows = connection.execute(
        "SELECT project, session_id, user_id FROM sessions WHERE (project, session_id) IN"
        " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
        (to_json([list(key) for key in keys]),),
    ).fetchall()
    return {(project, session_id): user_id for project, session_id, user_id in rows}


def select_pending_trace_ids(connection: sqlite3.Connection) -> set[str]:
    """Traces with results (feedback) that arrived before any of their spans."""
    rows = connection.execute(
        "SELECT DISTINCT e.trace_id FROM evaluations e WHERE NOT EXISTS"
        " (SELECT 1 FROM traces t WHERE t.trace_id = e.trace_id)"
    ).fetchall()
    return {row[0] for row in rows}


def delete_evaluations(connection: sqlite3.Connection, rows: Iterable[EvaluationRow]) -> None:
    connection.executemany(
        "DELETE FROM evaluations WHERE trace_id = ? AND span_id = ? AND name = ? AND source = ?"
        " AND result_key = ?",
        [row.key for row in rows],
    )


# --- session marks ---
def mark_ended(connection: sqlite3.Connection, marks: Iterable[tuple[str, str, int]]) -> None:
    """(project, session id, when): the session was ended then (the latest end wins)."""
    connection.executemany(
        "INSERT INTO session_marks (project, session_id, ended_ns) VALUES (?, ?, ?)"
        " ON CONFLICT (project, session_id)"
        " DO UPDATE SET ended_ns = MAX(COALESCE(ended_ns, 0), excluded.ended_ns)",
        marks,
    )


def mark_judged(connection: sqlite3.Connection, marks: Iterable[tuple[str, str, int]]) -> None:
    """(project, session id, the session's end_ns when judged)."""
    connection.executemany(
        "INSERT INTO session_marks (project, session_id, judged_end_ns) VALUES (?, ?, ?)"
        " ON CONFLICT (project, session_id) DO UPDATE SET judged_end_ns = excluded.judged_end_ns",
        marks,
    )


def any_session_results(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT 1 FROM session_results LIMIT 1").fetchone() is not None
