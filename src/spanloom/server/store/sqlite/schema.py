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
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    input TEXT,
    output TEXT,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    resource TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);

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
    status TEXT NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    input TEXT,
    output TEXT
);
CREATE INDEX traces_by_session ON traces (session_id, start_ns);
CREATE INDEX traces_by_user ON traces (user_id, start_ns);
CREATE INDEX traces_by_start ON traces (start_ns, trace_id);
CREATE INDEX traces_by_project ON traces (project, start_ns);

CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    user_id TEXT,
    trace_count INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    error_count INTEGER NOT NULL,
    latency_p50_ms REAL NOT NULL,
    latency_p95_ms REAL NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    first_input TEXT,
    last_output TEXT
);
CREATE INDEX sessions_by_start ON sessions (start_ns, session_id);
CREATE INDEX sessions_by_end ON sessions (end_ns, session_id);
CREATE INDEX sessions_by_user ON sessions (user_id, start_ns);

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    session_count INTEGER NOT NULL,
    trace_count INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    error_count INTEGER NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
);
CREATE INDEX users_by_last_seen ON users (last_seen_ns, user_id);
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
