"""What a person said and what they were answered, read out of a span's stored input/output text.

A turn's input is often not the user's words but the request that carried them: our OpenAI
instrumentor and OpenInference's put the chat request JSON in ``input.value``
(``{"model": ..., "messages": [...]}``), Anthropic's has ``{"system": ..., "messages": [...]}``
with content blocks, the Responses API an ``input`` that is text or items, LangChain
``{"messages": [[{"lc": 1, "id": [..., "HumanMessage"], "kwargs": {"content": ...}}]]}`` or
``{"input": "..."}``. Outputs come as a chat completion (``choices[0].message.content``), an
Anthropic message (``content[].text``) or a Responses object (``output[].content[].text``).

`chat_messages` turns any of these into (role, content) pairs; `user_text` and `answer_text` pick
the last user message and the answer. Text that is none of these is returned as it was: these
run when a page is drawn, over texts stored by any version, so nothing stored needs rewriting.
The pages (web/messages.py) show the same pairs as chat bubbles; the raw text stays on the page.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from spanloom.server.json_text import parse_json

# A text larger than this is shown as it is rather than parsed on every page view.
MAX_PARSED_CHARS = 1_000_000
# LangChain message class names (the last item of a serialized message's "id") to roles.
_LANGCHAIN_ROLES = {
    "HumanMessage": "user",
    "HumanMessageChunk": "user",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "SystemMessage": "system",
    "ToolMessage": "tool",
    "FunctionMessage": "tool",
    "ChatMessage": "",
}
# LangChain's own "type" values, for messages serialized with .dict() rather than dumpd().
_LANGCHAIN_TYPES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
# Keys of a single-text LangChain-style input or output, most specific first.
_TEXT_KEYS = ("input", "question", "query", "prompt", "text", "output", "answer", "result", "content")


class ChatMessage(NamedTuple):
    role: str  # "user", "assistant", "system", "tool", or as sent
    content: str


def parse_container(text: str | None) -> Any:
    """The JSON object or list `text` holds, else None (cheap for text that is neither)."""
    if not text or len(text) > MAX_PARSED_CHARS:
        return None
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        parsed = parse_json(stripped)
    except ValueError:  # also text cut short by the ingest limits
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


def _block_text(content: Any) -> str:
    """A message's content: a string, or content blocks/parts (text kept, the rest named)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return "" if content is None else json.dumps(content, ensure_ascii=False, default=str)
    texts = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict):
            text = block.get("text", block.get("content"))
            if isinstance(text, dict):  # Responses' {"type": "output_text", "text": {"value": ...}}
                text = text.get("value")
            if isinstance(text, str):
                texts.append(text)
            elif isinstance(text, list):
                texts.append(_block_text(text))
    return "\n".join(text for text in texts if text)


def _tool_call_names(message: dict[str, Any]) -> str:
    names = []
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            function = call.get("function")
            name = function.get("name") if isinstance(function, dict) else call.get("name")
            names.append(str(name or "tool"))
    return f"tool call: {', '.join(names)}" if names else ""


def _role_message(item: dict[str, Any]) -> ChatMessage | None:
    """{"role", "content"} (OpenAI, Anthropic, Responses items, GenAI parts), or a LangChain one."""
    if item.get("lc") == 1 and isinstance(item.get("kwargs"), dict):
        ids = item.get("id")
        kind = ids[-1] if isinstance(ids, list) and ids else ""
        kwargs = item["kwargs"]
        named = _LANGCHAIN_ROLES.get(str(kind), str(kwargs.get("role") or kind or "message"))
        return ChatMessage(named or str(kwargs.get("role") or "message"), _block_text(kwargs.get("content")))
    role: Any = item.get("role")
    if role is None and item.get("type") in _LANGCHAIN_TYPES:
        role = _LANGCHAIN_TYPES[item["type"]]
    if not isinstance(role, str):
        return None
    if role == "human":
        role = "user"
    elif role in ("ai", "model"):
        role = "assistant"
    content = item.get("content")
    if content is None and isinstance(item.get("parts"), list):
        content = item["parts"]
    text = _block_text(content) or _tool_call_names(item)
    return ChatMessage(role, text)


