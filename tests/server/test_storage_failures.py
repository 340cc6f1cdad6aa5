"""A write the storage fails (a full disk, an I/O error) answers 503 with Retry-After, never 200;
nothing of it is stored (the transaction rolled back, so the rollups still equal a recount); the
server goes on serving reads; and once the storage works again the next batch is stored.

The full disk is real as far as SQLite can tell: `PRAGMA max_page_count` (SPANLOOM_MAX_DB_PAGES)
makes a write past the limit fail with SQLITE_FULL, "database or disk is full", the very error a
full disk gives, and raising the limit while the server runs is the space coming back.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

import httpx
import pytest
from _recount import assert_rollups_match_recount, stored_span_keys
from _server_kit import PROTOBUF, RunningServer, make_request, make_turn, run_server, wait_for
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanloom.server.settings import Settings
from spanloom.server.store.base import InsertResult, SpanRecord
from spanloom.server.store.sqlite import SqliteStore, readiness, user_writes
from spanloom.server.store.sqlite import writer as writer_module

LONG_TEXT = "the customer asked about the refund policy for damaged items " * 40  # ~2.5 KB


def _batch(name: str, turns: int = 10) -> list[Span]:
    """`turns` turns of one session each, with texts long enough to fill pages fast."""
    spans: list[Span] = []
    for index in range(turns):
        _, turn = make_turn(
            f"{name}-session-{index % 3}",
            f"{name}-user-{index % 2}",
            index * 1000,
            question=f"{name} {index}: {LONG_TEXT}",
            answer=LONG_TEXT,
            tool=True,
            error=index % 4 == 0,
        )
        spans.extend(turn)
    return spans


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _keys(spans: list[Span]) -> set[tuple[str, str]]:
    return {(span.trace_id.hex(), span.span_id.hex()) for span in spans}


def _reads_still_work(server: RunningServer) -> None:
    for path in ("/api/sessions", "/api/users", "/api/traces", "/sessions"):
        response = server.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
    session_id = server.get_json("/api/sessions")["items"][0]["session_id"]
    assert server.get(f"/api/sessions/{session_id}").status_code == 200


def _assert_unavailable(response: httpx.Response, code: str, words: str) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == code, error
    assert words in error["message"], error


def test_full_disk_answers_503_stores_nothing_and_recovers_when_space_returns(tmp_path: Path):
    db = tmp_path / "full.db"
    acknowledged: set[tuple[str, str]] = set()
    with run_server(db, max_db_pages=200) as server:
        # Fill the file until a batch does not fit.
        rejected: list[Span] | None = None
        for number in range(100):
            spans = _batch(f"fill{number}")
            response = server.post_spans(make_request(spans))
            if response.status_code != 200:
                rejected = spans
                break
            acknowledged |= _keys(spans)
        assert rejected is not None, "the page limit was never reached"
        _assert_unavailable(response, "storage_full", "storage is full")
        filled_batches = len(acknowledged) // len(rejected)

        # Still full: the same batch is refused again, the writer is not wedged, reads go on.
        for _ in range(3):
            _assert_unavailable(server.post_spans(make_request(rejected)), "storage_full", "storage is full")
        _reads_still_work(server)
        # Nothing of the refused batch was stored, and the rollups are those of the stored spans.
        assert set(stored_span_keys(db)) == acknowledged
        before = assert_rollups_match_recount(db)

        # Space comes back: the very batch that was refused is stored, and so is the next.
        server.store.set_max_db_pages(None)
        assert server.post_spans(make_request(rejected)).status_code == 200
        acknowledged |= _keys(rejected)
        after_recovery = _batch("after")
        assert server.post_spans(make_request(after_recovery)).status_code == 200
        acknowledged |= _keys(after_recovery)
        _reads_still_work(server)
    stored = stored_span_keys(db)
    assert len(stored) == len(set(stored)) and set(stored) == acknowledged
    after = assert_rollups_match_recount(db)
    print(
        f"\nfull disk (200 pages): {filled_batches} batches stored before the limit, then 4 answers of 503 "
        f"storage_full; {before.spans} spans stored while full, {after.spans} after recovery "
        f"(= all {len(acknowledged)} acknowledged); rollups equal the recount for {after.traces} traces, "
        f"{after.sessions} sessions, {after.users} users"
    )


def test_injected_disk_io_error_answers_503_rolls_back_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    db = tmp_path / "io.db"
    failures: list[int] = []
    real_upsert_users = user_writes.upsert_users

    def failing_once(connection: sqlite3.Connection, rows) -> None:
        if not failures:
            failures.append(1)
            # After the spans, traces and sessions of the batch were written: all must roll back.
            raise sqlite3.OperationalError("disk I/O error")
        real_upsert_users(connection, rows)

    with run_server(db) as server:
        first = _batch("first")
        assert server.post_spans(make_request(first)).status_code == 200
        monkeypatch.setattr(user_writes, "upsert_users", failing_once)
        # One batch shares sessions and users with the first (rollup updates), one is all new.
        second = _batch("first") + _batch("second")
        _assert_unavailable(server.post_spans(make_request(second)), "storage_unavailable", "disk I/O error")
        assert failures == [1]
        _reads_still_work(server)
        assert set(stored_span_keys(db)) == _keys(first)
        assert_rollups_match_recount(db)

        assert server.post_spans(make_request(second)).status_code == 200  # the storage works again
        _reads_still_work(server)
    stored = stored_span_keys(db)
    assert len(stored) == len(set(stored)) and set(stored) == _keys(first) | _keys(second)
    recount = assert_rollups_match_recount(db)
    print(
        f"\ninjected disk I/O error: 1 answer of 503 storage_unavailable, 0 of its {len(second)} spans "
        f"stored; after the retry {recount.spans} spans, rollups equal the recount"
    )


def test_evaluation_results_the_storage_fails_answer_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real_insert = writer_module.insert_evaluations

    def failing(connection: sqlite3.Connection, evaluations, projects):
        raise sqlite3.OperationalError("database or disk is full")

    with run_server(tmp_path / "evaluations.db") as server:
        spans = _batch("judged", turns=1)
        assert server.post_spans(make_request(spans)).status_code == 200
        item = [{"span_id": spans[1].span_id.hex(), "name": "helpful", "score": 1}]
        monkeypatch.setattr(writer_module, "insert_evaluations", failing)
        _assert_unavailable(
            server.client.post("/api/evaluations", json=item), "storage_full", "storage is full"
        )
        monkeypatch.setattr(writer_module, "insert_evaluations", real_insert)
        response = server.client.post("/api/evaluations", json=item)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 1


def _span(number: int) -> SpanRecord:
    return SpanRecord(
        trace_id=f"{number + 1:032x}",
        span_id=f"{number + 1:016x}",
        parent_span_id=None,
        name="span",
        project="p",
        start_time_ns=number,
        end_time_ns=number + 1,
    )


def test_a_cancelled_wait_does_not_stop_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The ingest route's wait cancels the store's future when the client goes away; resolving a
    cancelled future raises, which must not end the writer thread (every later write would hang)."""
    entered, release = threading.Event(), threading.Event()
    real_write_batch = writer_module.write_batch

    def held_write_batch(connection: sqlite3.Connection, spans, waiting=None) -> set[str]:
        if not entered.is_set():
            entered.set()
            assert release.wait(timeout=30)
        return real_write_batch(connection, spans, waiting)

    monkeypatch.setattr(writer_module, "write_batch", held_write_batch)
    store = SqliteStore(tmp_path / "cancel.db")
    try:
        first = store.insert_spans([_span(1)])
        wait_for(entered.is_set, what="the writer to start the first write")
        abandoned: Future[InsertResult] = store.insert_spans([_span(2)])
        assert abandoned.cancel()
        release.set()
        assert first.result(timeout=30).accepted == 1
        assert store.insert_spans([_span(3)]).result(timeout=30).accepted == 1
    finally:
        release.set()
        store.close()


