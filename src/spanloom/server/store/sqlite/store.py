"""`SqliteStore`: one writer thread fed by a bounded queue, and a reader connection per thread.

Writes: `insert_spans` builds the spans' rows (in the caller's thread: call it off the event
loop), puts them on a queue and returns a future (or raises `StoreBusyError` when the queue is
full, which the ingest route turns into 503). The writer thread takes everything waiting, up to
`max_batch_spans`, writes it in one transaction with the rollups, commits, and only then
resolves the futures: a 200 means committed. If the combined
transaction fails, each request is retried alone so one bad request cannot fail the others.
A request that still fails is rolled back whole and its future gets `StoreUnavailableError` for
any SQLite error (a full disk, an I/O error): 503, never 200, and the writer goes on, so the next
write succeeds once the storage does.

Checkpoints: a thread of its own (checkpointer.py) copies committed WAL pages back into the file
soon after commits, in parallel with the writer. Text index: a thread of its own (text_indexer.py)
adds the turns' texts to the search index from what the writer noted, so ingest never tokenizes;
it and the writer take turns at SQLite's write lock through `_write_lock`.

Reads: each reading thread opens its own connection on first use. In WAL mode a reader sees
the last committed state and never waits for the writer.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from spanloom.server.store.base import (
    InsertResult,
    ListQuery,
    Page,
    Progress,
    ProjectSummary,
    Readiness,
    Retention,
    RetentionResult,
    SessionDetail,
    SessionSummary,
    SessionTurns,
    SpanPreparer,
    SpanRecord,
    StoreBusyError,
    StoreClosedError,
    StoreOpenError,
    StoreStats,
    StoreUnavailableError,
    TraceDetail,
    TraceSummary,
    UserDetail,
    UserSummary,
    WriteObserver,
)
from spanloom.server.store.cursor import (
    TRACE_SPANS_CURSOR,
    decode_cursor,
    encode_cursor,
)
from spanloom.server.store.evaluation_list import EvaluationQuery, EvaluationResult
from spanloom.server.store.evaluation_types import (
    EvaluationGroup,
    EvaluationInput,
    EvaluationInsertResult,
    GroupBy,
)
from spanloom.server.store.sqlite import (
    evaluation_list_reads,
    evaluation_reads,
    evaluation_writes,
    ownership,
    project_reads,
    readiness,
    retention,
    search_index,
    session_reads,
    span_reads,
    span_rows,
    trace_reads,
    trend_reads,
    user_reads,
    write_errors,
)
from spanloom.server.store.sqlite.checkpointer import Checkpointer
from spanloom.server.store.sqlite.connection import (
    connect_reader,
    connect_writer,
)
from spanloom.server.store.sqlite.evaluation_rollups import insert_evaluations
from spanloom.server.store.sqlite.migrations import SchemaTooNewError, migrate
from spanloom.server.store.sqlite.rollups import Waiting, write_batch
from spanloom.server.store.sqlite.text_indexer import TextIndexer
from spanloom.server.store.trend_types import Trends, TrendUnit, TrendWindow
from spanloom.server.store.write_queue import WriteQueue, settle
from spanloom.server.store.writer_probe import WriterProbe

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Request:
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


# How often the writer refreshes the planner's statistics (a few milliseconds each time).
STATISTICS_INTERVAL_SECONDS = 300.0
# Rows ANALYZE samples per index: enough to tell a filter that matches most rows from one that
# matches few, and quick on any size of file.
ANALYSIS_LIMIT = 400

# The writer counts as busy (the text indexer waits) while a write is queued or one committed
# this recently.
WRITER_BUSY_SECONDS = 0.05


class SqliteStore:
    """The embedded store: a single SQLite file (plus its -wal and -shm files)."""

    def __init__(
        self,
        path: Path | str,
        *,
        queue_size: int = 16,
        max_batch_spans: int = 8192,
        max_db_pages: int | None = None,
        progress: Progress | None = None,
        index_text: bool = True,
    ) -> None:
        """Opens (creating or upgrading) the file; `progress` hears what a long upgrade is doing.
        `index_text=False` runs no text indexer (searches still find everything, reading texts).
        Raises StoreOpenError, having changed nothing, for a file it cannot use."""
        self.path = Path(path)
        try:
            self._writer = connect_writer(self.path)
        except (sqlite3.Error, OSError) as error:
            raise StoreOpenError(f"cannot open {self.path} as a spanloom database: {error}") from error
        try:
            migrate(self._writer, progress)
            # The file's size limit in pages (None: SQLite's own). Past it a write fails with
            # SQLITE_FULL exactly as on a full disk; the writer applies a new value before its
            # next transaction, so it can be raised while the server runs (see set_max_db_pages).
            (self._default_max_pages,) = self._writer.execute("PRAGMA max_page_count").fetchone()
        except (sqlite3.Error, OSError, SchemaTooNewError) as error:
            self._writer.close()
            raise StoreOpenError(f"cannot open {self.path} as a spanloom database: {error}") from error
        try:
            self._waiting = Waiting(
                traces=evaluation_writes.select_pending_trace_ids(self._writer),
                sessions_have_results=evaluation_writes.any_session_results(self._writer),
            )
            self._writer.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
            # Statistics for whatever has none yet (a new or just upgraded file).
            self._writer.execute("PRAGMA optimize = 0x10002")
        except sqlite3.Error as error:
            self._writer.close()
            raise StoreOpenError(f"cannot open {self.path} as a spanloom database: {error}") from error
        self._next_statistics = time.monotonic() + STATISTICS_INTERVAL_SECONDS
        self._max_db_pages: int | None = None
        self._applied_max_pages: int | None = None
        self.set_max_db_pages(max_db_pages)
        self._apply_page_limit()
        self._queue: WriteQueue[_Request] = WriteQueue(queue_size)
        self._max_batch_spans = max_batch_spans
        self._closed = False
        self._observers: list[WriteObserver] = []
        self._probe = WriterProbe(
            lambda probe, timeout: self._queue.put(_Request(probe, probe=True), timeout=timeout),
            write_errors.explain_refusal,
        )
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._checkpointer = Checkpointer(self.path)
        # Held by the writer and the indexer for each of their transactions.
        self._write_lock = threading.Lock()
        self._last_write = 0.0  # time.monotonic() of the writer's last commit
        self._indexer = (
            TextIndexer(self.path, self._write_lock, self._writer_busy, self._page_limit)
            if index_text
            else None
        )
        self._thread = threading.Thread(target=self._run_writer, name="spanloom-sqlite-writer", daemon=True)
        self._thread.start()

    # --- writing ---
    def insert_spans(
        self, spans: Sequence[SpanRecord], projects: frozenset[str] | None = None
    ) -> Future[InsertResult]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[InsertResult] = Future()
        if not spans:
            future.set_result(InsertResult(accepted=0))
            return future
        if self._queue.full():
            raise StoreBusyError("the write queue is full")  # before the work of preparing rows
        # The rows (and their JSON) are built here, in the caller's thread, not by the writer;
        # or already, by `span_preparer` in a decoding process.
        prepared = spans if span_rows.is_prepared(spans) else span_rows.prepare(spans)
        self._enqueue(_Request(future, spans=prepared, projects=projects))
        return future

    def span_preparer(self) -> SpanPreparer:
        return span_rows.prepare

    def announce_write(self) -> AbstractContextManager[None]:
        return self._queue.announced()

    def insert_evaluations(
        self, evaluations: Sequence[EvaluationInput], projects: frozenset[str] | None = None
    ) -> Future[EvaluationInsertResult]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[EvaluationInsertResult] = Future()
        if not evaluations:
            future.set_result(EvaluationInsertResult(accepted=0))
            return future
        self._enqueue(_Request(future, evaluations=list(evaluations), projects=projects))
        return future

    def delete_expired(self, retention: Retention, limit: int = 200) -> Future[RetentionResult]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[RetentionResult] = Future()
        # Through the writer's queue: a batch commits between ingest's, never beside them.
        self._enqueue(_Request(future, retention=(retention, limit)))
        return future

    def end_session(self, project: str, session_id: str, ended_ns: int) -> Future[None]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[None] = Future()
        self._enqueue(
            _Request(
                future,
                marks=lambda connection: evaluation_writes.mark_ended(
                    connection, [(project, session_id, ended_ns)]
                ),
            )
        )
        return future

    def mark_judged(self, project: str, session_id: str, judged_end_ns: int) -> Future[None]:
        return self.mark_judged_many([(project, session_id, judged_end_ns)])

    def mark_judged_many(self, marks: Sequence[tuple[str, str, int]]) -> Future[None]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[None] = Future()
        rows = list(marks)  # a copy: the caller's list is theirs
        self._enqueue(
            _Request(future, marks=lambda connection: evaluation_writes.mark_judged(connection, rows))
        )
        return future

    def sessions_to_judge(self, idle_before_ns: int, limit: int = 100) -> list[tuple[str, str, int]]:
        return session_reads.select_sessions_to_judge(self._reader(), idle_before_ns, limit)

    def _enqueue(self, request: _Request) -> None:
        self._queue.put_nowait(request)

    def _run_writer(self) -> None:
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
        self._writer.close()

    def _answer_probe(self, probe: _Request) -> None:
        """After the writes taken with it: would the next write find room?"""
        try:
            self._apply_page_limit()
            readiness.probe_room(self._writer)
        except Exception as error:
            settle(probe.future, error=write_errors.storage_error(error))
        else:
            settle(probe.future, None)

    def _observe(self, records: int) -> None:
        if not records:
            return
        for observer in self._observers:
            try:
                observer(records)
            except Exception:
                logger.exception("spanloom: a write observer failed")

    def _refresh_statistics(self) -> None:
        """Keep the planner's statistics current (PRAGMA optimize: ANALYZE where the tables grew,
        on a sample), so it picks a filter's index or a sort's index by what the data is like: a
        project filter matching most rows reads the sort's index in order, a user filter its own."""
        self._next_statistics = time.monotonic() + STATISTICS_INTERVAL_SECONDS
        try:
            self._writer.execute("PRAGMA optimize")
        except sqlite3.Error:
            logger.warning("spanloom: refreshing the planner's statistics failed", exc_info=True)

    def _writer_busy(self) -> bool:
        return not self._queue.empty() or time.monotonic() - self._last_write < WRITER_BUSY_SECONDS

    def _page_limit(self) -> int:
        return self._max_db_pages or self._default_max_pages

    def set_max_db_pages(self, pages: int | None) -> None:
        """Limit the database file to `pages` pages (None: no limit of ours), from the next write."""
        self._max_db_pages = pages

    def _apply_page_limit(self) -> None:
        wanted = self._page_limit()
        if wanted != self._applied_max_pages:
            # PRAGMA takes no parameters; `wanted` is an int. SQLite keeps it at least the
            # file's current size.
            self._writer.execute(f"PRAGMA max_page_count = {int(wanted)}")
            self._applied_max_pages = wanted

    def _transaction(self, requests: Sequence[_Request]) -> None:
        if self._writer.in_transaction:
            # A rollback that failed last time (the storage still failing) left one open.
            self._writer.execute("ROLLBACK")
        self._apply_page_limit()
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            # Each request's spans given their traces' projects, in queue order; then all requests
            # as one batch: a trace, session or user that several of them touch is refreshed once
            # per commit.
            writing = [request for request in requests if request.spans]
            claimed = ownership.claim(
                self._writer, [(request.spans, request.projects) for request in writing]
            )
            for request, claim in zip(writing, claimed, strict=True):
                request.result = InsertResult(len(claim.spans), claim.rejected, claim.reasons, claim.spans)
            adopted = write_batch(
                self._writer, span_rows.concatenate(claim.spans for claim in claimed), self._waiting
            )
            # Results after spans: a result may judge a span of the same commit.
            pending: set[str] = set()
            judged_sessions = False
            for request in requests:
                if request.evaluations:
                    request.result, waiting = insert_evaluations(
                        self._writer, request.evaluations, request.projects
                    )
                    pending |= waiting
                    judged_sessions |= any(
                        item.session_id and not item.trace_id for item in request.evaluations
                    )
                elif request.retention is not None:
                    request.result = retention.delete_expired(self._writer, *request.retention)
                elif request.marks is not None:
                    request.result = request.marks(self._writer)
            self._writer.execute("COMMIT")
            # What waits for spans changes only with what was committed.
            self._waiting.traces.difference_update(adopted)
            self._waiting.traces.update(pending)
            self._waiting.sessions_have_results |= judged_sessions
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if not self._writer.in_transaction:
            return  # SQLite rolled back already (it may, on SQLITE_FULL or an I/O error)
        try:
            self._writer.execute("ROLLBACK")
        except sqlite3.Error:
            # The caller hears the error that failed the transaction; the next one retries this.
            logger.warning("spanloom: rollback failed", exc_info=True)

    def _write(self, requests: list[_Request]) -> None:
        try:
            self._transaction(requests)
        except Exception as error:
            if len(requests) == 1 and len(requests[0].spans) > 0 and write_errors.is_data_error(error):
                # Something in these spans cannot be stored (the storage itself works): store
                # the others, and reject only what fails alone.
                result = self._write_apart(requests[0])
                self._observe(result.accepted)
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
        self._observe(sum(getattr(request.result, "accepted", 0) for request in requests))
        for request in requests:
            settle(request.future, request.result)

    def _write_apart(self, request: _Request) -> InsertResult:
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
                    _Request(Future(), spans=span_rows.prepare(half), projects=request.projects)
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

    # --- reading ---
    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self._closed:
                raise StoreClosedError("the store is closed")
            connection = connect_reader(self.path)
            self._local.connection = connection
            with self._readers_lock:
                self._readers.append(connection)
        return connection

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """This thread's reader inside one read transaction: every query in the block sees the
        same commit (a summary and its turns or spans agree)."""
        connection = self._reader()
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            connection.execute("COMMIT")

    def list_projects(self) -> list[ProjectSummary]:
        return project_reads.list_projects(self._reader())

    def list_sessions(self, query: ListQuery) -> Page[SessionSummary]:
        with self._snapshot() as connection:
            return session_reads.list_sessions(connection, query)

    def list_replays(self, project: str, session_id: str, limit: int) -> list[SessionSummary]:
        with self._snapshot() as connection:
            return session_reads.select_replays(connection, project, session_id, limit)

    def get_session(
        self,
        project: str,
        session_id: str,
        limit: int | None = None,
        cursor: str | None = None,
        *,
        tool_calls: bool = True,
    ) -> SessionDetail | None:
        with self._snapshot() as connection:
            return session_reads.select_session_detail(
                connection, project, session_id, limit, cursor, tool_calls=tool_calls
            )

    def find_session_projects(self, session_id: str) -> list[str]:
        return session_reads.select_session_projects(self._reader(), session_id)

    def list_session_turns(
        self, project: str, session_ids: Sequence[str], with_spans: bool = False
    ) -> list[SessionTurns]:
        with self._snapshot() as connection:
            existing = session_reads.select_existing_sessions(connection, project, session_ids)
            found = {
                session_id: SessionTurns(project, session_id, [])
                for session_id in session_ids
                if session_id in existing
            }
            turns = trace_reads.select_turns_of_sessions(connection, project, list(found))
            for turn in turns:
                found[turn.session_id or ""].turns.append(turn)
            if with_spans and turns:
                spans = span_reads.select_llm_and_tool_spans(connection, [turn.trace_id for turn in turns])
                for entry in found.values():
                    entry.spans = {
                        turn.trace_id: spans[turn.trace_id] for turn in entry.turns if turn.trace_id in spans
                    }
            return list(found.values())

    def list_users(self, query: ListQuery) -> Page[UserSummary]:
        with self._snapshot() as connection:
            return user_reads.list_users(connection, query)

    def get_user(self, project: str, user_id: str, sessions: ListQuery | None = None) -> UserDetail | None:
        with self._snapshot() as connection:
            summary = user_reads.select_user(connection, project, user_id)
            if summary is None:
                return None
            # A copy: the caller's query is theirs.
            session_query = replace(sessions or ListQuery(), project=project, user_id=user_id)
            return UserDetail(summary, session_reads.list_sessions(connection, session_query))

    def find_user_projects(self, user_id: str) -> list[str]:
        return user_reads.select_user_projects(self._reader(), user_id)

    def list_traces(self, query: ListQuery) -> Page[TraceSummary]:
        with self._snapshot() as connection:
            return trace_reads.list_traces(connection, query)

    def get_trace(
        self, trace_id: str, limit: int | None = None, cursor: str | None = None
    ) -> TraceDetail | None:
        after = decode_cursor(cursor, TRACE_SPANS_CURSOR)[1][0] if cursor else ""
        with self._snapshot() as connection:
            summary = trace_reads.select_trace(connection, trace_id)
            if summary is None:
                return None
            if limit is None and not cursor:
                return TraceDetail(summary, span_reads.select_trace_spans(connection, trace_id))
            spans, next_after = span_reads.select_trace_span_page(
                connection, trace_id, limit or summary.span_count or 1, after
            )
            next_cursor = encode_cursor(TRACE_SPANS_CURSOR, 0, (next_after,)) if next_after else None
            return TraceDetail(summary, spans, next_cursor)

    def get_trace_outline(self, trace_id: str) -> TraceDetail | None:
        with self._snapshot() as connection:
            summary = trace_reads.select_trace(connection, trace_id)
            if summary is None:
                return None
            return TraceDetail(summary, span_reads.select_trace_outline(connection, trace_id))

    def get_spans(self, trace_id: str, span_ids: Sequence[str]) -> list[SpanRecord]:
        return span_reads.select_spans(self._reader(), trace_id, span_ids)

    def count_trace_spans(self, trace_ids: Sequence[str]) -> dict[str, int]:
        counts = dict.fromkeys(trace_ids, 0)
        counts.update(trace_reads.select_trace_span_counts(self._reader(), list(counts)))
        return counts

    def list_spans(self, query: ListQuery) -> Page[SpanRecord]:
        return span_reads.list_spans(self._reader(), query)

    def count_spans(self, query: ListQuery) -> int:
        return span_reads.count_spans(self._reader(), query)

    def get_trends(
        self,
        project: str,
        start_ns: int,
        end_ns: int,
        user_id: str | None = None,
        unit: TrendUnit | None = None,
        latency: bool = True,
    ) -> Trends:
        with self._snapshot() as connection:
            return trend_reads.select_trends(
                connection, project, TrendWindow.of(start_ns, end_ns, unit), user_id, latency
            )

    def list_evaluation_names(self, project: str | None = None) -> list[str]:
        return evaluation_reads.list_evaluation_names(self._reader(), project)

    def list_evaluations(self, query: EvaluationQuery) -> Page[EvaluationResult]:
        # Two tables may be read for one page: one snapshot for both.
        with self._snapshot() as connection:
            return evaluation_list_reads.list_evaluations(connection, query)

    def summarize_evaluations(
        self, group_by: GroupBy, name: str | None = None, project: str | None = None, limit: int = 50
    ) -> list[EvaluationGroup]:
        with self._snapshot() as connection:
            return evaluation_reads.summarize(connection, group_by, name, project, limit)

    # --- operating ---
    def check_ready(self, timeout: float) -> Readiness:
        if self._closed:
            return Readiness(False, "the store is closed: the server is shutting down")
        shortage = readiness.disk_shortage(self.path)
        if shortage is not None:
            return Readiness(False, shortage)
        return self._probe.check(timeout)

    def stats(self) -> StoreStats:
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += (self.path.parent / (self.path.name + suffix)).stat().st_size
            except OSError:
                pass  # no WAL file yet, or just checkpointed away
        return StoreStats(
            size_bytes=size,
            queued_writes=self._queue.qsize(),
            unindexed_traces=search_index.pending_count(self._reader()),
        )

    def observe_writes(self, observer: WriteObserver) -> None:
        self._observers.append(observer)

    # --- lifecycle ---
    def close(self) -> None:
        """Finish queued writes, stop the writer, close every connection. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.stop()  # blocks while the queue is full: queued writes still finish
        self._thread.join()
        self._checkpointer.stop()
        if self._indexer is not None:
            self._indexer.stop()
        with self._readers_lock:
            for connection in self._readers:
                connection.close()
            self._readers.clear()
