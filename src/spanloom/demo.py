"""Sample conversations for `spanloom demo`, and the span shapes a benchmark can reuse.

`build_conversations` makes the data (deterministic for a seed); `send_with_sdk` traces it
through the real SDK into a running server: `register()`, `using_attributes`, the tracer's
decorators for the agent and its tools, and a hand-made LLM span with OpenInference's
flattened message attributes (`llm_span_attributes`, also what the benchmark sends). Some end
users give a thumb (`log_feedback` naming the turn's trace), the app ends most conversations
(`end_session`), and one user asks the same thing again and gets annoyed: something for the
session evaluators and the feedback columns to find.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from spanloom import semconv

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet-20241022", "gpt-4.1-mini")
TOPICS = {
    "travel": ("Plan three days in Lisbon on a budget.", "What is the weather like in Porto in May?"),
    "billing": ("Why was I charged twice this month?", "Can I switch to the annual plan?"),
    "code": ("Why does my Python script say 'list index out of range'?", "How do I read a CSV with pandas?"),
    "cooking": ("What can I cook with leeks and potatoes?", "How long should I rest a steak?"),
    "support": ("My export to PDF fails with a timeout.", "How do I reset my password?"),
}
FOLLOW_UPS = (
    "Can you make that shorter?",
    "Thanks! And what about the cost?",
    "Could you explain the second point in more detail?",
    "Give me a step-by-step version.",
    "What would you do differently?",
)
SENTENCES = (
    "Here is what I would suggest, based on what you described.",
    "The most common cause is a mismatch between what the code expects and what the data holds.",
    "Start with the cheapest option and keep a small buffer for surprises.",
    "If that does not help, the logs usually show the first step that went wrong.",
    "Most people find the second approach easier to maintain over time.",
    "Keep in mind that prices and schedules change with the season.",
    "A quick check of the settings page often settles this in a minute.",
    "You can always come back and ask for a more detailed plan.",
)
FRUSTRATED = "This is useless, that is not what I asked."
POSITIVE_COMMENTS = ("Thanks, that helped!", "Exactly what I needed.", None)
NEGATIVE_COMMENTS = ("Too long.", "That did not answer my question.", None)
SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly, cite the tool results you used, and be concise."


@dataclass
class Turn:
    question: str
    answer: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    tool: str | None = None  # name of the tool the agent calls first, if any
    tool_fails: bool = False  # the tool raises: the turn's trace has an error
    latency_ms: int = 800
    feedback: tuple[int, str | None] | None = None  # the end user's thumb (1 or -1) and comment


@dataclass
class Conversation:
    session_id: str
    user_id: str
    topic: str
    turns: list[Turn] = field(default_factory=list)
    ended: bool = False  # the app calls end_session() after the last turn

    @property
    def metadata(self) -> dict[str, Any]:
        return {"topic": self.topic, "app_version": "1.4.2"}

    @property
    def tags(self) -> list[str]:
        return [self.topic, "demo"]


def _long_text(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.choice(SENTENCES) for _ in range(sentences))


def build_conversations(
    sessions: int = 12, users: int = 5, seed: int = 7, answer_sentences: tuple[int, int] = (3, 40)
) -> list[Conversation]:
    """`sessions` conversations of 1 to 6 turns among `users` users; exactly one failing tool call
    and one frustrated user; about one turn in four gets a thumb, most conversations end."""
    rng = random.Random(seed)
    conversations = []
    for index in range(sessions):
        topic = rng.choice(sorted(TOPICS))
        conversation = Conversation(f"session-{seed}-{index:05d}", f"user-{rng.randrange(users):04d}", topic)
        for turn_index in range(rng.randint(1, 6)):
            question = rng.choice(TOPICS[topic]) if turn_index == 0 else rng.choice(FOLLOW_UPS)
            answer = _long_text(rng, rng.randint(*answer_sentences))
            conversation.turns.append(
                Turn(
                    question=question,
                    answer=answer,
                    model=rng.choice(MODELS),
                    prompt_tokens=rng.randint(200, 4000),
                    completion_tokens=max(20, len(answer) // 4),
                    tool=rng.choice((None, "search_docs", "get_weather", "lookup_invoice")),
                    latency_ms=rng.randint(300, 4000),
                    feedback=_thumb(rng),
                )
            )
        conversation.ended = rng.random() < 0.7
        conversations.append(conversation)
    _frustrate(conversations[len(conversations) // 3], rng)
    # One failure, so the dashboard has something to find.
    failing = conversations[len(conversations) // 2].turns[-1]
    failing.tool, failing.tool_fails = "lookup_invoice", True
    failing.feedback = (-1, "It never found my invoice.")
    return conversations


def _thumb(rng: random.Random) -> tuple[int, str | None] | None:
    draw = rng.random()
    if draw < 0.18:
        return 1, rng.choice(POSITIVE_COMMENTS)
    if draw < 0.25:
        return -1, rng.choice(NEGATIVE_COMMENTS)
    return None


def _frustrate(conversation: Conversation, rng: random.Random) -> None:
    """The user asks the first question again, then gives up: not ended, a thumbs-down."""
    first = conversation.turns[0]
    again = Turn(first.question, _long_text(rng, 6), first.model, first.prompt_tokens, 120)
    annoyed = Turn(FRUSTRATED, "I am sorry. " + _long_text(rng, 2), first.model, 900, 40)
    annoyed.feedback = (-1, "Gave up.")
    conversation.turns[1:] = [again, annoyed]
    conversation.ended = False


def llm_span_attributes(turn: Turn, history: list[Turn]) -> dict[str, Any]:
    """The attributes of one chat-completion span, OpenInference style (flattened messages)."""
    attributes: dict[str, Any] = {
        semconv.OPENINFERENCE_SPAN_KIND: semconv.SpanKind.LLM.value,
        semconv.LLM_SYSTEM: "openai" if turn.model.startswith("gpt") else "anthropic",
        semconv.LLM_MODEL_NAME: turn.model,
        semconv.LLM_INVOCATION_PARAMETERS: json.dumps({"temperature": 0.3, "max_tokens": 1024}),
        semconv.LLM_TOKEN_COUNT_PROMPT: turn.prompt_tokens,
        semconv.LLM_TOKEN_COUNT_COMPLETION: turn.completion_tokens,
        semconv.LLM_TOKEN_COUNT_TOTAL: turn.prompt_tokens + turn.completion_tokens,
    }
    messages = [("system", SYSTEM_PROMPT)]
    for earlier in history:
        messages += [("user", earlier.question), ("assistant", earlier.answer)]
    messages.append(("user", turn.question))
    for index, (role, content) in enumerate(messages):
        prefix = f"{semconv.LLM_INPUT_MESSAGES}.{index}."
        attributes[prefix + semconv.MESSAGE_ROLE] = role
        attributes[prefix + semconv.MESSAGE_CONTENT] = content
    prefix = f"{semconv.LLM_OUTPUT_MESSAGES}.0."
    attributes[prefix + semconv.MESSAGE_ROLE] = "assistant"
    attributes[prefix + semconv.MESSAGE_CONTENT] = turn.answer
    return attributes


def check_endpoint(endpoint: str) -> None:
    """Raise ConnectionError unless something answers OTLP at `endpoint` (an empty export)."""
    request = urllib.request.Request(
        endpoint, data=b"", method="POST", headers={"Content-Type": "application/x-protobuf"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise ConnectionError(f"{endpoint} refused the API key (set SPANLOOM_API_KEY)") from None
    except (urllib.error.URLError, OSError) as error:
        raise ConnectionError(
            f"no spanloom server at {endpoint} ({error}); start one with `spanloom serve`"
        ) from None


def send_with_sdk(
    conversations: list[Conversation], endpoint: str | None = None, latency_scale: float = 0.01
) -> int:
    """Trace the conversations with the real SDK and exporter; returns the number of spans sent.

    Each turn sleeps `latency_scale` times its simulated model latency, so durations look real.
    """
    import spanloom
    from spanloom.sdk.register import resolve_endpoint

    resolved = resolve_endpoint(endpoint)
    check_endpoint(resolved)
    provider = spanloom.register(
        project_name="demo", endpoint=resolved, batch=True, set_global_tracer_provider=False
    )
    tracer = spanloom.get_tracer("spanloom.demo", tracer_provider=provider)
    spans = 0

    # The turn being played: the decorated functions take only what a real app would pass.
    current: dict[str, Any] = {}

    @tracer.tool
    def run_tool(name: str, query: str) -> str:
        if current["turn"].tool_fails:
            raise TimeoutError(f"{name} timed out after 30 s")
        return f"{name} found 3 results for {query!r}"

    def chat_completion(turn: Turn, history: list[Turn]) -> str:
        with tracer.start_as_current_span(
            "ChatCompletion", span_kind=semconv.SpanKind.LLM, attributes=llm_span_attributes(turn, history)
        ):
            time.sleep(turn.latency_ms / 1000 * latency_scale)
        return turn.answer

    @tracer.agent
    def assistant(question: str) -> str:
        turn = current["turn"]
        # What a web app hands its front end, so that a thumb clicked later names this turn.
        current["trace_id"] = spanloom.current_trace_id()
        if turn.tool:
            try:
                run_tool(turn.tool, question)
            except TimeoutError:
                return "Sorry, I could not reach the billing system. Please try again later."
        return chat_completion(turn, current["history"])

    try:
        for conversation in conversations:
            with spanloom.using_attributes(
                session_id=conversation.session_id,
                user_id=conversation.user_id,
                metadata=conversation.metadata,
                tags=conversation.tags,
            ):
                for index, turn in enumerate(conversation.turns):
                    current.update(turn=turn, history=conversation.turns[:index])
                    assistant(turn.question)
                    spans += 1 + (turn.tool is not None) + (not turn.tool_fails)
                    if turn.feedback:
                        score, comment = turn.feedback
                        spanloom.log_feedback(
                            score, comment=comment, trace_id=current["trace_id"], user_id=conversation.user_id
                        )
            if conversation.ended:
                spanloom.end_session(conversation.session_id)
    finally:
        provider.force_flush()
        provider.shutdown()
        spanloom.flush_feedback(timeout=30)
    return spans
