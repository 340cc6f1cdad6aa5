"""Fakes for the provider SDKs at the transport level: a MockTransport answering canned JSON or
SSE bodies. The SDKs themselves run unpatched, apart from the instrumentor under test.

The transport and its responses come from the HTTP library the installed SDK is built on:
`httpx` up to openai 1.x and anthropic 0.x, `httpx2` after (see `http_library`), so the same
tests run against the oldest and the newest releases we support."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import anthropic
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def http_library(sdk: ModuleType) -> ModuleType:
    """The HTTP library (`httpx` or `httpx2`) whose client the provider SDK sends with."""
    client_class = sdk.DefaultHttpxClient.__mro__[1]  # the library's own Client
    return importlib.import_module(client_class.__module__.partition(".")[0])


# The instrumentor patches beta.messages.parse where the SDK has it: from anthropic 0.73, above
# the 0.43 minimum pyproject.toml declares (and the 0.69 langchain-anthropic 1.0 needs).
needs_anthropic_beta_parse = pytest.mark.skipif(
    not hasattr(anthropic.resources.beta.messages.Messages, "parse"),
    reason=f"anthropic {anthropic.__version__} has no beta.messages.parse (it came in 0.73)",
)


@dataclass(frozen=True)
class Canned:
    """A provider's answer, made into a response of the library the request came in."""

    status: int
    content: bytes
    content_type: str


Handler = Callable[[Any], Canned]


def json_response(body: Any, status: int = 200) -> Canned:
    return Canned(status, json.dumps(body).encode(), "application/json")


def openai_sse(chunks: Iterable[Any]) -> Canned:
    body = (
        b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"
    )
    return Canned(200, body, "text/event-stream")


def anthropic_sse(events: Iterable[dict[str, Any]]) -> Canned:
    body = b"".join(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events)
    return Canned(200, body, "text/event-stream")


class FakeAPI:
    """Answers each request with the next queued answer (or what a queued handler returns); keeps
    the requests' JSON bodies. A MockTransport handler for `httpx` and `httpx2` alike."""

    def __init__(self) -> None:
        self.queue: list[Any] = []  # Canned answers, handlers, or responses built by a test
        self.requests: list[dict[str, Any]] = []

    def reply(self, *answers: Any) -> FakeAPI:
        self.queue.extend(answers)
        return self

    def __call__(self, request: Any) -> Any:
        self.requests.append(json.loads(request.content or b"{}"))
        answer = self.queue.pop(0)
        result = answer(request) if callable(answer) else answer
        if not isinstance(result, Canned):
            return result  # a response the test built itself, for an SDK of one library only
        library = importlib.import_module(type(request).__module__.partition(".")[0])
        return library.Response(
            result.status, content=result.content, headers={"content-type": result.content_type}
        )


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


# --- canned provider payloads ---


def chat_completion(content: str | None = "Leaves drift and fall", **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    message.update(extra.pop("message", {}))
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": extra.pop("finish_reason", "stop")}],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 7,
            "total_tokens": 19,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }
    body.update(extra)
    return body


def chat_chunks(
    texts: Iterable[str], usage: bool = True, tool_calls: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    base = {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
    }
    chunks = []
    for index, text in enumerate(texts):
        delta: dict[str, Any] = {"content": text}
        if index == 0:
            delta["role"] = "assistant"
        chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    for call in tool_calls or ():
        chunks.append(
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
        )
    finish = "tool_calls" if tool_calls else "stop"
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage:
        chunks.append(
            {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 9, "completion_tokens": 50, "total_tokens": 59},
            }
        )
    return chunks


def anthropic_message(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 6,
            "cache_read_input_tokens": 3,
            "cache_creation_input_tokens": 2,
        },
    }
    body.update(extra)
    return body


def anthropic_events(texts: Iterable[str], tool: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    message = anthropic_message()
    message["content"] = []
    message["stop_reason"] = None
    message["usage"] = {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 3}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        for text in texts
    ]
    events.append({"type": "content_block_stop", "index": 0})
    if tool is not None:
        events.append(
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": tool["id"], "name": tool["name"], "input": {}},
            }
        )
        arguments = json.dumps(tool["input"])
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            events.append(
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
            )
        events.append({"type": "content_block_stop", "index": 1})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 42},
        }
    )
    events.append({"type": "message_stop"})
    return events


def responses_body(
    text: str = "Hi from responses", output: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    if output is None:
        output = [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": "gpt-4.1-2025-04-14",
        "output": output,
        "status": "completed",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 20,
            "output_tokens": 8,
            "total_tokens": 28,
            "input_tokens_details": {"cached_tokens": 5},
            "output_tokens_details": {"reasoning_tokens": 3},
        },
    }


def responses_events(texts: Iterable[str]) -> list[dict[str, Any]]:
    created = {**responses_body(), "status": "in_progress", "output": [], "usage": None}
    item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": created},
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": item},
        {
            "type": "response.content_part.added",
            "sequence_number": 2,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": part,
        },
    ]
    for number, text in enumerate(texts, start=3):
        events.append(
            {
                "type": "response.output_text.delta",
                "sequence_number": number,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
            }
        )
    final = responses_body("".join(texts))
    events.append({"type": "response.completed", "sequence_number": len(events), "response": final})
    return events


def embedding_body(count: int = 2, dimensions: int = 4) -> dict[str, Any]:
    return {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.25 * (i + 1)] * dimensions}
            for i in range(count)
        ],
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    }
