"""Conversations sent through the real SDK for the dashboard tests.

`register()` (synchronous export, so a span is committed when its function returns),
`using_attributes`, the tracer's `@agent`/`@tool` decorators, and hand-made LLM spans with
OpenInference's flattened message attributes. Span times come from a simulated clock: the fake
model "takes" its latency by advancing the clock instead of sleeping, so durations look real and
the run stays fast and deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import opentelemetry.sdk.trace as otel_sdk_trace
import pytest

import spanloom
from spanloom import semconv

SYSTEM_PROMPT = "You are the shop's assistant. Be brief."


@dataclass
class StoryTurn:
    question: str
    answer: str
    tool: str | None = None
    tool_fails: bool = False
    latency_ms: int = 900
    model: str = "gpt-4o-mini"
    feedback: tuple[float, str] | None = None  # the end user's thumb (1 or -1) and comment


@dataclass
class StorySession:
    session_id: str
    user_id: str
    turns: list[StoryTurn]
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    ended: bool = False  # the app calls end_session() after the last turn


STORY = [
    StorySession(
        "checkout-help",
        "alice",
        [
            StoryTurn(
                "Where is my order 1042?", "Order 1042 shipped yesterday; it arrives Friday.", "lookup_order"
            ),
            StoryTurn("Can you change the address to my office?", "", "change_address", tool_fails=True),
            StoryTurn(
                "Did the address change go through?",
                "I cannot confirm it yet; support will email you.",
                feedback=(-1, "It never changed the address."),
            ),
            StoryTurn("Thanks, I will wait.", "You're welcome! Anything else?", latency_ms=400),
        ],
        tags=["support", "checkout"],
        metadata={"plan": "pro", "app_version": "2.3.0"},
    ),
    StorySession(
        "recipe-chat",
        "bob",
        [
            StoryTurn("What can I cook with leeks?", "Leek and potato soup: 30 minutes, six ingredients."),
            StoryTurn(
                "Make it vegan?",
                "Use olive oil and oat cream instead of butter and cream.",
                latency_ms=1500,
                feedback=(1, "Perfect, thanks!"),
            ),
        ],
        tags=["cooking"],
        metadata={"plan": "free", "app_version": "2.3.0"},
        ended=True,
    ),
    StorySession(
        "travel-plans",
        "carol",
        [
            StoryTurn(
                "Plan two days in Porto.", "Day 1: Ribeira and a port cellar. Day 2: Serralves.", "search"
            ),
            StoryTurn("Is May a good time?", "Yes: mild, around 20 °C, before the summer crowds."),
            StoryTurn(
                "Cheapest way from the airport?", "The metro's violet line: about 2 € and 30 min.", "search"
            ),
        ],
        tags=["travel"],
        metadata={"plan": "pro", "app_version": "2.2.9"},
    ),
    StorySession(
        "alice-returns",
        "alice",
        [StoryTurn("How do I return a jacket?", "Print the label from your orders page and drop it off.")],
        tags=["support"],
        metadata={"plan": "pro", "app_version": "2.3.0"},
    ),
]
FAILING_SESSION, FAILING_TURN = "checkout-help", 2  # 1-based turn number
TOOL_ERROR = "the address service timed out after 30 s"

# Hostile text: shown everywhere as text, never run. Ids carry path and query characters too.
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_LINK = "javascript:alert(1)"
TEMPLATE = "{{7*7}} {% raw %}raw{% endraw %}"
XSS_SESSIONS = [f"sess-{IMG}", JS_LINK, f"a/b?c=d#e {TEMPLATE}"]
XSS_USER = SCRIPT
XSS_PROJECT = "<svg onload=alert(1)>"
FEEDBACK_SESSION, FEEDBACK_TURN = "checkout-help", 3  # the turn with the thumbs-down
ENDED_SESSION = "recipe-chat"


class SimulatedClock:
    """Stands in for the OpenTelemetry SDK's `time_ns`: each reading moves 50 µs on, and
    `advance` jumps ahead the way a slow model call would."""

    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        self.now_ns += 50_000
        return self.now_ns

    def advance(self, milliseconds: float) -> None:
        self.now_ns += int(milliseconds * 1e6)


@contextmanager
def simulated_clock(start_ns: int) -> Iterator[SimulatedClock]:
    clock = SimulatedClock(start_ns)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(otel_sdk_trace, "time_ns", clock)
        yield clock


def _llm_attributes(turn: StoryTurn, history: list[StoryTurn], model: str) -> dict[str, object]:
    messages = [("system", SYSTEM_PROMPT)]
    for earlier in history:
        messages += [("user", earlier.question), ("assistant", earlier.answer or "(no answer)")]
    messages.append(("user", turn.question))
    attributes: dict[str, object] = {
        semconv.LLM_MODEL_NAME: model,
        semconv.LLM_TOKEN_COUNT_PROMPT: 120 + 40 * len(history),
        semconv.LLM_TOKEN_COUNT_COMPLETION: max(8, len(turn.answer) // 4),
    }
    for index, (role, content) in enumerate(messages):
        attributes[f"{semconv.LLM_INPUT_MESSAGES}.{index}.{semconv.MESSAGE_ROLE}"] = role
        attributes[f"{semconv.LLM_INPUT_MESSAGES}.{index}.{semconv.MESSAGE_CONTENT}"] = content
    attributes[f"{semconv.LLM_OUTPUT_MESSAGES}.0.{semconv.MESSAGE_ROLE}"] = "assistant"
    attributes[f"{semconv.LLM_OUTPUT_MESSAGES}.0.{semconv.MESSAGE_CONTENT}"] = turn.answer
    return attributes


def send_sessions(
    endpoint: str,
    sessions: list[StorySession],
    project: str,
    clock: SimulatedClock,
    tool_name: str | None = None,
) -> None:
    """Trace `sessions` with the real SDK into the server at `endpoint`."""
    provider = spanloom.register(
        project_name=project, endpoint=endpoint, batch=False, set_global_tracer_provider=False
    )
    tracer = spanloom.get_tracer("tests.dashboard", tracer_provider=provider)
    # The turn being played: the decorated functions take only what a real app would pass.
    current: dict[str, Any] = {}

    def call_tool(name: str, request: str) -> str:
        clock.advance(120)
        if current["turn"].tool_fails:
            raise TimeoutError(f"{TOOL_ERROR} ({request})")
        return f"{name}: 3 results for {request!r}"

    # A tool span whose name may be hostile text too (the XSS world passes one).
    tool = tracer.tool(name=tool_name) if tool_name else tracer.tool

    @tool
    def run_tool(name: str, request: str) -> str:
        return call_tool(name, request)

    @tracer.agent
    def assistant(question: str) -> str:
        turn, history = current["turn"], current["history"]
        # What a web app hands its front end, so a thumb clicked later names this turn.
        current["trace_id"] = spanloom.current_trace_id()
        if turn.tool:
            try:
                run_tool(turn.tool, question)
            except TimeoutError:
                return "Sorry, I could not reach the address service. Please try again later."
        attributes = _llm_attributes(turn, history, turn.model)
        with tracer.start_as_current_span(
            "ChatCompletion", span_kind=semconv.SpanKind.LLM, attributes=attributes
        ):
            clock.advance(turn.latency_ms)
        return turn.answer

    try:
        for session in sessions:
            with spanloom.using_attributes(
                session_id=session.session_id,
                user_id=session.user_id,
                metadata=session.metadata,
                tags=session.tags,
            ):
                for index, turn in enumerate(session.turns):
                    current.update(turn=turn, history=session.turns[:index])
                    assistant(turn.question)
                    if turn.feedback:
                        score, comment = turn.feedback
                        spanloom.log_feedback(
                            score, comment=comment, trace_id=current["trace_id"], user_id=session.user_id
                        )
                    clock.advance(20_000)  # the person reads and types
            if session.ended:
                spanloom.end_session(session.session_id)
            clock.advance(600_000)
    finally:
        provider.shutdown()
        # Feedback is sent off the caller's thread: the tests read the pages only once it is in.
        assert spanloom.flush_feedback(timeout=30), "feedback not delivered"


def xss_sessions() -> list[StorySession]:
    text = f"{SCRIPT} {IMG} {JS_LINK} {TEMPLATE}"
    turns = [
        StoryTurn(f"question {text}", f"answer {text}", tool="lookup", model=IMG),
        StoryTurn(
            f"second {SCRIPT}", "", tool="lookup", tool_fails=True, model=SCRIPT, feedback=(-1, f"bad {text}")
        ),
    ]
    metadata = {SCRIPT: IMG, "link": JS_LINK}
    return [
        StorySession(sid, XSS_USER, turns, tags=[TEMPLATE, SCRIPT], metadata=metadata) for sid in XSS_SESSIONS
    ]


def fill(endpoint: str, *, story: bool = True, xss: bool = True) -> None:
    """The story (project "shop") and the hostile world (its own project), an hour ago and on."""
    with simulated_clock(time.time_ns() - 3600 * 10**9) as clock:
        if story:
            send_sessions(endpoint, STORY, "shop", clock)
        if xss:
            send_sessions(endpoint, xss_sessions(), XSS_PROJECT, clock, tool_name=f"tool {SCRIPT}")
