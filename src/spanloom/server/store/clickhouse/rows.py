"""Rows as ClickHouse takes and gives them: spans, trace rollups, and back into records.

Optional ids are '' in key columns (``traces.session_id``/``user_id``: ClickHouse keys cannot be
Nullable) and None in records; ids are non-empty strings, so '' never names one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.clickhouse import schema
from spanloom.server.store.json_values import to_json
from spanloom.server.store.span_texts import restore_attributes, split_attributes
from spanloom.server.store.trace_rollup import SpanFacts, TraceRow, facts_of

SPAN_COLUMNS = schema.SPANS.column_names
TRACE_COLUMNS = schema.TRACES.column_names
_SPAN_INDEX = {name: index for index, name in enumerate(SPAN_COLUMNS)}


def span_row(span: SpanRecord, json_cache: dict[int, str]) -> tuple[Any, ...]:
    """The spans row of a record (SPAN_COLUMNS order). `json_cache`: a resource shared by many
    spans is serialized once."""
    attributes, moved_input, moved_output = split_attributes(span.attributes, span.input, span.output)
    resource = json_cache.get(id(span.resource))
    if resource is None:
        resource = json_cache[id(span.resource)] = to_json(span.resource)
    return (
        span.project,
        span.start_time_ns,
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.end_time_ns,
        span.name,
        span.otel_kind,
        span.span_kind,
        span.session_id,
        span.user_id,
        span.status_code,
        span.status_message,
        span.model,
        span.prompt_tokens,
        span.completion_tokens,
        span.total_tokens,
        span.cost,
        int(span.input is not None),
        int(span.output is not None),
        moved_input.key if moved_input else None,
        moved_input.position if moved_input else None,
        moved_output.key if moved_output else None,
        moved_output.position if moved_output else None,
        to_json(span.tags) if span.tags else "[]",
        to_json(span.metadata) if span.metadata else "{}",
        span.input,
        span.output,
        to_json(attributes),
        to_json(span.events) if span.events else "[]",
        resource,
    )


def span_rows(spans: Iterable[SpanRecord]) -> list[tuple[Any, ...]]:
    cache: dict[int, str] = {}
    return [span_row(span, cache) for span in spans]


OUTLINE_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, project, start_ns, end_ns, otel_kind, span_kind, session_id,"
    " user_id, status_code, status_message, model, prompt_tokens, completion_tokens, total_tokens, cost"
)
WHOLE_COLUMNS = (
    f"{OUTLINE_COLUMNS}, input, output, metadata, tags, attributes, events, resource, input_key, input_at,"
    " output_key, output_at"
)


def outline_of(row: Sequence[Any]) -> SpanRecord:
    """A span without texts, attributes, events and resource, from a row of OUTLINE_COLUMNS."""
    return SpanRecord(
        trace_id=row[0],
        span_id=row[1],
        parent_span_id=row[2],
        name=row[3],
        project=row[4],
        start_time_ns=row[5],
        end_time_ns=row[6],
        otel_kind=row[7],
        span_kind=row[8],
        session_id=row[9],
        user_id=row[10],
        status_code=row[11],
        status_message=row[12],
        model=row[13],
        prompt_tokens=row[14],
        completion_tokens=row[15],
        total_tokens=row[16],
        cost=row[17],
    )


def span_of(row: Sequence[Any]) -> SpanRecord:
    """A whole span from a row of WHOLE_COLUMNS."""
    span = outline_of(row)
    (input_text, output_text, metadata, tags, attributes, events, resource, *moved) = row[18:]
    input_key, input_at, output_key, output_at = moved
    span.input = input_text
    span.output = output_text
    span.metadata = json.loads(metadata)
    span.tags = json.loads(tags)
    span.attributes = restore_attributes(
        json.loads(attributes), ((input_key, input_at, input_text), (output_key, output_at, output_text))
    )
    span.events = json.loads(events)
    span.resource = json.loads(resource)
    return span


# What a trace's rollup needs of a stored span (SpanFacts order), and its model.
FACT_COLUMNS = (
    "span_id, parent_span_id, project, session_id, user_id, name, span_kind, start_ns, end_ns,"
    " status_code, total_tokens, cost, tags, metadata, has_input, has_output, model"
)


class StoredFacts(NamedTuple):
    facts: SpanFacts
    model: str | None


def facts_of_row(row: Sequence[Any]) -> StoredFacts:
    """From a row of FACT_COLUMNS (tags and metadata as JSON text)."""
    tags, metadata = row[12], row[13]
    facts = SpanFacts(  # type: ignore[call-arg]  # the first twelve fields from the row, in order
        *row[:12],
        json.loads(tags) if tags != "[]" else [],
        json.loads(metadata) if metadata != "{}" else {},
        bool(row[14]),
        bool(row[15]),
    )
    return StoredFacts(facts, row[16])


def facts_of_record(span: SpanRecord) -> StoredFacts:
    return StoredFacts(facts_of(span), span.model)


class StoredTrace(NamedTuple):
    """A traces row: the rollup and what the store keeps beside it."""

    row: TraceRow
    input_span_id: str | None
    output_span_id: str | None
    input: str | None
    output: str | None
    span_kinds: tuple[str, ...]
    models: tuple[str, ...]


# The columns of a StoredTrace, as selected (TraceRow's then the rest).
STORED_TRACE_COLUMNS = (
    "trace_id, project, session_id, user_id, root_span_id, name, span_kind, start_ns, end_ns, latency_ms,"
    " span_count, error_count, total_tokens, cost, cost_nanos, status, has_input, has_output, labeled, tags,"
    " metadata, input_span_id, output_span_id, input, output, span_kinds, models"
)


def stored_trace_of(row: Sequence[Any]) -> StoredTrace:
    values = list(row[:21])
    values[2] = values[2] or None  # session_id
    values[3] = values[3] or None  # user_id
    return StoredTrace(TraceRow(*values), row[21], row[22], row[23], row[24], tuple(row[25]), tuple(row[26]))


def trace_insert_row(trace: StoredTrace, version: int) -> tuple[Any, ...]:
    """The traces row (TRACE_COLUMNS order) of a trace."""
    row = trace.row
    return (
        row.project,
        row.session_id or "",
        row.trace_id,
        row.user_id or "",
        row.root_span_id,
        row.name,
        row.span_kind,
        row.start_ns,
        row.end_ns,
        row.latency_ms,
        row.span_count,
        row.error_count,
        row.total_tokens,
        row.cost,
        row.cost_nanos,
        row.status,
        row.has_input,
        row.has_output,
        row.labeled,
        row.tags,
        row.metadata,
        trace.input_span_id,
        trace.output_span_id,
        trace.input,
        trace.output,
        list(trace.span_kinds),
        list(trace.models),
        version,
        0,
    )


def tombstone(table: schema.Table, key: dict[str, Any], version: int) -> tuple[Any, ...]:
    """A row that hides `key` (its key columns' values) under FINAL: defaults elsewhere."""
    defaults = {"String": "", "Int64": 0, "Float64": 0.0, "UInt8": 0, "UInt64": 0}
    values = []
    for name, kind in table.columns:
        if name in key:
            values.append(key[name])
        elif name == "version":
            values.append(version)
        elif name == "deleted":
            values.append(1)
        elif kind.startswith("Nullable") or "(Nullable" in kind:
            values.append(None)
        elif kind.startswith("Array"):
            values.append([])
        else:
            base = kind.split(" ")[0]
            base = base.removeprefix("LowCardinality(").rstrip(")")
            values.append(defaults[base])
    return tuple(values)
