"""SQL of the read path. One function per query; values are bound parameters, and the only SQL
text chosen at run time comes from the fixed fragments and sort allowlists in this module."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from spanloom.server.store.base import (
    ListQuery,
    Page,
    ProjectSummary,
    SessionSummary,
    SpanRecord,
    TraceSummary,
    UserSummary,
)
from spanloom.server.store.cursor import decode_cursor, encode_cursor
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX
from spanloom.server.store.sqlite import evaluation_queries
from spanloom.server.store.sqlite.span_reads import SPAN_COLUMNS, span_row
from spanloom.server.store.sqlite.span_reads import select_session_tool_spans as select_session_tool_spans
from spanloom.server.store.sqlite.span_reads import select_trace_spans as select_trace_spans

_R = TypeVar("_R")

# sort key -> (column, record attribute holding the same value, for the next cursor)
SESSION_SORTS = {
    "start_time": ("s.start_ns", "start_time_ns"),
    "last_activity": ("s.end_ns", "end_time_ns"),
    "turns": ("s.trace_count", "trace_count"),
    "tokens": ("s.total_tokens", "total_tokens"),
    "cost": ("s.cost", "cost"),
    "latency": ("s.latency_p50_ms", "latency_p50_ms"),
    "errors": ("s.error_count", "error_count"),
}
USER_SORTS = {  # the first key of each table is the list's default sort
    "last_seen": ("u.last_seen_ns", "last_seen_ns"),
    "first_seen": ("u.first_seen_ns", "first_seen_ns"),
    "sessions": ("u.session_count", "session_count"),
    "traces": ("u.trace_count", "trace_count"),
    "tokens": ("u.total_tokens", "total_tokens"),
    "cost": ("u.cost", "cost"),
    "errors": ("u.error_count", "error_count"),
    # Failing traces per trace: "worst experience first" whatever a user's volume.
    "error_rate": ("(u.error_count * 1.0 / MAX(u.trace_count, 1))", "error_rate"),
}
TRACE_SORTS = {
    "start_time": ("t.start_ns", "start_time_ns"),
    "latency": ("t.latency_ms", "latency_ms"),
    "tokens": ("t.total_tokens", "total_tokens"),
    "cost": ("t.cost", "cost"),
    "errors": ("t.error_count", "error_count"),
    "spans": ("t.span_count", "span_count"),
}
# order -> (SQL direction, row-value comparison for "after the cursor")
_ORDERS = {"asc": ("ASC", ">"), "desc": ("DESC", "<")}

_SESSION_COLUMNS = (
    "s.session_id, s.project, s.user_id, s.trace_count,"
    # The texts live once, on the spans they came from (through the trace's input/output span):
    # session and trace rows stay small, so rewriting them as turns arrive stays cheap.
    " (SELECT sp.input FROM traces ft JOIN spans sp ON sp.trace_id = ft.trace_id"
    " AND sp.span_id = ft.input_span_id WHERE ft.trace_id = s.first_input_trace),"
    " (SELECT sp.output FROM traces lt JOIN spans sp ON sp.trace_id = lt.trace_id"
    " AND sp.span_id = lt.output_span_id WHERE lt.trace_id = s.last_output_trace), s.start_ns, s.end_ns,"
    " s.total_tokens, s.cost, s.error_count, s.latency_p50_ms, s.latency_p95_ms, s.tags, s.metadata"
)
_USER_COLUMNS = (
    "u.user_id, u.project, u.session_count, u.trace_count, u.total_tokens, u.cost, u.error_count,"
    " u.first_seen_ns, u.last_seen_ns"
)
# A trace's input/output text (for a query over `traces t`): read from the span it came from,
# by primary key, rather than stored a second time on the trace.
_TRACE_INPUT = (
    "(SELECT input FROM spans WHERE spans.trace_id = t.trace_id AND spans.span_id = t.input_span_id)"
)
_TRACE_OUTPUT = (
    "(SELECT output FROM spans WHERE spans.trace_id = t.trace_id AND spans.span_id = t.output_span_id)"
)
_TRACE_COLUMNS = (
    "t.trace_id, t.project, t.session_id, t.user_id, t.root_span_id, t.name, t.span_kind, t.start_ns,"
    " t.end_ns, t.latency_ms, t.span_count, t.error_count, t.total_tokens, t.cost, t.status, "
    + _TRACE_INPUT
    + ", "
    + _TRACE_OUTPUT
    + ", t.tags, t.metadata"
)
# A JSON value as the text a client would type after '=' (true/false rather than 1/0).
_JSON_VALUE_TEXT = (
    "(CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(value AS TEXT) END)"
)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _session_row(row: tuple[Any, ...]) -> SessionSummary:
    return SessionSummary(*row[:13], tags=json.loads(row[13]), metadata=json.loads(row[14]))


def _user_row(row: tuple[Any, ...]) -> UserSummary:
    return UserSummary(*row)


def _trace_row(row: tuple[Any, ...]) -> TraceSummary:
    return TraceSummary(*row[:17], tags=json.loads(row[17]), metadata=json.loads(row[18]))


def _tag_and_metadata_conditions(alias: str, query: ListQuery) -> tuple[list[str], list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    for tag in query.tags:
        conditions.append(f"EXISTS (SELECT 1 FROM json_each({alias}.tags) WHERE value = ?)")
        params.append(tag)
    for key, value in query.metadata:
        conditions.append(
            f"EXISTS (SELECT 1 FROM json_each({alias}.metadata) WHERE key = ? AND {_JSON_VALUE_TEXT} = ?)"
        )
        params.extend((key, value))
    return conditions, params


def _page(
    connection: sqlite3.Connection,
    select: str,
    conditions: list[str],
    params: list[Any],
    sorts: dict[str, tuple[str, str]],
    id_column: str,
    id_attribute: str,
    query: ListQuery,
    make: Callable[[tuple[Any, ...]], _R],
    select_params: Sequence[Any] = (),
    enrich: Callable[[list[_R]], None] | None = None,
) -> Page[_R]:
    """One page of a list, after the cursor, in (sort column, id) order. A sort's attribute may be
    a function of the record (after `enrich` has filled it in) instead of an attribute name."""
    sort = query.sort or next(iter(sorts))
    if sort not in sorts:
        raise ValueError(f"unknown sort key {sort!r}; expected one of {', '.join(sorts)}")
    column, attribute = sorts[sort]
    direction, after = _ORDERS[query.order]
    conditions, params = list(conditions), list(params)
    if query.cursor:
        value, row_id = decode_cursor(query.cursor, sort)
        conditions.append(f"({column}, {id_column}) {after} (?, ?)")
        params.extend((value, row_id))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    text = f"{select}{where} ORDER BY {column} {direction}, {id_column} {direction} LIMIT ?"
    rows = connection.execute(text, (*select_params, *params, query.limit + 1)).fetchall()
    items = [make(row) for row in rows[: query.limit]]
    if enrich is not None and items:
        enrich(items)
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        value = attribute(last) if callable(attribute) else getattr(last, attribute)
        next_cursor = encode_cursor(sort, value, getattr(last, id_attribute))
    return Page(items, next_cursor)


def _eval_sort(
    query: ListQuery, sorts: dict[str, Any], rollup: str, key_column: str, id_column: str
) -> tuple[dict[str, Any], str, list[Any]]:
    """For sort=eval:NAME: the sorts with that key added, a LEFT JOIN of the rollup row for NAME
    (bound as a parameter), and its parameters. Rows without NAME sort last in either order:
    their sort value is +inf ascending and -inf descending."""
    if not (query.sort or "").startswith(EVAL_SORT_PREFIX):
        return sorts, "", []
    name = query.sort[len(EVAL_SORT_PREFIX) :]  # type: ignore[index]
    missing = float("inf") if query.order == "asc" else float("-inf")
    literal = "9e999" if query.order == "asc" else "-9e999"  # SQLite reads these as +/-inf

    def value_of(record: Any) -> float:
        aggregate = record.evaluations.get(name)
        return aggregate.mean_score if aggregate and aggregate.mean_score is not None else missing

    # `rollup` and the columns are fixed names from the callers below, never input.
    join = f" LEFT JOIN {rollup} ev ON ev.{key_column} = {id_column} AND ev.name = ?"
    return {**sorts, query.sort: (f"COALESCE(ev.mean_score, {literal})", value_of)}, join, [name]


def _with_session_evaluations(connection: sqlite3.Connection) -> Callable[[list[SessionSummary]], None]:
    def enrich(items: list[SessionSummary]) -> None:
        found = evaluation_queries.select_session_aggregates(connection, [item.session_id for item in items])
        for item in items:
            item.evaluations = found.get(item.session_id, {})

    return enrich


def _with_user_evaluations(connection: sqlite3.Connection) -> Callable[[list[UserSummary]], None]:
    def enrich(items: list[UserSummary]) -> None:
        found = evaluation_queries.select_user_aggregates(connection, [item.user_id for item in items])
        for item in items:
            item.evaluations = found.get(item.user_id, {})

    return enrich


def list_projects(connection: sqlite3.Connection) -> list[ProjectSummary]:
    rows = connection.execute(
        "SELECT project, SUM(span_count), COUNT(*), COUNT(DISTINCT session_id), COUNT(DISTINCT user_id),"
        " MIN(start_ns), MAX(end_ns) FROM traces GROUP BY project ORDER BY project"
    ).fetchall()
    return [ProjectSummary(*row) for row in rows]


def list_sessions(connection: sqlite3.Connection, query: ListQuery) -> Page[SessionSummary]:
    conditions, params = _tag_and_metadata_conditions("s", query)
    _add_filters(
        conditions,
        params,
        "s",
        query,
        (
            ("s.project = ?", query.project),
            ("s.user_id = ?", query.user_id),
            ("s.end_ns >= ?", query.start_ns),
            ("s.start_ns <= ?", query.end_ns),
        ),
    )
    if query.q:
        conditions.append(
            "(s.session_id LIKE ? ESCAPE '\\' OR s.user_id LIKE ? ESCAPE '\\'"
            " OR EXISTS (SELECT 1 FROM traces t WHERE t.session_id = s.session_id"
            f" AND ({_TRACE_INPUT} LIKE ? ESCAPE '\\' OR {_TRACE_OUTPUT} LIKE ? ESCAPE '\\')))"
        )
        params.extend([_like(query.q)] * 4)
    sorts, join, join_params = _eval_sort(
        query, SESSION_SORTS, "session_evaluations", "session_id", "s.session_id"
    )
    select = f"SELECT {_SESSION_COLUMNS} FROM sessions s{join}"
    return _page(
        connection,
        select,
        conditions,
        params,
        sorts,
        "s.session_id",
        "session_id",
        query,
        _session_row,
        join_params,
        _with_session_evaluations(connection),
    )


def _add_filters(
    conditions: list[str],
    params: list[Any],
    alias: str,
    query: ListQuery,
    filters: tuple[tuple[str, Any], ...],
) -> None:
    """The `filters` whose value is set (a fragment with one ``?`` each), plus the has_error
    filter every list takes. `alias` is the list's table alias, a constant of this module."""
    for fragment, value in filters:
        if value is not None:
            conditions.append(fragment)
            params.append(value)
    if query.has_error is not None:
        conditions.append(f"{alias}.error_count > 0" if query.has_error else f"{alias}.error_count = 0")


