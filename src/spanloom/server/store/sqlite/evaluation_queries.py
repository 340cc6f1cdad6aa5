"""SQL of evaluation results and their per-session/per-user rollups, reads and writes. One function
per query; values are bound parameters (lists of ids as one JSON array, `json_each(?)`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from spanloom.server.store.evaluation_types import EvaluationAggregate, EvaluationRecord


def _ids(values: Iterable[str]) -> str:
    return json.dumps(list(values))


# --- resolving the span a result judges ---
def select_trace_owners(
    connection: sqlite3.Connection, trace_ids: Iterable[str]
) -> dict[str, tuple[Any, ...]]:
    """trace id -> (session_id, user_id, root_span_id) of the stored traces among these."""
    rows = connection.execute(
        "SELECT trace_id, session_id, user_id, root_span_id FROM traces"
        " WHERE trace_id IN (SELECT value FROM json_each(?))",
        (_ids(trace_ids),),
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def select_span_projects(
    connection: sqlite3.Connection, trace_ids: Iterable[str]
) -> dict[tuple[str, str], str]:
    """(trace id, span id) -> project of every stored span of these traces."""
    rows = connection.execute(
        "SELECT trace_id, span_id, project FROM spans WHERE trace_id IN (SELECT value FROM json_each(?))",
        (_ids(trace_ids),),
    ).fetchall()
    return {(row[0], row[1]): row[2] for row in rows}


def select_traces_of_span_ids(
    connection: sqlite3.Connection, span_ids: Iterable[str]
) -> list[tuple[str, str]]:
    """(span id, trace id) of stored spans with these ids. There is no span_id index (see the
    schema): this scans the primary-key index (trace_id, span_id), a few dozen bytes per span, not
    the span rows; INDEXED BY keeps the planner from scanning the table instead."""
    return connection.execute(
        "SELECT span_id, trace_id FROM spans INDEXED BY sqlite_autoindex_spans_1"
        " WHERE span_id IN (SELECT value FROM json_each(?))",
        (_ids(span_ids),),
    ).fetchall()


# --- results ---
# Row layout of upsert_evaluations and select_evaluations_of_traces.
EVALUATION_COLUMNS = (
    "trace_id",
    "span_id",
    "name",
    "source",
    "project",
    "score",
    "label",
    "passed",
    "time_ns",
    "explanation",
)
_UPSERT_EVALUATION = (
    f"INSERT INTO evaluations ({', '.join(EVALUATION_COLUMNS)}) VALUES ({', '.join('?' * 10)})"
    " ON CONFLICT (trace_id, span_id, name, source) DO UPDATE SET project = excluded.project,"
    " score = excluded.score, label = excluded.label, passed = excluded.passed,"
    " time_ns = excluded.time_ns, explanation = excluded.explanation"
)


def select_evaluations_of_traces(
    connection: sqlite3.Connection, trace_ids: Iterable[str]
) -> list[tuple[Any, ...]]:
    return connection.execute(
        f"SELECT {', '.join(EVALUATION_COLUMNS)} FROM evaluations"
        " WHERE trace_id IN (SELECT value FROM json_each(?))",
        (_ids(trace_ids),),
    ).fetchall()


def upsert_evaluations(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    connection.executemany(_UPSERT_EVALUATION, rows)


# --- session rollups (recounted) ---
def select_session_results(connection: sqlite3.Connection, session_id: str) -> list[tuple[Any, ...]]:
    """(trace_id, span_id, name, score, passed) of every result on the session's traces."""
    return connection.execute(
        "SELECT e.trace_id, e.span_id, e.name, e.score, e.passed FROM traces t INDEXED BY traces_by_session"
        " JOIN evaluations e ON e.trace_id = t.trace_id WHERE t.session_id = ?",
        (session_id,),
    ).fetchall()


def replace_session_rollup(
    connection: sqlite3.Connection, session_id: str, rows: Iterable[Sequence[Any]]
) -> None:
    """rows: (name, count, scored, score_micros, passed, mean_score, worst_trace_id, worst_span_id)."""
    connection.execute("DELETE FROM session_evaluations WHERE session_id = ?", (session_id,))
    connection.executemany(
        "INSERT INTO session_evaluations (session_id, name, count, scored, score_micros, passed, mean_score,"
        " worst_trace_id, worst_span_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(session_id, *row) for row in rows],
    )


