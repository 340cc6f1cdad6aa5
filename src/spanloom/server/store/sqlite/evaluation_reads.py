"""Evaluation reads that are more than one query: the summary by session, user or project."""

from __future__ import annotations

import sqlite3

from spanloom.server.store.base import ListQuery
from spanloom.server.store.evaluation_types import EvaluationAggregate, EvaluationGroup, GroupBy
from spanloom.server.store.sqlite import evaluation_queries as sql


def count_spans(connection: sqlite3.Connection, query: ListQuery) -> int:
    return sql.count_spans(connection, query.project, query.span_kind, query.start_ns, query.end_ns)


def list_evaluation_names(connection: sqlite3.Connection, project: str | None) -> list[str]:
    return sql.select_evaluation_names(connection, project)


def summarize(
    connection: sqlite3.Connection, group_by: GroupBy, name: str | None, project: str | None, limit: int
) -> list[EvaluationGroup]:
    if group_by == "session":
        rows = sql.select_session_summary(connection, name, project, limit)
    elif group_by == "user":
        rows = sql.select_user_summary(connection, name, project, limit)
    elif group_by == "project":
        rows = sql.select_project_summary(connection, name, project, limit)
    else:
        raise ValueError(f"group_by must be session, user or project, not {group_by!r}")
    groups = []
    for row in rows:
        key, result_name, count, scored, score_micros, passed = row[:6]
        aggregate = EvaluationAggregate(
            count, score_micros / 1e6 / scored if scored else None, passed / count
        )
        if group_by == "session":
            # The session rollup keeps its worst result's span; one primary-key read fetches it.
            worst = sql.select_result(connection, row[7], row[8], result_name) if row[7] else None
        elif group_by == "user":
            worst = sql.select_worst_of_user(connection, key, result_name)
        else:
            worst = sql.select_worst_of_project(connection, key, result_name)
        groups.append(EvaluationGroup(group_by, key, result_name, aggregate, worst))
    return groups
