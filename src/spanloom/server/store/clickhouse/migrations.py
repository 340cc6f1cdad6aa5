"""Versioned migrations, applied at start-up: the ``schema_migrations`` table records each version
applied. Version N's statements run when N is not recorded, then N is recorded; every statement is
idempotent (IF NOT EXISTS...), so a start cut short mid-way simply runs the version again. A
database written by a newer spanloom is refused without a change.

In cluster mode every statement runs ON CLUSTER (ddl.py), so one node's start-up migrates all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spanloom.server.store.base import Progress
from spanloom.server.store.clickhouse import ddl, schema


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer spanloom."""


def _version_1(database: str, cluster: str | None) -> list[str]:
    return [
        statement
        for table in schema.V1_TABLES
        for statement in ddl.create_statements(table, database, cluster)
    ]


def _version_2(database: str, cluster: str | None) -> list[str]:
    """Conversations judged as conversations: keyed results with details, feedback ahead of its
    spans, results on sessions, ended and judged marks."""
    return [
        *ddl.evaluations_v2_statements(database, cluster),
        *ddl.sessions_v2_statements(database, cluster),
        *(
            statement
            for table in schema.V2_TABLES
            for statement in ddl.create_statements(table, database, cluster)
        ),
    ]


# The statements of each version, in order. Version 3: merges a column at a time.
VERSIONS: tuple[Callable[[str, str | None], list[str]], ...] = (
    _version_1,
    _version_2,
    ddl.merge_settings_statements,
)
SCHEMA_VERSION = len(VERSIONS)


def all_statements(database: str, cluster: str | None = None) -> list[str]:
    """Every statement a new database runs, in order (for checking the DDL, and docs)."""
    statements = [ddl.create_database(database, cluster)]
    statements += ddl.create_statements(schema.MIGRATIONS, database, cluster)
    for version in VERSIONS:
        statements += version(database, cluster)
    return statements


def migrate(client: Any, database: str, cluster: str | None, progress: Progress | None = None) -> int:
    """Bring the database up to SCHEMA_VERSION; returns the version it was at. `client` is not
    bound to the database (it may not exist yet)."""
    client.command(ddl.create_database(database, cluster))
    for statement in ddl.create_statements(schema.MIGRATIONS, database, cluster):
        client.command(statement)
    applied = {
        row[0] for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows
    }
    current = max(applied, default=0)
    if current > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the database has schema version {current}, from a newer spanloom; this one knows up to "
            f"{SCHEMA_VERSION}. Nothing was changed: upgrade spanloom to open it"
        )
    for number, statements in enumerate(VERSIONS, start=1):
        if number in applied:
            continue
        for statement in statements(database, cluster):
            client.command(statement)
        client.insert(f"{database}.schema_migrations", [(number,)], column_names=["version"])
        if progress is not None and current > 0:
            progress(f"upgraded the database to schema {number}")
    return current
