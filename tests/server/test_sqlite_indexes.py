"""The SQLite indexes every ingest writes: each read they exist for has one, and no two indexes
on traces start with the same key (every trace written goes into each of them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from spanloom.server.store.sqlite import SqliteStore


def _index_columns(db: Path, table: str) -> dict[str, list[str]]:
    connection = sqlite3.connect(db)
    try:
        names = [row[1] for row in connection.execute(f"PRAGMA index_list({table})")]
        return {
            name: [row[2] for row in connection.execute(f"PRAGMA index_info({name})")]
            for name in names
            if not name.startswith("sqlite_autoindex")
        }
    finally:
        connection.close()


def test_no_two_trace_indexes_share_their_leading_key(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    SqliteStore(db).close()
    leading: dict[tuple[str, ...], list[str]] = {}
    for name, columns in _index_columns(db, "traces").items():
        leading.setdefault(tuple(columns[:2]), []).append(name)
    assert {key: names for key, names in leading.items() if len(names) > 1} == {}


def test_a_projects_traces_by_start_cover_what_the_trends_chart(tmp_path: Path) -> None:
    """The overview's trends read a project's turns by start time from this index alone."""
    db = tmp_path / "spans.db"
    SqliteStore(db).close()
    columns = _index_columns(db, "traces")["traces_by_project"]
    assert columns[:3] == ["project", "start_ns", "trace_id"]  # lists page in this order
    assert {"latency_ms", "error_count", "cost_nanos"} <= set(columns)
