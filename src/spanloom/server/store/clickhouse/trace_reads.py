"""The read path for traces: the list, one trace, a session's turns, span counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import ListQuery, Page, TraceSummary
from spanloom.server.store.clickhouse import evaluation_reads
from spanloom.server.store.clickhouse.paging import Conditions, ListShape, Sort, like, page
from spanloom.server.store.clickhouse.trace_lookup import select_trace_keys

_COLUMNS = (
    "t.trace_id, t.project, t.session_id, t.user_id, t.root_span_id, t.name, t.span_kind, t.start_ns,"
    " t.end_ns, t.latency_ms, t.span_count, t.error_count, t.total_tokens, t.cost, t.status, t.input,"
    " t.output, t.tags, t.metadata"
)


def trace_of(row: Sequence[Any]) -> TraceSummary:
    return TraceSummary(
        trace_id=row[0],
        project=row[1],
        session_id=row[2] or None,
        user_id=row[3] or None,
        root_span_id=row[4],
        name=row[5],
        span_kind=row[6],
        start_time_ns=row[7],
        end_time_ns=row[8],
        latency_ms=row[9],
        span_count=row[10],
        error_count=row[11],
        total_tokens=row[12],
        cost=row[13],
        status=row[14],
        input=row[15],
        output=row[16],
        tags=json.loads(row[17]),
        metadata=json.loads(row[18]),
    )


TRACES = ListShape(
    select=f"SELECT {_COLUMNS} FROM traces AS t FINAL",
    sorts={
        "start_time": Sort("t.start_ns", "Int64", "start_time_ns"),
        "latency": Sort("t.latency_ms", "Float64", "latency_ms"),
        "tokens": Sort("t.total_tokens", "Int64", "total_tokens"),
        "cost": Sort("t.cost", "Float64", "cost"),
        "errors": Sort("t.error_count", "Int64", "error_count"),
        "spans": Sort("t.span_count", "Int64", "span_count"),
    },
    key_columns=("t.trace_id",),
    key_attributes=("trace_id",),
    make=trace_of,
)


def with_evaluations(client: Any, traces: list[TraceSummary]) -> None:
    found = evaluation_reads.select_trace_results(client, [trace.trace_id for trace in traces])
    for trace in traces:
        trace.evaluations = found.get(trace.trace_id, [])


def list_traces(client: Any, query: ListQuery) -> Page[TraceSummary]:
    conditions = Conditions()
    conditions.add_set(
        (
            ("t.project = ?", query.project, "String"),
            ("t.user_id = ?", query.user_id, "String"),
            ("t.session_id = ?", query.session_id, "String"),
            ("t.end_ns >= ?", query.start_ns, "Int64"),
            ("t.start_ns <= ?", query.end_ns, "Int64"),
            ("t.status = ?", query.status, "String"),
            ("has(t.span_kinds, ?)", query.span_kind, "String"),
            ("has(t.models, ?)", query.model, "String"),
        )
    )
    conditions.add_common("t", query)
    if query.q:
        conditions.add(
            "(t.trace_id ILIKE ? OR t.name ILIKE ? OR t.input ILIKE ? OR t.output ILIKE ?)",
            *[(like(query.q), "String")] * 4,
        )
    return page(client, TRACES, conditions, query)


def select_trace(client: Any, trace_id: str) -> TraceSummary | None:
    keys = select_trace_keys(client, [trace_id])
    if trace_id not in keys:
        return None
    project, session_id = keys[trace_id]
    rows = client.query(
        f"{TRACES.select} WHERE t.project = {{p:String}} AND t.session_id = {{s:String}}"
        " AND t.trace_id = {t:String}",
        parameters={"p": project, "s": session_id, "t": trace_id},
    ).result_rows
    if not rows:
        return None
    summary = trace_of(rows[0])
    with_evaluations(client, [summary])
    return summary


def select_session_turns(client: Any, project: str, session_id: str) -> list[TraceSummary]:
    """Every trace of the session, in (start, trace id) order, with its evaluation results."""
    rows = client.query(
        f"{TRACES.select} WHERE t.project = {{p:String}} AND t.session_id = {{s:String}}"
        " ORDER BY t.start_ns, t.trace_id",
        parameters={"p": project, "s": session_id},
    ).result_rows
    turns = [trace_of(row) for row in rows]
    with_evaluations(client, turns)
    return turns


def select_trace_span_counts(client: Any, trace_ids: Sequence[str]) -> dict[str, int]:
    """trace id -> stored span count, for those of these traces that are stored."""
    keys = select_trace_keys(client, trace_ids)
    if not keys:
        return {}
    rows = client.query(
        "SELECT trace_id, span_count FROM traces FINAL"
        " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}"
        " AND trace_id IN {ids:Array(String)}",
        parameters={"keys": sorted(set(keys.values())), "ids": list(keys)},
    ).result_rows
    return {trace_id: count for trace_id, count in rows if trace_id in keys}
