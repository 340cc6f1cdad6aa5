"""The cyclic garbage collector's settings for the server process.

A full collection walks every tracked object, and the server holds many that live for the whole
run: the ClickHouse writer keeps the traces and session tallies it wrote last in memory, and
every store keeps caches. At CPython's default thresholds a full collection came every few
batches under ingest: profiled, a fifth to a quarter of the ClickHouse writer thread's time was
the collector, most of it in those full collections (about 300 ms each with 100,000 spans
written).

Young collections stay as CPython makes them: they are cheap, and they are what frees the few
reference cycles ingest makes (one per ClickHouse INSERT: clickhouse-connect's insert context
holds a bound method of itself, and through it that INSERT's rows) before they pile up in memory.
Full collections wait for a hundred times as many younger ones, and the objects built at start-up
(modules, the app) are moved out of every collection's reach.
"""

from __future__ import annotations

import gc

# Middle collections before a full one (CPython's default: 10). CPython also waits until the
# objects a full collection would examine for the first time are a quarter of those it holds.
OLDEST_THRESHOLD = 1000


def tune_collector() -> None:
    """For a long-running server: call once, after start-up, before requests arrive."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, OLDEST_THRESHOLD)
