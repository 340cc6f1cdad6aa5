"""Shared fixtures: each test builds its own tracing world."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanloom import SessionSpanProcessor
from tests.chdb_kit import require_chdb, test_stores

# The store backends the server, API, page and browser tests run on (tests/server/_server_kit.py):
# SQLite by default; SPANLOOM_TEST_STORE=chdb (CI's chDB stage) or sqlite,chdb.
STORE_BACKENDS = test_stores()


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    """The store backend of a test that runs on each (module-scoped: a module's shared server is
    built once per backend)."""
    if request.param == "chdb":
        require_chdb()
    return request.param


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        default=None,
        help="save the browser tests' screenshots in DIR, to look at them; by default they go to a"
        " temporary folder, so running the tests changes no tracked file (the README's come from"
        " scripts/screenshots.py)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long fuzz and load runs (`slow`) run only when the -m expression names them (`-m slow`),
    so that `-m "not browser"` leaves out the browser tests and nothing else."""
    if "slow" in config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(autouse=True)
def _process_settings_restored() -> Iterator[None]:
    """`serve` run in the test process (through click's CliRunner) tunes process-wide settings for
    a server: the thread switch interval and the garbage collector. Each test starts with the
    settings the one before it found."""
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    yield
    sys.setswitchinterval(interval)
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A fresh provider with the SessionSpanProcessor, exporting to memory."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SessionSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def bare_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A provider without SessionSpanProcessor: whatever ids land came from the code itself."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


class Collector:
    """A real OTLP/HTTP endpoint on loopback that records what it receives."""

    def __init__(self, port: int = 0, status: Callable[[], int] = lambda: 200) -> None:
        """`status` answers each request; only what is answered 200 counts as received."""
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = status()
                if code == 200:
                    received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(code)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                if code in (429, 503):
                    self.send_header("Retry-After", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list:
        names = []
        for _, _, body in self.requests:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    names.extend(scope_spans.spans)
        return names


@pytest.fixture
def collector():
    running = Collector()
    yield running
    running.server.shutdown()
