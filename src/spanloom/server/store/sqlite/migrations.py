"""Bringing a file up to the current schema, keyed on ``PRAGMA user_version``.

Version N runs when the file's user_version is below N: its DDL (schema.py), then its data step,
inside one transaction with the version bump. A crash or an error mid-way leaves the file exactly
at the previous version, and an older spanloom's file is upgraded in place, every span kept. A
file from a newer spanloom is refused without a change.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from spanloom.server.store.base import Progress
from spanloom.server.store.sqlite import (
    evaluation_rollups,
    project_writes,
    schema,
    search_index,
    session_writes,
    user_writes,
)
from spanloom.server.store.sqlite.session_rollups import recount_sessions
from spanloom.server.store.sqlite.statements import by_project
from spanloom.server.store.turn_previews import input_preview, output_preview

# Sessions rebuilt (version 2) or given previews (version 11) per step of the upgrade.
_SESSION_CHUNK = 500
# A progress line at most this often.
_PROGRESS_SECONDS = 1.0


class SchemaTooNewError(RuntimeError):
    """The file was written by a newer spanloom."""


def _rebuild_v2(connection: sqlite3.Connection, progress: Progress | None) -> None:
    """Sessions, users and their evaluation aggregates recounted per project from the traces, by
    the writer's own code, so the rows are those ingest would have kept."""
    (sessions,) = connection.execute(
        "SELECT COUNT(*) FROM (SELECT DISTINCT project, session_id FROM traces WHERE session_id IS NOT NULL)"
    ).fetchone()
    if progress is not None and sessions:
        progress(
            f"upgrading the database to schema 2 (sessions and users per project): {sessions:,} sessions"
        )
    after, done, shown = ("", ""), 0, time.monotonic()
    while True:
        keys = session_writes.select_session_keys(connection, after, _SESSION_CHUNK)
        if not keys:
            break
        for project, session_ids in by_project(keys).items():
            session_writes.upsert_sessions(connection, recount_sessions(connection, project, session_ids))
        after, done = keys[-1], done + len(keys)
        if progress is not None and time.monotonic() - shown >= _PROGRESS_SECONDS:
            progress(f"  {done:,} of {sessions:,} sessions")
            shown = time.monotonic()
    user_writes.rebuild_users(connection)
    evaluation_rollups.rebuild(connection)


def _previews_v11(connection: sqlite3.Connection, progress: Progress | None) -> None:
    """The previews the sessions list shows, for the sessions written before they were kept."""
    (sessions,) = connection.execute("SELECT COUNT(*) FROM sessions").fetchone()
    if progress is not None and sessions:
        progress(f"upgrading the database to schema 11 (session previews): {sessions:,} sessions")
    after, done, shown = ("", ""), 0, time.monotonic()
    while True:
        rows = session_writes.select_session_texts(connection, after, _SESSION_CHUNK)
        if not rows:
            break
        session_writes.write_previews(
            connection,
            (
                (input_preview(row.first_input), output_preview(row.last_output), row.project, row.session_id)
                for row in rows
            ),
        )
        after, done = (rows[-1].project, rows[-1].session_id), done + len(rows)
        if progress is not None and time.monotonic() - shown >= _PROGRESS_SECONDS:
            progress(f"  {done:,} of {sessions:,} sessions")
            shown = time.monotonic()


# (DDL, data step) of each version, in order.
_VERSIONS: tuple[tuple[str, Callable[[sqlite3.Connection, Progress | None], None] | None], ...] = (
    (schema.V1, None),
    (schema.V2, _rebuild_v2),
    (schema.V3, lambda connection, progress: project_writes.rebuild(connection)),
    (schema.V4, None),
    (schema.V5, None),
    (schema.V6, None),
    (schema.V7, None),
    (schema.V8, search_index.note_all),
    (schema.V9, None),
    (schema.V10, None),
    (schema.V11, _previews_v11),
    (schema.V12, None),
)
SCHEMA_VERSION = len(_VERSIONS)


def migrate(connection: sqlite3.Connection, progress: Progress | None = None) -> int:
    """Bring the file up to `SCHEMA_VERSION`; returns the version it was at.

    One transaction for the whole upgrade: every version's DDL in order, then the data steps,
    which rebuild rollups with today's code and so need today's tables. A failure anywhere leaves
    the file exactly as it was."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the database has schema version {version}, from a newer spanloom; this one knows up to "
            f"{SCHEMA_VERSION}. Nothing was changed: upgrade spanloom to open it"
        )
    if version == SCHEMA_VERSION:
        return version
    pending = _VERSIONS[version:]
    connection.execute("BEGIN IMMEDIATE")
    try:
        for ddl, _ in pending:
            for statement in ddl.split(";"):
                if statement.strip():
                    connection.execute(statement)
        if version > 0:  # a new file has no data to carry over
            for _, data_step in pending:
                if data_step is not None:
                    data_step(connection, progress)
        # PRAGMA takes no parameters; SCHEMA_VERSION is a constant of this module.
        connection.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    if progress is not None and version > 0:
        progress(f"upgraded the database to schema {SCHEMA_VERSION}")
    return version
