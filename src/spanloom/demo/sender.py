"""`send_with_sdk` traces the demo's conversations through the real SDK into a running server, as
an app would: `register()`, `using_attributes`, an AGENT span per turn with its RETRIEVER, TOOL
and LLM children (OpenInference's flattened message attributes: `llm_span_attributes`, also what
the benchmarks send), each started and ended at its simulated time in the past (OpenTelemetry's
`start_time` / `end_time`), so the demo takes seconds. End users give thumbs (`log_feedback`
naming the turn's trace), the app ends most conversations (`end_session`), an LLM judge's
verdicts arrive as turn-level evaluations (`SpanloomClient.log_evaluations`), and one user asks
the same thing again and gets annoyed: something for the session evaluators to find.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from typing import Any

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from spanloom import semconv
from spanloom.demo.conversations import (
    CONTEXT_TURNS,
    EVALUATION,
    JUDGE_DELAY_NS,
    SYSTEM_PROMPT,
    Conversation,
    Turn,
)
from spanloom.demo.corpus import (
    TOOL_RESULTS,
)


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
    # As a chat app keeps its context short: the last exchanges only (a 31-turn conversation
    # would also pass OpenTelemetry's 128 attributes a span).
    for earlier in history[-CONTEXT_TURNS:]:
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


class _SeededIds(RandomIdGenerator):
    """Trace and span ids from the seed: the same seed sends the same traces (which the server
    keeps once), and each turn's trace id is known before its spans exist (see send_with_sdk)."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._random = random.Random(f"ids-{seed}")
        self.next_trace_id: int | None = None

    def trace_id_of(self, session_id: str, turn_index: int) -> int:
        return random.Random(f"trace-{self._seed}-{session_id}-{turn_index}").getrandbits(128) or 1

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        chosen, self.next_trace_id = self.next_trace_id, None
        return chosen or self._random.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True


def send_with_sdk(
    conversations: list[Conversation],
    endpoint: str | None = None,
    *,
    seed: int = 7,
    now_ns: int | None = None,
) -> int:
    """Trace the conversations with the real SDK and exporter; returns the number of spans sent.

    Spans carry their simulated times, ending before `now_ns` (default: the current time).

    The thumbs go first: the spans are hours old, so the session evaluators judge a conversation
    as soon as its spans arrive, and a thumb that came later would not count in that verdict. A
    thumb may name a trace the server has not seen (it counts once the trace arrives), and the
    seeded ids say each turn's trace id in advance. The app ends its conversations once their
    turns are in."""
    from opentelemetry.trace import format_trace_id

    import spanloom
    from spanloom.client import SpanloomClient
    from spanloom.sdk.destination import resolve_endpoint, resolve_headers, server_url

    resolved = resolve_endpoint(endpoint)
    check_endpoint(resolved)
    now_ns = time.time_ns() if now_ns is None else now_ns
    provider = spanloom.register(
        project_name="demo", endpoint=resolved, batch=True, set_global_tracer_provider=False
    )
    ids = _SeededIds(seed)
    # Before get_tracer: a tracer takes its provider's id generator when it is made.
    provider.id_generator = ids
    player = _Player(spanloom.get_tracer("spanloom.demo", tracer_provider=provider))
    try:
        for conversation in conversations:
            for index, turn in enumerate(conversation.turns):
                if turn.feedback:
                    score, comment = turn.feedback
                    trace_id = format_trace_id(ids.trace_id_of(conversation.session_id, index))
                    feedback_id = f"demo-{seed}-{conversation.session_id}-{index}"
                    spanloom.log_feedback(
                        score,
                        comment=comment,
                        trace_id=trace_id,
                        user_id=conversation.user_id,
                        id=feedback_id,
                    )
        spanloom.flush_feedback(timeout=30)
        for conversation in conversations:
            begin_ns = now_ns - conversation.start_ago_ms * 1_000_000
            with spanloom.using_attributes(
                session_id=conversation.session_id,
                user_id=conversation.user_id,
                metadata=conversation.metadata,
                tags=conversation.tags,
            ):
                for index, turn in enumerate(conversation.turns):
                    ids.next_trace_id = ids.trace_id_of(conversation.session_id, index)
                    player.play(turn, conversation.turns[:index], begin_ns + turn.offset_ms * 1_000_000)
    finally:
        provider.force_flush()
        provider.shutdown()
    for conversation in conversations:
        if conversation.ended:
            spanloom.end_session(conversation.session_id)
    spanloom.flush_feedback(timeout=30)
    # The judge's verdicts name spans the server has committed by now: force_flush returned
    # after each export's 200, which the server sends after the commit.
    api_key = resolve_headers(None).get("Authorization", "").removeprefix("Bearer ") or None
    client = SpanloomClient(server_url(resolved), api_key=api_key)
    for start in range(0, len(player.verdicts), 500):
        client.log_evaluations(player.verdicts[start : start + 500])
    return player.spans


