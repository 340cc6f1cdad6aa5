"""The SQLite store's writer: the one connection that writes, its thread, and the bounded queue
that feeds it.

The thread takes everything waiting, up to `max_batch_spans`, writes it in one transaction with
the rollups, commits, and only then resolves the futures: a 200 means committed. If the combined
transaction fails, each request is retried alone so one bad request cannot fail the others. A
request that still fails is rolled back whole and its future gets `StoreUnavailableError` for any
SQLite error (a full disk, an I/O error): 503, never 200, and the writer goes on, so the next
write succeeds once the storage does.

Beside it, and taking turns with it at SQLite's write lock (`write_lock`): the checkpointer, which
copies committed WAL pages back into the file soon after commits, and the text indexer, which adds
the turns' texts to the search index from what the writer noted, so ingest never tokenizes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spanloom.server.store.base import (
    InsertResult,
    Progress,
    Readiness,
    Retention,
    StoreOpenError,
    StoreUnavailableError,
    WriteObserver,
)
from spanloom.server.store.evaluation_types import EvaluationInput
from spanloom.server.store.sqlite import (
    evaluation_writes,
    ownership,
    readiness,
    retention,
    span_rows,
    write_errors,
)
from spanloom.server.store.sqlite.checkpointer import Checkpointer
from spanloom.server.store.sqlite.connection import connect_writer
from spanloom.server.store.sqlite.evaluation_rollups import insert_evaluations
from spanloom.server.store.sqlite.migrations import SchemaTooNewError, migrate
from spanloom.server.store.sqlite.rollups import Waiting, write_batch
from spanloom.server.store.sqlite.text_indexer import TextIndexer
from spanloom.server.store.write_queue import WriteQueue, notify, settle
from spanloom.server.store.writer_probe import WriterProbe

logger = logging.getLogger(__name__)

# How often the writer refreshes the planner's statistics (a few milliseconds each time).
STATISTICS_INTERVAL_SECONDS = 300.0
# Rows ANALYZE samples per index: enough to tell a filter that matches most rows from one that
# matches few, and quick on any size of file.
ANALYSIS_LIMIT = 400

# The writer counts as busy (the text indexer waits) while a write is queued or one committed
# this recently.
WRITER_BUSY_SECONDS = 0.05


@dataclass(slots=True)
class WriteRequest:
    """One caller's write: spans (insert_spans) or evaluation results (insert_evaluations), and
    the projects the caller may write (None: any)."""

    future: Future[Any]
    spans: span_rows.PreparedSpans = field(default_factory=span_rows.PreparedSpans)
    evaluations: Sequence[EvaluationInput] = ()
    projects: frozenset[str] | None = None
    # A retention batch instead: (what to delete, how many sessions and traces at most).
    retention: tuple[Retention, int] | None = None
    # Or session marks to write (ended, judged): a write of its own, run by the writer.
    marks: Callable[[sqlite3.Connection], Any] | None = None
    probe: bool = False  # a readiness probe (check_ready): answered, never committed
    result: Any = field(default=None)

    @property
    def size(self) -> int:
        return len(self.spans) + len(self.evaluations)


def _open_error(path: Path, error: BaseException) -> StoreOpenError:
    return StoreOpenError(f"cannot open {path} as a spanloom database: {error}")


class SqliteWriter:
    def __init__(
        self,
        path: Path,
        *,
        queue_size: int,
        max_batch_spans: int,
        max_db_pages: int | None,
        progress: Progress | None,
        index_text: bool,
    ) -> None:
        """Opens (creating or upgrading) the file and starts the thread. Raises StoreOpenError,
        having changed nothing, for a file it cannot use."""
        self.path = path
        try:
            self._connection = connect_writer(path)
        except (sqlite3.Error, OSError) as error:
            raise _open_error(path, error) from error
        try:
            migrate(self._connection, progress)
            # The file's size limit in pages (None: SQLite's own). Past it a write fails with
            # SQLITE_FULL exactly as on a full disk; the writer applies a new value before its
            # next transaction, so it can be raised while the server runs (see set_max_db_pages).
            (self._default_max_pages,) = self._connection.execute("PRAGMA max_page_count").fetchone()
            self._waiting = Waiting(
                traces=evaluation_writes.select_pending_trace_ids(self._connection),
                sessions_have_results=evaluation_writes.any_session_results(self._connection),
            )
            self._connection.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
            # Statistics for whatever has none yet (a new or just upgraded file).
            self._connection.execute("PRAGMA optimize = 0x10002")
        except (sqlite3.Error, OSError, SchemaTooNewError) as error:
            self._connection.close()
            raise _open_error(path, error) from error
        self._next_statistics = time.monotonic() + STATISTICS_INTERVAL_SECONDS
        self._max_db_pages: int | None = max_db_pages
        self._applied_max_pages: int | None = None
        self._apply_page_limit()
        self._queue: WriteQueue[WriteRequest] = WriteQueue(queue_size)
        self._max_batch_spans = max_batch_spans
        self._observers: list[WriteObserver] = []
        self._probe = WriterProbe(
            lambda probe, timeout: self._queue.put(WriteRequest(probe, probe=True), timeout=timeout),
            write_errors.explain_refusal,
        )
        self._checkpointer = Checkpointer(path)
        # Held by the writer and the indexer for each of their transactions.
        self._write_lock = threading.Lock()
        self._last_write = 0.0  # time.monotonic() of the writer's last commit
        self._indexer = (
            TextIndexer(path, self._write_lock, self._busy, self._page_limit) if index_text else None
        )
        self._thread = threading.Thread(target=self._run, name="spanloom-sqlite-writer", daemon=True)
        self._thread.start()

    # --- what the store asks ---
    def full(self) -> bool:
        return self._queue.full()

    def queued(self) -> int:
        return self._queue.qsize()

    def put(self, request: WriteRequest) -> None:
        """Queue a write (StoreBusyError when the queue is full)."""
        self._queue.put_nowait(request)

    def announced(self) -> AbstractContextManager[None]:
        return self._queue.announced()

    def check(self, timeout: float) -> Readiness:
        return self._probe.check(timeout)

    def set_max_db_pages(self, pages: int | None) -> None:
        """Limit the database file to `pages` pages (None: no limit of ours), from the next write."""
        self._max_db_pages = pages

    def observe_writes(self, observer: WriteObserver) -> None:
        self._observers.append(observer)

    def close(self) -> None:
        """Finish queued writes, then stop the thread, the checkpointer and the indexer."""
        self._queue.stop()  # blocks while the queue is full: queued writes still finish
        self._thread.join()
        self._checkpointer.stop()
        if self._indexer is not None:
            self._indexer.stop()

    # --- the thread ---
    def _run(self) -> None:
        # Whatever else is waiting goes into the same commit: one fsync-free WAL append for many
        # requests is what lets ingest keep up under concurrent senders.
        while (batch := self._queue.next_batch(self._max_batch_spans)) is not None:
            probes = [request for request in batch if request.probe]
            if probes:
                batch = [request for request in batch if not request.probe]
            try:
                if batch:
                    with self._write_lock:
                        self._write(batch)
                    self._last_write = time.monotonic()
                    if self._indexer is not None:
                        self._indexer.noted()
            except Exception as error:
                # Never let the writer thread die: every later write would wait forever.
                logger.exception("spanloom: the writer failed on %d requests", len(batch))
                for request in batch:
                    settle(request.future, error=error)
            with self._write_lock:
                for probe in probes:
                    self._answer_probe(probe)
                self._checkpointer.committed()
                if time.monotonic() >= self._next_statistics:
                    self._refresh_statistics()
        self._connection.close()

    def _answer_probe(self, probe: WriteRequest) -> None:
        """After the writes taken with it: would the next write find room?"""
        try:
            self._apply_page_limit()
            readiness.probe_room(self._connection)
        except Exception as error:
            settle(probe.future, error=write_errors.storage_error(error))
        else:
            settle(probe.future, None)

    def _refresh_statistics(self) -> None:
        """Keep the planner's statistics current (PRAGMA optimize: ANALYZE where the tables grew,
        on a sample), so it picks a filter's index or a sort's index by what the data is like: a
        project filter matching most rows reads the sort's index in order, a user filter its own."""
        self._next_statistics = time.monotonic() + STATISTICS_INTERVAL_SECONDS
        try:
            self._connection.execute("PRAGMA optimize")
        except sqlite3.Error:
            logger.warning("spanloom: refreshing the planner's statistics failed", exc_info=True)

    def _busy(self) -> bool:
        return not self._queue.empty() or time.monotonic() - self._last_write < WRITER_BUSY_SECONDS

    def _page_limit(self) -> int:
        return self._max_db_pages or self._default_max_pages

    def _apply_page_limit(self) -> None:
        wanted = self._page_limit()
        if wanted != self._applied_max_pages:
            # PRAGMA takes no parameters; `wanted` is an int. SQLite keeps it at least the
            # file's current size.
            self._connection.execute(f"PRAGMA max_page_count = {int(wanted)}")
            self._applied_max_pages = wanted

    # --- a write ---
    def _transaction(self, requests: Sequence[WriteRequest]) -> None:
        connection = self._connection
        if connection.in_transaction:
            # A rollback that failed last time (the storage still failing) left one open.
            connection.execute("ROLLBACK")
        self._apply_page_limit()
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Each request's spans given their traces' projects, in queue order; then all requests
            # as one batch: a trace, session or user that several of them touch is refreshed once
            # per commit.
            writing = [request for request in requests if request.spans]
            claimed = ownership.claim(connection, [(request.spans, request.projects) for request in writing])
            for request, claim in zip(writing, claimed, strict=True):
                request.result = InsertResult(len(claim.spans), claim.rejected, claim.reasons, claim.spans)
            adopted = write_batch(
                connection, span_rows.concatenate(claim.spans for claim in claimed), self._waiting
            )
            # Results after spans: a result may judge a span of the same commit.
            pending: set[str] = set()
            judged_sessions = False
            for request in requests:
                if request.evaluations:
                    request.result, waiting = insert_evaluations(
                        connection, request.evaluations, request.projects
                    )
                    pending |= waiting
                    judged_sessions |= any(
                        item.session_id and not item.trace_id for item in request.evaluations
                    )
                elif request.retention is not None:
                    request.result = retention.delete_expired(connection, *request.retention)
                elif request.marks is not None:
                    request.result = request.marks(connection)
            connection.execute("COMMIT")
            # What waits for spans changes only with what was committed.
            self._waiting.traces.difference_update(adopted)
            self._waiting.traces.update(pending)
            self._waiting.sessions_have_results |= judged_sessions
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if not self._connection.in_transaction:
            return  # SQLite rolled back already (it may, on SQLITE_FULL or an I/O error)
        try:
            self._connection.execute("ROLLBACK")
        except sqlite3.Error:
            # The caller hears the error that failed the transaction; the next one retries this.
            logger.warning("spanloom: rollback failed", exc_info=True)

    def _write(self, requests: list[WriteRequest]) -> None:
        try:
            self._transaction(requests)
        except Exception as error:
            if len(requests) == 1 and len(requests[0].spans) > 0 and write_errors.is_data_error(error):
                # Something in these spans cannot be stored (the storage itself works): store
                # the others, and reject only what fails alone.
                result = self._write_apart(requests[0])
                notify(self._observers, result.accepted)
                settle(requests[0].future, result)
                return
            if len(requests) == 1:
                failure = write_errors.storage_error(error)
                if isinstance(failure, StoreUnavailableError):
                    logger.error("spanloom: writing %d records failed: %s", requests[0].size, error)
                else:
                    logger.exception("spanloom: writing %d records failed", requests[0].size)
                settle(requests[0].future, error=failure)
                return
            for request in requests:
                self._write([request])
            return
        notify(self._observers, sum(getattr(request.result, "accepted", 0) for request in requests))
        for request in requests:
            settle(request.future, request.result)

    def _write_apart(self, request: WriteRequest) -> InsertResult:
        """A span request whose spans failed together, written half by half until every span
        that fails alone is found and rejected: rare (normalization bounds what it can), and
        costs about twice the request's own write. A storage failure on the way ends it as one."""
        try:
            self._transaction([request])
        except Exception as error:
            if not write_errors.is_data_error(error):
                raise
            if len(request.spans) == 1:
                span = request.spans[0]
                logger.warning(
                    "spanloom: span %s of trace %s cannot be stored: %s", span.span_id, span.trace_id, error
                )
                return InsertResult(0, 1, (f"a span could not be stored ({type(error).__name__}: {error})",))
            middle = len(request.spans) // 2
            halves = (request.spans[:middle], request.spans[middle:])
            results = [
                self._write_apart(
                    WriteRequest(Future(), spans=span_rows.prepare(half), projects=request.projects)
                )
                for half in halves
            ]
            return InsertResult(
                accepted=sum(result.accepted for result in results),
                rejected=sum(result.rejected for result in results),
                reasons=tuple(dict.fromkeys(reason for result in results for reason in result.reasons)),
                written=[span for result in results for span in result.written],
            )
        result: InsertResult = request.result
        return result
