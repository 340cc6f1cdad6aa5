"""What spanloom's instrumentors add to a call, beside the floor and OpenInference, in one run.

Run: ``python benchmarks/instrumentation_overhead.py [--rounds 30] [--calls 200] [--streams 100]
[--invokes 100]``

Three cases: OpenAI's ``chat.completions.create``, a consumed 50-chunk stream, and LangChain's
``ChatOpenAI.invoke`` (``langchain-openai``, which calls the SDK through ``with_raw_response``).
Every call goes through the real ``openai`` client to an httpx2 MockTransport whose responses
are prebuilt bytes, so the transport costs little and the same for every side. Each round runs
every side once, in an order that rotates round by round, so drift in machine load hits all:

- bare: the call alone;
- spanloom: the call with spanloom's instrumentor (instrument() / uninstrument() around the
  side's turn);
- floor, in situ: the call inside a bare OpenTelemetry span made current around it, started and
  ended through the public API with as many attributes as spanloom's instrumentor records
  (half at start, half at end): what any instrumentor recording those attributes that way pays,
  with caches as cold as an instrumentor finds them next to the call;
- OpenInference: the call with ``openinference-instrumentation-openai``'s instrumentor, when
  installed (``pip install -e ".[bench]"``).

In the LangChain case "spanloom" is ``LangChainInstrumentor`` alone, "spanloom + OpenAI" adds
the OpenAI instrumentor (the model call still one span: LangChain's, with the provider's
details), and "OpenInference" is ``openinference-instrumentation-langchain``'s instrumentor.

Times are the thread's CPU time (``time.thread_time_ns``: on a shared machine, time spent
descheduled would otherwise swamp differences of a few percent of the call). "Added" is each
round's side minus that round's bare call (per call, or per consumed 50-chunk stream), then
the median over rounds; "fastest rounds" subtracts the fastest bare round from
the side's fastest. Everything runs inside ``using_attributes(session_id=..., user_id=...)``.
Spans go to a real TracerProvider with SessionSpanProcessor and a processor that drops ended
spans: in production a BatchSpanProcessor only queues the span on the caller's thread, which
this stands for (``--simple`` uses a SimpleSpanProcessor with a dropping exporter instead).

The targets: spanloom's added cost per call within 1.25x the floor's (a stream's floor is one
span around it that records no chunk, and LangChain's does no run bookkeeping: printed, not
held to), and at least 3x below OpenInference's per call, 4x per stream, 2x per LangChain
invoke.

Not a test: pytest never collects this directory.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx2
import openai
from opentelemetry.context import attach, detach
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, set_span_in_context

from spanloom import SessionSpanProcessor, using_attributes
from spanloom.instrumentation.langchain import LangChainInstrumentor
from spanloom.instrumentation.openai import OpenAIInstrumentor

CHUNKS = 50
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


def mocked_chat_model() -> Any:
    """LangChain's ChatOpenAI on the same mocked transport."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model="gpt-4o-mini",
        api_key="x",
        base_url="http://test/v1",
        max_retries=0,
        max_tokens=50,
        temperature=0.7,
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


_LANGCHAIN_MESSAGES = [(message["role"], message["content"]) for message in MESSAGES]


def _invoke(model: Any) -> None:
    model.invoke(_LANGCHAIN_MESSAGES)


def _timed(fn: Callable[[], None], calls: int) -> float:
    """CPU microseconds of this thread per call of `fn`, over `calls` calls: time the thread
    spends descheduled by the other processes of a shared machine does not count."""
    start = time.thread_time_ns()
    for _ in range(calls):
        fn()
    return (time.thread_time_ns() - start) / calls / 1000


def _recorded_attributes(target: Any, fn: Callable[[Any], None], instrumentor: Any) -> int:
    exporter = InMemorySpanExporter()
    instrumentor.instrument(tracer_provider=_provider(SimpleSpanProcessor(exporter)))
    with using_attributes(session_id="session-1", user_id="user-1"):
        fn(target)
    instrumentor.uninstrument()
    (span,) = exporter.get_finished_spans()
    return len(span.attributes or {})


