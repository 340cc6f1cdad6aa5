"""SQL of the read path for span rows: a trace's spans and a session's tool spans, and turning
stored span rows back into records (split out of read_queries.py, which list_spans stays in)."""

from __future__ import annotations

import json
import sqlite3
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
    rows = connection.execute(
        f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", (trace_id,)
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
