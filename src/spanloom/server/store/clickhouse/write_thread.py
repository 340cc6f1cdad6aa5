"""The ClickHouse store's writer thread and the bounded queue that feeds it.

As in the SQLite store: the store puts each write on the queue and hands its caller a future. The
thread takes everything waiting, up to `max_batch_spans`, and what ingest has announced within
`gather_seconds` (write_queue.py: each INSERT makes a part, so fewer, larger batches cost less),
writes it as one batch (writer.py) and only then resolves the futures: a 200 means the inserts
returned from ClickHouse. If a batch fails, each request is tried alone, so one bad request
cannot fail the others; a request that still fails gets `StoreUnavailableError` (503), the
half-written batch is recounted (`Writer.recover`) before the next write, and the thread goes on.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from spanloom.server.store.base import (
    Readiness,
    Retention,
    SpanRecord,
    StoreUnavailableError,
    WriteObserver,
)
from spanloom.server.store.clickhouse.location import Location
from spanloom.server.store.clickhouse.writer import Writer
from spanloom.server.store.evaluation_types import EvaluationInput
from spanloom.server.store.write_queue import WriteQueue, notify, settle
from spanloom.server.store.writer_probe import WriterProbe

logger = logging.getLogger(__name__)

# How long the writer waits at most for requests ingest is decoding, to write them in the same
# batch: about the time one request of 512 spans takes to decode while the writer is idle.
GATHER_SECONDS = 0.05

# The room a write needs to be likely to succeed: some batches of LLM spans, with their parts.
ROOM_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class WriteRequest:
    future: Future[Any]
    spans: Sequence[SpanRecord] = ()
    evaluations: Sequence[EvaluationInput] = ()
    projects: frozenset[str] | None = None
    retention: tuple[Retention, int] | None = None  # a retention batch: what, how many at most
    # Or session marks to write (ended, judged), given the writer.
    marks: Callable[[Writer], None] | None = None
    probe: bool = False  # a readiness probe (check_ready): answered, writes nothing

    @property
    def size(self) -> int:
        return len(self.spans) + len(self.evaluations)


def unavailable(error: Exception) -> StoreUnavailableError:
    """The error a caller gets for a write ClickHouse failed: full storage said as such."""
    full = "NOT_ENOUGH_SPACE" in str(error) or "No space left" in str(error)
    message = (
        f"storage is full ({error}): nothing more was stored; retry once space is freed"
        if full
        else f"storage failed ({type(error).__name__}: {error}): retry later"
    )
    failure = StoreUnavailableError(message[:2000], full=full)
    failure.__cause__ = error
    return failure


class WriteThread:
    def __init__(
        self,
        writer: Writer,
        location: Location,
        *,
        queue_size: int,
        max_batch_spans: int,
        gather_seconds: float,
    ) -> None:
        """Starts the thread; `writer` has recovered already (the store opens it)."""
        self._writer = writer
        self._location = location
        self._needs_recovery = False
        self._observers: list[WriteObserver] = []
        self._queue: WriteQueue[WriteRequest] = WriteQueue(queue_size, gather_seconds)
        self._probe = WriterProbe(
            lambda probe, timeout: self._queue.put(WriteRequest(probe, probe=True), timeout=timeout),
            str,
        )
        self._max_batch_spans = max_batch_spans
        self._thread = threading.Thread(target=self._run, name="spanloom-clickhouse-writer", daemon=True)
        self._thread.start()

    # --- what the store asks ---
    def put(self, request: WriteRequest) -> None:
        """Queue a write (StoreBusyError when the queue is full)."""
        self._queue.put_nowait(request)

    def queued(self) -> int:
        return self._queue.qsize()

    def announced(self) -> AbstractContextManager[None]:
        return self._queue.announced()

    def check(self, timeout: float) -> Readiness:
        return self._probe.check(timeout)

    def observe_writes(self, observer: WriteObserver) -> None:
        self._observers.append(observer)

    def close(self) -> None:
        """Finish queued writes, then stop the thread and the writer."""
        self._queue.stop()
        self._thread.join()
        self._writer.close()

    # --- the thread ---
    def _run(self) -> None:
        while (batch := self._queue.next_batch(self._max_batch_spans)) is not None:
            try:
                self._write(batch)
            except Exception as error:  # never let the writer die: every later write would wait
                logger.exception("spanloom: the writer failed on %d requests", len(batch))
                for request in batch:
                    settle(request.future, error=error)

    def _write(self, requests: list[WriteRequest]) -> None:
        if self._needs_recovery:
            try:
                self._writer.recover()
                self._needs_recovery = False
            except Exception as error:
                for request in requests:
                    settle(request.future, error=unavailable(error))
                return
        spans = [request for request in requests if request.spans]
        if spans:
            self._write_spans(spans)
        for request in requests:
            if request.probe:
                self._answer_probe(request)
            if request.marks is not None:
                try:
                    request.marks(self._writer)
                except Exception as error:
                    logger.error("spanloom: writing a session mark failed: %s", error)
                    settle(request.future, error=unavailable(error))
                else:
                    settle(request.future, None)
            if request.retention is not None:
                try:
                    settle(request.future, self._writer.delete_expired(*request.retention))
                except Exception as error:
                    self._needs_recovery = True
                    logger.error("spanloom: deleting expired sessions failed: %s", error)
                    settle(request.future, error=unavailable(error))
            if request.evaluations:
                try:
                    result = self._writer.write_evaluations(request.evaluations, request.projects)
                    notify(self._observers, result.accepted)
                    settle(request.future, result)
                except Exception as error:
                    self._needs_recovery = True
                    logger.error("spanloom: writing %d results failed: %s", request.size, error)
                    settle(request.future, error=unavailable(error))

    def _write_spans(self, requests: list[WriteRequest]) -> None:
        try:
            results = self._writer.write_spans([(request.spans, request.projects) for request in requests])
        except Exception as error:
            self._needs_recovery = True
            if len(requests) == 1:
                logger.error("spanloom: writing %d spans failed: %s", requests[0].size, error)
                settle(requests[0].future, error=unavailable(error))
            else:
                for request in requests:
                    self._write([request])
            return
        notify(self._observers, sum(result.accepted for result in results))
        for request, result in zip(requests, results, strict=True):
            settle(request.future, result)

    def _answer_probe(self, probe: WriteRequest) -> None:
        """After the writes taken with it: would the next write find room?"""
        try:
            shortage = self._disk_shortage(self._writer.client)
        except Exception as error:
            settle(probe.future, error=unavailable(error))
        else:
            settle(probe.future, error=StoreUnavailableError(shortage, full=True) if shortage else None)

    def _disk_shortage(self, client: Any) -> str | None:
        """Why the disk holding the data cannot take a write, or None when it has room: the
        directory's filesystem (chDB), the server's disks' free space as it reports it."""
        if self._location.path is not None:
            free = shutil.disk_usage(self._location.path).free
            where = f"the disk holding {self._location.path}"
        else:
            free = int(client.query("SELECT min(unreserved_space) FROM system.disks").result_rows[0][0])
            where = "the ClickHouse server's disks"
        if free < ROOM_BYTES:
            return f"storage is full: {free} bytes free on {where}"
        return None
