"""The embedded writer keeps what it wrote (the traces of its last batches, the session tallies)
instead of reading it back: the rows it writes from them equal a recount from the stored rows,
whatever the batches, and a conversation's next turn costs no lookup."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.chdb_kit import chdb_url
from tests.store_contract.contract_kit import T0, assert_lists_match_recount, span, write

from spanloom.server.store.base import SpanRecord, StoreUnavailableError
from spanloom.server.store.clickhouse import rollups, schema
from spanloom.server.store.clickhouse.location import connect
from spanloom.server.store.clickhouse.store import ClickHouseStore
from spanloom.server.store.records import Retention
from spanloom.server.store.url import open_store

MS = 1_000_000


@contextmanager
def _store(directory: Path) -> Iterator[ClickHouseStore]:
    store = open_store(chdb_url(directory))
    assert isinstance(store, ClickHouseStore)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _client(store: ClickHouseStore) -> Iterator[Any]:
    """A client of the store's database, beside the store's own."""
    client = connect(store.location, store.location.database)
    try:
        yield client
    finally:
        client.close()


def _session_rows(client: Any) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The stored session rows, without their versions."""
    rows = client.query("SELECT * FROM sessions FINAL WHERE deleted = 0").result_rows
    return {(row[0], row[1]): tuple(row[:-2]) for row in rows}


