"""Decoding processes: the CPU-bound part of ingest (request_decoding.py) on other cores.

Decoding, normalizing and building a batch's rows is half of ingest's CPU, and in the server's
process it holds the one GIL that the writer, the event loop and the API also need. In processes
of their own (spawned, not forked: the server runs threads, and an embedded chDB engine) it runs
beside them: the server only reads the body, hands it over and takes back the records and rows.

The processes start with the server's lifespan (a warm-up call each, not waited for) and stop
with it; each one exits by itself when the server's process is gone, however it ended
(`_watch_parent`). A process that dies (killed, out of memory) fails only the requests it held,
which are refused with a retry (`DecodeProcessError`), and the next request gets new processes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from spanloom.server.collector import tune_collector
from spanloom.server.ingest.limits import IngestLimits
from spanloom.server.ingest.normalize import NormalizedBatch
from spanloom.server.ingest.request_decoding import decode_request
from spanloom.server.pricing import PriceTable, load_price_table
from spanloom.server.store.base import SpanPreparer

# How often a decoding process checks that the server is still there.
_PARENT_CHECK_SECONDS = 1.0


class DecodeProcessError(RuntimeError):
    """A decoding process ended while it held the request: nothing of it was stored."""


class DecodeProcessesClosedError(DecodeProcessError):
    """The server is shutting down: its decoding processes take no more requests."""


class _ChildState:
    """What a decoding process keeps between requests: set once by `_start_child`."""

    prices: PriceTable | None = None
    limits = IngestLimits()
    preparer: SpanPreparer | None = None


def _watch_parent(parent: int) -> None:
    # A server killed outright (SIGKILL, a crash) cannot stop its pool: the process must notice.
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(0)


def _start_child(
    server: int, limits: IngestLimits, pricing_file: Path | None, preparer: SpanPreparer | None
) -> None:
    # The server's id comes from the server: one that died while this process was starting has
    # already handed it to another parent.
    threading.Thread(target=_watch_parent, args=(server,), daemon=True, name="parent-watch").start()
    _ChildState.prices = load_price_table(pricing_file)
    _ChildState.limits = limits
    _ChildState.preparer = preparer
    # The price table is most of what lives here for good: out of the collector's reach, as the
    # server's own start-up objects are.
    tune_collector()


def _decode_in_child(body: bytes, as_json: bool) -> NormalizedBatch:
    assert _ChildState.prices is not None, "the process was started without _start_child"
    return decode_request(body, as_json, _ChildState.prices, _ChildState.limits, _ChildState.preparer)


def _ready() -> None:
    return None


class DecodeProcesses:
    """`count` decoding processes (at least one), from `start()` (or the first request) on."""

    def __init__(
        self,
        count: int,
        limits: IngestLimits,
        pricing_file: Path | None = None,
        preparer: SpanPreparer | None = None,
    ) -> None:
        self.count = max(1, count)
        self._arguments = (limits, pricing_file, preparer)
        self._lock = threading.Lock()
        self._closed = False
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the processes now, not waiting for them to be ready (the app's lifespan calls it:
        an app that is built and never served starts none)."""
        with self._lock:
            if self._pool is None and not self._closed:
                self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.count,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_child,
            initargs=(os.getpid(), *self._arguments),
        )
        # Spawning imports the server's modules (a second or so): done now, not by the first request.
        for _ in range(self.count):
            pool.submit(_ready)
        return pool

    def decode(self, body: bytes, as_json: bool) -> NormalizedBatch:
        """Blocking: `decode_request` in a decoding process; its exceptions are raised here.
        Raises DecodeProcessError when the process ended before it answered."""
        for _ in range(3):
            with self._lock:
                if self._closed:
                    raise DecodeProcessesClosedError("the server is shutting down")
                if self._pool is None:
                    self._pool = self._new_pool()
                pool = self._pool
            try:
                future = pool.submit(_decode_in_child, body, as_json)
            except (BrokenProcessPool, RuntimeError):
                # A process ended while idle (the request was not sent), or another request
                # replaced the pool since this one took it: try the current pool.
                self._replace(pool)
                continue
            try:
                return future.result()
            except BrokenProcessPool:
                self._replace(pool)
                raise DecodeProcessError("a decoding process ended while it held the request") from None
        raise DecodeProcessError("the decoding processes keep ending; see the server's log")

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken and not self._closed:
                self._pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the processes once the requests they hold are answered."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