def select_session(connection: sqlite3.Connection, session_id: str) -> SessionSummary | None:
    row = connection.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions s WHERE s.session_id = ?", (session_id,)
    ).fetchone()
    if not row:
        return None
    summary = _session_row(row)
    _with_session_evaluations(connection)([summary])
    return summary


def select_session_turns(connection: sqlite3.Connection, session_id: str) -> list[TraceSummary]:
    rows = connection.execute(
        f"SELECT {_TRACE_COLUMNS} FROM traces t WHERE t.session_id = ? ORDER BY t.start_ns, t.trace_id",
        (session_id,),
    ).fetchall()
    turns = [_trace_row(row) for row in rows]
    _with_trace_evaluations(connection, turns)
    return turns


def _with_trace_evaluations(connection: sqlite3.Connection, traces: list[TraceSummary]) -> None:
    found = evaluation_queries.select_trace_results(connection, [trace.trace_id for trace in traces])
    for trace in traces:
        trace.evaluations = found.get(trace.trace_id, [])


def list_users(connection: sqlite3.Connection, query: ListQuery) -> Page[UserSummary]:
    conditions: list[str] = []
    params: list[Any] = []
    _add_filters(
        conditions,
        params,
        "u",
        query,
        (
            ("u.project = ?", query.project),
            ("u.last_seen_ns >= ?", query.start_ns),
            ("u.first_seen_ns <= ?", query.end_ns),
        ),
    )
    if query.q:
        conditions.append("u.user_id LIKE ? ESCAPE '\\'")
        params.append(_like(query.q))
    sorts, join, join_params = _eval_sort(query, USER_SORTS, "user_evaluations", "user_id", "u.user_id")
    select = f"SELECT {_USER_COLUMNS} FROM users u{join}"
    return _page(
        connection,
        select,
        conditions,
        params,
        sorts,
        "u.user_id",
        "user_id",
        query,
        _user_row,
        join_params,
        _with_user_evaluations(connection),
    )


