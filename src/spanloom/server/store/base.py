"""The `Store` protocol, its errors and its list query; the records it reads and writes are in
records.py, and are imported from here too.

Nothing here is SQLite-specific: every backend implements the same protocol, and
tests/store_contract/ is its definition. Times are integers in nanoseconds since the Unix epoch
(as OTLP sends them); durations and latencies are float milliseconds.

Projects are tenants. A session or user id is unique only inside its project: sessions, users and
their aggregates are keyed by (project, id). A trace id is global, and a trace belongs to the
project that first stored it: its spans are all of that project, whatever a later span names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from spanloom.server.store.evaluation_list import EvaluationQuery, EvaluationResult
from spanloom.server.store.evaluation_types import (
    EvaluationGroup,
    EvaluationInput,
    EvaluationInsertResult,
    GroupBy,
)
from spanloom.server.store.records import (
    FailingReason,
    FailingTurn,
    FailingTurns,
    InsertResult,
    Page,
    ProjectSummary,
    Readiness,
    Retention,
    RetentionResult,
    SessionDetail,
    SessionStatus,
    SessionSummary,
    SessionTurns,
    SpanRecord,
    StatusCode,
    StoreStats,
    TraceDetail,
    TraceSummary,
    UserDetail,
    UserSummary,
    failed_evaluations,
    failing_turns_of,
    turn_failed,
)
from spanloom.server.store.trend_types import Trends, TrendUnit

# The records are imported from here as well as from records.py.
__all__ = [
    "FailingReason",
    "FailingTurn",
    "FailingTurns",
    "InsertResult",
    "Page",
    "ProjectSummary",
    "Readiness",
    "Retention",
    "RetentionResult",
    "SessionDetail",
    "SessionStatus",
    "SessionSummary",
    "SessionTurns",
    "SpanRecord",
    "StatusCode",
    "StoreStats",
    "TraceDetail",
    "TraceSummary",
    "UserDetail",
    "UserSummary",
    "failed_evaluations",
    "failing_turns_of",
    "turn_failed",
]

_T = TypeVar("_T")

# Told, after each committed write that stored spans or evaluation results, how many it stored.
WriteObserver = Callable[[int], None]
# Told what a long operation (a schema upgrade) is doing, a line at a time.
Progress = Callable[[str], None]
# What a store builds of a batch's records before its writer takes them (Store.span_preparer):
# the same records, in a list that also holds the rows.
SpanPreparer = Callable[[list[SpanRecord]], list[SpanRecord]]
SortOrder = Literal["asc", "desc"]


class StoreBusyError(Exception):
    """The writer's queue is full: the caller should retry later (HTTP 503)."""


class StoreOpenError(Exception):
    """The database could not be opened: not a database, corrupt, unreadable, or written by a
    newer spanloom. The message names the file and says why."""


class StoreClosedError(Exception):
    """The store was closed; nothing more can be written."""


class StoreUnavailableError(Exception):
    """The storage failed a write (full disk, I/O error, a lock held elsewhere): nothing of the
    request was stored. The caller should retry later (HTTP 503); the store keeps running and
    the next write succeeds once the storage does. `full`: the database or disk is full."""

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


@dataclass(slots=True)
class ListQuery:
    """Filters, sort and page for the list methods; each list reads the filters that apply to it.

    `start_ns`/`end_ns` keep rows whose time span overlaps the range. `q` is a case-insensitive
    substring. `sort` is one of the keys the store accepts for that list (`SESSION_SORT_KEYS`...).
    """

    project: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    has_error: bool | None = None
    q: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: list[tuple[str, str]] = field(default_factory=list)
    span_kind: str | None = None
    model: str | None = None
    status: StatusCode | None = None
    # Sessions: their status, idle meaning a last turn that ended before `idle_before_ns`.
    session_status: SessionStatus | None = None
    idle_before_ns: int | None = None
    # Rows with (True) or without (False) an end user's negative feedback.
    has_negative_feedback: bool | None = None
    sort: str | None = None  # None: the list's default (start_time; last_seen for users)
    order: SortOrder = "desc"
    limit: int = 50
    cursor: str | None = None


# The sort keys each list accepts (the store maps them to columns through its own allowlist).
SESSION_SORT_KEYS = ("start_time", "last_activity", "turns", "tokens", "cost", "latency", "errors")
USER_SORT_KEYS = ("last_seen", "first_seen", "sessions", "traces", "tokens", "cost", "errors", "error_rate")
TRACE_SORT_KEYS = ("start_time", "latency", "tokens", "cost", "errors", "spans")


def accepts_eval_sort(sort_keys: Sequence[str]) -> bool:
    """Whether the list with these sort keys also sorts by ``eval:NAME`` (sessions and users)."""
    return tuple(sort_keys) in (SESSION_SORT_KEYS, USER_SORT_KEYS)