def _readiness(server: RunningServer) -> httpx.Response:
    return server.client.get("/readyz")


def test_readyz_fails_while_the_disk_is_full_and_recovers(tmp_path: Path):
    """/readyz answers 503 with the reason while a write would fail for want of room, and 200
    again once space returns; /metrics counts the refused batches and their spans exactly."""
    with run_server(tmp_path / "ready.db", max_db_pages=200) as server:
        assert _readiness(server).status_code == 200
        refused: list[Span] | None = None
        for number in range(100):
            spans = _batch(f"fill{number}")
            response = server.post_spans(make_request(spans))
            if response.status_code != 200:
                refused = spans
                break
        assert refused is not None, "the page limit was never reached"
        _assert_unavailable(response, "storage_full", "storage is full")
        _assert_unavailable(server.post_spans(make_request(refused)), "storage_full", "storage is full")

        # Answers are shared for up to a second (the probe is open to anyone): poll.
        not_ready = wait_for(
            lambda: (answer := _readiness(server)).status_code == 503 and answer, what="/readyz to fail"
        )
        error = not_ready.json()["error"]
        assert error["code"] == "not_ready" and "storage is full" in error["message"], error
        assert server.get("/healthz").status_code == 200  # the process still answers
        metrics = server.get("/metrics").text
        rejected_spans = 2 * len(refused)
        assert f'spanloom_ingest_spans_rejected_total{{reason="storage_full"}} {rejected_spans}.0' in metrics
        assert 'spanloom_ingest_requests_refused_total{reason="storage_full"} 2.0' in metrics

        server.store.set_max_db_pages(None)  # space comes back
        wait_for(lambda: _readiness(server).status_code == 200, what="/readyz to recover")
        assert server.post_spans(make_request(refused)).status_code == 200


