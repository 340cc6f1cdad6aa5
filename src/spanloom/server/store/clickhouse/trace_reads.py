"""The read path for traces: the list, one trace, a session's turns, span counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import FailingTurns, ListQuery, Page, TraceSummary
from spanloom.server.store.clickhouse import evaluation_reads
from spanloom.server.store.clickhouse.paging import Conditions, ListShape, Sort, like, page
from spanloom.server.store.clickhouse.trace_lookup import select_trace_keys
from spanloom.server.store.evaluation_types import FEEDBACK

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
    if query.has_negative_feedback is not None:
        conditions.add(
            ("" if query.has_negative_feedback else "NOT ")
            + "(t.trace_id IN (SELECT trace_id FROM evaluations FINAL WHERE source = ? AND passed = 0))",
            (FEEDBACK, "String"),
        )
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


_IN_SESSION = "FROM traces AS t FINAL WHERE t.project = {p:String} AND t.session_id = {s:String}"


def select_session_turns(
    client: Any,
    project: str,
    session_id: str,
    limit: int | None = None,
    after: tuple[int, str] | None = None,
    before: tuple[int, str] | None = None,
) -> list[TraceSummary]:
    """Turns of the session in (start, trace id) order with their evaluation results: all of
    them, or `limit` from `after` (inclusive) on, or the `limit` right before `before`. One key
    range of `traces` (ordered by project, session)."""
    parameters: dict[str, Any] = {"p": project, "s": session_id}
    bounds = ""
    if after is not None:
        bounds = " AND (t.start_ns, t.trace_id) >= ({start:Int64}, {trace:String})"
        parameters.update(start=after[0], trace=after[1])
    elif before is not None:
        bounds = " AND (t.start_ns, t.trace_id) < ({start:Int64}, {trace:String})"
        parameters.update(start=before[0], trace=before[1])
    direction = "DESC" if before is not None else "ASC"
    tail = f" ORDER BY t.start_ns {direction}, t.trace_id {direction}"
    if limit is not None:
        tail += " LIMIT {limit:UInt32}"
        parameters["limit"] = limit
    rows = client.query(f"SELECT {_COLUMNS} {_IN_SESSION}{bounds}{tail}", parameters=parameters).result_rows
    if before is not None:
        rows.reverse()
    turns = [trace_of(row) for row in rows]
    with_evaluations(client, turns)
    return turns


def select_turns_of_sessions(client: Any, project: str, session_ids: Sequence[str]) -> list[TraceSummary]:
    """Every turn of these sessions, by (session, start, trace id), with their evaluation
    results: key ranges of `traces` (ordered by project, session)."""
    rows = client.query(
        f"SELECT {_COLUMNS} FROM traces AS t FINAL WHERE t.project = {{p:String}}"
        " AND t.session_id IN {ids:Array(String)} ORDER BY t.session_id, t.start_ns, t.trace_id",
        parameters={"p": project, "ids": list(session_ids)},
    ).result_rows
    turns = [trace_of(row) for row in rows]
    with_evaluations(client, turns)
    return turns


def count_turns_before(client: Any, project: str, session_id: str, turn: tuple[int, str]) -> int:
    """How many of the session's turns come before `turn` (start, trace id)."""
    return int(
        client.query(
            f"SELECT count() {_IN_SESSION}"
            " AND (t.start_ns, t.trace_id) < ({start:Int64}, {trace:String})",
            parameters={"p": project, "s": session_id, "start": turn[0], "trace": turn[1]},
        ).result_rows[0][0]
    )


def select_failing_turns(client: Any, project: str, session_id: str) -> FailingTurns:
    """How many of the session's turns failed (an error, or a result that did not pass:
    `base.turn_failed`, here in SQL), and the first with an error and the first with such a
    result. One query over the session's key range."""
    rows = client.query(
        "SELECT count(), countIf(error), minIf((start_ns, trace_id), error),"
        " minIf((start_ns, trace_id), judged)"
        " FROM (SELECT t.start_ns AS start_ns, t.trace_id AS trace_id, t.error_count > 0 AS error,"
        " t.trace_id IN (SELECT trace_id FROM evaluations FINAL WHERE project = {p:String}"
        " AND passed = 0 AND trace_id IN"
        " (SELECT trace_id FROM traces FINAL WHERE project = {p:String} AND session_id = {s:String}))"
        " AS judged"
        f" {_IN_SESSION}) WHERE error OR judged",
        parameters={"p": project, "s": session_id},
    ).result_rows
    if not rows or not rows[0][0]:
        return FailingTurns(0, None, None)
    count, errors, by_error, by_result = rows[0]
    return FailingTurns(
        int(count),
        (int(by_error[0]), str(by_error[1])) if errors else None,
        # minIf over no row gives the empty tuple (0, ''): no turn had a failing result
        (int(by_result[0]), str(by_result[1])) if by_result and by_result[1] else None,
    )


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
