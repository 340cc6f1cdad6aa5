"""A Bloom filter of the stored trace ids, kept by the embedded store's writer (the only writer of
its directory): a batch of new traces (nearly every batch) is known to hold no stored trace
without asking ClickHouse, which on chDB costs a query of several milliseconds per batch. A
"maybe" is asked as before, so the filter can only save work, never change an answer. Built at
start-up from `trace_keys`, grown (rebuilt) as the traces multiply.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_HASHES = 4
_BITS_PER_ID = 16  # with 4 hashes: about one "maybe" in 2,000 for an id not stored
_MIN_BITS = 1 << 20


class TraceFilter:
    def __init__(self, client: Any) -> None:
        self.client = client
        self._build(0)

    def _build(self, expected: int) -> None:
        ids = [row[0] for row in self.client.query("SELECT trace_id FROM trace_keys").result_rows]
        self._bits = max(_MIN_BITS, 2 * _BITS_PER_ID * max(expected, len(ids)))
        self._array = bytearray(self._bits // 8)
        self._count = 0
        self.add(ids)

    def _positions(self, trace_id: str) -> Iterable[int]:
        # Python's string hash: random per process, stable within it; the filter lives in memory.
        value = hash(trace_id) & 0xFFFFFFFFFFFFFFFF
        first, second = value & 0xFFFFFFFF, (value >> 32) | 1
        return ((first + index * second) % self._bits for index in range(_HASHES))

    def add(self, trace_ids: Iterable[str]) -> None:
        for trace_id in trace_ids:
            for position in self._positions(trace_id):
                self._array[position >> 3] |= 1 << (position & 7)
            self._count += 1
        if self._count * _BITS_PER_ID > self._bits:
            self._build(self._count)

    def may_hold(self, trace_id: str) -> bool:
        return all(
            self._array[position >> 3] & (1 << (position & 7)) for position in self._positions(trace_id)
        )
