"""Writing a batch: spans plus the trace, session and user rollups they change, in one transaction.

Rollups are recomputed from their children (a trace from its spans, a session from its traces,
a user from their traces) rather than adjusted by deltas. That is what makes arrival order
irrelevant: a child that arrives before its parent, a span that names a session its trace did
not know yet, or a retried batch all end in the same rows as an in-order stream. It stays cheap
because a trace has few spans and a session few traces, and each recompute reads the small
leading columns only (no input/output text).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.sqlite import write_queries as sql

_SPAN = {name: index for index, name in enumerate(sql.TRACE_SPAN_COLUMNS)}
_TRACE = {name: index for index, name in enumerate(sql.SESSION_TRACE_COLUMNS)}


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 for no values."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _merge_json(rows: Sequence[Sequence[Any]], tags_at: int, metadata_at: int) -> tuple[str, str]:
    """Tags: the union in order. Metadata: merged, the first row naming a key wins."""
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    # Most rows carry no tags or metadata, or the same as their neighbours: parse each
    # distinct text once (this runs for every session a batch touches).
    seen: set[str] = {"[]", "{}"}
    for row in rows:
        tags_text, metadata_text = row[tags_at], row[metadata_at]
        if tags_text not in seen:
            seen.add(tags_text)
            tags.extend(tag for tag in json.loads(tags_text) if tag not in tags)
        if metadata_text not in seen:
            seen.add(metadata_text)
            for key, value in json.loads(metadata_text).items():
                metadata.setdefault(key, value)
    if not tags and not metadata:
        return "[]", "{}"
    return json.dumps(tags, ensure_ascii=False), json.dumps(metadata, ensure_ascii=False)


def refresh_trace(connection: sqlite3.Connection, trace_id: str) -> tuple[str | None, str | None]:
    """Recompute one trace's rollup from its spans; returns its (session_id, user_id)."""
    rows = sql.select_trace_spans(connection, trace_id)
    span_ids = {row[_SPAN["span_id"]] for row in rows}
    root = next((row for row in rows if row[_SPAN["parent_span_id"]] is None), None)
    # Until the root arrives, the earliest span whose parent is missing stands in for it.
    head = root or next((row for row in rows if row[_SPAN["parent_span_id"]] not in span_ids), rows[0])
    # The root's ids win; otherwise the earliest span that names one (ids only on a child span).
    ordered = [head, *(row for row in rows if row is not head)]
    session_id = next((row[_SPAN["session_id"]] for row in ordered if row[_SPAN["session_id"]]), None)
    user_id = next((row[_SPAN["user_id"]] for row in ordered if row[_SPAN["user_id"]]), None)
    input_row = next((row for row in ordered if row[_SPAN["has_input"]]), None)
    output_row = head if head[_SPAN["has_output"]] else None
    if output_row is None:
        by_end = sorted(rows, key=lambda row: row[_SPAN["end_ns"]], reverse=True)
        output_row = next((row for row in by_end if row[_SPAN["has_output"]]), None)
    start = min(row[_SPAN["start_ns"]] for row in rows)
    end = max(row[_SPAN["end_ns"]] for row in rows)
    latency_ns = (root[_SPAN["end_ns"]] - root[_SPAN["start_ns"]]) if root else end - start
    errors = sum(row[_SPAN["status_code"]] == "ERROR" for row in rows)
    tags, metadata = _merge_json(ordered, _SPAN["tags"], _SPAN["metadata"])
    sql.replace_trace(
        connection,
        (
            trace_id,
            head[_SPAN["project"]],
            session_id,
            user_id,
            root[_SPAN["span_id"]] if root else None,
            head[_SPAN["name"]],
            head[_SPAN["span_kind"]],
            start,
            end,
            latency_ns / 1e6,
            len(rows),
            errors,
            sum(row[_SPAN["total_tokens"]] or 0 for row in rows),
            sum(row[_SPAN["cost"]] or 0.0 for row in rows),
            "ERROR" if errors else head[_SPAN["status_code"]],
            tags,
            metadata,
            sql.select_span_input(connection, trace_id, input_row[_SPAN["span_id"]]) if input_row else None,
            sql.select_span_output(connection, trace_id, output_row[_SPAN["span_id"]])
            if output_row
            else None,
        ),
    )
    return session_id, user_id


def refresh_session(connection: sqlite3.Connection, session_id: str) -> None:
    """Recompute one session's rollup from its traces (or drop it when none name it any more)."""
    rows = sql.select_session_traces(connection, session_id)
    if not rows:
        sql.delete_session(connection, session_id)
        return
    latencies = sorted(row[_TRACE["latency_ms"]] for row in rows)
    first_with_input = next((row for row in rows if row[_TRACE["has_input"]]), None)
    last_with_output = next((row for row in reversed(rows) if row[_TRACE["has_output"]]), None)
    tags, metadata = _merge_json(rows, _TRACE["tags"], _TRACE["metadata"])
    sql.replace_session(
        connection,
        (
            session_id,
            rows[0][_TRACE["project"]],
            next((row[_TRACE["user_id"]] for row in rows if row[_TRACE["user_id"]]), None),
            len(rows),
            min(row[_TRACE["start_ns"]] for row in rows),
            max(row[_TRACE["end_ns"]] for row in rows),
            sum(row[_TRACE["total_tokens"]] for row in rows),
            sum(row[_TRACE["cost"]] for row in rows),
            sum(row[_TRACE["error_count"]] > 0 for row in rows),
            percentile(latencies, 0.5),
            percentile(latencies, 0.95),
            tags,
            metadata,
            sql.select_trace_input(connection, first_with_input[_TRACE["trace_id"]])
            if first_with_input
            else None,
            sql.select_trace_output(connection, last_with_output[_TRACE["trace_id"]])
            if last_with_output
            else None,
        ),
    )


def refresh_user(connection: sqlite3.Connection, user_id: str) -> None:
    """Recompute one user's rollup from their traces (or drop it when none name them any more)."""
    traces, sessions, tokens, cost, errors, first_seen, last_seen = sql.select_user_totals(
        connection, user_id
    )
    if not traces:
        sql.delete_user(connection, user_id)
        return
    project = sql.select_user_first_project(connection, user_id) or ""
    sql.replace_user(
        connection, (user_id, project, sessions, traces, tokens, cost, errors, first_seen, last_seen)
    )


def write_batch(connection: sqlite3.Connection, spans: Sequence[SpanRecord]) -> None:
    """Insert spans and refresh every rollup they touch. The caller owns the transaction."""
    before = connection.total_changes
    sql.insert_spans(connection, map(sql.span_row, spans))
    if connection.total_changes == before:
        return  # every span was already stored (a retried batch): no rollup changes
    sessions: dict[str, None] = {}
    users: dict[str, None] = {}
    for trace_id in dict.fromkeys(span.trace_id for span in spans):
        previous = sql.select_trace_owner(connection, trace_id)
        for session_id, user_id in (previous or (None, None), refresh_trace(connection, trace_id)):
            if session_id:
                sessions[session_id] = None
            if user_id:
                users[user_id] = None
    for session_id in sessions:
        refresh_session(connection, session_id)
    for user_id in users:
        refresh_user(connection, user_id)