def select_user(connection: sqlite3.Connection, user_id: str) -> UserSummary | None:
    row = connection.execute(
        f"SELECT {_USER_COLUMNS} FROM users u WHERE u.user_id = ?", (user_id,)
    ).fetchone()
    if not row:
        return None
    summary = _user_row(row)
    _with_user_evaluations(connection)([summary])
    return summary


def list_traces(connection: sqlite3.Connection, query: ListQuery) -> Page[TraceSummary]:
    conditions, params = _tag_and_metadata_conditions("t", query)
    _add_filters(
        conditions,
        params,
        "t",
        query,
        (
            ("t.project = ?", query.project),
            ("t.user_id = ?", query.user_id),
            ("t.session_id = ?", query.session_id),
            ("t.end_ns >= ?", query.start_ns),
            ("t.start_ns <= ?", query.end_ns),
            ("t.status = ?", query.status),
            (
                "EXISTS (SELECT 1 FROM spans sp WHERE sp.trace_id = t.trace_id AND sp.span_kind = ?)",
                query.span_kind,
            ),
            ("EXISTS (SELECT 1 FROM spans sp WHERE sp.trace_id = t.trace_id AND sp.model = ?)", query.model),
        ),
    )
    if query.q:
        conditions.append(
            f"(t.trace_id LIKE ? ESCAPE '\\' OR t.name LIKE ? ESCAPE '\\'"
            f" OR {_TRACE_INPUT} LIKE ? ESCAPE '\\' OR {_TRACE_OUTPUT} LIKE ? ESCAPE '\\')"
        )
        params.extend([_like(query.q)] * 4)
    select = f"SELECT {_TRACE_COLUMNS} FROM traces t"
    return _page(
        connection, select, conditions, params, TRACE_SORTS, "t.trace_id", "trace_id", query, _trace_row
    )


def select_trace(connection: sqlite3.Connection, trace_id: str) -> TraceSummary | None:
    row = connection.execute(
        f"SELECT {_TRACE_COLUMNS} FROM traces t WHERE t.trace_id = ?", (trace_id,)
    ).fetchone()
    if not row:
        return None
    summary = _trace_row(row)
    _with_trace_evaluations(connection, [summary])
    return summary


def list_spans(connection: sqlite3.Connection, query: ListQuery) -> Page[SpanRecord]:
    """Spans in storage order; the cursor is the last row's rowid (opaque to callers)."""
    after = 0
    if query.cursor:
        value, _ = decode_cursor(query.cursor, "spans")
        after = int(value)
    rows = evaluation_queries.select_span_page(
        connection,
        SPAN_COLUMNS,
        query.project,
        query.span_kind,
        query.start_ns,
        query.end_ns,
        after,
        query.limit + 1,
    )
    items = [span_row(row[1:]) for row in rows[: query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        next_cursor = encode_cursor("spans", rows[query.limit - 1][0], "")
    return Page(items, next_cursor)