def test_readiness_fails_while_the_writer_is_stuck(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    entered, release = threading.Event(), threading.Event()
    real_write_batch = writer_module.write_batch

    def held_write_batch(connection: sqlite3.Connection, spans, waiting=None) -> set[str]:
        if not entered.is_set():
            entered.set()
            assert release.wait(timeout=30)
        return real_write_batch(connection, spans, waiting)

    monkeypatch.setattr(writer_module, "write_batch", held_write_batch)
    store = SqliteStore(tmp_path / "stuck.db")
    try:
        assert store.check_ready(5).ready
        held = store.insert_spans([_span(1)])
        wait_for(entered.is_set, what="the writer to start the first write")
        for _ in range(3):
            readiness = store.check_ready(0.2)
            assert not readiness.ready
            assert "the writer has not taken a write for 0.2 s" in readiness.reason
        # The calls shared one probe: the queue holds it alone, not a probe per call.
        assert store.stats().queued_writes == 1
        release.set()
        assert held.result(timeout=30).accepted == 1
        assert store.check_ready(5).ready
    finally:
        release.set()
        store.close()


def test_a_disk_without_room_is_named():
    """The free-space check that stands for a full disk (pages reach the disk only at commit,
    which the readiness probe never does), against this machine's real free space."""
    path = Path(tempfile.gettempdir()) / "spanloom-readiness.db"
    free = shutil.disk_usage(path.parent).free
    assert readiness.disk_shortage(path, room_bytes=1) is None
    shortage = readiness.disk_shortage(path, room_bytes=free + 10**12)
    assert shortage is not None and "storage is full" in shortage and str(path) in shortage


def test_max_db_pages_setting_reaches_spanloom_serve(tmp_path: Path):
    assert Settings.from_env({}).max_db_pages is None
    assert Settings.from_env({"SPANLOOM_MAX_DB_PAGES": "100"}).max_db_pages == 100
    with pytest.raises(ValueError, match="SPANLOOM_MAX_DB_PAGES"):
        Settings.from_env({"SPANLOOM_MAX_DB_PAGES": "lots"})

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "spanloom.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        str(tmp_path / "s.db"),
        "--grpc-port",
        "0",
    ]
    environment = {**os.environ, "SPANLOOM_MAX_DB_PAGES": "60"}
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def ready() -> bool:
                assert process.poll() is None, "spanloom serve exited"
                try:
                    return client.get("/api/projects").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, timeout=30, what="spanloom serve to answer")
            statuses = []
            for number in range(60):
                body = make_request(_batch(f"serve{number}")).SerializeToString()
                statuses.append(client.post("/v1/traces", content=body, headers=PROTOBUF).status_code)
                if statuses[-1] != 200:
                    break
            assert statuses[-1] == 503 and set(statuses[:-1]) <= {200}, statuses
            assert client.get("/api/sessions").status_code == 200
            assert process.poll() is None
    finally:
        process.kill()
        process.wait(timeout=30)
