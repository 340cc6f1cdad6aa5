"""The SQLite indexes every ingest writes: each read they exist for has one, no two indexes on
traces start with the same key (every trace written goes into each of them), and a session's new
turn rewrites only the indexes of what a turn changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from spanloom.server.store.base import SpanRecord
from spanloom.server.store.sqlite import SqliteStore

T0 = 1_760_000_000_000_000_000


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


def _turn(number: int, start_ms: int) -> SpanRecord:
    start = T0 + start_ms * 1_000_000
    return SpanRecord(
        trace_id=f"{number:032x}",
        span_id=f"{number:016x}",
        parent_span_id=None,
        name="turn",
        project="p",
        start_time_ns=start,
        end_time_ns=start + 5_000_000,
        session_id="s1",
        user_id="u1",
    )


def test_a_new_turn_updates_a_session_in_the_turns_columns_alone(tmp_path: Path) -> None:
    """SQLite rewrites an index on UPDATE when its column is in the SET list, changed or not: an
    UPDATE OF trigger fires on the same rule, so it shows which columns a write set."""
    db = tmp_path / "spans.db"
    SqliteStore(db).close()
    connection = sqlite3.connect(db)
    connection.executescript(
        """
        CREATE TABLE touched (what TEXT NOT NULL);
        CREATE TRIGGER head_set AFTER UPDATE OF start_ns, user_id, metadata ON sessions
        BEGIN INSERT INTO touched VALUES ('head'); END;
        CREATE TRIGGER turn_set AFTER UPDATE OF trace_count ON sessions
        BEGIN INSERT INTO touched VALUES ('turn'); END;
        """
    )
    connection.close()

    def touched() -> list[str]:
        reading = sqlite3.connect(db)
        try:
            return [row[0] for row in reading.execute("SELECT what FROM touched ORDER BY rowid")]
        finally:
            reading.close()

    store = SqliteStore(db)
    try:
        store.insert_spans([_turn(1, 0)]).result(timeout=10)
        store.insert_spans([_turn(2, 1000)]).result(timeout=10)
        assert touched() == ["turn"]
        # A turn before the first moves the session's start: the whole row is written.
        store.insert_spans([_turn(3, -1000)]).result(timeout=10)
        assert sorted(touched()) == ["head", "turn", "turn"]
        detail = store.get_session("p", "s1")
        assert detail is not None and detail.summary.trace_count == 3
        assert detail.summary.start_time_ns == T0 - 1000 * 1_000_000
    finally:
        store.close()