class _Player:
    """Plays turns as spans at their simulated times: an AGENT root, then its RETRIEVER, TOOL
    and LLM children one after the other."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.spans = 0
        self.verdicts: list[dict[str, Any]] = []

    def _child(
        self, name: str, kind: semconv.SpanKind, start_ns: int, duration_ms: int, attributes: dict[str, Any]
    ) -> tuple[Any, int]:
        self.spans += 1
        span = self.tracer.start_span(name, start_time=start_ns, span_kind=kind, attributes=attributes)
        return span, start_ns + duration_ms * 1_000_000

    def play(self, turn: Turn, history: list[Turn], start_ns: int) -> str | None:
        """The turn's spans; returns its trace id (what a web app hands its front end, so that a
        thumb clicked later names this turn)."""
        from opentelemetry.trace import Status, StatusCode

        import spanloom

        attributes = {semconv.INPUT_VALUE: turn.question, semconv.OUTPUT_VALUE: turn.answer}
        with self.tracer.start_as_current_span(
            "assistant",
            span_kind=semconv.SpanKind.AGENT,
            start_time=start_ns,
            end_on_exit=False,
            attributes=attributes,
        ) as agent:
            self.spans += 1
            trace_id = spanloom.current_trace_id()
            cursor = start_ns + 5_000_000
            if turn.retrieval_ms:
                found = '["Troubleshooting", "Limits", "Plans and billing"]'
                span, done = self._child(
                    "retrieve_docs",
                    semconv.SpanKind.RETRIEVER,
                    cursor,
                    turn.retrieval_ms,
                    {semconv.INPUT_VALUE: turn.question, semconv.OUTPUT_VALUE: found},
                )
                span.end(end_time=done)
                cursor = done + 2_000_000
            if turn.tool:
                arguments = {
                    semconv.TOOL_NAME: turn.tool,
                    semconv.INPUT_VALUE: json.dumps({"query": turn.question}),
                }
                span, done = self._child(turn.tool, semconv.SpanKind.TOOL, cursor, turn.tool_ms, arguments)
                if turn.tool_fails:
                    error_type = TimeoutError if "timed out" in (turn.tool_error or "") else ConnectionError
                    span.record_exception(error_type(turn.tool_error), timestamp=done)
                    span.set_status(Status(StatusCode.ERROR, turn.tool_error))
                else:
                    span.set_attribute(semconv.OUTPUT_VALUE, TOOL_RESULTS[turn.tool])
                span.end(end_time=done)
                cursor = done + 2_000_000
            if not turn.tool_fails:
                span, done = self._child(
                    "ChatCompletion",
                    semconv.SpanKind.LLM,
                    cursor,
                    turn.latency_ms,
                    llm_span_attributes(turn, history),
                )
                span.end(end_time=done)
                cursor = done + 2_000_000
            end_ns = max(start_ns + turn.duration_ms * 1_000_000, cursor)
            agent.end(end_time=end_ns)
        if turn.verdict and trace_id:
            score, label, explanation = turn.verdict
            self.verdicts.append(
                {
                    "trace_id": trace_id,
                    "name": EVALUATION,
                    "score": score,
                    "label": label,
                    "explanation": explanation,
                    # The judge runs a few seconds after the answer (Unix seconds).
                    "time": (end_ns + JUDGE_DELAY_NS) / 1e9,
                }
            )
        return trace_id
