"""The traces the embedded writer (the only writer of its directory) wrote last, with their spans'
facts: a trace whose spans come in two batches (cut at a batch's edge, nearly every batch) is
found here instead of by three queries (its key, its row, its stored spans). Kept only once their
batch is written; cleared when a batch is cut short (writer.recover) and by retention's deletes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from spanloom.server.store.clickhouse.rows import StoredFacts, StoredTrace

Facts = dict[str, StoredFacts]  # span id -> facts
# A few batches' traces (each holds its two texts, a few KiB).
MAX_TRACES = 2_048


class RecentTraces:
    def __init__(self, capacity: int = MAX_TRACES) -> None:
        self.capacity = capacity
        self._traces: OrderedDict[str, tuple[StoredTrace, Facts]] = OrderedDict()

    def find(self, trace_ids: Collection[str]) -> dict[str, tuple[StoredTrace, Facts]]:
        return {trace_id: self._traces[trace_id] for trace_id in trace_ids if trace_id in self._traces}

    def keep(self, traces: dict[str, tuple[StoredTrace, Facts]]) -> None:
        for trace_id, entry in traces.items():
            self._traces[trace_id] = entry
            self._traces.move_to_end(trace_id)
        while len(self._traces) > self.capacity:
            self._traces.popitem(last=False)

    def forget(self, trace_ids: Collection[str]) -> None:
        for trace_id in trace_ids:
            self._traces.pop(trace_id, None)

    def clear(self) -> None:
        self._traces.clear()
