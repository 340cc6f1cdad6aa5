"""The read path for sessions: the list, one session, and where an id exists."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from spanloom.server.store.base import ListQuery, Page, SessionSummary
from spanloom.server.store.clickhouse import evaluation_reads
from spanloom.server.store.clickhouse.paging import Conditions, ListShape, Params, Sort, eval_sort, like, page
from spanloom.server.store.evaluation_types import FEEDBACK
from spanloom.server.store.turn_previews import input_preview, output_preview

_ENDED = "(m.ended_ns > 0 AND m.ended_ns >= s.end_ns)"
# The texts last: a page of the list sorts and limits on the other columns, then reads the texts
# of its own rows only (ClickHouse's lazy materialization, also below the marks' LEFT JOIN).
_COLUMNS = (
    "s.project, s.session_id, s.user_id, s.trace_count, s.first_input_trace, s.last_output_trace, s.start_ns,"
    " s.end_ns, s.total_tokens, s.cost, s.error_count, s.latency_p50_ms, s.latency_p95_ms, s.tags,"
    f" s.metadata, {_ENDED}, s.first_input, s.last_output"
)
# The sessions' end marks (a LEFT JOIN leaves 0 where there is none): ended, with no turn since.
_MARKS = (
    " LEFT JOIN (SELECT project, session_id, ended_ns FROM session_marks FINAL WHERE ended_ns > 0) AS m"
    " ON m.project = s.project AND m.session_id = s.session_id"
)


class _TraceId(str):
    """A trace id standing for that trace's text, in a session row of schema version 1 (no texts
    of its own): `enrich` reads the text from the trace row."""


def _text(trace_id: str | None, text: str | None) -> str | None:
    if trace_id is None:
        return None
    return _TraceId(trace_id) if text is None else text


def _session(row: tuple[Any, ...]) -> SessionSummary:
    return SessionSummary(
        session_id=row[1],
        project=row[0],
        user_id=row[2] or None,
        trace_count=row[3],
        first_input=_text(row[4], row[16]),
        last_output=_text(row[5], row[17]),
        start_time_ns=row[6],
        end_time_ns=row[7],
        total_tokens=row[8],
        cost=row[9],
        error_count=row[10],
        latency_p50_ms=row[11],
        latency_p95_ms=row[12],
        tags=json.loads(row[13]),
        metadata=json.loads(row[14]),
        ended=bool(row[15]),
    )


SESSIONS = ListShape(
    select=f"SELECT {_COLUMNS} FROM sessions AS s FINAL{_MARKS}",
    sorts={
        "start_time": Sort("s.start_ns", "Int64", "start_time_ns"),
        "last_activity": Sort("s.end_ns", "Int64", "end_time_ns"),
        "turns": Sort("s.trace_count", "Int64", "trace_count"),
        "tokens": Sort("s.total_tokens", "Int64", "total_tokens"),
        "cost": Sort("s.cost", "Float64", "cost"),
        "latency": Sort("s.latency_p50_ms", "Float64", "latency_p50_ms"),
        "errors": Sort("s.error_count", "Int64", "error_count"),
    },
    key_columns=("s.project", "s.session_id"),
    key_attributes=("project", "session_id"),
    make=_session,
)


def _with_trace_texts(client: Any, items: list[SessionSummary]) -> None:
    """The texts of rows of schema version 1 (trace ids in their place), from the trace rows."""
    older = [
        item
        for item in items
        if isinstance(item.first_input, _TraceId) or isinstance(item.last_output, _TraceId)
    ]
    if not older:
        return
    wanted = {item.first_input for item in older if isinstance(item.first_input, _TraceId)} | {
        item.last_output for item in older if isinstance(item.last_output, _TraceId)
    }
    rows = client.query(
        "SELECT trace_id, input, output FROM traces FINAL WHERE (project, session_id) IN"
        " {keys:Array(Tuple(String, String))} AND trace_id IN {ids:Array(String)}",
        parameters={
            "keys": sorted({(item.project, item.session_id) for item in older}),
            "ids": sorted(str(trace_id) for trace_id in wanted),
        },
    ).result_rows
    texts = {trace_id: (input_text, output_text) for trace_id, input_text, output_text in rows}
    for item in older:
        if isinstance(item.first_input, _TraceId):
            item.first_input = texts.get(str(item.first_input), (None, None))[0]
        if isinstance(item.last_output, _TraceId):
            item.last_output = texts.get(str(item.last_output), (None, None))[1]


def enrich(client: Any) -> Callable[[list[SessionSummary]], None]:
    """Fills in each session's evaluation aggregates (and the texts of old rows), for a page at
    once."""

    def fill(items: list[SessionSummary]) -> None:
        _with_trace_texts(client, items)
        found = evaluation_reads.select_aggregates(
            client, "session_evaluations", "session_id", [(item.project, item.session_id) for item in items]
        )
        for item in items:
            item.evaluations = found.get((item.project, item.session_id), {})

    return fill


def list_sessions(client: Any, query: ListQuery) -> Page[SessionSummary]:
    params = Params()
    sorts, join = eval_sort(query, SESSIONS.sorts, "session_evaluations", "session_id", "s", params)
    conditions = Conditions(params)
    conditions.add_set(
        (
            ("s.project = ?", query.project, "String"),
            ("s.user_id = ?", query.user_id, "String"),
            ("s.end_ns >= ?", query.start_ns, "Int64"),
            ("s.start_ns <= ?", query.end_ns, "Int64"),
        )
    )
    conditions.add_common("s", query)
    if query.session_status == "ended":
        conditions.add(_ENDED)
    elif query.session_status is not None:
        idle_before = query.idle_before_ns if query.idle_before_ns is not None else 0
        compare = "<" if query.session_status == "idle" else ">="
        conditions.add(f"NOT {_ENDED} AND s.end_ns {compare} ?", (idle_before, "Int64"))
    if query.has_negative_feedback is not None:
        conditions.add(
            ("" if query.has_negative_feedback else "NOT ")
            + "((s.project, s.session_id) IN (SELECT project, session_id FROM session_evaluations FINAL"
            " WHERE name = ? AND passed < result_count))",
            (FEEDBACK, "String"),
        )
    if query.q:
        pattern = (like(query.q), "String")
        conditions.add(
            "(s.session_id ILIKE ? OR s.user_id ILIKE ? OR (s.project, s.session_id) IN"
            " (SELECT project, session_id FROM traces FINAL"
            " WHERE session_id != '' AND (input ILIKE ? OR output ILIKE ?)))",
            *[pattern] * 4,
        )
    found = page(client, SESSIONS, conditions, query, sorts, join, enrich(client))
    # A list shows previews (turn_previews.py): cut here, from the texts the rows keep whole.
    for item in found.items:
        item.first_input, item.last_output = input_preview(item.first_input), output_preview(item.last_output)
    return found


def select_session(client: Any, project: str, session_id: str) -> SessionSummary | None:
    rows = client.query(
        f"{SESSIONS.select} WHERE s.project = {{p:String}} AND s.session_id = {{s:String}}",
        parameters={"p": project, "s": session_id},
    ).result_rows
    if not rows:
        return None
    summary = _session(rows[0])
    enrich(client)([summary])
    return summary


def select_sessions_to_judge(client: Any, idle_before_ns: int, limit: int) -> list[tuple[str, str, int]]:
    """(project, session id, end_ns) of ended or idle sessions not judged since their last turn,
    oldest first."""
    rows = client.query(
        "SELECT s.project, s.session_id, s.end_ns FROM sessions AS s FINAL"
        " LEFT JOIN (SELECT project, session_id, ended_ns, judged_end_ns FROM session_marks FINAL) AS m"
        " ON m.project = s.project AND m.session_id = s.session_id"
        f" WHERE (s.end_ns < {{idle:Int64}} OR {_ENDED}) AND m.judged_end_ns < s.end_ns"
        " ORDER BY s.end_ns, s.project, s.session_id LIMIT {n:UInt32}",
        parameters={"idle": idle_before_ns, "n": limit},
    ).result_rows
    return [(project, session_id, end_ns) for project, session_id, end_ns in rows]


def select_existing_sessions(client: Any, project: str, session_ids: Sequence[str]) -> set[str]:
    """Which of these session ids `project` holds."""
    rows = client.query(
        "SELECT session_id FROM sessions FINAL WHERE project = {p:String}"
        " AND session_id IN {ids:Array(String)}",
        parameters={"p": project, "ids": list(session_ids)},
    ).result_rows
    return {row[0] for row in rows}


def select_session_projects(client: Any, session_id: str) -> list[str]:
    rows = client.query(
        "SELECT project FROM sessions FINAL WHERE session_id = {s:String} ORDER BY project",
        parameters={"s": session_id},
    ).result_rows
    return [row[0] for row in rows]
