"""SQL of the read path for span rows: a trace's spans (whole, a page, or an outline), a session's
tool spans, the span list for evaluating stored spans, and stored rows back into records."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import ListQuery, Page, SpanRecord
from spanloom.server.store.column_attributes import restore_lifted
from spanloom.server.store.cursor import decode_cursor, encode_cursor
from spanloom.server.store.json_values import from_json, to_json
from spanloom.server.store.span_texts import restore_attributes
from spanloom.server.store.sqlite.moved_keys import decode_key
from spanloom.server.store.sqlite.packed_json import unpack
from spanloom.server.store.sqlite.resource_rows import RESOURCE_SQL

# What a trace's outline reads of each span: everything but the texts, attributes and events,
# which are most of a span's bytes (a trace may hold up to 100,000 spans).
_OUTLINE_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, project, start_ns, end_ns, otel_kind, span_kind, session_id,"
    " user_id, status_code, status_message, model, prompt_tokens, completion_tokens, total_tokens, cost"
)
_COLUMNS = (
    f"{_OUTLINE_COLUMNS}, input, output, metadata, tags, attributes, events, {RESOURCE_SQL}, input_key,"
    " input_at, output_key, output_at, input_from, output_from, lifted"
)
# The cursor "sort key" of list_spans.
SPANS_CURSOR = "spans"


def _outline(row: Sequence[Any]) -> SpanRecord:
    (
        trace_id,
        span_id,
        parent_span_id,
        name,
        project,
        start_ns,
        end_ns,
        otel_kind,
        span_kind,
        session_id,
        user_id,
        status_code,
        status_message,
        model,
        prompt_tokens,
        completion_tokens,
        total_tokens,
        cost,
    ) = row
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        project=project,
        start_time_ns=start_ns,
        end_time_ns=end_ns,
        otel_kind=otel_kind,
        span_kind=span_kind,
        session_id=session_id,
        user_id=user_id,
        status_code=status_code,
        status_message=status_message,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total_tokens,
        cost=cost,
    )


def _shared_texts(
    connection: sqlite3.Connection, rows: Sequence[Sequence[Any]]
) -> dict[tuple[str, str], tuple[Any, Any]]:
    """(trace id, span id) -> (input, output) of the spans that hold texts these rows share
    (span_rows.share_texts), read in one query, skipping holders among the rows themselves."""
    here = {(row[0], row[1]): (row[18], row[19]) for row in rows}
    wanted = {
        (row[0], holder)
        for row in rows
        for holder in (row[29], row[30])
        if holder and (row[0], holder) not in here
    }
    if wanted:
        for trace_id, span_id, input_text, output_text in connection.execute(
            "SELECT trace_id, span_id, input, output FROM spans WHERE (trace_id, span_id) IN"
            " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
            (to_json([list(key) for key in wanted]),),
        ):
            here[(trace_id, span_id)] = (input_text, output_text)
    return here


def spans_of(connection: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[SpanRecord]:
    """Whole spans from rows of _COLUMNS, with the texts they share with another span put back."""
    shared = _shared_texts(connection, rows) if any(row[29] or row[30] for row in rows) else {}
    spans = []
    for row in rows:
        (
            input_text,
            output_text,
            metadata,
            tags,
            attributes,
            events,
            resource,
            input_key,
            input_at,
            output_key,
            output_at,
            input_from,
            output_from,
            lifted,
        ) = row[18:]
        if input_from:
            input_text = shared.get((row[0], input_from), (None, None))[0]
        if output_from:
            output_text = shared.get((row[0], output_from), (None, None))[1]
        span = _outline(row[:18])
        span.input = input_text
        span.output = output_text
        span.metadata = from_json(metadata)
        span.tags = from_json(tags)
        span.attributes = restore_attributes(
            restore_lifted(unpack(attributes), lifted, span),
            (
                (decode_key(input_key, "input"), input_at, input_text),
                (decode_key(output_key, "output"), output_at, output_text),
            ),
        )
        span.events = unpack(events)
        span.resource = from_json(resource)
        spans.append(span)
    return spans


def select_trace_spans(connection: sqlite3.Connection, trace_id: str) -> list[SpanRecord]:
    """All the trace's spans, in (start, span id) order."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", (trace_id,)
    ).fetchall()
    return spans_of(connection, rows)


