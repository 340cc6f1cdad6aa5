"""A session as one multi-turn example in the OpenAI chat format: ``{"messages": [...], "metadata": {...}}``.

The conversation is rebuilt from each turn's LLM calls, in order. A chat app sends the history
again with every call, so a call's input messages that repeat the conversation so far add only
what is new; an app that sends just the new message (plus its system prompt) adds that. Each
call's output messages (with their tool calls) follow. A turn without an LLM call carrying
messages adds its input and output text as a user and an assistant message.

Tool calls keep their recorded ids; one recorded without an id gets ``call_<turn>_<n>``, so
tool messages can answer it. A call that no recorded tool message answers is answered by the
turn's TOOL span of that name (its output), when there is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spanloom.server.api.export.chat_messages import Message, span_messages
from spanloom.server.store.base import SessionSummary, SessionTurns, SpanRecord, TraceSummary


def _same(a: Message, b: Message) -> bool:
    return a.get("role") == b.get("role") and a.get("content") == b.get("content")


def _merge_inputs(conversation: list[Message], inputs: list[Message]) -> None:
    if len(inputs) >= len(conversation) and all(map(_same, conversation, inputs)):
        conversation.extend(inputs[len(conversation) :])
        return
    # Not the history: the app sent only the new messages. A system prompt sent again with each
    # of them is said once.
    if any(message["role"] in ("system", "developer") for message in conversation):
        inputs = [message for message in inputs if message["role"] not in ("system", "developer")]
    conversation.extend(inputs)


def _answer_calls(conversation: list[Message], start: int, tools: list[SpanRecord], turn_number: int) -> None:
    """Give tool calls made in this turn (messages from `start` on) ids where they have none, and
    tool messages from the turn's TOOL spans where no recorded message answers them."""
    unused = list(tools)
    position = start
    calls_made = 0
    while position < len(conversation):
        message = conversation[position]
        position += 1
        calls = message.get("tool_calls")
        if message["role"] != "assistant" or not calls:
            continue
        for call in calls:
            calls_made += 1
            if not call["id"]:
                call["id"] = f"call_{turn_number}_{calls_made}"
        # The tool messages right after this one, answering its calls in order.
        answered: set[str] = set()
        pending = [call["id"] for call in calls]
        while position < len(conversation) and conversation[position]["role"] == "tool":
            reply = conversation[position]
            if not reply.get("tool_call_id"):
                unanswered = [call_id for call_id in pending if call_id not in answered]
                reply["tool_call_id"] = unanswered[0] if unanswered else None
            answered.add(reply.get("tool_call_id") or "")
            position += 1
        for call in calls:
            if call["id"] in answered:
                continue
            span = _tool_span(unused, call["function"]["name"])
            if span is None:
                continue
            reply = {"role": "tool", "tool_call_id": call["id"], "content": span.output or ""}
            conversation.insert(position, reply)
            position += 1


def _tool_span(unused: list[SpanRecord], name: str) -> SpanRecord | None:
    for index, span in enumerate(unused):
        if span.name == name or span.attributes.get("tool.name") == name:
            return unused.pop(index)
    return None


def _turn_messages(
    conversation: list[Message], turn: TraceSummary, spans: Sequence[SpanRecord], number: int
) -> None:
    start = len(conversation)
    carried = False
    for span in spans:
        if span.span_kind != "LLM":
            continue
        inputs = span_messages(span.attributes, "input")
        outputs = span_messages(span.attributes, "output")
        if not inputs and not outputs:
            continue
        carried = True
        _merge_inputs(conversation, inputs)
        conversation.extend(outputs)
    if not carried:
        if turn.input is not None:
            conversation.append({"role": "user", "content": turn.input})
        if turn.output is not None:
            conversation.append({"role": "assistant", "content": turn.output})
    _answer_calls(conversation, start, [span for span in spans if span.span_kind == "TOOL"], number)


def _clean(message: Message) -> Message:
    """The message as the OpenAI format spells it: no tool_call_id outside tool messages, and
    content left out only where tool calls stand for it."""
    if message["role"] == "tool" and message.get("content") is None:
        message["content"] = ""
    if message["role"] != "assistant" and message.get("content") is None:
        message["content"] = ""
    return message


def session_example(summary: SessionSummary, turns: SessionTurns) -> dict[str, Any]:
    conversation: list[Message] = []
    for number, turn in enumerate(turns.turns, start=1):
        _turn_messages(conversation, turn, turns.spans.get(turn.trace_id, ()), number)
    return {
        "messages": [_clean(message) for message in conversation],
        "metadata": {
            "session_id": summary.session_id,
            "project": summary.project,
            "user_id": summary.user_id,
        },
    }
