"""`spanloom serve` with its ClickHouse writer cut down to the least rows any design must write,
for `chdb_ceiling.py --served`: what the chDB engine costs per span behind the real server (HTTP,
decoding, the writer thread), never used otherwise.

`SPANLOOM_CEILING_ROWS` says which rows each batch writes:

- ``spans`` (the default): the span rows in one INSERT, nothing else: no lookups, no duplicate
  check, no write log, no trace, session or user rows.
- ``spans+traces``: also one row per trace of the batch, from the batch's spans alone (a second
  INSERT beside the spans', as the store runs them): the least the trace and session lists need.

A store written this way counts a retried batch twice and lists no sessions.

Run: ``SPANLOOM_CEILING_ROWS=spans python benchmarks/ceiling_serve.py serve --store chdb:///path``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from spanloom.cli import main
from spanloom.server.store.base import InsertResult, SpanRecord
from spanloom.server.store.clickhouse import schema
from spanloom.server.store.clickhouse.location import connect, parse_location
from spanloom.server.store.clickhouse.rows import StoredTrace, facts_of_record, span_rows, trace_insert_row
from spanloom.server.store.clickhouse.writer import Writer
from spanloom.server.store.trace_rollup import compute_trace

Requests = Sequence[tuple[Sequence[SpanRecord], frozenset[str] | None]]


def trace_rows(spans: Sequence[SpanRecord], version: int) -> list[tuple[Any, ...]]:
    """One traces row per trace, rolled up from these spans alone."""
    by_trace: dict[str, dict[str, SpanRecord]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, {})[span.span_id] = span
    rows = []
    for trace_id, members in by_trace.items():
        facts = [facts_of_record(span) for span in members.values()]
        rollup = compute_trace(trace_id, (item.facts for item in facts))
        first = members.get(rollup.input_span_id or "")
        last = members.get(rollup.output_span_id or "")
        trace = StoredTrace(
            rollup.row,
            rollup.input_span_id,
            rollup.output_span_id,
            first.input if first else None,
            last.output if last else None,
            tuple(sorted({item.facts.span_kind for item in facts})),
            tuple(sorted({item.model for item in facts if item.model})),
        )
        rows.append(trace_insert_row(trace, version))
    return rows


class CeilingWriter:
    def __init__(self, store_url: str, with_traces: bool) -> None:
        location = parse_location(store_url)
        assert location is not None, store_url
        self.location = location
        self.with_traces = with_traces
        self.spans_client: Any = None
        self.beside = ThreadPoolExecutor(1)

    def write(self, writer: Writer, requests: Requests) -> list[InsertResult]:
        spans = [span for request_spans, _ in requests for span in request_spans]
        if spans and not self.with_traces:
            schema.insert(writer.client, schema.SPANS, span_rows(spans))
        elif spans:
            if self.spans_client is None:  # a client runs one statement at a time
                self.spans_client = connect(self.location, self.location.database)
            spans_written = self.beside.submit(
                schema.insert, self.spans_client, schema.SPANS, span_rows(spans)
            )
            schema.insert(writer.client, schema.TRACES, trace_rows(spans, time.time_ns()))
            spans_written.result()
        return [InsertResult(len(request_spans), written=request_spans) for request_spans, _ in requests]


def store_url(arguments: list[str]) -> str:
    for index, argument in enumerate(arguments):
        if argument == "--store":
            return arguments[index + 1]
        if argument.startswith("--store="):
            return argument.split("=", 1)[1]
    raise SystemExit("ceiling_serve.py needs --store chdb://...")


if __name__ == "__main__":  # a decoding process imports this file again (spawn); it must not serve
    rows = os.environ.get("SPANLOOM_CEILING_ROWS", "spans")
    if rows not in ("spans", "spans+traces"):
        raise SystemExit(f"SPANLOOM_CEILING_ROWS: spans or spans+traces, not {rows!r}")
    ceiling = CeilingWriter(store_url(sys.argv), rows == "spans+traces")
    Writer.write_spans = lambda writer, requests: ceiling.write(writer, requests)  # type: ignore[method-assign]
    main()
