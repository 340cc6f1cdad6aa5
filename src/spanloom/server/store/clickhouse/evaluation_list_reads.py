"""The list of individual evaluation results (`Store.list_evaluations`) on ClickHouse, in the order
evaluation_list.py gives: results on spans and turns by (trace id, span id, name, source, key),
then results on sessions by session_results' own key.

`evaluations` holds results on stored traces only (feedback waiting for its trace is in
`waiting_results`, and is not listed until it moves), so nothing is joined to tell them apart. A
page's session and user ids are read afterwards for its own traces and sessions, by their keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import Page
from spanloom.server.store.clickhouse.trace_lookup import select_trace_keys
from spanloom.server.store.evaluation_list import (
    EvaluationQuery,
    EvaluationResult,
    evaluation_page,
    result_on_session,
    result_on_trace,
)

_TRACE_ORDER = " ORDER BY trace_id, span_id, name, source, result_key LIMIT {limit:UInt32}"
_SESSION_ORDER = " ORDER BY project, session_id, name, source, result_key LIMIT {limit:UInt32}"


def _conditions(filters: Sequence[tuple[str, str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """The conditions and parameters of the (condition, parameter name, value) whose value is not
    None."""
    given = [(condition, parameter, value) for condition, parameter, value in filters if value is not None]
    return [condition for condition, _, _ in given], {parameter: value for _, parameter, value in given}


def _filters(query: EvaluationQuery, *own: tuple[str, str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The query's filters that both kinds of result take (project, name, source, time), with a
    part's `own` ones after the project's."""
    return _conditions(
        [
            ("project = {p:String}", "p", query.project),
            *own,
            ("name = {n:String}", "n", query.name),
            ("source = {src:String}", "src", query.source),
            ("time_ns >= {a:Int64}", "a", query.start_ns),
            ("time_ns <= {b:Int64}", "b", query.end_ns),
        ]
    )


def _add_after(
    conditions: list[str], params: dict[str, Any], key: str, after: tuple[str, ...] | None
) -> None:
    """Keyset paging: rows whose `key` (String columns, the order's) is past `after`."""
    if after is not None:
        placeholders = ", ".join(f"{{c{index}:String}}" for index in range(len(after)))
        conditions.append(f"({key}) > ({placeholders})")
        params.update({f"c{index}": value for index, value in enumerate(after)})


def _session_trace_ids(client: Any, query: EvaluationQuery) -> list[str]:
    """The traces of the session of `query.session_id` (in its project, or in any)."""
    rows = client.query(
        "SELECT trace_id FROM traces FINAL WHERE session_id = {s:String}"
        " AND ({p:Nullable(String)} IS NULL OR project = {p:Nullable(String)})",
        parameters={"s": query.session_id, "p": query.project},
    ).result_rows
    return [row[0] for row in rows]


def _trace_owners(client: Any, trace_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
    """trace id -> (session id, user id) of these traces, None for none."""
    keys = select_trace_keys(client, set(trace_ids))
    if not keys:
        return {}
    rows = client.query(
        "SELECT trace_id, session_id, user_id FROM traces FINAL"
        " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}"
        " AND trace_id IN {ids:Array(String)}",
        parameters={"keys": sorted(set(keys.values())), "ids": list(keys)},
    ).result_rows
    return {trace_id: (session_id or None, user_id or None) for trace_id, session_id, user_id in rows}


def _on_traces(
    client: Any, query: EvaluationQuery, after: tuple[str, ...] | None, limit: int
) -> list[EvaluationResult]:
    conditions, params = _filters(
        query,
        ("trace_id = {t:String}", "t", query.trace_id),
        ("span_id = {sp:String}", "sp", query.span_id),
    )
    if query.session_id is not None:
        trace_ids = _session_trace_ids(client, query)
        if not trace_ids:
            return []
        conditions.append("trace_id IN {ids:Array(String)}")
        params["ids"] = trace_ids
    _add_after(conditions, params, "trace_id, span_id, name, source, result_key", after)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = client.query(
        "SELECT project, trace_id, span_id, name, source, result_key, score, label, explanation, time_ns,"
        f" details FROM evaluations FINAL{where}{_TRACE_ORDER}",
        parameters={**params, "limit": limit},
    ).result_rows
    owners = _trace_owners(client, [row[1] for row in rows])
    # The columns as selected, then the trace's session and user.
    columns: list[tuple[Any, ...]] = [(*row, *owners.get(row[1], (None, None))) for row in rows]
    return [result_on_trace(*row) for row in columns]


def _session_users(client: Any, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    if not keys:
        return {}
    rows = client.query(
        "SELECT project, session_id, user_id FROM sessions FINAL"
        " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}",
        parameters={"keys": sorted(set(keys))},
    ).result_rows
    return {(project, session_id): user_id or None for project, session_id, user_id in rows}


def _on_sessions(
    client: Any, query: EvaluationQuery, after: tuple[str, ...] | None, limit: int
) -> list[EvaluationResult]:
    conditions, params = _filters(query, ("session_id = {s:String}", "s", query.session_id))
    _add_after(conditions, params, "project, session_id, name, source, result_key", after)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = client.query(
        "SELECT project, session_id, name, source, result_key, score, label, explanation, time_ns, details"
        f" FROM session_results FINAL{where}{_SESSION_ORDER}",
        parameters={**params, "limit": limit},
    ).result_rows
    users = _session_users(client, [(row[0], row[1]) for row in rows])
    # The columns as selected, then the session's user.
    columns: list[tuple[Any, ...]] = [(*row, users.get((row[0], row[1]))) for row in rows]
    return [result_on_session(*row) for row in columns]


def list_evaluations(client: Any, query: EvaluationQuery) -> Page[EvaluationResult]:
    return evaluation_page(
        query,
        lambda part_query, after, limit: _on_traces(client, part_query, after, limit),
        lambda part_query, after, limit: _on_sessions(client, part_query, after, limit),
    )
