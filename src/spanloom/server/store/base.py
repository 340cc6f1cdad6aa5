"""The `Store` protocol and the records it reads and writes.

Nothing here is SQLite-specific: PostgreSQL and ClickHouse stores implement the same protocol.
Times are integers in nanoseconds since the Unix epoch (as OTLP sends them); durations and
latencies are float milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

_T = TypeVar("_T")

StatusCode = Literal["UNSET", "OK", "ERROR"]
SortOrder = Literal["asc", "desc"]


class StoreBusyError(Exception):
    """The writer's queue is full: the caller should retry later (HTTP 503)."""


class StoreClosedError(Exception):
    """The store was closed; nothing more can be written."""


@dataclass(slots=True)
class SpanRecord:
    """One normalized span, as ingest produces it and `get_trace` returns it."""

    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None
    name: str
    project: str
    start_time_ns: int
    end_time_ns: int
    otel_kind: str = "INTERNAL"  # OpenTelemetry's SpanKind name (SERVER, CLIENT, ...)
    span_kind: str = "UNKNOWN"  # OpenInference kind (LLM, CHAIN, TOOL, ...)
    session_id: str | None = None
    user_id: str | None = None
    status_code: StatusCode = "UNSET"
    status_message: str = ""
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None  # USD, from the price table
    input: str | None = None
    output: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_time_ns - self.start_time_ns) / 1e6


@dataclass(slots=True)
class InsertResult:
    """What one `insert_spans` call wrote, once committed."""

    accepted: int  # spans in the call; a span already stored counts as accepted, not duplicated


@dataclass(slots=True)
class TraceSummary:
    trace_id: str
    project: str
    session_id: str | None
    user_id: str | None
    root_span_id: str | None  # None until the root span has arrived
    name: str
    span_kind: str
    start_time_ns: int
    end_time_ns: int
    latency_ms: float  # the root's duration, else first start to last end
    span_count: int
    error_count: int  # spans with status ERROR
    total_tokens: int
    cost: float
    status: StatusCode  # ERROR when any span failed, else the root's status
    input: str | None
    output: str | None
    tags: list[str]
    metadata: dict[str, Any]


@dataclass(slots=True)
class SessionSummary:
    session_id: str
    project: str
    user_id: str | None
    trace_count: int  # turns
    first_input: str | None
    last_output: str | None
    start_time_ns: int
    end_time_ns: int
    total_tokens: int
    cost: float
    error_count: int  # turns (traces) with at least one failed span
    latency_p50_ms: float
    latency_p95_ms: float
    tags: list[str]
    metadata: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_time_ns - self.start_time_ns) / 1e6


@dataclass(slots=True)
class UserSummary:
    user_id: str
    project: str  # the project of the user's first trace
    session_count: int
    trace_count: int
    total_tokens: int
    cost: float
    error_count: int  # traces with at least one failed span
    first_seen_ns: int
    last_seen_ns: int

    @property
    def error_rate(self) -> float:
        return self.error_count / self.trace_count if self.trace_count else 0.0


@dataclass(slots=True)
class ProjectSummary:
    name: str
    span_count: int
    trace_count: int
    session_count: int
    user_count: int
    first_span_time_ns: int
    last_span_time_ns: int


@dataclass(slots=True)
class Page(Generic[_T]):
    items: list[_T]
    next_cursor: str | None


@dataclass(slots=True)
class SessionDetail:
    summary: SessionSummary
    turns: list[TraceSummary]  # every trace, in time order

    @property
    def first_failing_turn(self) -> int | None:
        """Index into `turns` of the first turn with an error, if any."""
        return next((index for index, turn in enumerate(self.turns) if turn.error_count), None)


@dataclass(slots=True)
class UserDetail:
    summary: UserSummary
    sessions: Page[SessionSummary]


@dataclass(slots=True)
class TraceDetail:
    summary: TraceSummary
    spans: list[SpanRecord]  # in start order, with parent links


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
    sort: str | None = None  # None: the list's default (start_time; last_seen for users)
    order: SortOrder = "desc"
    limit: int = 50
    cursor: str | None = None


# The sort keys each list accepts (the store maps them to columns through its own allowlist).
SESSION_SORT_KEYS = ("start_time", "last_activity", "turns", "tokens", "cost", "latency", "errors")
USER_SORT_KEYS = ("last_seen", "first_seen", "sessions", "traces", "tokens", "cost", "errors")
TRACE_SORT_KEYS = ("start_time", "latency", "tokens", "cost", "errors", "spans")
MAX_PAGE_SIZE = 1000


class Store(Protocol):
    """Where spans go and where the API reads them from."""

    def insert_spans(self, spans: Sequence[SpanRecord]) -> Future[InsertResult]:
        """Queue spans for writing; the future resolves once they are committed.

        Raises `StoreBusyError` at once when the write queue is full. Spans already stored
        (same trace and span id) are left as they are, so a retried batch never duplicates.
        """
        ...

    def list_projects(self) -> list[ProjectSummary]: ...

    def list_sessions(self, query: ListQuery) -> Page[SessionSummary]: ...

    def get_session(self, session_id: str) -> SessionDetail | None: ...

    def list_users(self, query: ListQuery) -> Page[UserSummary]: ...

    def get_user(self, user_id: str, sessions: ListQuery | None = None) -> UserDetail | None: ...

    def list_traces(self, query: ListQuery) -> Page[TraceSummary]: ...

    def get_trace(self, trace_id: str) -> TraceDetail | None: ...

    def close(self) -> None: ...
