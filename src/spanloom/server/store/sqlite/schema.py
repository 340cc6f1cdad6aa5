"""The schema and its migrations, keyed on ``PRAGMA user_version``.

Migration N runs when the file's user_version is below N, inside one transaction with the
version bump, so a crash mid-migration leaves the file at the previous version. Never edit a
migration that has shipped: append a new one.

Times are INTEGER nanoseconds since the epoch. Large text columns (input, output, attributes)
come last in each table: SQLite reads a row's columns in order and stops at the last one a
query needs, so aggregates over the small leading columns never touch overflow pages.
"""

from __future__ import annotations

import sqlite3

_V1 = """
CREATE TABLE spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    project TEXT NOT NULL,
    session_id TEXT,
    user_id TEXT,
    name TEXT NOT NULL,
    otel_kind TEXT NOT NULL,
    span_kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    model TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    cost REAL,
    has_input INTEGER NOT NULL,
    has_output INTEGER NOT NULL,
    -- The attribute each of input/output was read from, and its position, when that attribute
    -- was left out of `attributes` (it held the very same text): get_trace puts it back there.
    input_key TEXT,
    input_at INTEGER,
    output_key TEXT,
    output_at INTEGER,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    input TEXT,
    output TEXT,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    resource TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
-- No index on span_id alone: evaluation results that name a span by its id alone (POST
-- /api/evaluations without trace_id) are rare, and resolve by scanning the compact primary-key
-- index (it holds span_id), while a global span_id index costs every ingest commit ~10% (its
-- random keys dirty index pages all over). Results with a trace_id use the primary key.

-- cost_nanos: the cost in integer nano-USD. Session and user totals add and subtract these, so
-- a total kept by deltas is exact and equals a recount whatever the arrival order (float sums
-- would drift). `labeled`: the trace has tags or metadata.
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    session_id TEXT,
    user_id TEXT,
    root_span_id TEXT,
    name TEXT NOT NULL,
    span_kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_nanos INTEGER NOT NULL,
    status TEXT NOT NULL,
    has_input INTEGER NOT NULL,
    has_output INTEGER NOT NULL,
    labeled INTEGER NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    -- The spans whose input/output are the trace's: the texts are read from those spans, not
    -- copied here (a copy was a fifth of all bytes written on ingest).
    input_span_id TEXT,
    output_span_id TEXT
);
-- Covering: a session's rollup is recounted from this index alone (no trace row is read), and
-- a session's turns come out in order.
CREATE INDEX traces_by_session ON traces (
    session_id, start_ns, trace_id, end_ns, latency_ms, user_id, project, total_tokens, cost_nanos,
    error_count, has_input, has_output, labeled
);
CREATE INDEX traces_by_user ON traces (user_id, start_ns);
CREATE INDEX traces_by_start ON traces (start_ns, trace_id);
CREATE INDEX traces_by_project ON traces (project, start_ns);

-- first_input_trace / last_output_trace: the traces whose input/output are the session's first
-- input and last output. The texts are read from those traces, not copied: a session row stays
-- a few hundred bytes however long the texts, and rewriting it as turns arrive stays cheap.
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    user_id TEXT,
    trace_count INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_nanos INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    latency_p50_ms REAL NOT NULL,
    latency_p95_ms REAL NOT NULL,
    first_input_trace TEXT,
    last_output_trace TEXT,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX sessions_by_start ON sessions (start_ns, session_id);
CREATE INDEX sessions_by_end ON sessions (end_ns, session_id);
CREATE INDEX sessions_by_user ON sessions (user_id, start_ns);

-- first_trace_id: with first_seen_ns, the key of the trace whose project the user takes.
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    session_count INTEGER NOT NULL,
    trace_count INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    cost_nanos INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    first_trace_id TEXT NOT NULL
);
CREATE INDEX users_by_last_seen ON users (last_seen_ns, user_id);

-- Evaluation results: one per (span, name, source): the same key again replaces it. `passed` is
-- base.evaluation_passed(score, label), stored so aggregates never re-derive it. A result's
-- session and user are those of its trace *now* (read through traces), so a trace moving to
-- another session carries its results along.
CREATE TABLE evaluations (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    project TEXT NOT NULL,
    score REAL,
    label TEXT,
    passed INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    explanation TEXT,
    PRIMARY KEY (trace_id, span_id, name, source)
);
CREATE INDEX evaluations_by_project ON evaluations (project, name);

-- Per-session and per-user aggregates, kept in the writer's transaction so lists can sort by
-- them (sort=eval:NAME). Sessions are recounted from their traces' results (a session has few
-- turns), users change by deltas. score_micros: the score sum in integer millionths, exact under
-- add/subtract in any order, and mean_score = score_micros / 1e6 / scored (NULL when none scored).
-- worst_*: a session's lowest result, recounted with it (users find theirs at read time).
CREATE TABLE session_evaluations (
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    score_micros INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    mean_score REAL,
    worst_trace_id TEXT,
    worst_span_id TEXT,
    PRIMARY KEY (session_id, name)
);
CREATE INDEX session_evaluations_by_mean ON session_evaluations (name, mean_score, session_id);

CREATE TABLE user_evaluations (
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    score_micros INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    mean_score REAL,
    PRIMARY KEY (user_id, name)
);
CREATE INDEX user_evaluations_by_mean ON user_evaluations (name, mean_score, user_id);
"""

MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNewError(RuntimeError):
    """The file was written by a newer spanloom."""


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the file up to `SCHEMA_VERSION`; returns the version it was at."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the database has schema version {version}; this spanloom knows up to {SCHEMA_VERSION}"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    connection.execute(statement)
            # PRAGMA takes no parameters; `number` is an int from range(), not input.
            connection.execute(f"PRAGMA user_version = {int(number)}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return version
