"""The ClickHouse schema: tables designed for the reads spanloom serves (the statements creating
them, for one server, chDB or a cluster: ddl.py).

Layout (why each table is ordered as it is):

- ``spans``: MergeTree, insert-only, ordered by (project, start_ns, trace_id, span_id): the span
  list pages in that order, and a trace's spans are one key range (its project and time window,
  known from its trace row). The writer never inserts a span twice (writer.py), so no read needs
  FINAL or a dedup. Long texts ZSTD, ids and kinds LowCardinality where they repeat.
- ``trace_keys``: trace id -> (project, session): ordered by trace id alone, with small granules,
  so the writer's "which of these traces are stored, and whose are they" and every read by trace
  id are a few granules, not a scan.
- ``traces``: one row per trace (its rollup), ReplacingMergeTree(version, deleted) ordered by
  (project, session_id, trace_id): a session's turns are one key range. A trace moving to another
  session (a late root) gets a tombstone under its old key. Read with FINAL.
- ``sessions``, ``users``: one row per (project, id), rewritten by the writer whenever a trace of
  theirs changes (recounted from the trace rows, see rollups.py); read with FINAL, so lists sort
  and page over a few thousand small rows, never over traces.
- ``evaluations`` and the per-session/per-user aggregates ``session_evaluations``,
  ``user_evaluations``: as sessions and users.
- ``write_log``: a batch's trace ids before it is written and a mark after: a batch cut short (a
  crash, a failed insert) is recounted from the stored spans at the next start (writer.py).

Versions are the writer's clock (strictly increasing); ``deleted`` = 1 hides a key under FINAL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TEXT = "String CODEC(ZSTD(3))"
NULLABLE_TEXT = "Nullable(String) CODEC(ZSTD(3))"
TIME = "Int64 CODEC(Delta, ZSTD(1))"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    order_by: str
    replacing: bool = False  # ReplacingMergeTree(version, deleted)
    deletable: bool = True  # has the `deleted` column (with replacing)
    shard_by: str = "rand()"  # cluster mode: every version of a key lands on one shard
    settings: str = ""
    ttl: str = ""
    indexes: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def column_types(self) -> tuple[str, ...]:
        """Each column's type without its codec or default: given with every insert, so the
        client never asks the server to describe the table first."""
        return tuple(kind.split(" CODEC")[0].split(" DEFAULT")[0] for _, kind in self.columns)


def insert(
    client: Any, table: Table, rows: Sequence[Sequence[Any]], columns: Sequence[str] | None = None
) -> None:
    """Insert rows of `table` (all its columns, or `columns` in that order)."""
    names = tuple(columns) if columns is not None else table.column_names
    kinds = dict(zip(table.column_names, table.column_types, strict=True))
    # clickhouse-connect's insert context refers to itself (it keeps a bound method of its own), so
    # only a garbage collection frees it, and with it the list of rows it was given: the server's
    # rare full collections (collector.py) left hundreds of MB of batches waiting. Given a list of
    # its own, emptied once the insert is done, it holds nothing of them.
    data = list(rows)
    try:
        client.insert(table.name, data, column_names=names, column_type_names=[kinds[name] for name in names])
    finally:
        data.clear()


_VERSION = (("version", "UInt64"),)
_DELETED = (("deleted", "UInt8"),)

SPANS = Table(
    "spans",
    (
        ("project", "LowCardinality(String)"),
        ("start_ns", TIME),
        ("trace_id", "String"),
        ("span_id", "String"),
        ("parent_span_id", "Nullable(String)"),
        ("end_ns", TIME),
        ("name", "LowCardinality(String)"),
        ("otel_kind", "LowCardinality(String)"),
        ("span_kind", "LowCardinality(String)"),
        ("session_id", "Nullable(String)"),
        ("user_id", "Nullable(String)"),
        ("status_code", "LowCardinality(String)"),
        ("status_message", TEXT),
        ("model", "LowCardinality(Nullable(String))"),
        ("prompt_tokens", "Nullable(Int64)"),
        ("completion_tokens", "Nullable(Int64)"),
        ("total_tokens", "Nullable(Int64)"),
        ("cost", "Nullable(Float64)"),
        ("has_input", "UInt8"),
        ("has_output", "UInt8"),
        ("input_key", "LowCardinality(Nullable(String))"),
        ("input_at", "Nullable(Int32)"),
        ("output_key", "LowCardinality(Nullable(String))"),
        ("output_at", "Nullable(Int32)"),
        ("tags", TEXT),
        ("metadata", TEXT),
        ("input", NULLABLE_TEXT),
        ("output", NULLABLE_TEXT),
        ("attributes", TEXT),
        ("events", TEXT),
        # One service's resource is the same text on every span: a dictionary of a few entries.
        ("resource", "LowCardinality(String)"),
    ),
    order_by="(project, start_ns, trace_id, span_id)",
    shard_by="cityHash64(trace_id)",
    # Spans named by id alone (an evaluation without trace_id): a skip index, not a scan.
    indexes=("INDEX span_id_index span_id TYPE bloom_filter(0.01) GRANULARITY 1",),
)

TRACE_KEYS = Table(
    "trace_keys",
    (
        ("trace_id", "String"),
        ("project", "LowCardinality(String)"),
        ("session_id", "String"),
        *_VERSION,
        *_DELETED,
    ),
    order_by="trace_id",
    replacing=True,
    shard_by="cityHash64(trace_id)",
    # Random ids: a lookup of a few hundred ids reads that many small granules.
    settings="index_granularity = 512",
)

TRACE_COLUMNS = (
    ("project", "LowCardinality(String)"),
    ("session_id", "String"),  # '' for none
    ("trace_id", "String"),
    ("user_id", "String"),  # '' for none
    ("root_span_id", "Nullable(String)"),
    ("name", "String"),
    ("span_kind", "LowCardinality(String)"),
    ("start_ns", TIME),
    ("end_ns", TIME),
    ("latency_ms", "Float64"),
    ("span_count", "Int64"),
    ("error_count", "Int64"),
    ("total_tokens", "Int64"),
    ("cost", "Float64"),
    ("cost_nanos", "Int64"),
    ("status", "LowCardinality(String)"),
    ("has_input", "UInt8"),
    ("has_output", "UInt8"),
    ("labeled", "UInt8"),
    ("tags", TEXT),
    ("metadata", TEXT),
    ("input_span_id", "Nullable(String)"),
    ("output_span_id", "Nullable(String)"),
    # The trace's texts, copied from its spans: list pages show them and search them without
    # reaching into the spans.
    ("input", NULLABLE_TEXT),
    ("output", NULLABLE_TEXT),
    # Span kinds and models of the trace's spans, for the trace list's filters.
    ("span_kinds", "Array(LowCardinality(String))"),
    ("models", "Array(LowCardinality(String))"),
    *_VERSION,
    *_DELETED,
)
TRACES = Table(
    "traces",
    TRACE_COLUMNS,
    order_by="(project, session_id, trace_id)",
    replacing=True,
    shard_by="cityHash64(project, session_id)",
    # Rows hold texts (a few KiB): small granules, so a page of turns or texts reads little more
    # than its own rows.
    settings="index_granularity = 256",
)

SESSIONS = Table(
    "sessions",
    (
        ("project", "LowCardinality(String)"),
        ("session_id", "String"),
        ("user_id", "String"),
        ("trace_count", "Int64"),
        ("span_count", "Int64"),  # the project list adds these up: it never reads the traces
        ("start_ns", "Int64"),
        ("end_ns", "Int64"),
        ("total_tokens", "Int64"),
        ("cost", "Float64"),
        ("cost_nanos", "Int64"),
        ("error_count", "Int64"),
        ("latency_p50_ms", "Float64"),
        ("latency_p95_ms", "Float64"),
        ("first_input_trace", "Nullable(String)"),
        ("last_output_trace", "Nullable(String)"),
        ("tags", TEXT),
        ("metadata", TEXT),
        # The texts of those two traces (version 2), kept with the session: a page of the list
        # reads 50 sessions' texts here, in small granules, rather than from 50 places of the
        # traces table, each a granule of hundreds of long texts to decompress.
        ("first_input", NULLABLE_TEXT),
        ("last_output", NULLABLE_TEXT),
        *_VERSION,
        *_DELETED,
    ),
    order_by="(project, session_id)",
    replacing=True,
    shard_by="cityHash64(project, session_id)",
    settings="index_granularity = 32",
)

USERS = Table(
    "users",
    (
        ("project", "LowCardinality(String)"),
        ("user_id", "String"),
        ("session_count", "Int64"),
        ("trace_count", "Int64"),
        ("total_tokens", "Int64"),
        ("cost", "Float64"),
        ("cost_nanos", "Int64"),
        ("error_count", "Int64"),
        ("first_seen_ns", "Int64"),
        ("last_seen_ns", "Int64"),
        *_VERSION,
        *_DELETED,
    ),
    order_by="(project, user_id)",
    replacing=True,
    shard_by="cityHash64(project, user_id)",
)

# Version 1's results table; version 2 adds `result_key` (several results of one name and source
# on one target, each feedback's id) to its key, and `details` (ALTERs in migrations.py).
EVALUATIONS_V1 = Table(
    "evaluations",
    (
        ("project", "LowCardinality(String)"),
        ("trace_id", "String"),
        ("span_id", "String"),
        ("name", "LowCardinality(String)"),
        ("source", "LowCardinality(String)"),
        ("score", "Nullable(Float64)"),
        ("label", "Nullable(String)"),
        ("passed", "UInt8"),
        ("time_ns", "Int64"),
        ("explanation", NULLABLE_TEXT),
        *_VERSION,
    ),
    order_by="(project, trace_id, span_id, name, source)",
    replacing=True,
    deletable=False,
    shard_by="cityHash64(trace_id)",
)
# Results on spans, and feedback on a whole turn (span_id ''), of stored traces. `passed` is
# evaluation_types.evaluation_passed(score, label, source), stored so aggregates never re-derive it.
_RESULT_COLUMNS = (
    ("project", "LowCardinality(String)"),
    ("trace_id", "String"),
    ("span_id", "String"),
    ("name", "LowCardinality(String)"),
    ("source", "LowCardinality(String)"),
    ("result_key", "String"),
    ("score", "Nullable(Float64)"),
    ("label", "Nullable(String)"),
    ("passed", "UInt8"),
    ("time_ns", "Int64"),
    ("explanation", NULLABLE_TEXT),
    ("details", TEXT),  # JSON
)
EVALUATIONS = Table(
    "evaluations",
    (*_RESULT_COLUMNS, *_VERSION),
    order_by="(project, trace_id, span_id, name, source, result_key)",
    replacing=True,
    deletable=False,
    shard_by="cityHash64(trace_id)",
)
# Feedback on a turn whose spans have not arrived (a web handler answers before the exporter
# sends), in the project it was given for: moved into `evaluations` when the trace's first spans
# arrive in that project, and dropped when they arrive in another.
WAITING_RESULTS = Table(
    "waiting_results",
    (*_RESULT_COLUMNS, *_VERSION, *_DELETED),
    order_by="(trace_id, span_id, name, source, result_key)",
    replacing=True,
    shard_by="cityHash64(trace_id)",
)

# Results on a whole session (session evaluators, end users' feedback on a session), also before
# the session's spans arrive.
SESSION_RESULTS = Table(
    "session_results",
    (
        ("project", "LowCardinality(String)"),
        ("session_id", "String"),
        ("name", "LowCardinality(String)"),
        ("source", "LowCardinality(String)"),
        ("result_key", "String"),
        ("score", "Nullable(Float64)"),
        ("label", "Nullable(String)"),
        ("passed", "UInt8"),
        ("time_ns", "Int64"),
        ("explanation", NULLABLE_TEXT),
        ("details", TEXT),
        *_VERSION,
        *_DELETED,
    ),
    order_by="(project, session_id, name, source, result_key)",
    replacing=True,
    shard_by="cityHash64(project, session_id)",
)

# ended_ns: when the session was ended (end_session, or the end of a span marked session.ended);
# a turn ending after it reopens the session. judged_end_ns: the session's end_ns when its session
# evaluators last judged it; a later turn makes it due again. 0: never.
SESSION_MARKS = Table(
    "session_marks",
    (
        ("project", "LowCardinality(String)"),
        ("session_id", "String"),
        ("ended_ns", "Int64"),
        ("judged_end_ns", "Int64"),
        *_VERSION,
        *_DELETED,
    ),
    order_by="(project, session_id)",
    replacing=True,
    shard_by="cityHash64(project, session_id)",
)

_AGGREGATE = (
    ("name", "LowCardinality(String)"),
    ("result_count", "Int64"),
    ("scored", "Int64"),
    ("score_micros", "Int64"),
    ("passed", "Int64"),
    ("mean_score", "Nullable(Float64)"),
)
SESSION_EVALUATIONS = Table(
    "session_evaluations",
    (
        ("project", "LowCardinality(String)"),
        ("session_id", "String"),
        *_AGGREGATE,
        ("worst_trace_id", "Nullable(String)"),
        ("worst_span_id", "Nullable(String)"),
        *_VERSION,
        *_DELETED,
    ),
    order_by="(project, session_id, name)",
    replacing=True,
    shard_by="cityHash64(project, session_id)",
)
USER_EVALUATIONS = Table(
    "user_evaluations",
    (("project", "LowCardinality(String)"), ("user_id", "String"), *_AGGREGATE, *_VERSION, *_DELETED),
    order_by="(project, user_id, name)",
    replacing=True,
    shard_by="cityHash64(project, user_id)",
)

WRITE_LOG = Table(
    "write_log",
    (
        ("batch", "UInt64"),
        ("done", "UInt8"),
        ("trace_ids", "Array(String)"),
        ("sessions", "Array(Tuple(String, String))"),
        ("users", "Array(Tuple(String, String))"),
        ("written", "DateTime DEFAULT now()"),
    ),
    order_by="batch",
    # A batch is recovered at the next start at the latest; a week of marks is plenty.
    ttl="written + INTERVAL 7 DAY",
)

MIGRATIONS = Table(
    "schema_migrations",
    (("version", "UInt32"), ("applied", "DateTime DEFAULT now()")),
    order_by="version",
)

# Version 1 (spanloom 0.1.0): every table. Later versions add their own statements.
V1_TABLES = (
    SPANS,
    TRACE_KEYS,
    TRACES,
    SESSIONS,
    USERS,
    EVALUATIONS_V1,
    SESSION_EVALUATIONS,
    USER_EVALUATIONS,
    WRITE_LOG,
)
# Version 2: results on sessions, feedback (keyed results, also ahead of its spans), session marks.
V2_TABLES = (WAITING_RESULTS, SESSION_RESULTS, SESSION_MARKS)
