"""What the SDK costs on the caller's path, measured against the bare OpenTelemetry floor.

Run: ``python benchmarks/sdk_overhead.py [--rounds N]``. Prints a markdown table of the
nanoseconds per operation over interleaved rounds (the median, and the minimum: the round least
disturbed by the rest of the machine), and the ratios the SDK issue asks for, from the medians:
``using_session`` enter+exit against a bare attach/detach of the same key (at the root context,
and again inside a span, where no prebuilt context applies), and the cost the
SessionSpanProcessor adds to a span with ~20 attributes. Where OpenInference's
``openinference-instrumentation`` is installed (``pip install spanloom[bench]``), its
``using_session`` / ``using_attributes`` are measured in the same run for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from opentelemetry.context import attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from spanloom import SessionSpanProcessor, using_attributes, using_session

INNER_LOOPS = 20_000
SPAN_LOOPS = 10_000
ATTRIBUTES = {f"attribute.{index}": f"value-{index}" for index in range(20)}


class DropProcessor(SpanProcessor):
    """Ends spans nowhere: isolates span start/end from any export cost."""

    def on_end(self, span: ReadableSpan) -> None:
        pass


def per_op_ns(body: Callable[[int], None], loops: int) -> float:
    start = time.perf_counter_ns()
    body(loops)
    return (time.perf_counter_ns() - start) / loops


def bare_attach_detach(loops: int) -> None:
    for _ in range(loops):
        token = attach(set_value("session.id", "conv-42"))
        detach(token)


def bare_attach_detach_two_keys(loops: int) -> None:
    for _ in range(loops):
        token = attach(set_value("user.id", "alice", set_value("session.id", "conv-42")))
        detach(token)


def spanloom_using_session(loops: int) -> None:
    for _ in range(loops):
        with using_session("conv-42"):
            pass


def spanloom_using_attributes(loops: int) -> None:
    for _ in range(loops):
        with using_attributes(session_id="conv-42", user_id="alice"):
            pass


def inside_a_span(body: Callable[[int], None]) -> Callable[[int], None]:
    """`body` run with a span current, as in a request handler under server instrumentation:
    the context a block enters is then never the root one."""
    tracer = make_provider(False).get_tracer("bench")

    def run(loops: int) -> None:
        with tracer.start_as_current_span("request"):
            body(loops)

    return run


def span_body(provider: TracerProvider) -> Callable[[int], None]:
    tracer = provider.get_tracer("bench")

    def body(loops: int) -> None:
        with using_attributes(session_id="conv-42", user_id="alice"):
            for _ in range(loops):
                tracer.start_span("llm", attributes=ATTRIBUTES).end()

    return body


def make_provider(with_session_processor: bool) -> TracerProvider:
    provider = TracerProvider()
    if with_session_processor:
        provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(DropProcessor())
    return provider


def openinference_bodies() -> dict[str, tuple[Callable[[int], None], int]]:
    try:
        from openinference.instrumentation import using_attributes as oi_using_attributes
        from openinference.instrumentation import using_session as oi_using_session
    except ImportError:
        return {}

    def oi_session(loops: int) -> None:
        for _ in range(loops):
            with oi_using_session("conv-42"):
                pass

    def oi_attributes(loops: int) -> None:
        for _ in range(loops):
            with oi_using_attributes(session_id="conv-42", user_id="alice"):
                pass

    return {
        "openinference using_session enter+exit": (oi_session, INNER_LOOPS),
        "openinference using_attributes(session, user) enter+exit": (oi_attributes, INNER_LOOPS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds; the median is reported")
    rounds = parser.parse_args().rounds

    cases: dict[str, tuple[Callable[[int], None], int]] = {
        "bare OTel attach/detach (1 key): floor": (bare_attach_detach, INNER_LOOPS),
        "bare OTel attach/detach (1 key), inside a span": (inside_a_span(bare_attach_detach), INNER_LOOPS),
        "spanloom using_session enter+exit, inside a span": (
            inside_a_span(spanloom_using_session),
            INNER_LOOPS,
        ),
        "bare OTel attach/detach (2 keys)": (bare_attach_detach_two_keys, INNER_LOOPS),
        "spanloom using_session enter+exit": (spanloom_using_session, INNER_LOOPS),
        "spanloom using_attributes(session, user) enter+exit": (spanloom_using_attributes, INNER_LOOPS),
        "span start+end, 20 attributes, no SessionSpanProcessor": (
            span_body(make_provider(False)),
            SPAN_LOOPS,
        ),
        "span start+end, 20 attributes, with SessionSpanProcessor": (
            span_body(make_provider(True)),
            SPAN_LOOPS,
        ),
    }
    cases.update(openinference_bodies())
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for body, loops in cases.values():
        body(loops // 10)  # warm up
    # Interleaving the cases spreads any machine noise evenly over all of them.
    for _ in range(rounds):
        for name, (body, loops) in cases.items():
            samples[name].append(per_op_ns(body, loops))
    median = {name: statistics.median(values) for name, values in samples.items()}
    least = {name: min(values) for name, values in samples.items()}

    floor = median["bare OTel attach/detach (1 key): floor"]
    print(f"rounds: {rounds} (median of each), python {__import__('sys').version.split()[0]}\n")
    least_floor = least["bare OTel attach/detach (1 key): floor"]
    print("| operation | median ns/op | x floor | min ns/op | x floor (min) |")
    print("|---|---:|---:|---:|---:|")
    for name in cases:
        print(
            f"| {name} | {median[name]:,.0f} | {median[name] / floor:.2f} "
            f"| {least[name]:,.0f} | {least[name] / least_floor:.2f} |"
        )
    processor_cost = (
        median["span start+end, 20 attributes, with SessionSpanProcessor"]
        - median["span start+end, 20 attributes, no SessionSpanProcessor"]
    )
    session_ratio = median["spanloom using_session enter+exit"] / floor
    print()
    print(f"using_session / bare attach+detach: {session_ratio:.2f}x (target <= 1.5x)")
    nested_ratio = (
        median["spanloom using_session enter+exit, inside a span"]
        / median["bare OTel attach/detach (1 key), inside a span"]
    )
    print(f"inside a span (a context that is not the root): {nested_ratio:.2f}x")
    attributes_ratio = (
        median["spanloom using_attributes(session, user) enter+exit"]
        / median["bare OTel attach/detach (2 keys)"]
    )
    print(f"using_attributes(session, user) / bare attach+detach of 2 keys: {attributes_ratio:.2f}x")
    least_processor_cost = (
        least["span start+end, 20 attributes, with SessionSpanProcessor"]
        - least["span start+end, 20 attributes, no SessionSpanProcessor"]
    )
    print(
        f"SessionSpanProcessor adds per span: {processor_cost / 1000:.2f} us "
        f"(min rounds: {least_processor_cost / 1000:.2f} us; target < 2 us)"
    )
    if "openinference using_session enter+exit" in median:
        print(
            "openinference using_session / bare attach+detach: "
            f"{median['openinference using_session enter+exit'] / floor:.2f}x"
        )


if __name__ == "__main__":
    main()
