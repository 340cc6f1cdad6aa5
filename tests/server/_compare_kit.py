"""Sessions to compare, sent through the real SDK: an original conversation, a replay of it (metadata
``replay_of``) whose answers differ, whose third turn fails and whose evaluations got worse, a
shorter replay, and a pair with hostile text. Results are logged through SpanloomClient.

Span times come from a simulated clock (the model "takes" its latency by moving it), so latencies
and their deltas are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import opentelemetry.sdk.trace as otel_sdk_trace
import pytest
from opentelemetry.sdk.trace import TracerProvider

import spanloom
from spanloom import semconv
from spanloom.client import SpanloomClient

PROJECT = "p1"
OTHER_PROJECT = "p2"
ORIGINAL = "orig-1"  # also in OTHER_PROJECT: read without project=, it is ambiguous
REPLAY = "replay-1"
SHORT_REPLAY = "replay-short"
ONLY_IN_OTHER = "secret-b"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
XSS_A = f"xss-a {IMG}"
XSS_B = f"xss-b {SCRIPT}"
FAILING_TURN = 3  # 1-based: the replay's tool fails here
TOOL_ERROR = "the order service timed out"

QUESTIONS = [
    "Where is my order 1042?",
    "Can I change the delivery address?",
    "Please send it to my office instead.",
    "When will it arrive?",
    "Thanks!",
]
ORIGINAL_ANSWERS = [
    "Order 1042 shipped yesterday.",
    "Yes, until it leaves the depot.",
    "Done: it goes to your office.",
    "Friday, before noon.",
    "You're welcome!",
]
# The replay answers turns 2 and 4 differently, and turn 3 fails.
REPLAY_ANSWERS = [
    ORIGINAL_ANSWERS[0],
    "Address changes are not possible.",
    "Sorry, I could not reach the order service.",
    "It arrives next week, maybe.",
    ORIGINAL_ANSWERS[4],
]


@dataclass
class Turn:
    question: str
    answer: str
    latency_ms: int = 800
    completion_tokens: int = 20
    tool_fails: bool = False


@dataclass
class Conversation:
    project: str
    session_id: str
    turns: list[Turn]
    metadata: dict[str, str] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)  # filled once traced


class SimulatedClock:
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


def original(project: str = PROJECT) -> Conversation:
    turns = [Turn(q, a) for q, a in zip(QUESTIONS, ORIGINAL_ANSWERS, strict=True)]
    return Conversation(project, ORIGINAL, turns)


def replay() -> Conversation:
    turns = [Turn(q, a) for q, a in zip(QUESTIONS, REPLAY_ANSWERS, strict=True)]
    turns[1].latency_ms, turns[1].completion_tokens = 1300, 35  # slower and longer
    turns[3].latency_ms, turns[3].completion_tokens = 500, 12  # faster and shorter
    turns[FAILING_TURN - 1].tool_fails = True
    return Conversation(PROJECT, REPLAY, turns, {"replay_of": ORIGINAL})


def short_replay() -> Conversation:
    turns = [Turn(q, a) for q, a in zip(QUESTIONS[:3], ORIGINAL_ANSWERS[:3], strict=True)]
    return Conversation(PROJECT, SHORT_REPLAY, turns, {"replay_of": ORIGINAL})


def hostile() -> list[Conversation]:
    text = f"{SCRIPT} {IMG}"
    return [
        Conversation(PROJECT, XSS_A, [Turn(f"question {text}", f"answer A {text}")]),
        Conversation(PROJECT, XSS_B, [Turn(f"question {text}", f"answer B {text}")], {"replay_of": XSS_A}),
    ]


def world() -> list[Conversation]:
    secret = Conversation(OTHER_PROJECT, ONLY_IN_OTHER, [Turn("secret question", "secret answer")])
    return [original(), replay(), short_replay(), original(OTHER_PROJECT), secret, *hostile()]


def trace_conversations(
    endpoint: str, conversations: list[Conversation], clock: SimulatedClock, headers: dict[str, str]
) -> None:
    """Trace each conversation with the SDK (an AGENT span, a TOOL span, an LLM span per turn)."""
    providers = {
        project: spanloom.register(
            project_name=project,
            endpoint=endpoint,
            headers=headers,
            batch=False,
            set_global_tracer_provider=False,
        )
        for project in sorted({conversation.project for conversation in conversations})
    }
    try:
        for conversation in conversations:
            _trace_one(providers[conversation.project], conversation, clock)
            clock.advance(600_000)
    finally:
        for provider in providers.values():
            provider.shutdown()


def _trace_one(provider: TracerProvider, conversation: Conversation, clock: SimulatedClock) -> None:
    tracer = spanloom.get_tracer("tests.compare", tracer_provider=provider)
    current: dict[str, Turn] = {}

    @tracer.tool
    def look_up_order(question: str) -> str:
        clock.advance(100)
        if current["turn"].tool_fails:
            raise TimeoutError(TOOL_ERROR)
        return "order 1042: shipped"

    @tracer.agent
    def assistant(question: str) -> str:
        turn = current["turn"]
        conversation.trace_ids.append(spanloom.current_trace_id() or "")
        try:
            look_up_order(question)
        except TimeoutError:
            pass
        attributes = {
            semconv.LLM_MODEL_NAME: "gpt-4o-mini",
            semconv.LLM_TOKEN_COUNT_PROMPT: 100,
            semconv.LLM_TOKEN_COUNT_COMPLETION: turn.completion_tokens,
        }
        with tracer.start_as_current_span(
            "ChatCompletion", span_kind=semconv.SpanKind.LLM, attributes=attributes
        ):
            clock.advance(turn.latency_ms)
        return turn.answer

    with spanloom.using_attributes(session_id=conversation.session_id, metadata=conversation.metadata):
        for turn in conversation.turns:
            current["turn"] = turn
            assistant(turn.question)
            clock.advance(15_000)


def log_results(url: str, api_key: str | None, conversations: list[Conversation]) -> None:
    """helpfulness on every turn (the replay's failing turn scores 0.2), tone on the first turn,
    and goal_met on the whole original (yes) and replay (no)."""
    results: list[dict[str, object]] = []
    for conversation in conversations:
        if conversation.project != PROJECT or conversation.session_id not in (ORIGINAL, REPLAY):
            continue
        for number, trace_id in enumerate(conversation.trace_ids, start=1):
            failing = conversation.session_id == REPLAY and number == FAILING_TURN
            results.append({"trace_id": trace_id, "name": "helpfulness", "score": 0.2 if failing else 0.9})
        results.append({"trace_id": conversation.trace_ids[0], "name": "tone", "label": "pass"})
        results.append(
            {
                "session_id": conversation.session_id,
                "project": PROJECT,
                "name": "goal_met",
                "label": "yes" if conversation.session_id == ORIGINAL else "no",
                "explanation": f"judged {SCRIPT}",
            }
        )
    answer = SpanloomClient(url, api_key=api_key).log_evaluations(results)
    assert answer["accepted"] == len(results), answer


def fill(url: str, start_ns: int, headers: dict[str, str], api_key: str | None) -> list[Conversation]:
    conversations = world()
    with simulated_clock(start_ns) as clock:
        trace_conversations(f"{url}/v1/traces", conversations, clock, headers)
    log_results(url, api_key, conversations)
    return conversations
