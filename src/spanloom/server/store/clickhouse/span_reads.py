"""The read path for span rows: a trace's spans (whole, a page, or an outline), a session's tool
spans, and the span list. A trace's spans are one key range of `spans`: its project and the time
window its trace row gives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import ListQuery, Page, SpanRecord, TraceSummary
from spanloom.server.store.clickhouse.rows import OUTLINE_COLUMNS, WHOLE_COLUMNS, outline_of, span_of
from spanloom.server.store.cursor import InvalidCursorError, decode_cursor, encode_cursor

SPANS_CURSOR = "spans"
_OF_TRACE = (
    "FROM spans WHERE project = {project:String} AND start_ns >= {low:Int64} AND start_ns <= {high:Int64}"
    " AND trace_id = {trace:String}"
)


def _window(trace: TraceSummary) -> dict[str, Any]:
    return {
        "project": trace.project,
        "low": trace.start_time_ns,
        "high": trace.end_time_ns,
        "trace": trace.trace_id,
    }


def select_trace_spans(client: Any, trace: TraceSummary) -> list[SpanRecord]:
    rows = client.query(
        f"SELECT {WHOLE_COLUMNS} {_OF_TRACE} ORDER BY start_ns, span_id", parameters=_window(trace)
    ).result_rows
    return [span_of(row) for row in rows]


def select_trace_span_page(
    client: Any, trace: TraceSummary, limit: int, after_span_id: str = ""
) -> tuple[list[SpanRecord], str | None]:
    """(`limit` spans after `after_span_id` in span-id order, sorted by (start, span id); the span
    id to continue after, or None when these were the last)."""
    rows = client.query(
        f"SELECT {WHOLE_COLUMNS} {_OF_TRACE} AND span_id > {{after:String}}"
        " ORDER BY span_id LIMIT {limit:UInt32}",
        parameters={**_window(trace), "after": after_span_id, "limit": limit + 1},
    ).result_rows
    more = len(rows) > limit
    spans = [span_of(row) for row in rows[:limit]]
    next_after = spans[-1].span_id if more else None
    spans.sort(key=lambda span: (span.start_time_ns, span.span_id))
    return spans, next_after


def select_trace_outline(client: Any, trace: TraceSummary) -> list[SpanRecord]:
    rows = client.query(
        f"SELECT {OUTLINE_COLUMNS} {_OF_TRACE} ORDER BY start_ns, span_id", parameters=_window(trace)
    ).result_rows
    return [outline_of(row) for row in rows]


def select_spans(client: Any, trace: TraceSummary, span_ids: Sequence[str]) -> list[SpanRecord]:
    rows = client.query(
        f"SELECT {WHOLE_COLUMNS} {_OF_TRACE} AND span_id IN {{ids:Array(String)}} ORDER BY start_ns, span_id",
        parameters={**_window(trace), "ids": list(span_ids)},
    ).result_rows
    return [span_of(row) for row in rows]


def _windows(turns: list[TraceSummary]) -> list[tuple[int, int]]:
    """The turns' time windows, overlapping ones merged, in order."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted((turn.start_time_ns, turn.end_time_ns) for turn in turns):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def select_session_tool_spans(client: Any, turns: list[TraceSummary]) -> dict[str, list[SpanRecord]]:
    """Each turn's TOOL spans (trace id -> spans in time order): the key ranges of the turns'
    own time windows, not one range from the first turn to the last (a session of a day would
    read every span of that day)."""
    if not turns:
        return {}
    parameters: dict[str, Any] = {"project": turns[0].project, "ids": [turn.trace_id for turn in turns]}
    ranges = []
    for number, (low, high) in enumerate(_windows(turns)):
        ranges.append(f"start_ns >= {{low{number}:Int64}} AND start_ns <= {{high{number}:Int64}}")
        parameters.update({f"low{number}": low, f"high{number}": high})
    rows = client.query(
        f"SELECT {WHOLE_COLUMNS} FROM spans WHERE project = {{project:String}} AND ({' OR '.join(ranges)})"
        " AND trace_id IN {ids:Array(String)} AND span_kind = 'TOOL' ORDER BY start_ns, span_id",
        parameters=parameters,
    ).result_rows
    by_trace: dict[str, list[SpanRecord]] = {}
    for row in rows:
        span = span_of(row)
        by_trace.setdefault(span.trace_id, []).append(span)
    return by_trace


def select_llm_and_tool_spans(client: Any, turns: list[TraceSummary]) -> dict[str, list[SpanRecord]]:
    """The LLM and TOOL spans of these turns (trace id -> spans in time order), whole: one key
    range over the turns' project and time window."""
    if not turns:
        return {}
    rows = client.query(
        f"SELECT {WHOLE_COLUMNS} FROM spans WHERE project = {{project:String}} AND start_ns >= {{low:Int64}}"
        " AND start_ns <= {high:Int64} AND trace_id IN {ids:Array(String)} AND span_kind IN ('LLM', 'TOOL')"
        " ORDER BY start_ns, span_id",
        parameters={
            "project": turns[0].project,
            "low": min(turn.start_time_ns for turn in turns),
            "high": max(turn.end_time_ns for turn in turns),
            "ids": [turn.trace_id for turn in turns],
        },
    ).result_rows
    by_trace: dict[str, list[SpanRecord]] = {}
    for row in rows:
        span = span_of(row)
        by_trace.setdefault(span.trace_id, []).append(span)
    return by_trace


def _filters(query: ListQuery) -> tuple[list[str], dict[str, Any]]:
    conditions, params = [], {}
    for name, fragment, value in (
        ("project", "project = {project:String}", query.project),
        ("kind", "span_kind = {kind:String}", query.span_kind),
        ("low", "start_ns >= {low:Int64}", query.start_ns),
        ("high", "start_ns <= {high:Int64}", query.end_ns),
    ):
        if value is not None:
            conditions.append(fragment)
            params[name] = value
    return conditions, params


def list_spans(client: Any, query: ListQuery) -> Page[SpanRecord]:
    """Spans in (project, start, trace id, span id) order: the table's own, so a page is one key
    range whatever the filters."""
    conditions, params = _filters(query)
    if query.cursor:
        start_ns, (project, trace_id, span_id) = decode_cursor(query.cursor, SPANS_CURSOR, 3)
        if not isinstance(start_ns, int):
            raise InvalidCursorError("not a cursor from this server")
        conditions.append(
            "(project, start_ns, trace_id, span_id) > ({cp:String}, {cs:Int64}, {ct:String}, {ci:String})"
        )
        params.update(cp=project, cs=start_ns, ct=trace_id, ci=span_id)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = client.query(
        f"SELECT {WHOLE_COLUMNS} FROM spans{where}"
        " ORDER BY project, start_ns, trace_id, span_id LIMIT {limit:UInt32}",
        parameters={**params, "limit": query.limit + 1},
    ).result_rows
    items = [span_of(row) for row in rows[: query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        next_cursor = encode_cursor(
            SPANS_CURSOR, last.start_time_ns, (last.project, last.trace_id, last.span_id)
        )
    return Page(items, next_cursor)


def count_spans(client: Any, query: ListQuery) -> int:
    conditions, params = _filters(query)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return int(client.query(f"SELECT count() FROM spans{where}", parameters=params).result_rows[0][0])
