"""What spanloom's OpenAI instrumentor adds to a call, against the same mocked transport.

Run: ``.venv/bin/python benchmarks/instrumentation_overhead.py [--rounds 40] [--calls 200]``

Every call goes through the real ``openai`` client to an httpx2 MockTransport whose responses
are prebuilt bytes, so the transport costs little and the same for both sides. Bare and
instrumented rounds alternate (instrument() / uninstrument() between them) so that drift in
machine load hits both; each figure is the median over rounds of the mean per call (or per
stream). "fastest rounds" subtracts the fastest bare round from the fastest instrumented one:
on a shared machine, the rounds other processes disturbed least. Everything runs inside
``using_attributes(session_id=..., user_id=...)``.

Spans go to a real TracerProvider with SessionSpanProcessor and a processor that drops ended
spans: in production a BatchSpanProcessor only queues the span on the caller's thread, which
this stands for (``--simple`` uses a SimpleSpanProcessor with a dropping exporter instead).

The floor is a bare OpenTelemetry span on that same provider, started and ended through the
public API with as many attributes as the instrumentor records: what any instrumentor
recording those attributes that way pays. It is measured twice: in situ (each span next to a
bare SDK call, interleaved like the rest, where caches are as cold as the instrumentor finds
them) and alone in a tight loop.

Not a test: pytest never collects this directory.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence

import httpx2
import openai
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanloom import SessionSpanProcessor, using_attributes
from spanloom.instrumentation.openai import OpenAIInstrumentor

CHUNKS = 50
TARGET_CALL_US = 50.0
TARGET_STREAM_US = 150.0
MESSAGES = [
    {"role": "system", "content": "You are a poet."},
    {"role": "user", "content": "Write a haiku about autumn."},
]

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Leaves drift on cold wind / the pond keeps their names",
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 24, "completion_tokens": 14, "total_tokens": 38},
    }
).encode()


def _stream_body() -> bytes:
    base = {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
    }
    chunks = []
    for index in range(CHUNKS - 2):
        delta = {"content": f"word{index} "}
        if index == 0:
            delta["role"] = "assistant"
        chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append(
        {**base, "choices": [], "usage": {"prompt_tokens": 24, "completion_tokens": 48, "total_tokens": 72}}
    )
    lines = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    return b"".join(lines) + b"data: [DONE]\n\n"


_STREAM = _stream_body()
_JSON_HEADERS = {"content-type": "application/json"}
_SSE_HEADERS = {"content-type": "text/event-stream"}


def _handler(request: httpx2.Request) -> httpx2.Response:
    if b'"stream":true' in request.content or b'"stream": true' in request.content:
        return httpx2.Response(200, content=_STREAM, headers=_SSE_HEADERS)
    return httpx2.Response(200, content=_COMPLETION, headers=_JSON_HEADERS)


class _DropExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _DropProcessor(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        pass


def mocked_client() -> openai.OpenAI:
    """The real OpenAI client, its HTTP answered by `_handler` (no network)."""
    return openai.OpenAI(
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(_handler)),
    )


def _provider(last: SpanProcessor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(last)
    return provider


def _call(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50, temperature=0.7)


def _stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass


def _timed(fn: Callable[[], None], calls: int) -> tuple[float, float]:
    """(wall-clock, CPU) microseconds per call of `fn`, over `calls` calls."""
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - wall) / calls / 1000, (time.process_time_ns() - cpu) / calls / 1000


def _added(bare: list[tuple[float, float]], other: list[tuple[float, float]]) -> tuple[float, float]:
    """Median of `other` minus median of `bare`, for each clock."""
    return tuple(  # type: ignore[return-value]
        statistics.median(o[clock] for o in other) - statistics.median(b[clock] for b in bare)
        for clock in (0, 1)
    )


def _recorded_attributes(client: openai.OpenAI, fn: Callable[[openai.OpenAI], None]) -> int:
    exporter = InMemorySpanExporter()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=_provider(SimpleSpanProcessor(exporter)))
    with using_attributes(session_id="session-1", user_id="user-1"):
        fn(client)
    instrumentor.uninstrument()
    (span,) = exporter.get_finished_spans()
    return len(span.attributes or {})


def _floor_span(provider: TracerProvider, count: int) -> Callable[[], None]:
    """A bare span with `count` attributes through the public API: half at start, half at end."""
    tracer = provider.get_tracer("floor")
    values = {f"attribute.{i}": (f"value {i}" if i % 3 else i) for i in range(count)}
    keys = list(values)
    start_attributes = {key: values[key] for key in keys[: count // 2]}
    end_attributes = {key: values[key] for key in keys[count // 2 :]}

    def one() -> None:
        span = tracer.start_span("floor", attributes=start_attributes)
        span.set_attributes(end_attributes)
        span.end()

    return one


def _floor_alone_us(span: Callable[[], None], rounds: int, calls: int) -> float:
    with using_attributes(session_id="session-1", user_id="user-1"):
        return statistics.median(_timed(span, calls)[0] for _ in range(rounds))


def _floor_in_situ_us(
    client: openai.OpenAI,
    fn: Callable[[openai.OpenAI], None],
    span: Callable[[], None],
    rounds: int,
    calls: int,
) -> tuple[float, float]:
    bare, with_span = [], []
    with using_attributes(session_id="session-1", user_id="user-1"):
        for _ in range(rounds):
            gc.collect()
            bare.append(_timed(lambda: fn(client), calls))
            gc.collect()
            with_span.append(_timed(lambda: (fn(client), span()), calls))
    return _added(bare, with_span)


def _compare(
    client: openai.OpenAI,
    instrumentor: OpenAIInstrumentor,
    provider: TracerProvider,
    fn: Callable[[openai.OpenAI], None],
    rounds: int,
    calls: int,
) -> tuple[float, float, tuple[float, float], float]:
    """(bare µs, instrumented µs, added µs per clock, added µs between the fastest rounds).

    The first three are medians over rounds of per-call means. The last compares each side's
    fastest round: on a shared machine, the rounds least disturbed by other processes.
    """
    bare: list[tuple[float, float]] = []
    traced: list[tuple[float, float]] = []
    for _ in range(3):  # warm both paths
        fn(client)
    with using_attributes(session_id="session-1", user_id="user-1"):
        for round_index in range(rounds):
            # Alternate which side goes first, so neither always runs on a warmer cache.
            order = (False, True) if round_index % 2 == 0 else (True, False)
            for instrumented in order:
                if instrumented:
                    instrumentor.instrument(tracer_provider=provider)
                gc.collect()
                result = _timed(lambda: fn(client), calls)
                if instrumented:
                    instrumentor.uninstrument()
                    traced.append(result)
                else:
                    bare.append(result)
    bare_wall = statistics.median(b[0] for b in bare)
    traced_wall = statistics.median(t[0] for t in traced)
    fastest = min(t[0] for t in traced) - min(b[0] for b in bare)
    return bare_wall, traced_wall, _added(bare, traced), fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=200, help="non-streamed calls per round")
    parser.add_argument("--streams", type=int, default=40, help="streams per round")
    parser.add_argument("--simple", action="store_true", help="SimpleSpanProcessor + dropping exporter")
    args = parser.parse_args()

    client = mocked_client()
    provider = _provider(SimpleSpanProcessor(_DropExporter()) if args.simple else _DropProcessor())
    instrumentor = OpenAIInstrumentor()

    rows = []
    for name, fn, per_round, target in (
        ("`chat.completions.create`", _call, args.calls, TARGET_CALL_US),
        (f"{CHUNKS}-chunk stream, consumed", _stream, args.streams, TARGET_STREAM_US),
    ):
        count = _recorded_attributes(client, fn)
        bare, traced, added, fastest = _compare(client, instrumentor, provider, fn, args.rounds, per_round)
        span = _floor_span(provider, count)
        in_situ = _floor_in_situ_us(client, fn, span, args.rounds, per_round)
        alone = _floor_alone_us(span, args.rounds, args.calls)
        rows.append((name, bare, traced, added, fastest, target, count, in_situ, alone))

    processor = "SimpleSpanProcessor + dropping exporter" if args.simple else "a processor that drops"
    print(
        f"openai {openai.__version__}; SessionSpanProcessor + {processor}; {args.rounds} interleaved "
        "rounds; medians of per-call means; CPU = time.process_time_ns (time descheduled excluded)\n"
    )
    print(
        "| case | bare µs | instrumented µs | added µs | added µs, CPU | added µs, fastest rounds "
        "| target µs | attributes | floor in situ µs (CPU) | floor alone µs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, bare, traced, (added, added_cpu), fastest, target, count, (situ, situ_cpu), alone in rows:
        verdict = "ok" if added <= target else "over"
        print(
            f"| {name} | {bare:.1f} | {traced:.1f} | **{added:.1f}** ({verdict}) | {added_cpu:.1f} "
            f"| {fastest:.1f} | {target:.0f} | {count} | {situ:.1f} ({situ_cpu:.1f}) | {alone:.1f} |"
        )


if __name__ == "__main__":
    main()
