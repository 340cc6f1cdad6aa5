"""A Bloom filter of stored keys (trace ids; sessions), kept by the embedded store's writer (the
only writer of its directory): a batch of new traces (nearly every batch) is known to hold no
stored trace, and a new conversation no stored session, without asking ClickHouse, which on chDB
costs a query of several milliseconds per batch. A "maybe" is asked as before, so the filter can
only save work, never change an answer. Built at start-up from a query of the keys (a row's
columns joined by \x1f), grown (rebuilt) as the keys multiply.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_HASHES = 4
_BITS_PER_ID = 16  # with 4 hashes: about one "maybe" in 2,000 for an id not stored
_MIN_BITS = 1 << 20


class KeyFilter:
    def __init__(self, client: Any, query: str) -> None:
        """`query`: selects every stored key (a row of one or more String columns)."""
        self.client = client
        self.query = query
        self._build(0)

    def _build(self, expected: int) -> None:
        ids = ["\x1f".join(row) for row in self.client.query(self.query).result_rows]
        self._bits = max(_MIN_BITS, 2 * _BITS_PER_ID * max(expected, len(ids)))
        self._array = bytearray(self._bits // 8)
        self._count = 0
        self.add(ids)

    def _positions(self, key: str) -> Iterable[int]:
        # Python's string hash: random per process, stable within it; the filter lives in memory.
        value = hash(key) & 0xFFFFFFFFFFFFFFFF
        first, second = value & 0xFFFFFFFF, (value >> 32) | 1
        return ((first + index * second) % self._bits for index in range(_HASHES))

    def add(self, keys: Iterable[str]) -> None:
        for key in keys:
            for position in self._positions(key):
                self._array[position >> 3] |= 1 << (position & 7)
            self._count += 1
        if self._count * _BITS_PER_ID > self._bits:
            self._build(self._count)

    def may_hold(self, key: str) -> bool:
        return all(self._array[position >> 3] & (1 << (position & 7)) for position in self._positions(key))
