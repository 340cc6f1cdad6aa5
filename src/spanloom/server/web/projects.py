"""The project list for the navigation, cached for a few seconds.

`Store.list_projects` aggregates over every trace (tens of milliseconds at 100,000 spans), and
every page shows the picker: reading it at most every few seconds keeps each page at its one
real query. A project that just appeared shows up in the picker within `TTL_SECONDS`; the
lists themselves are never cached.
"""

from __future__ import annotations

import threading
import time
import weakref

from spanloom.server.store.base import ProjectSummary, Store

TTL_SECONDS = 5.0

_lock = threading.Lock()
# Per store: tests and embedders run several apps (and stores) in one process.
_cache: weakref.WeakKeyDictionary[object, tuple[float, list[ProjectSummary]]] = weakref.WeakKeyDictionary()


def cached_projects(store: Store) -> list[ProjectSummary]:
    now = time.monotonic()
    with _lock:
        cached = _cache.get(store)
    if cached is not None and now - cached[0] < TTL_SECONDS:
        return cached[1]
    projects = store.list_projects()
    with _lock:
        try:
            _cache[store] = (now, projects)
        except TypeError:  # a store that cannot be weakly referenced is simply not cached
            pass
    return projects