MAX_PAGE_SIZE = 1000
# The metadata key naming the session a session replays (`spanloom replay` sets it).
REPLAY_OF = "replay_of"


class Store(Protocol):
    """Where spans go and where the API reads them from. No method changes the objects it is
    given (queries, records), and every read is consistent with one committed state."""

    def insert_spans(
        self, spans: Sequence[SpanRecord], projects: frozenset[str] | None = None
    ) -> Future[InsertResult]:
        """Queue spans for writing; the future resolves once they are committed.

        `projects`: the projects the sender may write (None: any). A span of a trace already
        stored, or claimed earlier in the same call, under another project is stored under the
        trace's project when the sender may write that project, and rejected otherwise (counted
        in the result): a trace is never re-labelled. Raises `StoreBusyError` at once when the
        write queue is full. Spans already stored (same trace and span id) are left as they are,
        so a retried batch never duplicates. It may do CPU work in the caller's thread (preparing
        rows): call it off the event loop.
        """
        ...

    def span_preparer(self) -> SpanPreparer | None:
        """What `insert_spans` builds of a batch in the caller's thread, as a module-level
        function (a decoding process gets it by name, runs it, and hands its result to
        `insert_spans`, which takes it as it is); None when the store builds nothing beforehand."""
        ...

    def announce_write(self) -> AbstractContextManager[None]:
        """Open while a caller prepares spans for `insert_spans` (ingest decoding a request): a
        writer that gathers requests into larger batches may wait for it, briefly."""
        ...

    def list_projects(self) -> list[ProjectSummary]: ...

    def list_sessions(self, query: ListQuery) -> Page[SessionSummary]:
        """Sessions by `query.sort` (then project, then id), `query.limit` a page; their first
        input and last output as previews (turn_previews.py)."""
        ...

    def get_session(
        self,
        project: str,
        session_id: str,
        limit: int | None = None,
        cursor: str | None = None,
        *,
        tool_calls: bool = True,
    ) -> SessionDetail | None:
        """The session with `limit` of its turns (all without a limit), from the start or from
        `cursor` (a page's `next_cursor` or `previous_cursor`, or `first_failing.cursor`; raises
        InvalidCursorError for one it did not make). The first failing turn is found over the
        whole session. With `tool_calls=False` the turns' tool spans are not read (`tool_calls`
        is empty): for callers that do not show them, as reading them costs most of the read."""
        ...

    def find_session_projects(self, session_id: str) -> list[str]:
        """The projects that hold a session with this id, by name."""
        ...

    def list_replays(self, project: str, session_id: str, limit: int) -> list[SessionSummary]:
        """Up to `limit` sessions of `project` whose metadata has REPLAY_OF equal to the string
        `session_id`, oldest first (then by id). Every session page asks this: it must not scan
        the project's sessions."""
        ...

    def list_session_turns(
        self, project: str, session_ids: Sequence[str], with_spans: bool = False
    ) -> list[SessionTurns]:
        """Every turn of each of these sessions of `project`, in a few queries for all of them
        (an export reads sessions a page at a time and their turns with them): one entry per
        session that exists, in the order of `session_ids`. `with_spans`: also each turn's LLM
        and TOOL spans, whole. The caller bounds how many turns it asks for at once."""
        ...

    def list_users(self, query: ListQuery) -> Page[UserSummary]: ...

    def get_user(self, project: str, user_id: str, sessions: ListQuery | None = None) -> UserDetail | None:
        """The user and a page of their sessions (`sessions` gives its filters, sort and cursor;
        its project and user are this user's, whatever it says)."""
        ...

    def find_user_projects(self, user_id: str) -> list[str]:
        """The projects that hold a user with this id, by name."""
        ...

    def list_traces(self, query: ListQuery) -> Page[TraceSummary]: ...

    def get_trace(
        self, trace_id: str, limit: int | None = None, cursor: str | None = None
    ) -> TraceDetail | None:
        """The trace with all its spans, or with `limit` of them after `cursor` (a previous page's
        `next_cursor`; raises InvalidCursorError for one it did not make). Pages partition the
        trace's spans; each page is in start order."""
        ...

    def get_trace_outline(self, trace_id: str) -> TraceDetail | None:
        """The trace with every span but without their input, output, attributes, events and
        resource: a huge trace's tree and waterfall, at a fraction of the bytes."""
        ...

    def get_spans(self, trace_id: str, span_ids: Sequence[str]) -> list[SpanRecord]:
        """These spans of the trace, whole, in start order; unknown ids are left out."""
        ...

    def count_trace_spans(self, trace_ids: Sequence[str]) -> dict[str, int]:
        """Spans stored per trace, 0 for an unknown one: the ingest route's per-trace budget asks
        this for the new traces of every request, so it must be one cheap query."""
        ...

    def insert_evaluations(
        self, evaluations: Sequence[EvaluationInput], projects: frozenset[str] | None = None
    ) -> Future[EvaluationInsertResult]:
        """Queue results for writing; the future resolves once they are committed.

        Each item names its span (`span_id`, optionally with `trace_id`) or only a `trace_id` (its
        root span). Items whose span is not stored, or is in a project outside `projects` (None:
        any), are reported in the result with the same reason, not written. A result with the same
        (trace, span, name, source) as a stored one replaces it. Raises `StoreBusyError` at once
        when the write queue is full.
        """
        ...

    def delete_expired(self, retention: Retention, limit: int = 200) -> Future[RetentionResult]:
        """Delete up to `limit` expired sessions and `limit` expired traces without a session,
        in one write that does not hold other writes for long; every figure left equals a
        recount of what is left. Call again while the result says `more`."""
        ...

    def end_session(self, project: str, session_id: str, ended_ns: int) -> Future[None]:
        """Mark the session ended as of `ended_ns` (also before its spans have arrived): it stays
        ended until a turn ends after that."""
        ...

    def sessions_to_judge(self, idle_before_ns: int, limit: int = 100) -> list[tuple[str, str, int]]:
        """(project, session id, end_ns) of up to `limit` sessions that are ended or idle (their
        last turn ended before `idle_before_ns`) and not judged since their last turn, oldest
        first."""
        ...

    def mark_judged(self, project: str, session_id: str, judged_end_ns: int) -> Future[None]:
        """The session's evaluators ran on it as of its end_ns `judged_end_ns`: it is not due again
        until a later turn."""
        ...

    def mark_judged_many(self, marks: Sequence[tuple[str, str, int]]) -> Future[None]:
        """`mark_judged` for each (project, session id, judged_end_ns), in one write: the session
        evaluators mark a whole batch without a write (and a wait behind ingest) per session."""
        ...

    def list_spans(self, query: ListQuery) -> Page[SpanRecord]:
        """Spans by (start time, trace id, span id), oldest first, filtered by project, span kind
        and start time (`start_ns`/`end_ns` bound the span's start). Pages partition the spans
        that match; a span stored while a client pages appears on a later page or not at all."""
        ...

    def count_spans(self, query: ListQuery) -> int:
        """How many spans `list_spans` would page through."""
        ...

    def list_evaluation_names(self, project: str | None = None) -> list[str]: ...

    def list_evaluations(self, query: EvaluationQuery) -> Page[EvaluationResult]:
        """Individual results, one per stored result (a replaced one shows once, as it is now):
        those on spans and turns of stored traces, then those on sessions, in evaluation_list.py's
        order, filtered by `query`. Pages partition the results that match; a cursor this list
        did not make raises InvalidCursorError. A result stored while a client pages appears on a
        later page or not at all."""
        ...

    def summarize_evaluations(
        self, group_by: GroupBy, name: str | None = None, project: str | None = None, limit: int = 50
    ) -> list[EvaluationGroup]:
        """Per (group, evaluation name): count, mean score, pass rate and the worst result, worst
        mean score first."""
        ...

    def get_trends(
        self,
        project: str,
        start_ns: int,
        end_ns: int,
        user_id: str | None = None,
        unit: TrendUnit | None = None,
        latency: bool = True,
    ) -> Trends:
        """The project's (or one of its users') sessions, turns, errors, cost, turn latency
        percentiles, feedback and evaluation results per bucket of `TrendWindow.of(start_ns,
        end_ns, unit)`, every bucket present (empty ones zero). One read of each rollup, at most
        MAX_BUCKETS buckets. Without `latency` the percentiles may be left out (None): a strip of
        counts and cost need not pay for them."""
        ...

    def check_ready(self, timeout: float) -> Readiness:
        """Whether a write would be accepted now: the writer takes a request within `timeout`
        seconds (it is not stuck, nor its queue full all that time) and the storage has room for
        a write (neither the disk nor a configured size limit is full). Writes nothing that stays.
        Blocks up to about `timeout`: call it off the event loop. Never raises: a closed store is
        not ready, and says so."""
        ...

    def stats(self) -> StoreStats:
        """Size and writer queue depth, cheap enough for every metrics scrape."""
        ...

    def observe_writes(self, observer: WriteObserver) -> None:
        """From now on, call `observer` after each committed write that accepted spans or
        evaluation results, with how many (their `accepted` counts: the writer's batch sizes, for
        /metrics), before the futures of that write resolve. It runs on the writer's thread: it
        must be quick."""
        ...

    def close(self) -> None: ...
