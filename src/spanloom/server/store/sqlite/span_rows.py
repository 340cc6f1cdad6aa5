"""The spans rows of a batch, built before the writer takes it (in the request's thread): the writer
thread is the one serial step of ingest, so it should only run SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeGuard

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.column_attributes import lift_attributes
from spanloom.server.store.json_values import to_json
from spanloom.server.store.span_texts import split_attributes
from spanloom.server.store.sqlite.moved_keys import encode_key
from spanloom.server.store.sqlite.packed_json import pack
from spanloom.server.store.sqlite.resource_rows import resource_key
from spanloom.server.store.trace_rollup import TraceRollup, compute_trace, facts_of

# Positions in a span_row.
_INPUT, _OUTPUT, _RESOURCE, _INPUT_FROM, _OUTPUT_FROM, _RESOURCE_KEY = 26, 27, 30, 31, 32, 34


class Resources:
    """The resources of a batch's rows: each serialized and keyed once however many spans share
    it (by the object's id), and their texts by key (`texts`), for the writer to store
    (resource_rows.py). A resource whose key another text of the batch took already stays in its
    spans' rows."""

    __slots__ = ("_stored", "texts")

    def __init__(self) -> None:
        self._stored: dict[int, tuple[str, int | None]] = {}
        self.texts: dict[int, str] = {}

    def stored(self, resource: dict[str, Any]) -> tuple[str, int | None]:
        """(the row's `resource`, its `resource_key`): ("", key), or (the JSON, None)."""
        found = self._stored.get(id(resource))
        if found is None:
            text = to_json(resource)
            key = resource_key(text)
            held = self.texts.setdefault(key, text)
            found = self._stored[id(resource)] = ("", key) if held == text else (text, None)
        return found


def keep_resource_in_row(row: tuple[Any, ...], text: str) -> tuple[Any, ...]:
    """`row` holding its resource `text` itself instead of naming it by key."""
    return (*row[:_RESOURCE], text, *row[_RESOURCE + 1 : _RESOURCE_KEY], None)


def span_row(span: SpanRecord, resources: Resources) -> tuple[Any, ...]:
    """The spans row of one record. The input/output attribute is left out of `attributes` (the
    input/output columns already hold that text, and it is the bulk of an LLM span): this halves
    what is written per span. So are the attributes the typed columns hold (column_attributes.py);
    the resource is named by its key (resource_rows.py)."""
    attributes, moved_input, moved_output = split_attributes(span.attributes, span.input, span.output)
    attributes, lifted = lift_attributes(attributes, span)
    resource, key = resources.stored(span.resource)
    return (
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.project,
        span.session_id,
        span.user_id,
        span.name,
        span.otel_kind,
        span.span_kind,
        span.start_time_ns,
        span.end_time_ns,
        span.status_code,
        span.status_message,
        span.model,
        span.prompt_tokens,
        span.completion_tokens,
        span.total_tokens,
        span.cost,
        span.input is not None,
        span.output is not None,
        encode_key(moved_input.key, "input") if moved_input else None,
        moved_input.position if moved_input else None,
        encode_key(moved_output.key, "output") if moved_output else None,
        moved_output.position if moved_output else None,
        to_json(span.tags) if span.tags else "[]",
        to_json(span.metadata) if span.metadata else "{}",
        span.input,
        span.output,
        pack(to_json(attributes)),
        pack(to_json(span.events)) if span.events else "[]",
        resource,
        None,  # input_from, output_from: see share_texts
        None,
        lifted,
        key,
    )


class PreparedSpans(list):  # of SpanRecord
    """Spans with their rows (`span_row`) built beforehand, in the thread that hands them to the
    store: the writer thread is the one serial step of ingest, so it should only run SQL.

    `rollups`: each trace's rollup from these spans alone, which is the trace's whole rollup when
    it has no stored span yet; None for a trace these spans share with another batch of the same
    transaction. `trace_projects`: each trace's project as these spans name it (None where they
    name several), for ownership.py.
    """

    __slots__ = ("resources", "rollups", "rows", "trace_projects")

    def __init__(self, spans: Iterable[SpanRecord] = (), rows: list[tuple[Any, ...]] | None = None) -> None:
        super().__init__(spans)
        self.rows = rows
        self.resources: dict[int, str] = {}  # the rows' resources by key (Resources.texts)
        self.rollups: dict[str, TraceRollup | None] = {}
        self.trace_projects: dict[str, str | None] = {}


def by_trace(spans: Iterable[SpanRecord]) -> dict[str, dict[str, SpanRecord]]:
    """Spans by trace, then span id; the first copy of a span wins, as INSERT OR IGNORE keeps it."""
    grouped: dict[str, dict[str, SpanRecord]] = {}
    for span in spans:
        grouped.setdefault(span.trace_id, {}).setdefault(span.span_id, span)
    return grouped


# Texts shorter than this are stored where they are: a reference would save little.
SHARED_TEXT_MIN = 32


def share_texts(
    spans: list[SpanRecord], rows: list[tuple[Any, ...]], by_trace: dict[str, dict[str, SpanRecord]]
) -> None:
    """Store a long text once per trace of the batch: the earliest span carrying it (by start,
    then span id) keeps it, and the others' rows name that span instead (input_from /
    output_from). An agent's answer is usually its model call's answer, a tool's input its
    caller's: text that would otherwise be most of the bytes written twice or three times."""
    position = {id(span): index for index, span in enumerate(spans)}
    for records in by_trace.values():
        if len(records) < 2:
            continue
        holders: dict[tuple[int, str], str] = {}  # (column, text) -> the span id that keeps it
        for span in sorted(records.values(), key=lambda record: (record.start_time_ns, record.span_id)):
            for column, reference, text in (
                (_INPUT, _INPUT_FROM, span.input),
                (_OUTPUT, _OUTPUT_FROM, span.output),
            ):
                if text is None or len(text) < SHARED_TEXT_MIN:
                    continue
                holder = holders.setdefault((column, text), span.span_id)
                if holder != span.span_id:
                    index = position[id(span)]
                    row = list(rows[index])
                    row[column], row[reference] = None, holder
                    rows[index] = tuple(row)


def prepare(spans: Iterable[SpanRecord]) -> PreparedSpans:
    """The spans with their rows, per-trace rollups and projects: computed in the caller's
    thread, so the writer only checks that a trace had no stored span and writes it."""
    resources = Resources()
    prepared = PreparedSpans(spans)
    prepared.rows = [span_row(span, resources) for span in prepared]
    prepared.resources = resources.texts
    grouped = by_trace(prepared)
    share_texts(prepared, prepared.rows, grouped)
    for trace_id, records in grouped.items():
        prepared.rollups[trace_id] = compute_trace(trace_id, map(facts_of, records.values()))
        projects = {span.project for span in records.values()}
        prepared.trace_projects[trace_id] = projects.pop() if len(projects) == 1 else None
    return prepared


def is_prepared(spans: Sequence[SpanRecord]) -> TypeGuard[PreparedSpans]:
    """Whether `spans` came from `prepare` whole, rows and all (a decoding process built them)."""
    return isinstance(spans, PreparedSpans) and spans.rows is not None and len(spans.rows) == len(spans)


def concatenate(batches: Iterable[Sequence[SpanRecord]]) -> PreparedSpans:
    """Several batches as one; rows are kept only if every batch came with them, and a trace's
    precomputed rollup only if its spans all came in one batch."""
    combined = PreparedSpans(rows=[])
    for spans in batches:
        combined.extend(spans)
        rows = getattr(spans, "rows", None)
        if rows is None or combined.rows is None:
            combined.rows = None
        else:
            combined.rows.extend(_merge_resources(combined.resources, rows, spans.resources))  # type: ignore[attr-defined]
        rollups = getattr(spans, "rollups", None) or {}
        for trace_id, rollup in rollups.items():
            # Seen in an earlier batch too: this batch's rollup covers only part of the trace.
            combined.rollups[trace_id] = None if trace_id in combined.rollups else rollup
        for span in spans:
            if span.trace_id not in rollups:
                combined.rollups[span.trace_id] = None
    return combined


def _merge_resources(
    merged: dict[int, str], rows: list[tuple[Any, ...]], resources: dict[int, str]
) -> list[tuple[Any, ...]]:
    """Add a batch's resources to `merged`; the batch's rows, those whose resource's key an
    earlier batch took with another text holding their resource themselves."""
    taken = {key for key, text in resources.items() if merged.setdefault(key, text) != text}
    if not taken:
        return rows
    return [
        keep_resource_in_row(row, resources[row[_RESOURCE_KEY]]) if row[_RESOURCE_KEY] in taken else row
        for row in rows
    ]


def rows_of(spans: Sequence[SpanRecord]) -> tuple[list[tuple[Any, ...]], dict[int, str]]:
    """The spans rows of `spans` and their resources by key: prepared ones as they came, others
    built here."""
    rows = getattr(spans, "rows", None)
    if rows is None:
        resources = Resources()
        return [span_row(span, resources) for span in spans], resources.texts
    return rows, spans.resources  # type: ignore[attr-defined]
