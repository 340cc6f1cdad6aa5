"""The SQLite store's turn-text index (search_index.py), filled by the store's indexer thread off
the ingest path: once the indexer has caught up after any arrival order, retried batches and
retention, it holds exactly what indexing the stored traces afresh would (no stale entry, none
missing); it is what a search of three or more characters reads; searches find the same while
traces wait for the indexer (new ones, and indexed ones whose texts moved); and an upgraded file
gets it. (That searches find what they must, on every backend, is in tests/store_contract/.)"""

from __future__ import annotations

import random
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from spanloom.server.store.base import ListQuery, Retention, SpanRecord
from spanloom.server.store.sqlite import SqliteStore, search_index
from spanloom.server.store.sqlite.migrations import SCHEMA_VERSION, migrate

T0 = 1_760_000_000_000_000_000
WORDS = ("walrus", "giraffe", "Heron", "OCELOT", "narwhal", "beluga", "50% off", "snake_case")


def _spans(rng: random.Random, traces: int) -> list[SpanRecord]:
    """Traces of 1-4 spans whose texts differ per span, so which span's text is the turn's matters."""
    spans = []
    for number in range(1, traces + 1):
        count = rng.randint(1, 4)
        for index in range(count):
            start = T0 + number * 1_000_000_000 + index * 1_000_000
            spans.append(
                SpanRecord(
                    trace_id=f"{number:032x}",
                    span_id=f"{number * 10 + index:016x}",
                    parent_span_id=None if index == 0 else f"{number * 10:016x}",
                    name=f"span-{index}",
                    project="p1" if number % 3 else "p2",
                    start_time_ns=start,
                    end_time_ns=start + 5_000_000,
                    session_id=f"s{number % 4}" if number % 5 else None,
                    input=rng.choice([None, f"{rng.choice(WORDS)} asks {number}.{index}"]),
                    output=rng.choice([None, f"{rng.choice(WORDS)} answers {number}.{index} " * 3]),
                )
            )
    return spans


def _caught_up(store: SqliteStore) -> None:
    """Wait (with a deadline) until the indexer has indexed every noted trace."""
    deadline = time.monotonic() + 30
    while store.stats().unindexed_traces:
        assert time.monotonic() < deadline, "the indexer did not catch up"
        time.sleep(0.01)