def _floor(provider: TracerProvider, count: int, fn: Callable[[], None]) -> Callable[[], None]:
    """`fn` inside a bare span with `count` attributes through the public API, made current
    around it like an instrumentor's: half the attributes at start, half at end."""
    tracer = provider.get_tracer("floor")
    values = {f"attribute.{i}": (f"value {i}" if i % 3 else i) for i in range(count)}
    keys = list(values)
    start_attributes = {key: values[key] for key in keys[: count // 2]}
    end_attributes = {key: values[key] for key in keys[count // 2 :]}

    def one() -> None:
        span = tracer.start_span("floor", kind=SpanKind.CLIENT, attributes=start_attributes)
        token = attach(set_span_in_context(span))
        try:
            fn()
        finally:
            detach(token)
            span.set_attributes(end_attributes)
            span.end()

    return one


# A side: (set up, the body timed, tear down).
Side = tuple[Callable[[], None], Callable[[], None], Callable[[], None]]


def _nothing() -> None:
    pass


def _turn(provider: TracerProvider, *instrumentors: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """(set up, tear down) of a side instrumented by `instrumentors` for its turn."""

    def set_up() -> None:
        for instrumentor in instrumentors:
            instrumentor.instrument(tracer_provider=provider)

    def tear_down() -> None:
        for instrumentor in reversed(instrumentors):
            instrumentor.uninstrument()

    return set_up, tear_down


def _side(turn: tuple[Callable[[], None], Callable[[], None]], body: Callable[[], None]) -> Side:
    return turn[0], body, turn[1]


def _openai_sides(
    client: openai.OpenAI, provider: TracerProvider, fn: Callable[[openai.OpenAI], None], count: int
) -> dict[str, Side]:
    def call() -> None:
        fn(client)

    sides: dict[str, Side] = {
        "bare": (_nothing, call, _nothing),
        "spanloom": _side(_turn(provider, OpenAIInstrumentor()), call),
        "floor, in situ": (_nothing, _floor(provider, count, call), _nothing),
    }
    try:
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor
    except ImportError:
        return sides
    sides["OpenInference"] = _side(_turn(provider, OpenInferenceInstrumentor()), call)
    return sides


def _langchain_sides(model: Any, provider: TracerProvider, count: int) -> dict[str, Side]:
    def call() -> None:
        _invoke(model)

    sides: dict[str, Side] = {
        "bare": (_nothing, call, _nothing),
        "spanloom": _side(_turn(provider, LangChainInstrumentor()), call),
        "spanloom + OpenAI": _side(_turn(provider, LangChainInstrumentor(), OpenAIInstrumentor()), call),
        "floor, in situ": (_nothing, _floor(provider, count, call), _nothing),
    }
    try:
        from openinference.instrumentation.langchain import LangChainInstrumentor as OpenInferenceLangChain
    except ImportError:
        return sides
    sides["OpenInference"] = _side(_turn(provider, OpenInferenceLangChain()), call)
    return sides


def _measure(sides: dict[str, Side], rounds: int, calls: int) -> dict[str, list[float]]:
    """Per side, each round's µs per call minus that round's bare µs per call (bare: itself)."""
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    with using_attributes(session_id="session-1", user_id="user-1"):
        for name in names:  # warm every path once
            set_up, body, tear_down = sides[name]
            set_up()
            for _ in range(3):
                body()
            tear_down()
        for round_index in range(rounds):
            shift = round_index % len(names)  # rotate who goes first
            for name in names[shift:] + names[:shift]:
                set_up, body, tear_down = sides[name]
                set_up()
                gc.collect()
                times[name].append(_timed(body, calls))
                tear_down()
    return times


def _row(name: str, times: dict[str, list[float]], ours_side: str, count: int, target: float) -> tuple:
    """A table row and its verdicts: each side's median added µs per call (fastest rounds)."""
    bare = times["bare"]

    def added(side: str) -> float:
        return statistics.median(t - b for t, b in zip(times[side], bare, strict=True))

    def fastest(side: str) -> float:
        return min(times[side]) - min(bare)

    ours, floor = added(ours_side), added("floor, in situ")
    cells = [
        f"{statistics.median(bare):.1f}",
        f"**{ours:.1f}** ({fastest(ours_side):.1f})",
        f"{floor:.1f} ({fastest('floor, in situ'):.1f}), {count} attributes",
    ]
    verdicts = []
    if "OpenInference" in times:
        theirs = added("OpenInference")
        cells.append(f"{theirs:.1f} ({fastest('OpenInference'):.1f})")
        cells.append(f"{ours / floor:.2f}")
        cells.append(f"**{theirs / ours:.1f}x** (>= {target:.0f}x)" if target else f"{theirs / ours:.1f}x")
        if target:
            verdicts.append(("OpenInference / spanloom", name, theirs / ours, theirs / ours >= target))
    else:
        cells += ["not installed", f"{ours / floor:.2f}", ""]
    return f"| {name} | " + " | ".join(cells) + " |", ours / floor, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200, help="non-streamed calls per round")
    parser.add_argument("--streams", type=int, default=100, help="streams per round")
    parser.add_argument("--invokes", type=int, default=100, help="LangChain invokes per round")
    parser.add_argument("--simple", action="store_true", help="SimpleSpanProcessor + dropping exporter")
    args = parser.parse_args()

    client = mocked_client()
    provider = _provider(SimpleSpanProcessor(_DropExporter()) if args.simple else _DropProcessor())
    rows = []
    verdicts = []
    for name, fn, per_round, openinference_target in (
        ("`chat.completions.create`", _call, args.calls, 3.0),
        (f"{CHUNKS}-chunk stream, consumed", _stream, args.streams, 4.0),
    ):
        count = _recorded_attributes(client, fn, OpenAIInstrumentor())
        times = _measure(_openai_sides(client, provider, fn, count), args.rounds, per_round)
        row, to_floor, found = _row(name, times, "spanloom", count, openinference_target)
        rows.append(row)
        verdicts += found
        if fn is _call:
            # A stream's floor is one span around it and records no chunk, so only a call's
            # added cost has a floor to be held to.
            verdicts.append(("spanloom / floor", name, to_floor, to_floor <= 1.25))

    try:
        model = mocked_chat_model()
    except ImportError:
        rows.append("| LangChain `ChatOpenAI.invoke` | langchain-openai not installed |")
    else:
        count = _recorded_attributes(model, _invoke, LangChainInstrumentor())
        times = _measure(_langchain_sides(model, provider, count), args.rounds, args.invokes)
        name = "LangChain `ChatOpenAI.invoke`"
        row, _, found = _row(name, times, "spanloom", count, 2.0)
        rows.append(row)
        verdicts += found
        combined = _row(f"{name}, with the OpenAI instrumentor too", times, "spanloom + OpenAI", count, 0.0)
        rows.append(combined[0])

    processor = "SimpleSpanProcessor + dropping exporter" if args.simple else "a processor that drops"
    load = os.getloadavg()
    print(
        f"openai {openai.__version__}; SessionSpanProcessor + {processor}; {args.rounds} rotating rounds; "
        f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print(
        "| case | bare µs | added µs: spanloom | floor in situ | OpenInference "
        "| spanloom / floor (target <= 1.25 per call) | OpenInference / spanloom (target) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)
    print("\n(in brackets: from the fastest rounds)\n")
    for what, name, value, met in verdicts:
        print(f"{what}, {name}: {value:.2f}: {'met' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
