"""The SQLite backend opens a file written by spanloom 0.1.0 (schema 1, sessions and users keyed by
id alone) and upgrades it in place: every span kept, sessions and users split per project, every
figure the recount from the spans. A file from a newer release, or an upgrade that fails half
way, changes nothing. (SQLite's own file format, so it reads the file directly beside the store.)"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from contract_kit import assert_lists_match_recount, every

from spanloom.server.store.base import ListQuery, SpanRecord, StoreOpenError
from spanloom.server.store.span_texts import restore_attributes
from spanloom.server.store.sqlite import user_writes
from spanloom.server.store.sqlite.migrations import SCHEMA_VERSION
from spanloom.server.store.turn_previews import input_preview, output_preview
from spanloom.server.store.url import open_store

OLD_FILE = Path(__file__).parent / "data" / "spanloom-0.1.0.db.gz"


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "from-0.1.0.db"
    with gzip.open(OLD_FILE) as packed, path.open("wb") as unpacked:
        shutil.copyfileobj(packed, unpacked)
    return path


def _read(path: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchall()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_0_1_0_file_upgrades_keeping_every_span(old_db: Path):
    assert _read(old_db, "PRAGMA user_version") == [(1,)]
    spans_before = set(_read(old_db, "SELECT trace_id, span_id FROM spans"))
    results_before = set(
        _read(old_db, "SELECT trace_id, span_id, name, source, score, label FROM evaluations")
    )
    # 0.1.0 kept one row for a session id that two projects use.
    assert _read(old_db, "SELECT project FROM sessions WHERE session_id = 'shared-0'") == [("shop",)]
    lines: list[str] = []
    store = open_store(str(old_db), progress=lines.append)
    try:
        assert lines[0].startswith("upgrading the database to schema 2")
        assert lines[-1] == f"upgraded the database to schema {SCHEMA_VERSION}"
        stored = every(store.list_spans, limit=50)
        assert {(span.trace_id, span.span_id) for span in stored} == spans_before
        assert store.count_spans(ListQuery()) == len(spans_before) == 82
        expected = assert_lists_match_recount(store)
        # The shared ids are now one session and one user per project.
        assert store.find_session_projects("shared-0") == ["shop", "support"]
        assert store.find_user_projects("alice") == ["shop", "support"]
        assert {key[0] for key in expected.sessions} == {"shop", "support"}
        assert len(expected.sessions) == 12 and len(expected.users) == 7
        # Results kept, and counted inside their trace's project.
        results_after = {
            (result.trace_id, result.span_id, result.name, result.source, result.score, result.label)
            for trace in expected.traces.values()
            for result in trace.evaluations
        }
        assert results_after == results_before
        support = store.get_session("support", "shared-0")
        assert support is not None and {turn.project for turn in support.turns} == {"support"}
        # The trace whose late root moved it stays where the root put it.
        moved = store.get_trace("0" * 29 + "3e7")
        assert moved is not None and (moved.summary.session_id, moved.summary.user_id) == (
            "shop-only-3",
            "bob",
        )
    finally:
        store.close()
    assert _read(old_db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    # Opening it again is quiet: nothing left to upgrade.
    again: list[str] = []
    open_store(str(old_db), progress=again.append).close()
    assert again == []


def test_a_file_from_a_newer_release_is_refused_unchanged(old_db: Path):
    with closing(sqlite3.connect(old_db)) as connection:
        connection.execute("PRAGMA user_version = 99")
    before = _digest(old_db)
    with pytest.raises(StoreOpenError, match="newer spanloom"):
        open_store(str(old_db))
    assert _digest(old_db) == before


def test_an_upgrade_that_fails_half_way_leaves_the_old_file(old_db: Path, monkeypatch: pytest.MonkeyPatch):
    def failing(connection: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(user_writes, "rebuild_users", failing)
    with pytest.raises(StoreOpenError, match="disk I/O error"):
        open_store(str(old_db))
    assert _read(old_db, "PRAGMA user_version") == [(1,)]
    assert _read(old_db, "SELECT project FROM sessions WHERE session_id = 'shared-0'") == [("shop",)]
    monkeypatch.undo()
    store = open_store(str(old_db))
    try:
        assert store.find_session_projects("shared-0") == ["shop", "support"]
    finally:
        store.close()


def test_spans_written_before_schema_10_read_as_they_were_stored(old_db: Path):
    """Schema 10 keeps new rows smaller (attributes the columns hold, resources, keys: once); the
    rows of an upgraded file are not rewritten, and read back exactly as they were stored."""
    stored = _read(
        old_db,
        "SELECT trace_id, span_id, attributes, resource, input_key, input_at, input, output_key, output_at,"
        " output FROM spans",
    )
    # Keys of moved texts as text, resources in the row: the old layout.
    assert any(row[4] == "input.value" for row in stored) and all(row[3].startswith("{") for row in stored)
    new = SpanRecord(
        trace_id="f" * 32,
        span_id="e" * 16,
        parent_span_id=None,
        name="after the upgrade",
        project="shop",
        start_time_ns=1,
        end_time_ns=2,
        session_id="shared-0",
        span_kind="LLM",
        input="a question asked after the upgrade",
        attributes={"session.id": "shared-0", "input.value": "a question asked after the upgrade", "n": 1},
        resource={"project.name": "shop"},
    )
    store = open_store(str(old_db))
    try:
        for trace_id, span_id, attributes, resource, *moved in stored:
            (span,) = store.get_spans(trace_id, [span_id])
            expected = restore_attributes(json.loads(attributes), (moved[0:3], moved[3:6]))
            assert list(span.attributes.items()) == list(expected.items())
            assert span.resource == json.loads(resource)
        store.insert_spans([new]).result(timeout=30)
        assert store.get_spans(new.trace_id, [new.span_id]) == [new]
    finally:
        store.close()
    old_rows = "SELECT COUNT(*) FROM spans WHERE lifted IS NULL AND resource_key IS NULL"
    assert _read(old_db, old_rows) == [(82,)]
    # The new span's row: session.id lifted, the input moved, the resource kept apart.
    assert _read(old_db, f"SELECT attributes, resource FROM spans WHERE span_id = '{new.span_id}'") == [
        ('{"n":1}', "")
    ]


def test_a_schema_10_file_gets_the_previews_its_sessions_list_shows(old_db: Path):
    """Schema 11 keeps the list's previews on the session rows; an upgraded file's sessions get
    theirs from their texts, and the list shows the same as for sessions written since."""
    open_store(str(old_db)).close()
    with closing(sqlite3.connect(old_db)) as connection:  # back to schema 10's layout
        connection.execute("ALTER TABLE sessions DROP COLUMN first_input_preview")
        connection.execute("ALTER TABLE sessions DROP COLUMN last_output_preview")
        connection.execute("PRAGMA user_version = 10")
        connection.commit()
    lines: list[str] = []
    store = open_store(str(old_db), progress=lines.append)
    try:
        assert lines[0].startswith("upgrading the database to schema 11 (session previews)")
        listed = every(store.list_sessions)
        assert listed and all(session.first_input for session in listed)
        for session in listed:
            detail = store.get_session(session.project, session.session_id)
            assert detail is not None
            assert session.first_input == input_preview(detail.summary.first_input)
            assert session.last_output == output_preview(detail.summary.last_output)
    finally:
        store.close()