def _recounted(client: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = rollups.session_rows(client, keys, 0)
    return {(row[0], row[1]): tuple(row[:-2]) for row in rows if not row[-1]}


@contextmanager
def _queries(client: Any) -> Iterator[list[str]]:
    """Every query any client of this kind makes meanwhile (the store's among them)."""
    kind = type(client)
    asked: list[str] = []
    real = kind.query

    def query(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(sql)
        return real(self, sql, *args, **kwargs)

    kind.query = query
    try:
        yield asked
    finally:
        kind.query = real


@st.composite
def _batches(draw: st.DrawFn) -> list[list[SpanRecord]]:
    """Turns of a few conversations, each turn's spans in any order, cut into batches anywhere:
    traces split over batches, roots that arrive late and name another session or user, outputs
    that move earlier, labels."""
    spans: list[SpanRecord] = []
    for number in range(1, draw(st.integers(1, 8)) + 1):
        session = draw(st.sampled_from(["s1", "s2"]))
        count = draw(st.integers(1, 3))
        for index in range(1, count + 1):
            root = index == 1
            spans.append(
                span(
                    number,
                    index,
                    parent=None if root else 1,
                    project=draw(st.sampled_from(["p1", "p2"])),
                    start_ms=draw(st.integers(0, 30)),
                    duration_ms=draw(st.integers(0, 30)),
                    # Children name the session; a root may name another (the late root moves it).
                    session_id=draw(st.sampled_from([session, "s3"])) if root else session,
                    user_id=draw(st.sampled_from([None, "u1", "u2"])),
                    total_tokens=draw(st.integers(0, 50)),
                    cost=draw(st.sampled_from([None, 0.1, 0.3])),
                    input=draw(st.sampled_from([None, f"in-{number}-{index}", "x" * 2000])),
                    output=draw(st.sampled_from([None, f"out-{number}-{index}"])),
                    tags=draw(st.lists(st.sampled_from(["a", "b"]), max_size=1)),
                )
            )
    arrival = draw(st.permutations(spans))
    cuts = sorted(draw(st.lists(st.integers(0, len(arrival)), max_size=5)))
    return [
        arrival[low:high] for low, high in zip([0, *cuts], [*cuts, len(arrival)], strict=True) if high > low
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=_batches())
def test_session_rows_from_the_tallies_equal_a_recount(batches: list[list[SpanRecord]]):
    with (
        tempfile.TemporaryDirectory() as directory,
        _store(Path(directory)) as store,
        _client(store) as client,
    ):
        for batch in batches:
            write(store, batch)
            stored = _session_rows(client)
            assert stored == _recounted(client, set(stored) | {("p1", "s3"), ("p2", "s3")})
        assert_lists_match_recount(store)


def test_a_conversations_next_turn_asks_clickhouse_nothing(tmp_path: Path):
    with _store(tmp_path) as store, _client(store) as client:
        # Turn 1, and the first part of turn 2 (cut at the batch's edge, as a batch of 512 is).
        write(store, [span(1, 1, session_id="s", user_id="u", input="hi", output="hello")])
        write(store, [span(2, 2, parent=1, session_id="s", user_id="u", output="tool")])
        # Every client's queries (the writer's among them; no read runs meanwhile).
        with _queries(client) as asked:
            # The rest of turn 2 and turn 3.
            write(
                store,
                [
                    span(2, 1, session_id="s", user_id="u", input="again", output="bye"),
                    span(3, 1, start_ms=100, session_id="s", user_id="u", input="more", output="ok"),
                ],
            )
        assert asked == []
        session = store.get_session("p1", "s")
        assert session is not None
        assert [turn.trace_id for turn in session.turns] == [f"{n:032x}" for n in (1, 2, 3)]
        assert_lists_match_recount(store)


def test_counting_a_requests_new_traces_asks_clickhouse_nothing(tmp_path: Path):
    """Ingest's trace budget counts each request's traces; the stored ones are still counted."""
    with _store(tmp_path) as store, _client(store) as client:
        write(store, [span(1, 1, session_id="s"), span(1, 2, parent=1, session_id="s")])
        with _queries(client) as asked:
            new = store.count_trace_spans([f"{n:032x}" for n in range(2, 40)])
            assert asked == []
            both = store.count_trace_spans([f"{1:032x}", f"{2:032x}"])
        assert set(new.values()) == {0}
        assert both == {f"{1:032x}": 2, f"{2:032x}": 0}
        assert asked  # the stored trace is counted from its rows


def test_a_batch_cut_short_drops_what_the_writer_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with _store(tmp_path) as store:
        write(store, [span(1, 1, session_id="s", user_id="u", output="one")])
        real = schema.insert

        def failing(client: Any, table: schema.Table, *args: Any, **kwargs: Any) -> Any:
            if table is schema.SESSIONS:
                raise RuntimeError("the server went away mid-batch")
            return real(client, table, *args, **kwargs)

        # Turn 2's spans and trace row are stored, its session row not: recovery recounts it.
        monkeypatch.setattr(schema, "insert", failing)
        with pytest.raises(StoreUnavailableError):
            write(store, [span(2, 1, start_ms=50, session_id="s", user_id="u", output="two")])
        monkeypatch.setattr(schema, "insert", real)
        write(store, [span(3, 1, start_ms=100, session_id="s", user_id="u", output="three")])
        session = store.get_session("p1", "s")
        assert session is not None and session.summary.trace_count == 3
        assert_lists_match_recount(store)


def test_a_session_deleted_by_retention_starts_afresh(tmp_path: Path):
    with _store(tmp_path) as store:
        write(store, [span(1, 1, session_id="s", user_id="u", output="old")])
        deleted = store.delete_expired(Retention(default_cutoff=T0 + 1_000 * MS)).result(timeout=30)
        assert deleted.sessions == 1
        # The same session id again, after the cutoff: only this turn counts.
        write(store, [span(2, 1, start_ms=5_000, session_id="s", user_id="u", output="new")])
        session = store.get_session("p1", "s")
        assert session is not None and session.summary.trace_count == 1
        assert_lists_match_recount(store)


@pytest.mark.parametrize("repair", ["next write", "restart"])
def test_a_session_only_a_recovery_stored_is_known_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repair: str
):
    url = chdb_url(tmp_path)
    store = open_store(url)
    real = schema.insert

    def failing(client: Any, table: schema.Table, *args: Any, **kwargs: Any) -> Any:
        if table is schema.TRACES:
            raise RuntimeError("the server went away mid-batch")
        return real(client, table, *args, **kwargs)

    # The session's first turn: its spans are stored, its trace row not; recovery writes it.
    monkeypatch.setattr(schema, "insert", failing)
    with pytest.raises(StoreUnavailableError):
        write(store, [span(1, 1, session_id="s", user_id="u", output="one")])
    monkeypatch.setattr(schema, "insert", real)
    if repair == "restart":
        store.close()
        store = open_store(url)
    try:
        write(store, [span(2, 1, start_ms=50, session_id="s", user_id="u", output="two")])
        session = store.get_session("p1", "s")
        assert session is not None and session.summary.trace_count == 2
        assert_lists_match_recount(store)
    finally:
        store.close()


def test_a_session_its_last_trace_left_starts_afresh(tmp_path: Path):
    with _store(tmp_path) as store:
        write(store, [span(1, 2, parent=1, session_id="s", user_id="u", output="child")])
        # The late root names another session: "s" has no trace left.
        write(store, [span(1, 1, session_id="other", user_id="u")])
        write(store, [span(2, 1, start_ms=50, session_id="s", user_id="u", output="next")])
        session = store.get_session("p1", "s")
        assert session is not None and session.summary.trace_count == 1
        assert_lists_match_recount(store)
