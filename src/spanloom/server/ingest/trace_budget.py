"""The per-trace span limit: spans that would take a trace past `max_spans_per_trace` are rejected
(reported through partial_success), so one runaway trace cannot grow without end.

The count of spans already stored comes from the store (`count_trace_spans`, one query for a
request's new traces); counts are cached per trace and only re-read when a batch would cross the
limit.

The limit is approximate under concurrency: two requests for the same trace racing each other
may together pass it by at most one batch. Spans re-sent (already stored) count again towards
the limit, so a retry near the limit may be refused although it would change nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from spanloom.server.store.base import SpanRecord, Store

CACHED_TRACES = 10_000


class TraceBudget:
    def __init__(self, store: Store, limit: int, cached_traces: int = CACHED_TRACES) -> None:
        self._store = store
        self.limit = limit
        self._cached_traces = cached_traces
        self._lock = threading.Lock()
        self._counts: OrderedDict[str, int] = OrderedDict()  # trace id -> spans stored (upper bound)

    def _stored(self, trace_ids: Sequence[str]) -> dict[str, int]:
        return self._store.count_trace_spans(trace_ids)

    def _remember(self, trace_id: str, count: int) -> None:
        with self._lock:
            self._counts[trace_id] = count
            self._counts.move_to_end(trace_id)
            while len(self._counts) > self._cached_traces:
                self._counts.popitem(last=False)

    def split(self, spans: list[SpanRecord]) -> tuple[list[SpanRecord], list[str]]:
        """(spans that fit, ids of the traces that overflowed). Blocking: call off the event loop."""
        by_trace: dict[str, list[SpanRecord]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        with self._lock:
            known = {trace_id: self._counts.get(trace_id) for trace_id in by_trace}
        counts = {trace_id: count for trace_id, count in known.items() if count is not None}
        unknown = [trace_id for trace_id in by_trace if trace_id not in counts]
        if unknown:
            counts.update(self._stored(unknown))
        # A cached count only grows; re-read before refusing, in case it overcounted.
        stale = [
            trace_id
            for trace_id, group in by_trace.items()
            if counts[trace_id] + len(group) > self.limit and trace_id not in unknown
        ]
        if stale:
            counts.update(self._stored(stale))
        kept: list[SpanRecord] = []
        overflowed: list[str] = []
        for trace_id, group in by_trace.items():
            room = max(self.limit - counts[trace_id], 0)
            kept.extend(group[:room])
            if len(group) > room:
                overflowed.append(trace_id)
            self._remember(trace_id, counts[trace_id])
        return kept, overflowed

    def committed(self, spans: Sequence[SpanRecord]) -> None:
        """Count spans the store has committed."""
        added: dict[str, int] = {}
        for span in spans:
            added[span.trace_id] = added.get(span.trace_id, 0) + 1
        with self._lock:
            for trace_id, count in added.items():
                if trace_id in self._counts:
                    self._counts[trace_id] += count