def select_trace_span_page(
    connection: sqlite3.Connection, trace_id: str, limit: int, after_span_id: str = ""
) -> tuple[list[SpanRecord], str | None]:
    """(`limit` spans of the trace after `after_span_id` in span-id order, sorted by (start, span
    id); the span id to continue after, or None when these were the last). Pages follow the
    primary key, so a page of a huge trace reads only its own rows; a trace that fits in one page
    comes back exactly as `select_trace_spans` returns it."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM spans WHERE trace_id = ? AND span_id > ? ORDER BY span_id LIMIT ?",
        (trace_id, after_span_id, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    spans = spans_of(connection, rows[:limit])
    next_after = spans[-1].span_id if more else None
    spans.sort(key=lambda span: (span.start_time_ns, span.span_id))
    return spans, next_after


def select_trace_outline(connection: sqlite3.Connection, trace_id: str) -> list[SpanRecord]:
    """Every span of the trace in (start, span id) order, without input, output, attributes,
    events or resource: enough to order a tree and draw a waterfall."""
    rows = connection.execute(
        f"SELECT {_OUTLINE_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", (trace_id,)
    ).fetchall()
    return [_outline(row) for row in rows]


def select_spans(connection: sqlite3.Connection, trace_id: str, span_ids: Sequence[str]) -> list[SpanRecord]:
    """These spans of the trace, whole, in (start, span id) order; unknown ids are left out."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM spans WHERE trace_id = ? AND span_id IN (SELECT value FROM json_each(?))"
        " ORDER BY start_ns, span_id",
        (trace_id, to_json(list(span_ids))),
    ).fetchall()
    return spans_of(connection, rows)


def select_tool_spans(
    connection: sqlite3.Connection, trace_ids: Sequence[str]
) -> dict[str, list[SpanRecord]]:
    """The TOOL spans of these traces (trace id -> spans in time order), for folding into a
    session's transcript: each trace's spans by primary key."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM spans WHERE trace_id IN (SELECT value FROM json_each(?))"
        " AND span_kind = 'TOOL' ORDER BY start_ns, span_id",
        (to_json(list(trace_ids)),),
    ).fetchall()
    by_trace: dict[str, list[SpanRecord]] = {}
    for span in spans_of(connection, rows):
        by_trace.setdefault(span.trace_id, []).append(span)
    return by_trace


def select_llm_and_tool_spans(
    connection: sqlite3.Connection, trace_ids: Sequence[str]
) -> dict[str, list[SpanRecord]]:
    """The LLM and TOOL spans of these traces (trace id -> spans in time order), whole: what a
    conversation is rebuilt from for a dataset. Each trace's spans by primary key."""
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM spans WHERE trace_id IN (SELECT value FROM json_each(?))"
        " AND span_kind IN ('LLM', 'TOOL') ORDER BY start_ns, span_id",
        (to_json(list(trace_ids)),),
    ).fetchall()
    by_trace: dict[str, list[SpanRecord]] = {}
    for span in spans_of(connection, rows):
        by_trace.setdefault(span.trace_id, []).append(span)
    return by_trace


def _span_filters(query: ListQuery) -> tuple[str, list[Any]]:
    conditions, params = [], []
    for fragment, value in (
        ("project = ?", query.project),
        ("span_kind = ?", query.span_kind),
        ("start_ns >= ?", query.start_ns),
        ("start_ns <= ?", query.end_ns),
    ):
        if value is not None:
            conditions.append(fragment)
            params.append(value)
    return " AND ".join(conditions), params


def list_spans(connection: sqlite3.Connection, query: ListQuery) -> Page[SpanRecord]:
    """Spans in (project, start, trace id, span id) order: the index spans_by_start's, so a page is
    one index range whatever the filters."""
    where, params = _span_filters(query)
    conditions = [where] if where else []
    if query.cursor:
        start_ns, (project, trace_id, span_id) = decode_cursor(query.cursor, SPANS_CURSOR, 3)
        conditions.append("(project, start_ns, trace_id, span_id) > (?, ?, ?, ?)")
        params.extend((project, start_ns, trace_id, span_id))
    text = (
        f"SELECT {_COLUMNS} FROM spans INDEXED BY spans_by_start"
        f"{' WHERE ' + ' AND '.join(conditions) if conditions else ''}"
        " ORDER BY project, start_ns, trace_id, span_id LIMIT ?"
    )
    rows = connection.execute(text, (*params, query.limit + 1)).fetchall()
    items = spans_of(connection, rows[: query.limit])
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        next_cursor = encode_cursor(
            SPANS_CURSOR, last.start_time_ns, (last.project, last.trace_id, last.span_id)
        )
    return Page(items, next_cursor)


def count_spans(connection: sqlite3.Connection, query: ListQuery) -> int:
    where, params = _span_filters(query)
    (count,) = connection.execute(
        f"SELECT COUNT(*) FROM spans{' WHERE ' + where if where else ''}", params
    ).fetchone()
    return int(count)