# --- user rollups (deltas) ---
def select_user_rollups(connection: sqlite3.Connection, user_ids: Iterable[str]) -> list[tuple[Any, ...]]:
    """(user_id, name, count, scored, score_micros, passed) of these users."""
    return connection.execute(
        "SELECT user_id, name, count, scored, score_micros, passed FROM user_evaluations"
        " WHERE user_id IN (SELECT value FROM json_each(?))",
        (_ids(user_ids),),
    ).fetchall()


def upsert_user_rollups(connection: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """rows: (user_id, name, count, scored, score_micros, passed, mean_score)."""
    connection.executemany(
        "INSERT INTO user_evaluations (user_id, name, count, scored, score_micros, passed, mean_score)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, name) DO UPDATE SET count = excluded.count,"
        " scored = excluded.scored, score_micros = excluded.score_micros, passed = excluded.passed,"
        " mean_score = excluded.mean_score",
        rows,
    )


def delete_user_rollups(connection: sqlite3.Connection, keys: Iterable[tuple[str, str]]) -> None:
    connection.executemany("DELETE FROM user_evaluations WHERE user_id = ? AND name = ?", keys)


# --- reads ---
_RECORD_COLUMNS = "e.trace_id, e.span_id, e.name, e.source, e.score, e.label, e.explanation, e.time_ns"


def record_of(row: Sequence[Any]) -> EvaluationRecord:
    return EvaluationRecord(*row[:8])


def _aggregate(count: int, scored: int, micros: int, passed: int) -> EvaluationAggregate:
    return EvaluationAggregate(count, micros / 1e6 / scored if scored else None, passed / count)


def select_session_aggregates(
    connection: sqlite3.Connection, session_ids: Iterable[str]
) -> dict[str, dict[str, EvaluationAggregate]]:
    found: dict[str, dict[str, EvaluationAggregate]] = {}
    for session_id, name, *counts in connection.execute(
        "SELECT session_id, name, count, scored, score_micros, passed FROM session_evaluations"
        " WHERE session_id IN (SELECT value FROM json_each(?)) ORDER BY name",
        (_ids(session_ids),),
    ):
        found.setdefault(session_id, {})[name] = _aggregate(*counts)
    return found


def select_user_aggregates(
    connection: sqlite3.Connection, user_ids: Iterable[str]
) -> dict[str, dict[str, EvaluationAggregate]]:
    found: dict[str, dict[str, EvaluationAggregate]] = {}
    for user_id, _name, *counts in select_user_rollups(connection, user_ids):
        found.setdefault(user_id, {})[_name] = _aggregate(*counts)
    return {key: dict(sorted(value.items())) for key, value in found.items()}


def select_trace_results(
    connection: sqlite3.Connection, trace_ids: Iterable[str]
) -> dict[str, list[EvaluationRecord]]:
    found: dict[str, list[EvaluationRecord]] = {}
    for row in connection.execute(
        f"SELECT {_RECORD_COLUMNS} FROM evaluations e WHERE e.trace_id IN (SELECT value FROM json_each(?))"
        " ORDER BY e.trace_id, e.name, e.source, e.span_id",
        (_ids(trace_ids),),
    ):
        found.setdefault(row[0], []).append(record_of(row))
    return found


def select_evaluation_names(connection: sqlite3.Connection, project: str | None) -> list[str]:
    if project is None:
        rows = connection.execute("SELECT DISTINCT name FROM evaluations ORDER BY name").fetchall()
    else:
        rows = connection.execute(
            "SELECT DISTINCT name FROM evaluations WHERE project = ? ORDER BY name", (project,)
        ).fetchall()
    return [row[0] for row in rows]


def select_result(
    connection: sqlite3.Connection, trace_id: str, span_id: str, name: str
) -> EvaluationRecord | None:
    """The worst of a span's results under `name` (several sources may judge it)."""
    row = connection.execute(
        f"SELECT {_RECORD_COLUMNS} FROM evaluations e WHERE e.trace_id = ? AND e.span_id = ? AND e.name = ?"
        " ORDER BY e.passed, e.score IS NULL, e.score LIMIT 1",
        (trace_id, span_id, name),
    ).fetchone()
    return record_of(row) if row else None


# Summaries: (key, name, count, scored, score_micros, passed), worst mean first (no mean last).
_SUMMARY_ORDER = " ORDER BY mean_score IS NULL, mean_score, passed * 1.0 / count, key, name LIMIT ?"


def select_session_summary(
    connection: sqlite3.Connection, name: str | None, project: str | None, limit: int
) -> list[tuple[Any, ...]]:
    return connection.execute(
        "SELECT * FROM (SELECT se.session_id AS key, se.name AS name, se.count AS count, se.scored,"
        " se.score_micros, se.passed AS passed, se.mean_score AS mean_score, se.worst_trace_id,"
        " se.worst_span_id FROM session_evaluations se JOIN sessions s ON s.session_id = se.session_id"
        " WHERE (?1 IS NULL OR se.name = ?1) AND (?2 IS NULL OR s.project = ?2))"
        + _SUMMARY_ORDER.replace("?", "?3"),
        (name, project, limit),
    ).fetchall()


def select_user_summary(
    connection: sqlite3.Connection, name: str | None, project: str | None, limit: int
) -> list[tuple[Any, ...]]:
    return connection.execute(
        "SELECT * FROM (SELECT ue.user_id AS key, ue.name AS name, ue.count AS count, ue.scored,"
        " ue.score_micros, ue.passed AS passed, ue.mean_score AS mean_score FROM user_evaluations ue"
        " JOIN users u ON u.user_id = ue.user_id"
        " WHERE (?1 IS NULL OR ue.name = ?1) AND (?2 IS NULL OR u.project = ?2))"
        + _SUMMARY_ORDER.replace("?", "?3"),
        (name, project, limit),
    ).fetchall()


def select_project_summary(
    connection: sqlite3.Connection, name: str | None, project: str | None, limit: int
) -> list[tuple[Any, ...]]:
    # Projects are few and this is an on-demand summary: grouped at read time over the index
    # evaluations_by_project. Scores are summed in SQL here, so micros are rounded per row.
    return connection.execute(
        "SELECT * FROM (SELECT project AS key, name, COUNT(*) AS count, COUNT(score),"
        " COALESCE(SUM(CAST(ROUND(score * 1000000) AS INTEGER)), 0), SUM(passed) AS passed,"
        " AVG(score) AS mean_score FROM evaluations WHERE (?1 IS NULL OR name = ?1)"
        " AND (?2 IS NULL OR project = ?2) GROUP BY project, name)" + _SUMMARY_ORDER.replace("?", "?3"),
        (name, project, limit),
    ).fetchall()


def select_worst_of_user(connection: sqlite3.Connection, user_id: str, name: str) -> EvaluationRecord | None:
    row = connection.execute(
        f"SELECT {_RECORD_COLUMNS} FROM traces t INDEXED BY traces_by_user"
        " JOIN evaluations e ON e.trace_id = t.trace_id WHERE t.user_id = ? AND e.name = ?"
        " ORDER BY e.passed, e.score IS NULL, e.score, e.time_ns LIMIT 1",
        (user_id, name),
    ).fetchone()
    return record_of(row) if row else None


def select_worst_of_project(
    connection: sqlite3.Connection, project: str, name: str
) -> EvaluationRecord | None:
    row = connection.execute(
        f"SELECT {_RECORD_COLUMNS} FROM evaluations e WHERE e.project = ? AND e.name = ?"
        " ORDER BY e.passed, e.score IS NULL, e.score, e.time_ns LIMIT 1",
        (project, name),
    ).fetchone()
    return record_of(row) if row else None


# --- stored spans, for evaluating them on demand ---
def select_span_page(
    connection: sqlite3.Connection,
    columns: str,
    project: str | None,
    span_kind: str | None,
    start_ns: int | None,
    end_ns: int | None,
    after_rowid: int,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Spans in storage (rowid) order after `after_rowid`: one pass over the table in all, with no
    index to maintain on the ingest path for this rare, offline read. The rowid comes first."""
    return connection.execute(
        f"SELECT rowid, {columns} FROM spans WHERE rowid > ? AND (?2 IS NULL OR project = ?2)"
        " AND (?3 IS NULL OR span_kind = ?3) AND (?4 IS NULL OR start_ns >= ?4)"
        " AND (?5 IS NULL OR start_ns <= ?5) ORDER BY rowid LIMIT ?6",
        (after_rowid, project, span_kind, start_ns, end_ns, limit),
    ).fetchall()


def count_spans(
    connection: sqlite3.Connection,
    project: str | None,
    span_kind: str | None,
    start_ns: int | None,
    end_ns: int | None,
) -> int:
    (count,) = connection.execute(
        "SELECT COUNT(*) FROM spans WHERE (?1 IS NULL OR project = ?1) AND (?2 IS NULL OR span_kind = ?2)"
        " AND (?3 IS NULL OR start_ns >= ?3) AND (?4 IS NULL OR start_ns <= ?4)",
        (project, span_kind, start_ns, end_ns),
    ).fetchone()
    return int(count)
