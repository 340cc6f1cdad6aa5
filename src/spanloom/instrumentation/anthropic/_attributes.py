"""Pure attribute builders for Anthropic Messages: request keyword arguments and responses in, dicts out.

Nothing here imports ``anthropic``. A user turn made of ``tool_result`` blocks is recorded as
one ``tool`` message per result (then the turn's other blocks, if any), which is how the other
providers shape tool results, so the conversation reads the same whichever model answered.
"""

from __future__ import annotations

from typing import Any

from spanloom import semconv
from spanloom.instrumentation._messages import (
    IMAGE,
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    TEXT,
    field,
    image_url,
    input_json,
    put_message,
    put_tools,
    request_parameters,
    to_json,
    with_formats_named,
)
from spanloom.instrumentation._usage import put_token_counts
from spanloom.sdk.mask import TraceConfig

_CONTENT = frozenset({"messages", "system", "tools"})

# The SDK's "not given" sentinels (anthropic.Omit, anthropic.NotGiven), set by the instrumentor.
omitted: tuple[type, ...] = ()


def _image(source: Any, config: TraceConfig) -> Any:
    kind = field(source, "type")
    if kind == "base64":
        return image_url(f"data:{field(source, 'media_type')};base64,{field(source, 'data')}", config)
    if kind == "url":
        return field(source, "url")
    return field(source, "file_id")


def _text_of(content: Any) -> Any:
    """A tool result's content: a string, or the text of its blocks."""
    if content is None or type(content) is str:
        return content
    texts = [field(block, "text") for block in content if field(block, "type") == "text"]
    return "".join(texts) if texts else to_json(content)


def _block(block: Any, config: TraceConfig) -> tuple[str, Any]:
    kind = field(block, "type")
    if kind == "text":
        return TEXT, field(block, "text")
    if kind == "image":
        return IMAGE, _image(field(block, "source"), config)
    if kind == "thinking":
        return "thinking", field(block, "thinking")
    return str(kind), None  # document, redacted_thinking, server tool blocks: the type only


def _put_input(attributes: dict[str, Any], index: int, message: Any, config: TraceConfig) -> int:
    """Record one request message from `index` on; returns the next free index."""
    role = field(message, "role")
    content = field(message, "content")
    if content is None or type(content) is str:
        put_message(attributes, f"{INPUT_MESSAGES}{index}.", role, content)
        return index + 1
    parts = []
    calls = []
    for block in content:
        kind = field(block, "type")
        if kind == "tool_result":
            put_message(
                attributes,
                f"{INPUT_MESSAGES}{index}.",
                "tool",
                _text_of(field(block, "content")),
                tool_call_id=field(block, "tool_use_id"),
            )
            index += 1
        elif kind == "tool_use":
            calls.append((field(block, "id"), field(block, "name"), to_json(field(block, "input"))))
        else:
            parts.append(_block(block, config))
    if parts or calls or not content:
        put_message(attributes, f"{INPUT_MESSAGES}{index}.", role, None, parts, calls)
        index += 1
    return index


def messages_request(kwargs: dict[str, Any], config: TraceConfig) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    index = 0
    system = kwargs.get("system")
    if type(system) is str:
        put_message(attributes, f"{INPUT_MESSAGES}0.", "system", system)
        index = 1
    elif system and not isinstance(system, omitted):
        put_message(attributes, f"{INPUT_MESSAGES}0.", "system", None, [_block(b, config) for b in system])
        index = 1
    messages = kwargs.get("messages")
    if messages and not isinstance(messages, omitted):
        for message in messages:
            index = _put_input(attributes, index, message, config)
    tools = kwargs.get("tools")
    if tools and not isinstance(tools, omitted):
        put_tools(attributes, tools)
    payload, parameters = request_parameters(kwargs, omitted, _CONTENT)
    # Sampling parameters stay in the invocation parameters JSON (see the OpenAI builders).
    model = parameters.get("model")
    if model is not None:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    attributes[semconv.LLM_INVOCATION_PARAMETERS] = to_json(parameters)
    attributes[semconv.INPUT_VALUE] = input_json(payload, config)
    attributes[semconv.INPUT_MIME_TYPE] = semconv.MIME_JSON
    return attributes


