"""What the SDK costs on the caller's path, with the ids a real application has.

Run: ``python benchmarks/sdk_overhead.py [--rounds N] [--ids N]``.

A server enters a different session (and user) for each request, so by default every block
enters an id never entered before: each case of each round gets ``--ids`` new ids (20,000, more
than any cache could hold), UUID session ids and e-mail user ids, for spanloom, for the bare
OpenTelemetry floor and for OpenInference alike. The same-id case (one id entered over and
over) is printed beside it.

The floor is what any such helper must do at least: ``attach(set_value(key, id))`` then
``detach(token)`` with OpenTelemetry's public API (two ``set_value`` for two keys). Each case runs
right beside its floor, in an order that flips every round, timed in the thread's CPU time, and
the table gives the median over rounds of that pair's ratio (a change in the machine's load
disturbs a side-by-side pair least), then the ratio of the two fastest rounds. OpenInference's
``openinference-instrumentation`` is measured in the same run when installed
(``pip install -e ".[bench]"``). Also measured: what SessionSpanProcessor adds to a span with 20
attributes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from opentelemetry.context import attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from spanloom import SessionSpanProcessor, using_attributes, using_session, using_user

SPAN_LOOPS = 10_000
ATTRIBUTES = {f"attribute.{index}": f"value-{index}" for index in range(20)}
SAME_SESSION = "3f0c9a52-8d4e-4b8e-9a51-2c1f5e7d9b10"
SAME_USER = "customer-004217@example.com"
TARGETS = {"using_session": 1.5, "using_user": 1.5, "using_attributes": 2.0}

Body = Callable[[list[str], list[str]], None]


class DropProcessor(SpanProcessor):
    """Ends spans nowhere: isolates span start/end from any export cost."""

    def on_end(self, span: ReadableSpan) -> None:
        pass


def make_provider(with_session_processor: bool) -> TracerProvider:
    provider = TracerProvider()
    if with_session_processor:
        provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(DropProcessor())
    return provider


# --- the floor: OpenTelemetry's public API, one block per id ---
def floor_one_key(sessions: list[str], users: list[str]) -> None:
    for session_id in sessions:
        token = attach(set_value("session.id", session_id))
        detach(token)


def floor_user_key(sessions: list[str], users: list[str]) -> None:
    for user_id in users:
        token = attach(set_value("user.id", user_id))
        detach(token)


def floor_two_keys(sessions: list[str], users: list[str]) -> None:
    for session_id, user_id in zip(sessions, users, strict=True):
        token = attach(set_value("user.id", user_id, set_value("session.id", session_id)))
        detach(token)


# --- spanloom ---
def spanloom_session(sessions: list[str], users: list[str]) -> None:
    for session_id in sessions:
        with using_session(session_id):
            pass


def spanloom_user(sessions: list[str], users: list[str]) -> None:
    for user_id in users:
        with using_user(user_id):
            pass


def spanloom_attributes(sessions: list[str], users: list[str]) -> None:
    for session_id, user_id in zip(sessions, users, strict=True):
        with using_attributes(session_id=session_id, user_id=user_id):
            pass


def inside_a_span(body: Body) -> Body:
    """`body` run with a span current, as in a request handler under server instrumentation:
    the context a block enters is then never the root one."""
    tracer = make_provider(False).get_tracer("bench")

    def run(sessions: list[str], users: list[str]) -> None:
        with tracer.start_as_current_span("request"):
            body(sessions, users)

    return run


def openinference_bodies() -> dict[str, Body]:
    try:
        from openinference.instrumentation import using_attributes as oi_using_attributes
        from openinference.instrumentation import using_session as oi_using_session
        from openinference.instrumentation import using_user as oi_using_user
    except ImportError:
        return {}

    def session(sessions: list[str], users: list[str]) -> None:
        for session_id in sessions:
            with oi_using_session(session_id):
                pass

    def user(sessions: list[str], users: list[str]) -> None:
        for user_id in users:
            with oi_using_user(user_id):
                pass

    def attributes(sessions: list[str], users: list[str]) -> None:
        for session_id, user_id in zip(sessions, users, strict=True):
            with oi_using_attributes(session_id=session_id, user_id=user_id):
                pass

    return {"using_session": session, "using_user": user, "using_attributes": attributes}


def span_body(provider: TracerProvider) -> Body:
    tracer = provider.get_tracer("bench")

    def body(sessions: list[str], users: list[str]) -> None:
        with using_attributes(session_id=SAME_SESSION, user_id=SAME_USER):
            for _ in range(SPAN_LOOPS):
                tracer.start_span("llm", attributes=ATTRIBUTES).end()

    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds; median and min reported")
    parser.add_argument("--ids", type=int, default=20_000, help="distinct ids per round (one per block)")
    options = parser.parse_args()

    def new_ids() -> tuple[list[str], list[str]]:
        """Realistic ids, new strings never entered before: UUID sessions, e-mail users."""
        sessions = [str(uuid.uuid4()) for _ in range(options.ids)]
        users = [f"customer-{uuid.uuid4().int % 10**9:09d}@example.com" for _ in range(options.ids)]
        return sessions, users

    distinct = new_ids()
    same = ([SAME_SESSION] * options.ids, [SAME_USER] * options.ids)

    # (row, column) -> (body, ids); "new" = a new id every block, "same" = one id throughout.
    cases: dict[tuple[str, str], tuple[Body, tuple[list[str], list[str]]]] = {}

    def add(row: str, body: Body) -> None:
        cases[row, "new"] = (body, distinct)
        cases[row, "same"] = (body, same)

    add("floor: bare OTel attach/detach, session.id", floor_one_key)
    add("floor: bare OTel attach/detach, user.id", floor_user_key)
    add("floor: bare OTel attach/detach, 2 keys", floor_two_keys)
    add("floor: bare OTel attach/detach, session.id, inside a span", inside_a_span(floor_one_key))
    add("spanloom using_session", spanloom_session)
    add("spanloom using_user", spanloom_user)
    add("spanloom using_attributes(session_id, user_id)", spanloom_attributes)
    add("spanloom using_session, inside a span", inside_a_span(spanloom_session))
    for name, body in openinference_bodies().items():
        add(f"OpenInference {name}", body)
        if name == "using_session":
            add("OpenInference using_session, inside a span", inside_a_span(body))
    span_cases = {
        "span start+end, 20 attributes, no SessionSpanProcessor": span_body(make_provider(False)),
        "span start+end, 20 attributes, with SessionSpanProcessor": span_body(make_provider(True)),
    }

    def floor_of(row: str) -> str:
        if "inside a span" in row:
            return "floor: bare OTel attach/detach, session.id, inside a span"
        if "using_attributes" in row or "2 keys" in row:
            return "floor: bare OTel attach/detach, 2 keys"
        if "using_user" in row or "user.id" in row:
            return "floor: bare OTel attach/detach, user.id"
        return "floor: bare OTel attach/detach, session.id"

    def timed(body: Body, sessions: list[str], users: list[str]) -> float:
        # CPU time of this thread: on a machine shared with other work, time spent descheduled
        # would land on whichever side of a pair it happened to hit.
        start = time.thread_time_ns()
        body(sessions, users)
        return (time.thread_time_ns() - start) / len(sessions)

    rows = list(dict.fromkeys(row for row, _ in cases))
    measured = [row for row in rows if not row.startswith("floor")]
    ns: dict[Any, list[float]] = {key: [] for key in [*cases, *span_cases]}
    ratios: dict[Any, list[float]] = {key: [] for key in cases}
    for body, (sessions, users) in cases.values():
        body(sessions[:2000], users[:2000])  # warm up
    # Each case runs right next to its floor, on ids of the same kind, in an order that flips
    # every round: the ratio of the pair is what a change in the machine's load disturbs least.
    for round_index in range(options.rounds):
        for row in measured:
            for column in ("new", "same"):
                floor_body = cases[floor_of(row), column][0]
                body = cases[row, column][0]
                pair = {}
                order = [(row, body), (floor_of(row), floor_body)]
                for name, run in order if round_index % 2 else reversed(order):
                    # ids never entered before, made outside the timing
                    sessions, users = new_ids() if column == "new" else same
                    pair[name] = timed(run, sessions, users)
                ns[row, column].append(pair[row])
                ns[floor_of(row), column].append(pair[floor_of(row)])
                ratios[row, column].append(pair[row] / pair[floor_of(row)])
        span_order = list(span_cases.items())
        for key, body in span_order if round_index % 2 else reversed(span_order):
            # CPU time of this thread: a difference of a few percent of a span is lost in the
            # time other processes take the core away, on a shared machine.
            start = time.thread_time_ns()
            body([], [])
            ns[key].append((time.thread_time_ns() - start) / SPAN_LOOPS)
    median = {key: statistics.median(values) for key, values in ns.items()}
    least = {key: min(values) for key, values in ns.items()}

    def ratio(row: str, column: str) -> float:
        """The median over rounds of (the block / its floor, measured side by side)."""
        return statistics.median(ratios[row, column])

    def least_ratio(row: str, column: str) -> float:
        """The fastest round of the block / the fastest round of its floor."""
        return least[row, column] / least[floor_of(row), column]

    load = os.getloadavg()
    print(
        f"rounds: {options.rounds}, distinct ids per case and round: {options.ids:,}, "
        f"python {platform.python_version()}, "
        f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
    )
    print(
        "x floor: the block's CPU time / that of its floor run right beside it, median over rounds "
        "(then the fastest rounds' ratio). Floor: OTel attach(set_value(...)) + detach, 1 key "
        "(2 keys for using_attributes), with the same ids.\n"
    )
    print("| block | same id every block: x floor | a new id every block: x floor | new id: median ns |")
    print("|---|---:|---:|---:|")
    for row in rows:
        if row.startswith("floor"):
            print(f"| {row} | 1.00 | 1.00 | {median[row, 'new']:,.0f} |")
            continue
        print(
            f"| {row} | {ratio(row, 'same'):.2f} ({least_ratio(row, 'same'):.2f}) "
            f"| **{ratio(row, 'new'):.2f}** ({least_ratio(row, 'new'):.2f}) "
            f"| {median[row, 'new']:,.0f} |"
        )

    print("\nTargets, a new id every block (median ratio):")
    for name, target in TARGETS.items():
        row = next(row for row in rows if row.startswith(f"spanloom {name}"))
        value = ratio(row, "new")
        verdict = "met" if value <= target else "NOT MET"
        beside = ""
        if ("OpenInference " + name, "new") in ratios:
            beside = f"; OpenInference: {ratio('OpenInference ' + name, 'new'):.2f}x"
        print(f"  {row}: {value:.2f}x the floor (target <= {target}x): {verdict}{beside}")

    without, with_processor = span_cases
    added = [
        with_ns - without_ns for with_ns, without_ns in zip(ns[with_processor], ns[without], strict=True)
    ]
    print(
        f"\nSessionSpanProcessor adds per span (20 attributes, ids in the context; CPU time): "
        f"{statistics.median(added) / 1000:.2f} us (median of the rounds' differences; "
        f"fastest rounds: {(least[with_processor] - least[without]) / 1000:.2f} us; "
        f"the span alone: {median[without] / 1000:.1f} us)"
    )


if __name__ == "__main__":
    main()
