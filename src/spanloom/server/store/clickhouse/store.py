"""`ClickHouseStore`: the `Store` protocol over ClickHouse, embedded (chDB) or a server.

Writes go through one writer thread fed by a bounded queue, as in the SQLite store
(write_thread.py): `insert_spans` queues a request and returns a future (or raises
`StoreBusyError` when the queue is full), resolved once the batch holding it is written
(writer.py): a 200 means the inserts returned from ClickHouse.

Reads: each reading thread has its own client (a client runs one query at a time); they read the
rows as the last insert left them, never a duplicate (no insert is ever repeated, and rollup rows
are read with FINAL).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from spanloom.server.store.base import (
    REPLAY_OF,
    FailingReason,
    FailingTurn,
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
    SpanRecord,
    StoreClosedError,
    StoreOpenError,
    StoreStats,
    TraceDetail,
    TraceSummary,
    UserDetail,
    UserSummary,
    WriteObserver,
    failing_turns_of,
)
from spanloom.server.store.clickhouse import (
    evaluation_list_reads,
    evaluation_reads,
    session_reads,
    span_reads,
    trace_reads,
    trend_reads,
    user_reads,
)
from spanloom.server.store.clickhouse.location import WRITER_SETTINGS, Location, connect
from spanloom.server.store.clickhouse.migrations import SchemaTooNewError, migrate
from spanloom.server.store.clickhouse.write_log import FileLog, TableLog, WriteLog
from spanloom.server.store.clickhouse.write_thread import GATHER_SECONDS, WriteRequest, WriteThread
from spanloom.server.store.clickhouse.writer import Writer
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
from spanloom.server.store.trend_types import Trends, TrendUnit, TrendWindow
from spanloom.server.store.turn_pages import (
    TurnKey,
    TurnWindow,
    failing_turn_at,
    first_key,
    turns_before,
    turns_from,
)

logger = logging.getLogger(__name__)


_PROJECT_FIGURES = """
SELECT project, sum(spans), sum(traces), sum(sessions), min(first), max(last) FROM (
    SELECT project, toInt64(sum(span_count)) AS spans, toInt64(sum(trace_count)) AS traces,
        toInt64(count()) AS sessions, min(start_ns) AS first, max(end_ns) AS last
    FROM sessions FINAL GROUP BY project
    UNION ALL
    SELECT project, toInt64(sum(span_count)), toInt64(count()), toInt64(0), min(start_ns), max(end_ns)
    FROM traces FINAL WHERE session_id = '' GROUP BY project
) GROUP BY project ORDER BY project
"""


class ClickHouseStore:
    """Spans in ClickHouse: chDB in this process, or a server or cluster over HTTP."""

    def __init__(
        self,
        location: Location,
        *,
        queue_size: int = 16,
        max_batch_spans: int = 8192,
        gather_seconds: float = GATHER_SECONDS,
        progress: Progress | None = None,
    ) -> None:
        """Opens (creating or upgrading) the database and repairs any batch a crash cut short.
        Raises StoreOpenError, having changed nothing, for a database it cannot use."""
        self.location = location
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._local = threading.local()
        try:
            admin = connect(location)
            try:
                migrate(admin, location.database, location.cluster, progress)
            finally:
                admin.close()
            self._writer_client = self._connect(WRITER_SETTINGS)
            self._log: WriteLog = (
                FileLog(Path(location.path) / "spanloom-write-log.jsonl")
                if location.path is not None
                else TableLog(self._writer_client)
            )
            self._writer = Writer(
                self._writer_client, self._connect(WRITER_SETTINGS), self._log, embedded=location.embedded
            )
            repaired = self._writer.recover()
            if repaired and progress is not None:
                progress(f"recounted {repaired} batch(es) a stop cut short")
        except SchemaTooNewError as error:
            self._close_clients()
            raise StoreOpenError(f"cannot open {location.url}: {error}") from error
        except Exception as error:
            self._close_clients()
            raise StoreOpenError(f"cannot open {location.url} as a spanloom store: {error}") from error
        self._closed = False
        self._thread = WriteThread(
            self._writer,
            location,
            queue_size=queue_size,
            max_batch_spans=max_batch_spans,
            gather_seconds=gather_seconds,
        )

    def _connect(self, extra: dict[str, Any] | None = None) -> Any:
        client = connect(self.location, self.location.database, extra)
        with self._clients_lock:
            self._clients.append(client)
        return client

    def _close_clients(self) -> None:
        with self._clients_lock:
            for client in self._clients:
                try:
                    client.close()
                except Exception:  # closing is best effort: the engine goes with the process
                    logger.debug("spanloom: closing a ClickHouse client failed", exc_info=True)
            self._clients.clear()

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
        self._thread.put(WriteRequest(future, spans=list(spans), projects=projects))
        return future

    def span_preparer(self) -> None:
        # Its rows are of the spans the writer keeps, under the project the trace's owner gives
        # them (claims.py): the writer builds them.
        return None

    def announce_write(self) -> AbstractContextManager[None]:
        return self._thread.announced()

    def insert_evaluations(
        self, evaluations: Sequence[EvaluationInput], projects: frozenset[str] | None = None
    ) -> Future[EvaluationInsertResult]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[EvaluationInsertResult] = Future()
        if not evaluations:
            future.set_result(EvaluationInsertResult(accepted=0))
            return future
        self._thread.put(WriteRequest(future, evaluations=list(evaluations), projects=projects))
        return future

    def delete_expired(self, retention: Retention, limit: int = 200) -> Future[RetentionResult]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[RetentionResult] = Future()
        # Through the writer's queue: a batch is written between ingest's, never beside them.
        self._thread.put(WriteRequest(future, retention=(retention, limit)))
        return future

    def end_session(self, project: str, session_id: str, ended_ns: int) -> Future[None]:
        return self._mark(lambda writer: writer.end_session(project, session_id, ended_ns))

    def mark_judged(self, project: str, session_id: str, judged_end_ns: int) -> Future[None]:
        return self._mark(lambda writer: writer.mark_judged(project, session_id, judged_end_ns))

    def mark_judged_many(self, marks: Sequence[tuple[str, str, int]]) -> Future[None]:
        rows = list(marks)  # a copy: the caller's list is theirs
        return self._mark(lambda writer: writer.mark_judged_many(rows))

    def _mark(self, marks: Callable[[Writer], None]) -> Future[None]:
        if self._closed:
            raise StoreClosedError("the store is closed")
        future: Future[None] = Future()
        self._thread.put(WriteRequest(future, marks=marks))
        return future

    def sessions_to_judge(self, idle_before_ns: int, limit: int = 100) -> list[tuple[str, str, int]]:
        return session_reads.select_sessions_to_judge(self._reader(), idle_before_ns, limit)

    # --- reading ---
    def _reader(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self._closed:
                raise StoreClosedError("the store is closed")
            client = self._local.client = self._connect()
        return client

    def list_projects(self) -> list[ProjectSummary]:
        """Each project's figures from its session rows and its traces without a session (a key
        range of `traces`): never a pass over every trace."""
        client = self._reader()
        rows = client.query(_PROJECT_FIGURES).result_rows
        users = dict(client.query("SELECT project, count() FROM users FINAL GROUP BY project").result_rows)
        return [
            ProjectSummary(project, spans, traces, sessions, users.get(project, 0), first, last)
            for project, spans, traces, sessions, first, last in rows
        ]

    def list_sessions(self, query: ListQuery) -> Page[SessionSummary]:
        return session_reads.list_sessions(self._reader(), query)

    def list_replays(self, project: str, session_id: str, limit: int) -> list[SessionSummary]:
        # The metadata filter of the list: a columnar read of one project's sessions, without
        # an index of its own.
        query = ListQuery(
            project=project, metadata=[(REPLAY_OF, session_id)], sort="start_time", order="asc", limit=limit
        )
        found = session_reads.list_sessions(self._reader(), query).items
        # The list's filter compares JSON values as text; a replay names its original by string.
        return [session for session in found if session.metadata.get(REPLAY_OF) == session_id]

    def get_session(
        self,
        project: str,
        session_id: str,
        limit: int | None = None,
        cursor: str | None = None,
        *,
        tool_calls: bool = True,
    ) -> SessionDetail | None:
        window = TurnWindow.of(cursor)
        client = self._reader()
        summary = session_reads.select_session(client, project, session_id)
        if summary is None:
            return None
        turns = trace_reads.select_session_turns(
            client, project, session_id, window.fetch(limit), window.after, window.before
        )
        next_key = window.next_key(turns, limit)
        first = first_key(turns)
        offset = trace_reads.count_turns_before(client, project, session_id, first) if first and cursor else 0

        whole_session = cursor is None and next_key is None
        # A whole session on this page holds its failing turns (each statement costs embedded
        # chDB milliseconds of its own, so none is spent on them); else one query finds them.
        failing = (
            failing_turns_of(turns)
            if whole_session
            else trace_reads.select_failing_turns(client, project, session_id)
        )
        on_page = {(turn.start_time_ns, turn.trace_id): index for index, turn in enumerate(turns)}

        def failing_turn(key: TurnKey | None, reason: FailingReason) -> FailingTurn | None:
            if key is None:
                return None
            index = (
                on_page[key]
                if whole_session
                else trace_reads.count_turns_before(client, project, session_id, key)
            )
            return failing_turn_at(key, index, reason)

        first_error = failing_turn(failing.first_error, "error")
        first_evaluation_failure = failing_turn(failing.first_evaluation_failure, "evaluation")
        return SessionDetail(
            summary,
            turns,
            span_reads.select_session_tool_spans(client, turns) if tool_calls else {},
            first_turn_index=offset,
            next_cursor=turns_from(next_key) if next_key else None,
            previous_cursor=turns_before(first) if first and offset else None,
            first_failing=first_error or first_evaluation_failure,
            first_evaluation_failure=first_evaluation_failure,
            failing_turn_count=failing.total,
            results=evaluation_reads.select_session_results(client, project, session_id),
        )

    def find_session_projects(self, session_id: str) -> list[str]:
        return session_reads.select_session_projects(self._reader(), session_id)

    def list_session_turns(
        self, project: str, session_ids: Sequence[str], with_spans: bool = False
    ) -> list[SessionTurns]:
        client = self._reader()
        existing = session_reads.select_existing_sessions(client, project, session_ids)
        found = {
            session_id: SessionTurns(project, session_id, [])
            for session_id in session_ids
            if session_id in existing
        }
        turns = trace_reads.select_turns_of_sessions(client, project, list(found)) if found else []
        for turn in turns:
            found[turn.session_id or ""].turns.append(turn)
        if with_spans and turns:
            spans = span_reads.select_llm_and_tool_spans(client, turns)
            for entry in found.values():
                entry.spans = {
                    turn.trace_id: spans[turn.trace_id] for turn in entry.turns if turn.trace_id in spans
                }
        return list(found.values())

    def list_users(self, query: ListQuery) -> Page[UserSummary]:
        return user_reads.list_users(self._reader(), query)

    def get_user(self, project: str, user_id: str, sessions: ListQuery | None = None) -> UserDetail | None:
        client = self._reader()
        summary = user_reads.select_user(client, project, user_id)
        if summary is None:
            return None
        session_query = replace(sessions or ListQuery(), project=project, user_id=user_id)
        return UserDetail(summary, session_reads.list_sessions(client, session_query))

    def find_user_projects(self, user_id: str) -> list[str]:
        return user_reads.select_user_projects(self._reader(), user_id)

    def get_trends(
        self,
        project: str,
        start_ns: int,
        end_ns: int,
        user_id: str | None = None,
        unit: TrendUnit | None = None,
        latency: bool = True,
    ) -> Trends:
        return trend_reads.select_trends(
            self._reader(), project, TrendWindow.of(start_ns, end_ns, unit), user_id, latency
        )

    def list_traces(self, query: ListQuery) -> Page[TraceSummary]:
        return trace_reads.list_traces(self._reader(), query)

    def get_trace(
        self, trace_id: str, limit: int | None = None, cursor: str | None = None
    ) -> TraceDetail | None:
        after = decode_cursor(cursor, TRACE_SPANS_CURSOR)[1][0] if cursor else ""
        client = self._reader()
        summary = trace_reads.select_trace(client, trace_id)
        if summary is None:
            return None
        if limit is None and not cursor:
            return TraceDetail(summary, span_reads.select_trace_spans(client, summary))
        spans, next_after = span_reads.select_trace_span_page(
            client, summary, limit or summary.span_count or 1, after
        )
        next_cursor = encode_cursor(TRACE_SPANS_CURSOR, 0, (next_after,)) if next_after else None
        return TraceDetail(summary, spans, next_cursor)

    def get_trace_outline(self, trace_id: str) -> TraceDetail | None:
        client = self._reader()
        summary = trace_reads.select_trace(client, trace_id)
        if summary is None:
            return None
        return TraceDetail(summary, span_reads.select_trace_outline(client, summary))

    def get_spans(self, trace_id: str, span_ids: Sequence[str]) -> list[SpanRecord]:
        client = self._reader()
        summary = trace_reads.select_trace(client, trace_id)
        if summary is None or not span_ids:
            return []
        return span_reads.select_spans(client, summary, span_ids)

    def count_trace_spans(self, trace_ids: Sequence[str]) -> dict[str, int]:
        counts = dict.fromkeys(trace_ids, 0)
        # Ingest asks this for every request; nearly all its traces are new, which the embedded
        # writer knows without a query (a chDB query costs the request milliseconds).
        asked = self._writer.maybe_stored(counts)
        if asked:
            counts.update(trace_reads.select_trace_span_counts(self._reader(), asked))
        return counts

    def list_spans(self, query: ListQuery) -> Page[SpanRecord]:
        return span_reads.list_spans(self._reader(), query)

    def count_spans(self, query: ListQuery) -> int:
        return span_reads.count_spans(self._reader(), query)

    def list_evaluation_names(self, project: str | None = None) -> list[str]:
        return evaluation_reads.list_evaluation_names(self._reader(), project)

    def list_evaluations(self, query: EvaluationQuery) -> Page[EvaluationResult]:
        return evaluation_list_reads.list_evaluations(self._reader(), query)

    def summarize_evaluations(
        self, group_by: GroupBy, name: str | None = None, project: str | None = None, limit: int = 50
    ) -> list[EvaluationGroup]:
        return evaluation_reads.summarize(self._reader(), group_by, name, project, limit)

    # --- operating ---
    def check_ready(self, timeout: float) -> Readiness:
        if self._closed:
            return Readiness(False, "the store is closed: the server is shutting down")
        return self._thread.check(timeout)

    def stats(self) -> StoreStats:
        return StoreStats(size_bytes=self._size_bytes(), queued_writes=self._thread.queued())

    def _size_bytes(self) -> int:
        """chDB: its directory's files (a walk of a few thousand at most: parts are merged); a
        server: the database's active parts, as the server counts them."""
        if self.location.path is not None:
            total = 0
            for directory, _, names in os.walk(self.location.path):
                for name in names:
                    try:
                        total += os.stat(os.path.join(directory, name)).st_size
                    except OSError:
                        pass  # a part merged away while we walked
            return total
        rows = (
            self._reader()
            .query(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = {db:String}",
                parameters={"db": self.location.database},
            )
            .result_rows
        )
        return int(rows[0][0] or 0)

    def observe_writes(self, observer: WriteObserver) -> None:
        self._thread.observe_writes(observer)

    # --- lifecycle ---
    def close(self) -> None:
        """Finish queued writes, stop the writer, close every client. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._thread.close()  # queued writes still finish
        self._close_clients()
        if isinstance(self._log, FileLog):
            self._log.close()
