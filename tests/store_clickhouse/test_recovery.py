"""A batch cut short between its inserts (ClickHouse has no transaction over several tables) is
recounted from what was stored: before the next write, or at the next start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.chdb_kit import chdb_url
from tests.store_contract.contract_kit import assert_lists_match_recount, every, span, trace_id, write

from spanloom.server.store.base import StoreUnavailableError
from spanloom.server.store.clickhouse import schema
from spanloom.server.store.evaluation_types import FEEDBACK, EvaluationInput
from spanloom.server.store.url import open_store


def _fail_rollups_once(
    monkeypatch: pytest.MonkeyPatch, failing_table: schema.Table = schema.SESSIONS
) -> None:
    """The batch's rows of one table fail to insert once; by default its session rows: its spans,
    trace keys and traces are written by then, its sessions and users not."""
    real = schema.insert
    calls = {"n": 0}

    def failing(client: Any, table: schema.Table, *args: Any, **kwargs: Any) -> Any:
        if table is failing_table:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("the server went away mid-batch")
        return real(client, table, *args, **kwargs)

    monkeypatch.setattr(schema, "insert", failing)


@pytest.mark.parametrize("repair", ["next write", "restart"])
def test_a_batch_cut_short_is_recounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repair: str):
    url = chdb_url(tmp_path)
    store = open_store(url)
    write(store, [span(1, 2, parent=1, session_id="old", user_id="u-old", cost=0.5)])
    _fail_rollups_once(monkeypatch)
    # The late root moves the trace to another session; the batch dies after its trace rows.
    with pytest.raises(StoreUnavailableError):
        write(store, [span(1, 1, session_id="new", user_id="u-new"), span(2, 1, session_id="new")])
    if repair == "restart":
        store.close()
        store = open_store(url)
    else:
        write(store, [span(3, 1, session_id="other")])
    try:
        sessions = {s.session_id: s.trace_count for s in every(store.list_sessions)}
        expected = {"new": 2} if repair == "restart" else {"new": 2, "other": 1}
        assert sessions == expected
        assert {u.user_id for u in every(store.list_users)} == {"u-new"}
        assert_lists_match_recount(store)
    finally:
        store.close()


@pytest.mark.parametrize("table", ["spans", "traces"])
def test_a_batch_whose_spans_or_traces_fail_to_insert_is_recounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str
):
    """The spans' insert runs on a second client beside the writer thread, the trace rows' in
    it: either failing fails the batch as the session rows' does, and the batch is recounted from
    what was stored."""
    store = open_store(chdb_url(tmp_path))
    try:
        write(store, [span(1, 2, parent=1, session_id="old", user_id="u-old", cost=0.5)])
        _fail_rollups_once(monkeypatch, getattr(schema, table.upper()))
        with pytest.raises(StoreUnavailableError):
            write(store, [span(1, 1, session_id="new", user_id="u-new"), span(2, 1, session_id="new")])
        write(store, [span(3, 1, session_id="other")])
        sessions = {s.session_id: s.trace_count for s in every(store.list_sessions)}
        users = {u.user_id for u in every(store.list_users)}
        if table == "spans":  # the batch's spans are not stored: as if it never came
            assert (sessions, users) == ({"old": 1, "other": 1}, {"u-old"})
        else:  # its spans are: its traces are recounted from them
            assert (sessions, users) == ({"new": 2, "other": 1}, {"u-new"})
        assert_lists_match_recount(store)
    finally:
        store.close()


@pytest.mark.parametrize("repair", ["next write", "restart"])
def test_feedback_waiting_for_a_batch_cut_short_counts_once_it_is_recounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repair: str
):
    url = chdb_url(tmp_path)
    store = open_store(url)
    feedback = EvaluationInput(
        name=FEEDBACK, source="feedback", key="f1", score=-1, trace_id=trace_id(1), project="p1"
    )
    assert store.insert_evaluations([feedback]).result(timeout=30).accepted == 1  # before its spans
    _fail_rollups_once(monkeypatch)
    # The trace's spans and rows are written, then the batch dies before the feedback moves in.
    with pytest.raises(StoreUnavailableError):
        write(store, [span(1, 1, session_id="s", user_id="u")])
    if repair == "restart":
        store.close()
        store = open_store(url)
    else:
        write(store, [span(2, 1, session_id="other")])
    try:
        session = store.get_session("p1", "s")
        assert session is not None and session.summary.evaluations[FEEDBACK].count == 1
        assert [(r.key, r.span_id) for r in session.turns[0].evaluations] == [("f1", "")]
        assert_lists_match_recount(store)
    finally:
        store.close()


def test_session_rows_of_schema_version_1_read_their_texts_from_the_traces(tmp_path: Path):
    """Version 2 keeps a session's first input and last output on its row; rows written before
    have none, and the lists read those texts from the trace rows instead."""
    store = open_store(chdb_url(tmp_path))
    try:
        write(
            store,
            [
                span(1, 1, start_ms=0, session_id="s", input="the first question", output="an answer"),
                span(2, 1, start_ms=100, session_id="s", input="again", output="the last answer"),
            ],
        )
        fresh = store.get_session("p1", "s")
        assert fresh is not None
        expected = ("the first question", "the last answer")
        assert (fresh.summary.first_input, fresh.summary.last_output) == expected
        # A newer version of the row without the texts, as version 1 wrote them.
        store._writer_client.command(
            "INSERT INTO sessions SELECT * REPLACE (NULL AS first_input, NULL AS last_output,"
            " version + 1 AS version) FROM sessions FINAL"
        )
        [listed] = every(store.list_sessions)
        assert (listed.first_input, listed.last_output) == expected
        assert_lists_match_recount(store)
    finally:
        store.close()
