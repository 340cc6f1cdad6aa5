"""SQL of the read path for evaluation results: a trace's results, the aggregates shown with
sessions and users, the names in use, and the summary by session, user or project."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from spanloom.server.store.evaluation_types import (
    EvaluationAggregate,
    EvaluationGroup,
    EvaluationRecord,
    GroupBy,
)
from spanloom.server.store.json_values import to_json
from spanloom.server.store.sqlite.statements import by_project

_RECORD_COLUMNS = (
    "e.trace_id, e.span_id, e.name, e.source, e.score, e.label, e.explanation, e.time_ns, e.result_key,"
    " e.details"
)


def _record(row: Sequence[Any]) -> EvaluationRecord:
    trace_id, span_id, name, source, score, label, explanation, time_ns, key, details = row
    return EvaluationRecord(
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        source=source,
        score=score,
        label=label,
        explanation=explanation,
        time_ns=time_ns,
        key=key,
        details=_details(details),
    )


def _details(text: str) -> dict[str, Any]:
    # "{}" for most results: skip the parse.
    return json.loads(text) if text != "{}" else {}


def select_session_results(
    connection: sqlite3.Connection, project: str, session_id: str
) -> list[EvaluationRecord]:
    """The results on the session itself, by name, then source and key."""
    return [
        EvaluationRecord(
            trace_id="",
            span_id="",
            name=name,
            source=source,
            score=score,
            label=label,
            explanation=explanation,
            time_ns=time_ns,
            key=key,
            session_id=session_id,
            details=_details(details),
        )
        for name, source, score, label, explanation, time_ns, key, details in connection.execute(
            "SELECT name, source, score, label, explanation, time_ns, result_key, details"
            " FROM session_results WHERE project = ? AND session_id = ? ORDER BY name, source, result_key",
            (project, session_id),
        )
    ]


def _aggregate(count: int, scored: int, score_micros: int, passed: int) -> EvaluationAggregate:
    return EvaluationAggregate(count, score_micros / 1e6 / scored if scored else None, passed / count)


def select_session_aggregates(
    connection: sqlite3.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, EvaluationAggregate]]:
    """(project, session id) -> evaluation name -> aggregate, names in order."""
    found: dict[tuple[str, str], dict[str, EvaluationAggregate]] = {}
    for project, session_ids in by_project(keys).items():
        for session_id, name, count, scored, score_micros, passed in connection.execute(
            "SELECT session_id, name, result_count, scored, score_micros, passed FROM session_evaluations"
            " WHERE project = ? AND session_id IN (SELECT value FROM json_each(?)) ORDER BY name",
            (project, to_json(session_ids)),
        ):
            found.setdefault((project, session_id), {})[name] = _aggregate(
                count, scored, score_micros, passed
            )
    return found


def select_user_aggregates(
    connection: sqlite3.Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, EvaluationAggregate]]:
    """(project, user id) -> evaluation name -> aggregate, names in order."""
    found: dict[tuple[str, str], dict[str, EvaluationAggregate]] = {}
    for project, user_ids in by_project(keys).items():
        for user_id, name, count, scored, score_micros, passed in connection.execute(
            "SELECT user_id, name, result_count, scored, score_micros, passed FROM user_evaluations"
            " WHERE project = ? AND user_id IN (SELECT value FROM json_each(?)) ORDER BY name",
            (project, to_json(user_ids)),
        ):
            found.setdefault((project, user_id), {})[name] = _aggregate(count, scored, score_micros, passed)
    return found


def select_trace_results(
    connection: sqlite3.Connection, trace_ids: Iterable[str]
) -> dict[str, list[EvaluationRecord]]:
    found: dict[str, list[EvaluationRecord]] = {}
    for row in connection.execute(
        f"SELECT {_RECORD_COLUMNS} FROM evaluations e WHERE e.trace_id IN (SELECT value FROM json_each(?))"
        " ORDER BY e.trace_id, e.name, e.source, e.span_id, e.result_key",
        (to_json(list(trace_ids)),),
    ):
        found.setdefault(row[0], []).append(_record(row))
    return found


def list_evaluation_names(connection: sqlite3.Connection, project: str | None) -> list[str]:
    rows = connection.execute(
        "SELECT DISTINCT name FROM evaluations WHERE ?1 IS NULL OR project = ?1 ORDER BY name", (project,)
    ).fetchall()
    return [row[0] for row in rows]


class _SummaryRow(NamedTuple):
    project: str
    key: str
    name: str
    result_count: int
    scored: int
    score_micros: int
    passed: int
    mean_score: float | None
    worst_trace_id: str | None  # sessions keep their worst result's span
    worst_span_id: str | None


# Worst mean first (no mean last), then the lowest pass rate; ties by key.
_SUMMARY_ORDER = (
    " ORDER BY mean_score IS NULL, mean_score, passed * 1.0 / result_count, project, key, name LIMIT ?3"
)
_SUMMARIES = {
    "session": (
        "SELECT project, session_id AS key, name, result_count, scored, score_micros, passed, mean_score,"
        " worst_trace_id, worst_span_id FROM session_evaluations"
        " WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR project = ?2)"
    ),
    "user": (
        "SELECT project, user_id AS key, name, result_count, scored, score_micros, passed, mean_score,"
        " NULL, NULL FROM user_evaluations WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR project = ?2)"
    ),
    # Projects are few and this is an on-demand summary: grouped at read time over the index
    # evaluations_by_project. Scores are summed in SQL here, so micros are rounded per row.
    "project": (
        "SELECT project, project AS key, name, COUNT(*) AS result_count, COUNT(score),"
        " CAST(TOTAL(ROUND(score * 1000000)) AS INTEGER), SUM(passed) AS passed,"
        " AVG(score) AS mean_score, NULL, NULL FROM evaluations"
        " WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR project = ?2) GROUP BY project, name"
    ),
}


def _select_result(
    connection: sqlite3.Connection, trace_id: str, span_id: str, name: str
) -> EvaluationRecord | None:
    """The worst of a span's results under `name` (several sources may judge it)."""
    row = connection.execute(
        f"SELECT {_RECORD_COLUMNS} FROM evaluations e WHERE e.trace_id = ? AND e.span_id = ? AND e.name = ?"
        " ORDER BY e.passed, e.score IS NULL, e.score LIMIT 1",
        (trace_id, span_id, name),
    ).fetchone()
    return _record(row) if row else None


