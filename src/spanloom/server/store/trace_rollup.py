"""A trace's rollup, computed from all of its spans: a pure function, the same whatever order the
spans arrived in (they are sorted by start time and span id first).

A trace has few spans, so it is always recounted; only session and user rollups need deltas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.json_values import to_json


class SpanFacts(NamedTuple):
    """What a trace's rollup needs from one span (no input/output text)."""

    span_id: str
    parent_span_id: str | None
    project: str
    session_id: str | None
    user_id: str | None
    name: str
    span_kind: str
    start_ns: int
    end_ns: int
    status_code: str
    total_tokens: int | None
    cost: float | None
    tags: list[str]
    metadata: dict[str, Any]
    has_input: bool
    has_output: bool


class TraceRow(NamedTuple):
    """A traces row, without the input/output span ids at its end (`TraceRollup` has them)."""

    trace_id: str
    project: str
    session_id: str | None
    user_id: str | None
    root_span_id: str | None
    name: str
    span_kind: str
    start_ns: int
    end_ns: int
    latency_ms: float
    span_count: int
    error_count: int
    total_tokens: int
    cost: float
    cost_nanos: int
    status: str
    has_input: int
    has_output: int
    labeled: int  # the trace has tags or metadata
    tags: str  # JSON
    metadata: str  # JSON


TRACE_COLUMNS = TraceRow._fields


class TraceRollup(NamedTuple):
    row: TraceRow
    input_span_id: str | None  # the span whose input is the trace's input
    output_span_id: str | None


def facts_of(span: SpanRecord) -> SpanFacts:
    return SpanFacts(
        span.span_id,
        span.parent_span_id,
        span.project,
        span.session_id,
        span.user_id,
        span.name,
        span.span_kind,
        span.start_time_ns,
        span.end_time_ns,
        span.status_code,
        span.total_tokens,
        span.cost,
        span.tags,
        span.metadata,
        span.input is not None,
        span.output is not None,
    )


# The columns of `spans` a rollup reads, in SpanFacts order (the JSON of tags and metadata).
SPAN_FACT_COLUMNS = (
    "span_id, parent_span_id, project, session_id, user_id, name, span_kind, start_ns, end_ns,"
    " status_code, total_tokens, cost, tags, metadata, has_input, has_output"
)


def facts_of_row(row: Sequence[Any]) -> SpanFacts:
    """From a row of SPAN_FACT_COLUMNS (tags and metadata as JSON text)."""
    (
        span_id,
        parent_span_id,
        project,
        session_id,
        user_id,
        name,
        span_kind,
        start_ns,
        end_ns,
        status_code,
        total_tokens,
        cost,
        tags,
        metadata,
        has_input,
        has_output,
    ) = row
    return SpanFacts(
        span_id,
        parent_span_id,
        project,
        session_id,
        user_id,
        name,
        span_kind,
        start_ns,
        end_ns,
        status_code,
        total_tokens,
        cost,
        json.loads(tags) if tags != "[]" else [],
        json.loads(metadata) if metadata != "{}" else {},
        bool(has_input),
        bool(has_output),
    )


def merge_labels(pairs: Iterable[tuple[list[str], dict[str, Any]]]) -> tuple[list[str], dict[str, Any]]:
    """Tags: the union in order. Metadata: merged, the first to name a key wins."""
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    for more_tags, more_metadata in pairs:
        tags.extend(tag for tag in more_tags if tag not in tags)
        for key, value in more_metadata.items():
            metadata.setdefault(key, value)
    return tags, metadata


def labels_json(tags: list[str], metadata: dict[str, Any]) -> tuple[str, str]:
    """(tags, metadata) as a row stores them."""
    return (to_json(tags) if tags else "[]", to_json(metadata) if metadata else "{}")


INT64_MAX = 2**63 - 1


def saturated(value: int) -> int:
    """An integer within what a 64-bit column holds: sums of hostile values saturate there
    instead of failing the write."""
    return max(-INT64_MAX, min(value, INT64_MAX))


def cost_nanos(cost: float) -> int:
    """USD as integer nano-USD: exact to add and subtract in any order."""
    return saturated(round(cost * 1e9)) if math.isfinite(cost) else 0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0.0 for no values."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def compute_trace(trace_id: str, spans: Iterable[SpanFacts]) -> TraceRollup:
    """The rollup of a trace from all its spans (at least one)."""
    rows = sorted(spans, key=lambda span: (span.start_ns, span.span_id))
    span_ids = {row.span_id for row in rows}
    root = next((row for row in rows if row.parent_span_id is None), None)
    # Until the root arrives, the earliest span whose parent is missing stands in for it.
    head = root or next((row for row in rows if row.parent_span_id not in span_ids), rows[0])
    # The root's ids win; otherwise the earliest span that names one (ids only on a child span).
    ordered = [head, *(row for row in rows if row is not head)]
    session_id = next((row.session_id for row in ordered if row.session_id), None)
    user_id = next((row.user_id for row in ordered if row.user_id), None)
    input_row = next((row for row in ordered if row.has_input), None)
    output_row = head if head.has_output else None
    if output_row is None:
        with_output = [row for row in rows if row.has_output]
        # The latest to end (the earliest in start order among equals).
        output_row = max(with_output, key=lambda row: row.end_ns) if with_output else None
    start = min(row.start_ns for row in rows)
    end = max(row.end_ns for row in rows)
    latency_ns = (root.end_ns - root.start_ns) if root else end - start
    errors = sum(row.status_code == "ERROR" for row in rows)
    # fsum is exactly rounded, so the same spans give the same cost whatever order they came in.
    cost = math.fsum(row.cost or 0.0 for row in rows)
    if any(row.tags or row.metadata for row in rows):
        tags, metadata = merge_labels((row.tags, row.metadata) for row in ordered)
    else:
        tags, metadata = [], {}
    row = TraceRow(
        trace_id,
        head.project,
        session_id,
        user_id,
        root.span_id if root else None,
        head.name,
        head.span_kind,
        start,
        end,
        latency_ns / 1e6,
        len(rows),
        errors,
        sum(row.total_tokens or 0 for row in rows),
        cost,
        cost_nanos(cost),
        "ERROR" if errors else head.status_code,
        int(input_row is not None),
        int(output_row is not None),
        int(bool(tags or metadata)),
        *labels_json(tags, metadata),
    )
    return TraceRollup(
        row, input_row.span_id if input_row else None, output_row.span_id if output_row else None
    )
