"""`SqliteStore`: the SQLite file behind the Store protocol: writes through its writer
(writer.py: one thread fed by a bounded queue), reads on a connection per reading thread.

Writes: `insert_spans` builds the spans' rows (in the caller's thread: call it off the event
loop, or in a decoding process through `span_preparer`), queues them and returns a future (or
raises `StoreBusyError` when the queue is full, which the ingest route turns into 503). The
future resolves once the writer has committed them: a 200 means committed.

Reads: each reading thread opens its own connection on first use. In WAL mode a reader sees
the last committed state and never waits for the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path

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
    StoreStats,
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
    project_reads,
    readiness,
    search_index,
    session_reads,
    span_reads,
    span_rows,
    trace_reads,
    trend_reads,
    user_reads,
)
from spanloom.server.store.sqlite.connection import connect_reader
from spanloom.server.store.sqlite.writer import SqliteWriter, WriteRequest
from spanloom.server.store.trend_types import Trends, TrendUnit, TrendWindow


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
        self._writer = SqliteWriter(
            self.path,
            queue_size=queue_size,
            max_batch_spans=max_batch_spans,
            max_db_pages=max_db_pages,
            progress=progress,
            index_text=index_text,
        )
        self._closed = False
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

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
        if self._writer.full():
            raise StoreBusyError("the write queue is full")  # before the work of preparing rows
        # The rows (and their JSON) are built here, in the caller's thread, not by the writer;
        # or already, by `span_preparer` in a decoding process.
        prepared = spans if span_rows.is_prepared(spans) else span_rows.prepare(spans)
        self._writer.put(WriteRequest(future, spans=prepared, projects=projects))
        return future

    def span_preparer(self) -> SpanPreparer:
        return span_rows.prepare

    def announce_write(self) -> AbstractContextManager[None]:
        return self._writer.announced()

    def insert_evaluations(
        self, evaluations: Sequence[EvaluationInput], projects: frozenset[str] | None = None
    ) -> Future[EvaluationInsertResult]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[EvaluationInsertResult] = Future()
        if not evaluations:
            future.set_result(EvaluationInsertResult(accepted=0))
            return future
        self._writer.put(WriteRequest(future, evaluations=list(evaluations), projects=projects))
        return future

    def delete_expired(self, retention: Retention, limit: int = 200) -> Future[RetentionResult]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[RetentionResult] = Future()
        # Through the writer's queue: a batch commits between ingest's, never beside them.
        self._writer.put(WriteRequest(future, retention=(retention, limit)))
        return future

    def end_session(self, project: str, session_id: str, ended_ns: int) -> Future[None]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[None] = Future()
        self._writer.put(
            WriteRequest(
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
        self._writer.put(
            WriteRequest(future, marks=lambda connection: evaluation_writes.mark_judged(connection, rows))
        )
        return future

    def sessions_to_judge(self, idle_before_ns: int, limit: int = 100) -> list[tuple[str, str, int]]:
        return session_reads.select_sessions_to_judge(self._reader(), idle_before_ns, limit)

    def set_max_db_pages(self, pages: int | None) -> None:
        """Limit the database file to `pages` pages (None: no limit of ours), from the next write."""
        self._writer.set_max_db_pages(pages)

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
        return self._writer.check(timeout)

    def stats(self) -> StoreStats:
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += (self.path.parent / (self.path.name + suffix)).stat().st_size
            except OSError:
                pass  # no WAL file yet, or just checkpointed away
        return StoreStats(
            size_bytes=size,
            queued_writes=self._writer.queued(),
            unindexed_traces=search_index.pending_count(self._reader()),
        )

    def observe_writes(self, observer: WriteObserver) -> None:
        self._writer.observe_writes(observer)

    # --- lifecycle ---
    def close(self) -> None:
        """Finish queued writes, stop the writer, close every connection. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()  # queued writes still finish
        with self._readers_lock:
            for connection in self._readers:
                connection.close()
            self._readers.clear()
