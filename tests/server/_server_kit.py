"""Helpers for the server tests: a real uvicorn in a thread, OTLP request builders, polling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from tests.chdb_kit import chdb_url

from spanloom.server.app import create_app
from spanloom.server.serving import ServeLimits, uvicorn_config
from spanloom.server.settings import Settings
from spanloom.server.store.base import Store
from spanloom.server.store.url import open_store

_T = TypeVar("_T")
PROTOBUF = {"Content-Type": "application/x-protobuf"}
BASE_TIME_NS = 1_750_000_000 * 10**9


@dataclass
class RunningServer:
    url: str
    store: Store
    settings: Settings
    client: httpx.Client
    app: Any = None
    grpc_target: str | None = None  # host:port of OTLP/gRPC, when run with grpc=True

    @property
    def traces_endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def get_json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def post_spans(
        self, request: ExportTraceServiceRequest, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.client.post(
            "/v1/traces", content=request.SerializeToString(), headers={**PROTOBUF, **(headers or {})}
        )


@contextmanager
def run_server(
    db_path: Path,
    *,
    log_level: str = "warning",
    backend: str = "sqlite",
    limits: ServeLimits | None = None,
    app_options: dict[str, Any] | None = None,
    grpc: bool = False,
    **overrides: Any,
) -> Iterator[RunningServer]:
    """A real uvicorn on 127.0.0.1, port 0, in a background thread, over a fresh store (the SQLite
    file `db_path`, or with backend "chdb" a chDB store of `db_path`'s directory), configured as
    `spanloom serve` configures it (timeouts, connection limit, proxy trust); with `grpc`,
    OTLP/gRPC too, on another free port, as `serve` runs it. `app_options` go to create_app (a
    fake clock, a MockTransport for the LLM judge)."""
    settings = Settings(db_path=db_path, **overrides)
    url = f"sqlite:///{db_path}" if backend == "sqlite" else chdb_url(db_path.parent)
    store = open_store(
        url,
        queue_size=settings.write_queue_size,
        max_batch_spans=settings.max_batch_spans,
        max_db_pages=settings.max_db_pages,
    )
    app = create_app(settings, store, ("127.0.0.1", 0) if grpc else None, **(app_options or {}))
    config = uvicorn_config(app, "127.0.0.1", 0, limits or ServeLimits(), log_level)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), what="uvicorn to start")
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=30)
    grpc_target = f"127.0.0.1:{app.state.grpc.port}" if grpc else None
    try:
        yield RunningServer(url, store, settings, client, app, grpc_target)
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
        store.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server_process(
    db: Path | str, port: int, grpc_port: int = 0, options: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen]:
    """`spanloom serve` in a process of its own (for crashes and for measuring its memory), on the
    SQLite file `db` or the store URL `db`; OTLP/gRPC on `grpc_port`, none by default (4317 may be
    taken by anything on the machine); `options`: more of serve's options."""
    store = ["--store", db] if isinstance(db, str) else ["--db", str(db)]
    command = [sys.executable, "-m", "spanloom.cli", "serve", "--port", str(port), *store]
    command += ["--grpc-port", str(grpc_port), *options]
    process = subprocess.Popen(
        [*command, "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:

        def ready() -> bool:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/projects", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=30, what="spanloom serve to answer")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()


def wait_for(condition: Callable[[], _T], timeout: float = 15.0, what: str = "condition") -> _T:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# --- OTLP builders ---
def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    return AnyValue(string_value=str(value))


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def length_delimited(field: int, payload: bytes) -> bytes:
    """One protobuf field of wire type 2, by hand: for bodies the protobuf library will not build."""
    tag, length = (field << 3) | 2, len(payload)
    encoded = bytearray([tag])
    while True:
        byte, length = length & 0x7F, length >> 7
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(encoded) + payload


def new_trace_id() -> bytes:
    return os.urandom(16)


def new_span_id() -> bytes:
    return os.urandom(8)


def make_span(
    trace_id: bytes,
    span_id: bytes,
    parent_span_id: bytes = b"",
    name: str = "span",
    start_ms: float = 0,
    duration_ms: float = 10,
    attributes: dict[str, Any] | None = None,
    error: bool = False,
) -> Span:
    start = BASE_TIME_NS + int(start_ms * 1e6)
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1e6),
        attributes=key_values(attributes or {}),
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK),
    )


def make_request(spans: list[Span], resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        key_values({"project.name": "test"} if resource is None else resource)
    )
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


def make_turn(
    session_id: str | None,
    user_id: str | None,
    start_ms: float = 0,
    *,
    question: str = "question",
    answer: str = "answer",
    error: bool = False,
    ids_on_child_only: bool = False,
    model: str = "gpt-4o-mini",
    tokens: tuple[int, int] = (100, 20),
    extra: dict[str, Any] | None = None,
    duration_ms: float = 100,
    tool: bool = False,
) -> tuple[bytes, list[Span]]:
    """A root CHAIN span and a child LLM span; ids on both (or only the child)."""
    trace_id, root_id, child_id = new_trace_id(), new_span_id(), new_span_id()
    ids = {}
    if session_id:
        ids["session.id"] = session_id
    if user_id:
        ids["user.id"] = user_id
    root_attributes = {"openinference.span.kind": "CHAIN", "input.value": question, "output.value": answer}
    if not ids_on_child_only:
        root_attributes.update(ids)
    root_attributes.update(extra or {})
    child_attributes = {
        "openinference.span.kind": "LLM",
        "llm.model_name": model,
        "llm.token_count.prompt": tokens[0],
        "llm.token_count.completion": tokens[1],
        **ids,
    }
    root = make_span(trace_id, root_id, b"", "turn", start_ms, duration_ms, root_attributes)
    child = make_span(
        trace_id, child_id, root_id, "llm", start_ms + 1, duration_ms / 2, child_attributes, error
    )
    spans = [root, child]
    if tool:
        tool_attributes = {"openinference.span.kind": "TOOL", "tool.name": "search"}
        spans.append(make_span(trace_id, new_span_id(), root_id, "search", start_ms + 2, 1, tool_attributes))
    return trace_id, spans