def _entries(path: Path) -> set[tuple[str, int]]:
    """(trigram, trace rowid) of every entry the index holds."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(
            "CREATE VIRTUAL TABLE temp.entries USING fts5vocab(main, turn_text_index, instance)"
        )
        return set(connection.execute("SELECT term, doc FROM temp.entries").fetchall())


def _fresh_entries(path: Path, tmp_path: Path) -> set[tuple[str, int]]:
    """The entries of the same traces indexed from nothing, in a copy of the file."""
    copy = tmp_path / "fresh.db"
    shutil.copy(path, copy)
    with closing(sqlite3.connect(copy)) as connection:
        connection.execute("INSERT INTO turn_text_index (turn_text_index) VALUES ('delete-all')")
        connection.execute("DELETE FROM turn_text_pending")
        search_index.note_all(connection)
        while search_index.index_pending(connection):
            pass
        connection.commit()
    return _entries(copy)


def test_the_index_holds_the_stored_traces_texts_after_any_arrival_order(tmp_path: Path):
    rng = random.Random(7)
    spans = _spans(rng, 60)
    batches = [spans[start : start + 9] for start in range(0, len(spans), 9)]
    rng.shuffle(batches)
    path = tmp_path / "index.db"
    store = SqliteStore(path)
    try:
        for batch in batches:
            rng.shuffle(batch)  # children before their root, late roots moving a turn's texts
            store.insert_spans(batch).result(timeout=30)
            if rng.random() < 0.3:
                store.insert_spans(rng.choice(batches)).result(timeout=30)  # a retry, of any batch
        # Retention takes the sessions and loose traces of p2: their entries must go with them.
        deleted = store.delete_expired(Retention(cutoffs={"p2": T0 + 10**12})).result(timeout=30)
        assert deleted.traces > 0
        found = {t.trace_id for t in store.list_traces(ListQuery(q="walrus", limit=500)).items}
        _caught_up(store)
    finally:
        store.close()
    entries = _entries(path)
    assert entries and entries == _fresh_entries(path, tmp_path)
    assert found  # the data holds what the search looks for


def test_searches_of_three_or_more_characters_read_the_index(tmp_path: Path):
    path = tmp_path / "index.db"
    store = SqliteStore(path)
    try:
        store.insert_spans(
            [
                SpanRecord(
                    trace_id="1" * 32,
                    span_id="1" * 16,
                    parent_span_id=None,
                    name="turn",
                    project="p1",
                    start_time_ns=T0,
                    end_time_ns=T0 + 1,
                    session_id="s",
                    input="where is the walrus",
                    output="in the sea",
                )
            ]
        ).result(timeout=30)
        _caught_up(store)
        assert [t.trace_id for t in store.list_traces(ListQuery(q="walrus")).items] == ["1" * 32]
        with closing(sqlite3.connect(path)) as connection:
            connection.execute("INSERT INTO turn_text_index (turn_text_index) VALUES ('delete-all')")
            connection.commit()
        # With its entries gone the index holds no candidate: only the short query, which
        # scans, still finds the turn.
        assert store.list_traces(ListQuery(q="walrus")).items == []
        assert store.list_sessions(ListQuery(q="walrus")).items == []
        assert [s.session_id for s in store.list_sessions(ListQuery(q="wa")).items] == ["s"]
    finally:
        store.close()


def test_an_upgraded_file_indexes_its_stored_traces(tmp_path: Path):
    path = tmp_path / "index.db"
    store = SqliteStore(path)
    try:
        for batch in (_spans(random.Random(3), 30),):
            store.insert_spans(batch).result(timeout=30)
        _caught_up(store)
    finally:
        store.close()
    expected = _entries(path)
    # The same file as schema 7 wrote it: no index.
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE turn_text_index")
        connection.execute("DROP TABLE turn_text_pending")
        # and schema 7's two indexes where version 9 has one
        connection.execute("DROP INDEX traces_by_project")
        connection.execute("CREATE INDEX traces_by_project ON traces (project, start_ns, trace_id)")
        connection.execute(
            "CREATE INDEX traces_for_trends"
            " ON traces (project, start_ns, latency_ms, error_count, cost_nanos)"
        )
        # and schema 9's spans layout: each span holds its resource (these spans' attributes
        # hold nothing a column does, so `lifted` is empty)
        connection.execute(
            "UPDATE spans SET resource = (SELECT r.resource FROM resources r"
            " WHERE r.resource_key = spans.resource_key)"
        )
        assert connection.execute("SELECT COUNT(*) FROM spans WHERE lifted IS NOT NULL").fetchone() == (0,)
        connection.execute("ALTER TABLE spans DROP COLUMN lifted")
        connection.execute("ALTER TABLE spans DROP COLUMN resource_key")
        connection.execute("DROP TABLE resources")
        # and no session previews (schema 11)
        connection.execute("ALTER TABLE sessions DROP COLUMN first_input_preview")
        connection.execute("ALTER TABLE sessions DROP COLUMN last_output_preview")
        connection.execute("PRAGMA user_version = 7")
        connection.commit()
    lines: list[str] = []
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        assert migrate(connection, lines.append) == 7
    assert lines[0] == "upgrading the database to schema 8 (the text search index): 30 traces to index"
    assert lines[-1] == f"upgraded the database to schema {SCHEMA_VERSION}"
    store = SqliteStore(path)
    try:
        _caught_up(store)
        assert expected and _entries(path) == expected
        found = store.list_sessions(ListQuery(q="narwhal answers", limit=500)).items
        assert found and all(s.session_id for s in found)
    finally:
        store.close()


QUERIES = ("walrus", "ALRU", "heron ask", "ocelot", "50% o", "snake_c", "answers 1", "s.2", "zzz", "wa")


def _searches(store: SqliteStore) -> dict[tuple[str, str, str | None], set[str]]:
    """What every query finds, on both lists, in each project and in all."""
    found: dict[tuple[str, str, str | None], set[str]] = {}
    for q in QUERIES:
        for project in (None, "p1", "p2"):
            query = ListQuery(q=q, project=project, limit=500)
            found["traces", q, project] = {t.trace_id for t in store.list_traces(query).items}
            found["sessions", q, project] = {s.session_id for s in store.list_sessions(query).items}
    return found


def test_searches_find_the_same_while_traces_wait_for_the_indexer(tmp_path: Path):
    rng = random.Random(11)
    spans = _spans(rng, 80)
    rng.shuffle(spans)  # children before their roots: late roots move indexed traces' texts
    path = tmp_path / "index.db"
    store = SqliteStore(path)
    try:
        store.insert_spans(spans[:150]).result(timeout=30)
        _caught_up(store)
    finally:
        store.close()
    # No indexer: the rest waits, new traces and indexed ones whose texts move.
    store = SqliteStore(path, index_text=False)
    try:
        for start in range(150, len(spans), 20):
            store.insert_spans(spans[start : start + 20]).result(timeout=30)
        store.delete_expired(Retention(cutoffs={"p2": T0 + 30 * 10**9})).result(timeout=30)
        with closing(sqlite3.connect(path)) as connection:
            notes = dict(
                connection.execute("SELECT indexed, COUNT(*) FROM turn_text_pending GROUP BY indexed")
            )
        assert notes.get(0) and notes.get(1)  # both kinds wait: not yet indexed, and stale
        assert store.stats().unindexed_traces == notes[0] + notes[1]
        waiting = _searches(store)
    finally:
        store.close()
    store = SqliteStore(path)
    try:
        _caught_up(store)
        assert _searches(store) == waiting
    finally:
        store.close()
    assert _entries(path) == _fresh_entries(path, tmp_path)
    assert any(waiting[key] for key in waiting if key[1] != "zzz")  # the data holds what is searched for


def test_texts_that_move_twice_while_waiting_leave_no_stale_entry(tmp_path: Path):
    def span(span_id: int, parent: int | None, start_ms: int, text: str) -> SpanRecord:
        start = T0 + start_ms * 1_000_000
        return SpanRecord(
            trace_id="2" * 32,
            span_id=f"{span_id:016x}",
            parent_span_id=None if parent is None else f"{parent:016x}",
            name=f"span-{span_id}",
            project="p1",
            start_time_ns=start,
            end_time_ns=start + 1_000_000,
            session_id="s",
            input=f"{text} asks",
            output=f"{text} answers",
        )

    path = tmp_path / "index.db"
    store = SqliteStore(path)
    try:
        store.insert_spans([span(3, 1, 30, "walrus")]).result(timeout=30)
        _caught_up(store)  # indexed with the walrus texts
    finally:
        store.close()
    store = SqliteStore(path, index_text=False)
    try:
        # An earlier child, then the root: the turn's texts move twice before the indexer runs.
        store.insert_spans([span(2, 1, 20, "giraffe")]).result(timeout=30)
        store.insert_spans([span(1, None, 10, "heron")]).result(timeout=30)
        assert [t.trace_id for t in store.list_traces(ListQuery(q="heron asks")).items] == ["2" * 32]
        assert store.list_traces(ListQuery(q="walrus asks")).items == []
    finally:
        store.close()
    store = SqliteStore(path)
    try:
        _caught_up(store)
        assert [t.trace_id for t in store.list_traces(ListQuery(q="heron asks")).items] == ["2" * 32]
    finally:
        store.close()
    # The walrus entry was forgotten with the texts it was made from, not the giraffe ones.
    assert _entries(path) == _fresh_entries(path, tmp_path)
    assert ("wal", 1) not in _entries(path)