# One output content block as the builders take it: (type, text, tool id, tool name, tool input JSON).
Block = tuple[Any, Any, Any, Any, Any]


def put_output(
    attributes: dict[str, Any],
    blocks: list[Block],
    model: Any,
    stop_reason: Any,
    usage: tuple[Any, Any, Any, Any, Any],
) -> dict[str, Any]:
    """The assistant message, model, stop reason and token counts.

    `usage` is (input, output, cache read, cache creation, thinking) tokens as Anthropic reports
    them; Anthropic's ``input_tokens`` leaves out cached tokens, the recorded prompt count adds them.
    """
    texts = []
    parts = []
    calls = []
    for kind, text, call_id, name, arguments in blocks:
        if kind == "tool_use":
            calls.append((call_id, name, arguments))
            continue
        parts.append((TEXT if kind == "text" else str(kind), text))
        if kind == "text" and text:
            texts.append(text)
    prefix = f"{OUTPUT_MESSAGES}0."
    if len(parts) == 1 and parts[0][0] == TEXT:
        put_message(attributes, prefix, "assistant", parts[0][1], None, calls)
    else:
        put_message(attributes, prefix, "assistant", None, parts, calls)
    if texts and not calls:
        attributes[semconv.OUTPUT_VALUE] = "".join(texts)
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_TEXT
    elif blocks:
        attributes[semconv.OUTPUT_VALUE] = to_json(
            [
                {"type": kind, "text": text}
                if kind != "tool_use"
                else {"type": kind, "id": i, "name": n, "input": a}
                for kind, text, i, n, a in blocks
            ]
        )
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_JSON
    if stop_reason:
        attributes[semconv.LLM_FINISH_REASON] = stop_reason
    if model:
        attributes[semconv.LLM_MODEL_NAME] = model
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    input_tokens, output_tokens, cache_read, cache_creation, thinking = usage
    # Anthropic's input_tokens leave out the cached ones; the prompt is all three.
    prompt = None if input_tokens is None else input_tokens + (cache_read or 0) + (cache_creation or 0)
    put_token_counts(
        attributes,
        prompt=prompt,
        completion=output_tokens,
        cache_read=cache_read,
        cache_write=cache_creation,
        reasoning=thinking,
    )
    return attributes


def usage_of(usage: Any) -> tuple[Any, Any, Any, Any, Any]:
    if usage is None:
        return (None, None, None, None, None)
    details = getattr(usage, "output_tokens_details", None)
    return (
        getattr(usage, "input_tokens", None),
        getattr(usage, "output_tokens", None),
        getattr(usage, "cache_read_input_tokens", None),
        getattr(usage, "cache_creation_input_tokens", None),
        getattr(details, "thinking_tokens", None),
    )


def message_response(message: Any, config: TraceConfig) -> dict[str, Any]:
    blocks: list[Block] = []
    for block in message.content:
        kind = block.type
        if kind == "text":
            blocks.append((kind, block.text, None, None, None))
        elif kind == "tool_use":
            blocks.append((kind, None, block.id, block.name, to_json(block.input)))
        elif kind == "thinking":
            blocks.append((kind, block.thinking, None, None, None))
        else:
            blocks.append((kind, None, None, None, None))
    return put_output({}, blocks, message.model, message.stop_reason, usage_of(message.usage))


def messages_parse_request(kwargs: dict[str, Any], config: TraceConfig) -> dict[str, Any]:
    """`messages_request` for ``beta.messages.parse()``, whose output format is a class."""
    return messages_request(with_formats_named(kwargs, ("output_format",)), config)
