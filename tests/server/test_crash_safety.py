"""Kill -9 the server in the middle of a stream of batches: every span acknowledged (a 200 over
OTLP/HTTP, a successful export over OTLP/gRPC) survives."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from _server_kit import PROTOBUF, free_port, make_request, make_turn, server_process, wait_for
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanloom import SessionSpanProcessor, using_session, using_user

SPANS_PER_TURN = 3  # root, LLM child and a tool span
TURNS_PER_BATCH = 20


def sdk_batch(name: str, batch: int) -> tuple[list[ReadableSpan], dict[str, str]]:
    """A batch of turns as an app's SDK records them, and each trace's session."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("crash")
    sessions = {}
    for index in range(TURNS_PER_BATCH):
        session_id = f"{name}-s{batch}-{index % 4}"
        with using_session(session_id), using_user(f"user-{index % 3}"):
            with tracer.start_as_current_span(
                "turn", attributes={"input.value": f"question {index}"}
            ) as root:
                with tracer.start_as_current_span("llm", attributes={"llm.model_name": "gpt-4o-mini"}):
                    pass
                with tracer.start_as_current_span("search", attributes={"tool.name": "search"}):
                    pass
            sessions[format(root.get_span_context().trace_id, "032x")] = session_id
    provider.shutdown()
    return list(memory.get_finished_spans()), sessions


class Stream:
    """Two senders posting batches of turns until stopped, recording what was acknowledged."""

    def __init__(self, protocol: str, port: int, grpc_port: int) -> None:
        self.protocol = protocol
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        self.grpc_endpoint = f"http://127.0.0.1:{grpc_port}"
        self.acknowledged: dict[str, str] = {}  # trace id -> session id, for batches acknowledged
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.senders = [threading.Thread(target=self._send, args=(f"sender{i}",)) for i in range(2)]
        for thread in self.senders:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.senders:
            thread.join(timeout=30)

    def _send(self, name: str) -> None:
        if self.protocol == "grpc":
            self._send_grpc(name)
        else:
            self._send_http(name)

    def _send_grpc(self, name: str) -> None:
        # The real exporter: SUCCESS only once the server answered, after its commit. When the
        # server dies it retries until its deadline, then reports FAILURE.
        exporter = OTLPSpanExporter(endpoint=self.grpc_endpoint, insecure=True, timeout=3)
        batch = 0
        try:
            while not self.stop.is_set():
                spans, sessions = sdk_batch(name, batch)
                if exporter.export(spans) is not SpanExportResult.SUCCESS:
                    return  # the server went with this batch in flight: it may or may not be stored
                with self.lock:
                    self.acknowledged.update(sessions)
                batch += 1
        finally:
            exporter.shutdown()

    def _send_http(self, name: str) -> None:
        with httpx.Client(timeout=10) as client:
            batch = 0
            while not self.stop.is_set():
                turns = [
                    make_turn(
                        f"{name}-s{batch}-{index % 4}", f"user-{index % 3}", batch * 1000 + index, tool=True
                    )
                    for index in range(TURNS_PER_BATCH)
                ]
                body = make_request([span for _, spans in turns for span in spans]).SerializeToString()
                try:
                    response = client.post(self.url, content=body, headers=PROTOBUF)
                except httpx.TransportError:
                    return  # the server went with this batch in flight: it may or may not be stored
                if response.status_code == 200:
                    with self.lock:
                        for index, (trace_id, _) in enumerate(turns):
                            self.acknowledged[trace_id.hex()] = f"{name}-s{batch}-{index % 4}"
                batch += 1


def assert_all_stored(db: Path, port: int, acknowledged: dict[str, str]) -> None:
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with server_process(db, port), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        stored: dict[str, dict] = {}
        cursor = None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/traces", params=params).json()
            stored.update((item["trace_id"], item) for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        missing = set(acknowledged) - set(stored)
        assert not missing, f"{len(missing)} acknowledged traces lost"
        for trace_id, session_id in acknowledged.items():
            trace = stored[trace_id]
            assert (trace["span_count"], trace["session_id"]) == (SPANS_PER_TURN, session_id)
        # The rollups were committed with the spans: a session's count matches its traces.
        sample = next(iter(acknowledged.values()))
        session = client.get(f"/api/sessions/{sample}").json()
        assert session["trace_count"] == sum(1 for t in stored.values() if t["session_id"] == sample)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sigkill_mid_stream_loses_no_acknowledged_span(tmp_path: Path, protocol: str):
    db = tmp_path / "crash.db"
    port, grpc_port = free_port(), free_port()
    with server_process(db, port, grpc_port) as process:
        stream = Stream(protocol, port, grpc_port)
        wait_for(
            lambda: len(stream.acknowledged) >= 30 * TURNS_PER_BATCH,
            timeout=30,
            what="30 acknowledged batches",
        )
        os.kill(process.pid, signal.SIGKILL)  # no shutdown, no checkpoint, no flush
        process.wait(timeout=30)
        stream.join()
    assert process.returncode == -signal.SIGKILL
    assert_all_stored(db, port, stream.acknowledged)


def test_sigterm_mid_grpc_stream_closes_the_store_and_keeps_every_acknowledged_span(tmp_path: Path):
    # SIGTERM: uvicorn stops HTTP, the app's lifespan stops gRPC (exports in flight finish and
    # commit; new ones are refused), then the evaluators; the store closes, and only then does the
    # process end as SIGTERM ends it.
    db = tmp_path / "stopped.db"
    port, grpc_port = free_port(), free_port()
    with server_process(db, port, grpc_port) as process:
        stream = Stream("grpc", port, grpc_port)
        wait_for(
            lambda: len(stream.acknowledged) >= 10 * TURNS_PER_BATCH,
            timeout=30,
            what="10 acknowledged batches",
        )
        process.terminate()
        assert process.wait(timeout=45) == -signal.SIGTERM
        stream.join()
    # Closed, not cut short: the last connection's close checkpointed and removed the write-ahead log.
    assert not db.with_name(db.name + "-wal").exists()
    assert_all_stored(db, port, stream.acknowledged)
