"""The server's collector settings: full collections rare, young ones as CPython makes them."""

from __future__ import annotations

import gc

from spanloom.server.collector import OLDEST_THRESHOLD, tune_collector


def test_tune_collector_keeps_young_collections_and_makes_full_ones_rare() -> None:
    # tests/conftest.py puts the process's settings back after each test.
    saved = gc.get_threshold()
    tune_collector()
    assert gc.get_threshold() == (saved[0], saved[1], OLDEST_THRESHOLD)
    assert saved[2] < OLDEST_THRESHOLD
    # What existed at start-up is out of every collection's reach.
    assert gc.get_freeze_count() > 0