def _message_list(items: Any) -> list[ChatMessage]:
    if not isinstance(items, list):
        return []
    # LangChain chat models get a batch: a list of message lists; the first is the call's.
    if items and isinstance(items[0], list):
        items = items[0]
    found = []
    for item in items:
        if isinstance(item, dict):
            message = _role_message(item)
            if message is not None:
                found.append(message)
    return found


def _request_messages(value: dict[str, Any]) -> list[ChatMessage]:
    messages = _message_list(value.get("messages"))
    system = value.get("system")  # Anthropic: the system prompt beside the messages
    if system is not None and messages and all(message.role != "system" for message in messages):
        messages.insert(0, ChatMessage("system", _block_text(system)))
    if not messages:
        responses_input = value.get("input")  # the Responses API: text, or a list of items
        if isinstance(responses_input, str) and "model" in value:
            messages = [ChatMessage("user", responses_input)]
        elif isinstance(responses_input, list):
            messages = _message_list(responses_input)
        if messages and isinstance(value.get("instructions"), str):
            messages.insert(0, ChatMessage("system", value["instructions"]))
    return messages


def _response_messages(value: dict[str, Any]) -> list[ChatMessage]:
    choices = value.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        message = first.get("message") or first.get("delta")
        if isinstance(message, dict):
            found = _role_message({"role": "assistant", **message})
            return [found] if found else []
        if isinstance(first.get("text"), str):  # the legacy completions API
            return [ChatMessage("assistant", first["text"])]
    if value.get("type") == "message" and "content" in value:  # an Anthropic message
        return [ChatMessage(str(value.get("role") or "assistant"), _block_text(value["content"]))]
    output = value.get("output")
    if isinstance(output, list):  # a Responses object: message items among reasoning and calls
        texts = [
            _block_text(item.get("content"))
            for item in output
            if isinstance(item, dict) and item.get("type", "message") == "message"
        ]
        text = "\n".join(text for text in texts if text)
        if text:
            return [ChatMessage("assistant", text)]
    generations = value.get("generations")  # a LangChain LLMResult
    if isinstance(generations, list) and generations and isinstance(generations[0], list):
        generation = generations[0][0] if generations[0] else None
        if isinstance(generation, dict):
            generated = generation.get("message")
            if isinstance(generated, dict):
                found = _role_message(generated)
                if found:
                    return [found]
            if isinstance(generation.get("text"), str):
                return [ChatMessage("assistant", generation["text"])]
    return []


def chat_messages(value: Any) -> list[ChatMessage]:
    """The messages a parsed request or response holds, in order; [] when it holds none."""
    if isinstance(value, list):
        return _message_list(value)
    if not isinstance(value, dict):
        return []
    return _request_messages(value) or _response_messages(value)


def _single_text(value: Any, keys: tuple[str, ...] = _TEXT_KEYS) -> str | None:
    """{"input": "..."} and the like: a LangChain chain's input or output with one text."""
    if not isinstance(value, dict):
        return None
    for key in keys:
        text = value.get(key)
        if isinstance(text, str) and text:
            return text
    return None


def user_text(text: str | None) -> str | None:
    """The last user message in an input text; the text itself when it holds no messages."""
    value = parse_container(text)
    if value is None:
        return text
    messages = chat_messages(value)
    for message in reversed(messages):
        if message.role == "user" and message.content:
            return message.content
    last = next((message.content for message in reversed(messages) if message.content), None)
    return last or _single_text(value) or text


def answer_text(text: str | None) -> str | None:
    """The answer in an output text; the text itself when it holds none."""
    value = parse_container(text)
    if value is None:
        return text
    if isinstance(value, list):  # choices as {role, content}: the first is the answer shown
        found = next((message.content for message in _message_list(value) if message.content), None)
        return found or text
    messages = _response_messages(value)
    if not messages and isinstance(value.get("messages"), list):
        messages = _message_list(value["messages"])  # LangGraph: the state, the answer last
    last = next((message.content for message in reversed(messages) if message.content), None)
    return last or _single_text(value, ("output", "answer", "result", "content", "text")) or text
