"""ResilientSpanExporter: spans wait (bounded) while the server is away and arrive once it is back."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from spanloom import register
from spanloom.sdk.export import ResilientSpanExporter

from ..conftest import Collector


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SwitchableExporter(SpanExporter):
    """Fails while `up` is false; records what it delivered."""

    def __init__(self) -> None:
        self.up = False
        self.delivered: list[str] = []
        self.attempts = 0

    def export(self, spans) -> SpanExportResult:
        self.attempts += 1
        if not self.up:
            return SpanExportResult.FAILURE
        self.delivered.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS


def spans(provider: TracerProvider, names: list[str]) -> list[ReadableSpan]:
    tracer = provider.get_tracer("t")
    made = []
    for name in names:
        span = tracer.start_span(name)
        span.end()
        made.append(span)
    return made


def test_waits_in_order_and_delivers_when_back():
    inner = SwitchableExporter()
    exporter = ResilientSpanExporter(inner, min_backoff_seconds=0.01, max_backoff_seconds=0.05)
    provider = TracerProvider()
    for index in range(5):
        assert exporter.export(spans(provider, [f"s{index}"])) is SpanExportResult.SUCCESS
    assert exporter.pending_spans == 5 and inner.delivered == []
    inner.up = True
    wait_for(lambda: exporter.pending_spans == 0)  # the retry thread, with no new export
    assert inner.delivered == [f"s{index}" for index in range(5)]
    exporter.shutdown()


def test_memory_is_bounded_and_drops_are_counted_and_logged_once(caplog):
    inner = SwitchableExporter()
    exporter = ResilientSpanExporter(inner, max_pending_spans=10, min_backoff_seconds=60)
    provider = TracerProvider()
    for index in range(30):
        exporter.export(spans(provider, [f"s{index}"]))
    assert exporter.pending_spans == 10
    assert exporter.dropped_spans == 20
    warnings = [record for record in caplog.records if "dropped" in record.getMessage()]
    assert len(warnings) == 1
    inner.up = True
    assert exporter.force_flush()
    assert inner.delivered == [f"s{index}" for index in range(20, 30)]  # the newest were kept
    exporter.shutdown()


def test_export_returns_at_once_while_the_server_is_down():
    inner = SwitchableExporter()
    exporter = ResilientSpanExporter(inner, min_backoff_seconds=60)
    provider = TracerProvider()
    exporter.export(spans(provider, ["first"]))
    attempts = inner.attempts
    for index in range(100):
        exporter.export(spans(provider, [f"s{index}"]))
    assert inner.attempts == attempts  # no attempt per batch while the backoff runs
    exporter.shutdown()


def test_shutdown_with_the_server_down_ends_within_its_timeout():
    inner = SwitchableExporter()
    exporter = ResilientSpanExporter(inner, shutdown_timeout_seconds=0.5)
    exporter.export(spans(TracerProvider(), ["lost"]))
    started = time.monotonic()
    exporter.shutdown()
    assert time.monotonic() - started < 2
    assert exporter.export(spans(TracerProvider(), ["late"])) is SpanExportResult.FAILURE


def test_app_against_a_stopped_server_then_started(monkeypatch):
    """Thousands of spans while nothing listens: bounded memory, then delivery once it is up."""
    port = free_port()
    monkeypatch.setenv("SPANLOOM_MAX_PENDING_SPANS", "1500")
    # A dead port on loopback refuses at once, so the timeout never slows the first half; it is
    # long enough that a busy machine's slow answer is not taken for a lost one and sent again
    # (at 0.5 s, under load, the collector received some batches twice).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "5")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4096")  # only our bound drops, so we can count
    provider = register(endpoint=f"http://127.0.0.1:{port}/v1/traces", set_global_tracer_provider=False)
    [batch_processor] = [
        p for p in provider._active_span_processor._span_processors if isinstance(p, BatchSpanProcessor)
    ]
    exporter: ResilientSpanExporter = batch_processor.span_exporter  # type: ignore[assignment]
    exporter._min_backoff = exporter._backoff = 0.05
    exporter._max_backoff = 0.2
    tracer = provider.get_tracer("app")

    started = time.monotonic()
    for index in range(3000):
        tracer.start_span(f"turn-{index}").end()
    app_seconds = time.monotonic() - started
    assert app_seconds < 5  # the app never waited for the dead server
    provider.force_flush(timeout_millis=100)  # hand the queue to the exporter (server still down)
    wait_for(lambda: exporter.pending_spans + exporter.dropped_spans == 3000)
    assert exporter.pending_spans <= 1500  # the bound
    assert exporter.delivered_spans == 0

    collector = Collector(port=port)
    try:
        wait_for(lambda: exporter.pending_spans == 0 and len(collector.spans()) >= 1)
        provider.force_flush()
        wait_for(lambda: exporter.pending_spans == 0)
        # OTLP delivery is at least once: a batch sent again counts once, as the server stores it.
        received = len({span.span_id for span in collector.spans()})
        assert received == exporter.delivered_spans
        assert received + exporter.dropped_spans == 3000
        assert received >= 1000
    finally:
        provider.shutdown()
        collector.server.shutdown()


def test_server_answering_503_then_200_loses_nothing():
    answers = iter([503, 503])

    def status() -> int:
        return next(answers, 200)

    collector = Collector(status=status)
    provider = register(endpoint=collector.base + "/v1/traces", set_global_tracer_provider=False, batch=False)
    tracer = provider.get_tracer("app")
    for index in range(3):
        tracer.start_span(f"turn-{index}").end()
    provider.force_flush()
    wait_for(lambda: len(collector.spans()) == 3)
    provider.shutdown()
    collector.server.shutdown()
    assert sorted(span.name for span in collector.spans()) == ["turn-0", "turn-1", "turn-2"]
