"""Decoding processes (server/ingest/decode_processes.py): what they hand back is what the server's
own process would have built, their refusals are the same, a process that dies costs at most the
request it held, and none outlives the server."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _server_kit import (
    PROTOBUF,
    free_port,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
    run_server,
    server_process,
    wait_for,
)
from fastapi.testclient import TestClient

from spanloom.server.app import create_app
from spanloom.server.ingest.decode import UndecodableBodyError
from spanloom.server.ingest.decode_processes import DecodeProcesses, DecodeProcessesClosedError
from spanloom.server.ingest.limits import IngestLimits, TooManySpansError
from spanloom.server.ingest.request_decoding import decode_request
from spanloom.server.pricing import load_price_table
from spanloom.server.settings import Settings
from spanloom.server.store.sqlite import span_rows
from spanloom.server.store.url import open_store

LIMITS = IngestLimits(max_spans_per_request=50)
# Long enough to be stored once per trace (span_rows.SHARED_TEXT_MIN): the agent's answer is its
# model call's, as in real traces.
ANSWER = "The order ships on Tuesday from the Lyon warehouse, tracking number to follow."


def _body(turns: int = 4) -> bytes:
    """`turns` turns of two sessions: a CHAIN span and its LLM call, both answering ANSWER."""
    spans = []
    for turn in range(turns):
        trace_id, root_id = new_trace_id(), new_span_id()
        ids = {"session.id": f"s-{turn % 2}", "user.id": "u-1"}
        question = f"where is order {turn}?"
        chain = {"openinference.span.kind": "CHAIN", "input.value": question, "output.value": ANSWER}
        llm = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "output.value": ANSWER}
        spans.append(make_span(trace_id, root_id, b"", "turn", turn * 1000, 100, {**chain, **ids}))
        spans.append(make_span(trace_id, new_span_id(), root_id, "llm", turn * 1000 + 10, 80, {**llm, **ids}))
    return make_request(spans, {"project.name": "shop", "deployment": "eu"}).SerializeToString()


@pytest.fixture(scope="module")
def processes() -> Iterator[DecodeProcesses]:
    pool = DecodeProcesses(1, LIMITS, None, span_rows.prepare)
    yield pool
    pool.close()


def test_a_request_decoded_in_a_process_is_what_the_server_process_builds(processes: DecodeProcesses) -> None:
    body = _body()
    here = decode_request(body, False, load_price_table(None), LIMITS, span_rows.prepare)
    there = processes.decode(body, False)

    assert span_rows.is_prepared(there.spans)
    assert list(there.spans) == list(here.spans)
    assert there.spans.rows == here.spans.rows
    assert there.spans.rollups == here.spans.rollups
    assert there.spans.trace_projects == here.spans.trace_projects
    assert there.spans.resources == here.spans.resources
    # The answer is stored once per trace: the later span's row names the earlier one.
    assert sum(row[27] == ANSWER for row in there.spans.rows) == 4
    assert sum(row[32] is not None for row in there.spans.rows) == 4
    assert (there.rejected, there.error_message) == (0, "")


def test_refusals_are_raised_as_in_the_server_process(processes: DecodeProcesses) -> None:
    with pytest.raises(UndecodableBodyError, match="not an OTLP protobuf"):
        processes.decode(b"\x0a\xff\xff\xff", False)
    with pytest.raises(UndecodableBodyError, match="not valid JSON"):
        processes.decode(b"{", True)
    too_many = make_request([make_span(new_trace_id(), new_span_id()) for _ in range(51)])
    with pytest.raises(TooManySpansError, match="51 spans in one request"):
        processes.decode(too_many.SerializeToString(), False)
    # Spans with bad ids are counted, the others kept.
    mixed = make_request([make_span(bytes(16), new_span_id()), make_span(new_trace_id(), new_span_id())])
    batch = processes.decode(mixed.SerializeToString(), False)
    assert (len(batch.spans), batch.rejected) == (1, 1)


def test_a_killed_process_costs_at_most_the_request_it_held(processes: DecodeProcesses) -> None:
    body = _body(2)
    processes.decode(body, False)  # started
    killed = {child.pid for child in multiprocessing.active_children()}
    assert killed
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not killed & {child.pid for child in multiprocessing.active_children()}, what="the kill")

    try:
        processes.decode(body, False)
    except Exception as error:  # the pool may learn of the death from this request
        assert type(error).__name__ == "DecodeProcessError", error
    batch = processes.decode(body, False)

    assert len(batch.spans) == 4
    assert {child.pid for child in multiprocessing.active_children()}.isdisjoint(killed)


def test_an_app_starts_its_processes_when_served_not_when_built(tmp_path: Path) -> None:
    before = set(multiprocessing.active_children())
    store = open_store(f"sqlite:///{tmp_path / 'spanloom.db'}")
    try:
        app = create_app(Settings(db_path=tmp_path / "spanloom.db", decode_processes=1), store, None)
        assert set(multiprocessing.active_children()) == before
        with TestClient(app):
            wait_for(lambda: set(multiprocessing.active_children()) - before, what="the decoding process")
        assert app.state.ingest.processes is not None
        wait_for(lambda: set(multiprocessing.active_children()) <= before, what="the process to stop")
    finally:
        store.close()


def test_closed_processes_refuse_for_a_retry() -> None:
    pool = DecodeProcesses(1, LIMITS)
    pool.close()
    with pytest.raises(DecodeProcessesClosedError):
        pool.decode(_body(1), False)


def test_a_server_with_decoding_processes_stores_and_refuses_as_without(
    tmp_path: Path, store_backend: str
) -> None:
    with run_server(tmp_path / "spanloom.db", backend=store_backend, decode_processes=1) as server:
        assert server.app.state.ingest.processes is not None
        response = server.client.post("/v1/traces", content=_body(), headers=PROTOBUF)
        assert response.status_code == 200, response.text

        sessions = server.get_json("/api/sessions", project="shop")["items"]
        assert sorted((item["session_id"], item["trace_count"]) for item in sessions) == [
            ("s-0", 2),
            ("s-1", 2),
        ]
        detail = server.get_json("/api/sessions/s-1", project="shop")
        assert [turn["output"] for turn in detail["turns"]] == [ANSWER, ANSWER]
        # Both spans of a turn give the answer, which the row built in the process stored once.
        trace = server.get_json(f"/api/traces/{detail['turns'][0]['trace_id']}")
        assert [span["output"] for span in trace["spans"]] == [ANSWER, ANSWER]

        undecodable = server.client.post("/v1/traces", content=b"\x0a\xff\xff", headers=PROTOBUF)
        assert undecodable.status_code == 400
        assert undecodable.json()["error"]["code"] == "undecodable"
        as_json = server.client.post(
            "/v1/traces",
            content=json.dumps({"resourceSpans": "no"}),
            headers={"Content-Type": "application/json"},
        )
        assert as_json.status_code == 400


def _children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _gone(pid: int) -> bool:
    """Exited (a zombie no one reaped counts: the container's init may not reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_no_decoding_process_outlives_a_killed_server(tmp_path: Path) -> None:
    port = free_port()
    with server_process(tmp_path / "spanloom.db", port, options=("--decode-processes", "1")) as server:
        body = _body(1)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=body, headers=PROTOBUF, timeout=30)
        assert answer.status_code == 200
        children = wait_for(lambda: _children(server.pid), what="the decoding process")
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    wait_for(lambda: all(_gone(pid) for pid in children), timeout=20, what="the server's children to exit")


