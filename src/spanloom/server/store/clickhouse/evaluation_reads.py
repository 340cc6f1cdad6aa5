"""The read path for evaluation results: a trace's results, the aggregates shown with sessions
and users, the names in use, and the summary by session, user or project."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from spanloom.server.store.clickhouse.evaluation_writes import details_of
from spanloom.server.store.evaluation_types import (
    EvaluationAggregate,
    EvaluationGroup,
    EvaluationRecord,
    GroupBy,
)

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
        details=details_of(details),
    )


def select_session_results(client: Any, project: str, session_id: str) -> list[EvaluationRecord]:
    """The results on the session itself, by name, then source and key."""
    rows = client.query(
        "SELECT name, source, score, label, explanation, time_ns, result_key, details"
        " FROM session_results FINAL WHERE project = {p:String} AND session_id = {s:String}"
        " ORDER BY name, source, result_key",
        parameters={"p": project, "s": session_id},
    ).result_rows
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
            details=details_of(details),
        )
        for name, source, score, label, explanation, time_ns, key, details in rows
    ]


def _aggregate(count: int, scored: int, score_micros: int, passed: int) -> EvaluationAggregate:
    return EvaluationAggregate(count, score_micros / 1e6 / scored if scored else None, passed / count)


def select_aggregates(
    client: Any, table: str, id_column: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, EvaluationAggregate]]:
    """(project, id) -> evaluation name -> aggregate, names in order. `table` and `id_column` are
    fixed names from the callers."""
    found: dict[tuple[str, str], dict[str, EvaluationAggregate]] = {}
    wanted = sorted(set(keys))
    if not wanted:
        return found
    # One statement for every project of the page (each costs embedded chDB milliseconds).
    rows = client.query(
        f"SELECT project, {id_column}, name, result_count, scored, score_micros, passed FROM {table} FINAL"
        f" WHERE (project, {id_column}) IN {{keys:Array(Tuple(String, String))}} ORDER BY name",
        parameters={"keys": wanted},
    ).result_rows
    for project, owner, name, count, scored, score_micros, passed in rows:
        found.setdefault((project, owner), {})[name] = _aggregate(count, scored, score_micros, passed)
    return found


def select_trace_results(client: Any, trace_ids: Sequence[str]) -> dict[str, list[EvaluationRecord]]:
    found: dict[str, list[EvaluationRecord]] = {}
    if not trace_ids:
        return found
    for row in client.query(
        f"SELECT {_RECORD_COLUMNS} FROM evaluations AS e FINAL WHERE e.trace_id IN {{ids:Array(String)}}"
        " ORDER BY e.trace_id, e.name, e.source, e.span_id, e.result_key",
        parameters={"ids": list(trace_ids)},
    ).result_rows:
        found.setdefault(row[0], []).append(_record(row))
    return found


def list_evaluation_names(client: Any, project: str | None) -> list[str]:
    rows = client.query(
        "SELECT DISTINCT name FROM evaluations FINAL"
        " WHERE {project:Nullable(String)} IS NULL OR project = {project:Nullable(String)} ORDER BY name",
        parameters={"project": project},
    ).result_rows
    return [row[0] for row in rows]


_FILTER = (
    " WHERE ({name:Nullable(String)} IS NULL OR name = {name:Nullable(String)})"
    " AND ({project:Nullable(String)} IS NULL OR project = {project:Nullable(String)})"
)
_SUMMARIES = {
    "session": (
        "SELECT project, session_id AS key, name, result_count, scored, score_micros, passed, mean_score,"
        f" worst_trace_id, worst_span_id FROM session_evaluations FINAL{_FILTER}"
    ),
    "user": (
        "SELECT project, user_id AS key, name, result_count, scored, score_micros, passed, mean_score,"
        f" NULL, NULL FROM user_evaluations FINAL{_FILTER}"
    ),
    # Projects are few and this is an on-demand summary: grouped at read time.
    "project": (
        "SELECT project, toString(project) AS key, name, count() AS result_count, count(score) AS scored,"
        " sum(toInt64(round(assumeNotNull(score) * 1000000))) AS score_micros, sum(passed) AS passed,"
        " if(scored > 0, score_micros / 1e6 / scored, NULL) AS mean_score, NULL, NULL"
        f" FROM evaluations FINAL{_FILTER} GROUP BY project, name"
    ),
}
# Worst mean first (no mean last), then the lowest pass rate; ties by key.
_ORDER = (
    " ORDER BY mean_score IS NULL, mean_score, passed / result_count, project, key, name LIMIT {limit:UInt32}"
)
_WORST_ORDER = " ORDER BY e.passed, e.score IS NULL, e.score, e.time_ns LIMIT 1"


def _worst(client: Any, where: str, parameters: dict[str, Any]) -> EvaluationRecord | None:
    rows = client.query(
        f"SELECT {_RECORD_COLUMNS} FROM evaluations AS e FINAL WHERE {where}{_WORST_ORDER}",
        parameters=parameters,
    ).result_rows
    return _record(rows[0]) if rows else None


def summarize(
    client: Any, group_by: GroupBy, name: str | None, project: str | None, limit: int
) -> list[EvaluationGroup]:
    if group_by not in _SUMMARIES:
        raise ValueError(f"group_by must be session, user or project, not {group_by!r}")
    rows = client.query(
        f"SELECT * FROM ({_SUMMARIES[group_by]}){_ORDER}",
        parameters={"name": name, "project": project, "limit": limit},
    ).result_rows
    groups = []
    for row_project, key, row_name, count, scored, micros, passed, _, worst_trace, worst_span in rows:
        if group_by == "session":
            worst = (
                _worst(
                    client,
                    "e.project = {p:String} AND e.trace_id = {t:String} AND e.span_id = {s:String}"
                    " AND e.name = {n:String}",
                    {"p": row_project, "t": worst_trace, "s": worst_span, "n": row_name},
                )
                if worst_trace and worst_span
                else None
            )
        elif group_by == "user":
            worst = _worst(
                client,
                "e.project = {p:String} AND e.name = {n:String} AND e.trace_id IN"
                " (SELECT trace_id FROM traces FINAL WHERE project = {p:String} AND user_id = {u:String})",
                {"p": row_project, "n": row_name, "u": key},
            )
        else:
            worst = _worst(
                client, "e.project = {p:String} AND e.name = {n:String}", {"p": row_project, "n": row_name}
            )
        aggregate = _aggregate(count, scored, micros, passed)
        groups.append(EvaluationGroup(group_by, row_project, key, row_name, aggregate, worst))
    return groups