def _select_worst_of_user(
    connection: sqlite3.Connection, project: str, user_id: str, name: str
) -> EvaluationRecord | None:
    row = connection.execute(
        f"SELECT {_RECORD_COLUMNS} FROM traces t INDEXED BY traces_by_user"
        " JOIN evaluations e ON e.trace_id = t.trace_id WHERE t.project = ? AND t.user_id = ? AND e.name = ?"
        " ORDER BY e.passed, e.score IS NULL, e.score, e.time_ns LIMIT 1",
        (project, user_id, name),
    ).fetchone()
    return _record(row) if row else None


def _select_worst_of_project(
    connection: sqlite3.Connection, project: str, name: str
) -> EvaluationRecord | None:
    row = connection.execute(
        f"SELECT {_RECORD_COLUMNS} FROM evaluations e WHERE e.project = ? AND e.name = ?"
        " ORDER BY e.passed, e.score IS NULL, e.score, e.time_ns LIMIT 1",
        (project, name),
    ).fetchone()
    return _record(row) if row else None


def summarize(
    connection: sqlite3.Connection, group_by: GroupBy, name: str | None, project: str | None, limit: int
) -> list[EvaluationGroup]:
    if group_by not in _SUMMARIES:
        raise ValueError(f"group_by must be session, user or project, not {group_by!r}")
    # The query text comes from the fixed table above, keyed by an allowlisted group.
    rows = connection.execute(
        f"SELECT * FROM ({_SUMMARIES[group_by]}){_SUMMARY_ORDER}", (name, project, limit)
    ).fetchall()
    groups = []
    for raw in rows:
        row = _SummaryRow._make(raw)
        if group_by == "session":
            # The session aggregate keeps its worst result's span: one primary-key read fetches it.
            worst = (
                _select_result(connection, row.worst_trace_id, row.worst_span_id, row.name)
                if row.worst_trace_id and row.worst_span_id
                else None
            )
        elif group_by == "user":
            worst = _select_worst_of_user(connection, row.project, row.key, row.name)
        else:
            worst = _select_worst_of_project(connection, row.project, row.name)
        aggregate = _aggregate(row.result_count, row.scored, row.score_micros, row.passed)
        groups.append(EvaluationGroup(group_by, row.project, row.key, row.name, aggregate, worst))
    return groups
