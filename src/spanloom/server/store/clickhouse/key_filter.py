"""A Bloom filter of stored keys (trace ids; sessions), kept by the embedded store's writer (the
only writer of its directory): a batch of new traces (nearly every batch) is known to hold no
stored trace, and a new conversation no stored session, without asking ClickHouse, which on chDB
costs a query of several milliseconds per batch. A "maybe" is asked as before, so the filter can
only save work, never change an answer. Built at start-up from a query of the keys (a row's
columns joined by \x1f), grown (rebuilt) as the keys multiply.

Only the writer adds keys; other threads may ask (`may_hold`): a rebuild swaps the bits in whole,
so an asker sees the old filter or the new one, never half of either. A key the writer is adding
at that moment may be missed, as a query made at that moment would miss its rows.
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
        bits = max(_MIN_BITS, 2 * _BITS_PER_ID * max(expected, len(ids)))
        array = bytearray(bits // 8)
        _set(array, bits, ids)
        self._count = len(ids)
        self._state = (bits, array)  # one assignment: askers in other threads see all or none

    def add(self, keys: Iterable[str]) -> None:
        bits, array = self._state
        self._count += _set(array, bits, keys)
        if self._count * _BITS_PER_ID > bits:
            self._build(self._count)

    def may_hold(self, key: str) -> bool:
        bits, array = self._state
        return all(array[position >> 3] & (1 << (position & 7)) for position in _positions(key, bits))


def _positions(key: str, bits: int) -> Iterable[int]:
    # Python's string hash: random per process, stable within it; the filter lives in memory.
    value = hash(key) & 0xFFFFFFFFFFFFFFFF
    first, second = value & 0xFFFFFFFF, (value >> 32) | 1
    return ((first + index * second) % bits for index in range(_HASHES))


def _set(array: bytearray, bits: int, keys: Iterable[str]) -> int:
    """Set the keys' bits; how many keys."""
    count = 0
    for key in keys:
        for position in _positions(key, bits):
            array[position >> 3] |= 1 << (position & 7)
        count += 1
    return count
