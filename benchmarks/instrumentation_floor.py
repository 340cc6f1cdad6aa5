"""What any OpenTelemetry instrumentor pays around a call, layer by layer, before recording anything.

Run: ``python benchmarks/instrumentation_floor.py [--rounds 30] [--calls 200]``

The same mocked ``chat.completions.create`` as ``instrumentation_overhead.py``, wrapped by hand in
growing layers, interleaved round by round (the order flips each round), each figure the median
over rounds of the mean per call, minus the bare call:

- a pass-through wrapper (one Python frame);
- the SDK's ``start_span`` + ``end`` around the call, no attributes, on a provider with no
  processors;
- the same on the provider ``instrumentation_overhead.py`` uses (``SessionSpanProcessor`` and a
  processor that drops ended spans);
- spanloom's OpenAI instrumentor on that provider, and on one without ``SessionSpanProcessor``.

It shows how much of an instrumentor's added cost is the SDK span itself, measured next to the
call (where the SDK's own code has left the caches cold), before a single attribute is recorded.

Not a test: pytest never collects this directory.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import openai
from instrumentation_overhead import _call, _DropProcessor, _provider, mocked_client
from openai.resources.chat.completions import Completions
from opentelemetry.sdk.trace import TracerProvider

from spanloom import using_attributes
from spanloom.instrumentation.openai import OpenAIInstrumentor


def _span_around(provider: TracerProvider, original: Callable[..., Any]) -> Callable[..., Any]:
    tracer = provider.get_tracer("floor")

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = tracer.start_span("ChatCompletion")
        try:
            return original(self, *args, **kwargs)
        finally:
            span.end()

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    client = mocked_client()
    original = Completions.create
    benchmark_provider = _provider(_DropProcessor())
    bare_provider = TracerProvider()
    drop_only_provider = TracerProvider()
    drop_only_provider.add_span_processor(_DropProcessor())
    instrumentor = OpenAIInstrumentor()

    def pass_through(self: Any, *call_args: Any, **kwargs: Any) -> Any:
        return original(self, *call_args, **kwargs)

    layers: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "bare call": (lambda: None, lambda: None),
        "a pass-through wrapper": (
            lambda: setattr(Completions, "create", pass_through),
            lambda: setattr(Completions, "create", original),
        ),
        "SDK span start+end, no attributes, no processors": (
            lambda: setattr(Completions, "create", _span_around(bare_provider, original)),
            lambda: setattr(Completions, "create", original),
        ),
        "the same, SessionSpanProcessor + a dropping processor": (
            lambda: setattr(Completions, "create", _span_around(benchmark_provider, original)),
            lambda: setattr(Completions, "create", original),
        ),
        "spanloom's instrumentor (28 attributes), same provider": (
            lambda: instrumentor.instrument(tracer_provider=benchmark_provider),
            instrumentor.uninstrument,
        ),
        "spanloom's instrumentor, a dropping processor only": (
            lambda: instrumentor.instrument(tracer_provider=drop_only_provider),
            instrumentor.uninstrument,
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in layers}
    names = list(layers)
    with using_attributes(session_id="session-1", user_id="user-1"):
        for _ in range(20):
            _call(client)
        for round_index in range(args.rounds):
            for name in names if round_index % 2 == 0 else reversed(names):
                install, remove = layers[name]
                install()
                gc.collect()
                start = time.perf_counter_ns()
                for _ in range(args.calls):
                    _call(client)
                samples[name].append((time.perf_counter_ns() - start) / args.calls / 1000)
                remove()
    bare = statistics.median(samples["bare call"])
    print(f"openai {openai.__version__}; {args.rounds} interleaved rounds of {args.calls} calls; medians\n")
    print("| around `chat.completions.create` | µs per call | added µs |")
    print("|---|---:|---:|")
    for name in names:
        median = statistics.median(samples[name])
        print(f"| {name} | {median:.1f} | {median - bare:.1f} |")


if __name__ == "__main__":
    main()
