"""Kill -9 the server in the middle of a stream of batches: every span acknowledged with 200 survives,
on each backend (SQLite, and ClickHouse embedded through chDB in the server's own process)."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from _server_kit import PROTOBUF, free_port, make_request, make_turn, server_process, wait_for

SPANS_PER_TURN = 3  # root, LLM child and a tool span
TURNS_PER_BATCH = 20


@pytest.mark.parametrize("backend", ["sqlite", "chdb"])
def test_sigkill_mid_stream_loses_no_acknowledged_span(tmp_path: Path, backend: str):
    db = tmp_path / "crash.db"
    # The server is a process of its own: its chDB engine is its own, in a directory of its own.
    store = f"sqlite:///{db}" if backend == "sqlite" else f"chdb://{tmp_path / 'crash-chdb'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/traces"
    acknowledged: dict[str, str] = {}  # trace id -> session id, for batches answered 200
    lock = threading.Lock()
    stop = threading.Event()

    def sender(name: str) -> None:
        with httpx.Client(timeout=10) as client:
            batch = 0
            while not stop.is_set():
                turns = [
                    make_turn(
                        f"{name}-s{batch}-{index % 4}", f"user-{index % 3}", batch * 1000 + index, tool=True
                    )
                    for index in range(TURNS_PER_BATCH)
                ]
                body = make_request([span for _, spans in turns for span in spans]).SerializeToString()
                try:
                    response = client.post(url, content=body, headers=PROTOBUF)
                except httpx.TransportError:
                    return  # the server died with this batch in flight: it may or may not be stored
                if response.status_code == 200:
                    with lock:
                        for index, (trace_id, _) in enumerate(turns):
                            acknowledged[trace_id.hex()] = f"{name}-s{batch}-{index % 4}"
                batch += 1

    with server_process(store, port) as process:
        senders = [threading.Thread(target=sender, args=(f"sender{i}",)) for i in range(2)]
        for thread in senders:
            thread.start()
        wait_for(
            lambda: len(acknowledged) >= 30 * TURNS_PER_BATCH, timeout=30, what="30 acknowledged batches"
        )
        os.kill(process.pid, signal.SIGKILL)  # no shutdown, no checkpoint, no flush
        process.wait(timeout=30)
        stop.set()
        for thread in senders:
            thread.join(timeout=30)
    assert process.returncode == -signal.SIGKILL

    if backend == "sqlite":
        with sqlite3.connect(db) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with server_process(store, port), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        stored = {item["trace_id"]: item for item in every_item(client, "/api/traces")}
        missing = set(acknowledged) - set(stored)
        assert not missing, f"{len(missing)} acknowledged traces lost"
        for trace_id, session_id in acknowledged.items():
            trace = stored[trace_id]
            assert (trace["span_count"], trace["session_id"]) == (SPANS_PER_TURN, session_id)
        # The rollups agree with the traces, also for a batch the kill cut short (whatever part of
        # it was stored): every session's count is its stored traces'.
        sessions = {item["session_id"]: item["trace_count"] for item in every_item(client, "/api/sessions")}
        counted: dict[str, int] = {}
        for trace in stored.values():
            counted[trace["session_id"]] = counted.get(trace["session_id"], 0) + 1
        assert sessions == counted


def every_item(client: httpx.Client, path: str) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.get(path, params=params).json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