def test_the_number_of_decoding_processes_is_read_from_the_environment() -> None:
    assert Settings.from_env({"SPANLOOM_DECODE_PROCESSES": "0"}).decode_processes == 0
    assert Settings.from_env({"SPANLOOM_DECODE_PROCESSES": "3"}).decode_processes == 3
    assert Settings.from_env({}).decode_processes is None
    expected = max(0, min(len(os.sched_getaffinity(0)) - 1, 2))
    assert Settings.from_env({}).decode_process_count() == expected
    assert Settings.from_env({"SPANLOOM_STORE": "sqlite:////tmp/x.db"}).decode_process_count() == expected
    # chDB's engine takes the CPUs in the server's own process.
    assert Settings.from_env({"SPANLOOM_STORE": "chdb:///tmp/ch"}).decode_process_count() == 0
    assert (
        Settings.from_env(
            {"SPANLOOM_STORE": "chdb:///tmp/ch", "SPANLOOM_DECODE_PROCESSES": "1"}
        ).decode_process_count()
        == 1
    )
    with pytest.raises(ValueError, match="SPANLOOM_DECODE_PROCESSES must be 0 or a positive integer"):
        Settings.from_env({"SPANLOOM_DECODE_PROCESSES": "-1"})
    assert Settings().decode_processes == 0  # apps built in tests decode in their own process
