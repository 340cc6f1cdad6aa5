"""Readiness of a store's single writer: a probe request queued behind the writes, shared by
every caller while it waits, so a stuck writer collects one probe, not one per `/readyz` call.
Both backends queue their writes to one thread; each says how it queues a probe and how it words
a write error."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future

from spanloom.server.store.base import Readiness, StoreUnavailableError


class WriterProbe:
    def __init__(
        self,
        enqueue: Callable[[Future[None], float], None],
        explain: Callable[[StoreUnavailableError], str],
    ) -> None:
        """`enqueue(probe, timeout)` puts the probe on the writer's queue (queue.Full when it stays
        full); `explain` words a refusal the writer answered the probe with."""
        self._enqueue = enqueue
        self._explain = explain
        self._probe: Future[None] | None = None
        self._lock = threading.Lock()

    def check(self, timeout: float) -> Readiness:
        deadline = time.monotonic() + timeout
        with self._lock:
            probe = self._probe
            if probe is None or probe.done():
                probe = Future()
                try:
                    self._enqueue(probe, timeout)
                except queue.Full:
                    return Readiness(False, f"the writer's queue stayed full for {timeout:g} s")
                self._probe = probe
        try:
            probe.result(timeout=max(0.0, deadline - time.monotonic()))
        except futures.TimeoutError:
            return Readiness(False, f"the writer has not taken a write for {timeout:g} s")
        except StoreUnavailableError as error:
            return Readiness(False, self._explain(error))
        except Exception as error:
            return Readiness(False, f"a write would fail: {error}")
        return Readiness(True)
