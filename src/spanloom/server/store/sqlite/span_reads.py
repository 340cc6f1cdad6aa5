"""SQL of the read path for span rows: a trace's spans and a session's tool spans, and turning
stored span rows back into records (split out of read_queries.py, which list_spans stays in)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import SpanRecord

SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, project, start_ns, end_ns, otel_kind, span_kind, session_id,"
    " user_id, status_code, status_message, model, prompt_tokens, completion_tokens, total_tokens, cost,"
    " input, output, metadata, tags, attributes, events, resource, input_key, input_at, output_key, output_at"
)


def _restore_attributes(attributes: dict[str, Any], row: tuple[Any, ...]) -> dict[str, Any]:
    """Put back the attribute that input/output was read from (the writer left it out of the
    attributes JSON because the input/output column holds the same text), at its position."""
    moved = sorted(
        (position, key, text)
        for key, position, text in ((row[25], row[26], row[18]), (row[27], row[28], row[19]))
        if key is not None
    )
    if not moved:
        return attributes
    items = list(attributes.items())
    for position, key, text in moved:
        items.insert(position, (key, text))
    return dict(items)


def span_row(row: tuple[Any, ...]) -> SpanRecord:
    return SpanRecord(
        *row[:20],
        metadata=json.loads(row[20]),
        tags=json.loads(row[21]),
        attributes=_restore_attributes(json.loads(row[22]), row),
        events=json.loads(row[23]),
        resource=json.loads(row[24]),
    )


def select_trace_spans(connection: sqlite3.Connection, trace_id: str) -> list[SpanRecord]:
    """All the trace's spans, in (start, span id) order."""
    rows = connection.execute(
        f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", (trace_id,)
    ).fetchall()
    return [span_row(row) for row in rows]


def select_trace_span_page(
    connection: sqlite3.Connection, trace_id: str, limit: int, after_span_id: str = ""
) -> tuple[list[SpanRecord], str | None]:
    """(`limit` spans of the trace after `after_span_id` in span-id order, sorted by (start, span
    id); the span id to continue after, or None when these were the last). Pages follow the
    primary key, so a page of a huge trace reads only its own rows; a trace that fits in one page
    comes back exactly as `select_trace_spans` returns it."""
    rows = connection.execute(
        f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ? AND span_id > ? ORDER BY span_id LIMIT ?",
        (trace_id, after_span_id, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = rows[-1][1] if more else None
    rows.sort(key=lambda row: (row[5], row[1]))
    return [span_row(row) for row in rows], next_after


# What a trace's outline reads of each span: everything but the texts, attributes and events,
# which are most of a span's bytes (a trace may hold up to 100,000 spans).
_OUTLINE_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, project, start_ns, end_ns, otel_kind, span_kind, session_id,"
    " user_id, status_code, status_message, model, prompt_tokens, completion_tokens, total_tokens, cost"
)


def select_trace_outline(connection: sqlite3.Connection, trace_id: str) -> list[SpanRecord]:
    """Every span of the trace in (start, span id) order, without input, output, attributes,
    events or resource: enough to order a tree and draw a waterfall."""
    rows = connection.execute(
        f"SELECT {_OUTLINE_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", (trace_id,)
    ).fetchall()
    return [SpanRecord(*row) for row in rows]


def select_spans(connection: sqlite3.Connection, trace_id: str, span_ids: Sequence[str]) -> list[SpanRecord]:
    """These spans of the trace, whole, in (start, span id) order; unknown ids are left out."""
    rows = connection.execute(
        f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ? AND span_id IN (SELECT value FROM json_each(?))"
        " ORDER BY start_ns, span_id",
        (trace_id, json.dumps(list(span_ids))),
    ).fetchall()
    return [span_row(row) for row in rows]


def select_session_tool_spans(connection: sqlite3.Connection, session_id: str) -> dict[str, list[SpanRecord]]:
    """Each turn's TOOL spans (trace id -> spans in time order), for folding into a transcript.

    Walks the session's traces through traces_by_session, then each trace's spans by primary key.
    """
    rows = connection.execute(
        f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id IN "
        "(SELECT trace_id FROM traces WHERE session_id = ?) AND span_kind = 'TOOL' "
        "ORDER BY start_ns, span_id",
        (session_id,),
    ).fetchall()
    by_trace: dict[str, list[SpanRecord]] = {}
    for row in rows:
        span = span_row(row)
        by_trace.setdefault(span.trace_id, []).append(span)
    return by_trace
