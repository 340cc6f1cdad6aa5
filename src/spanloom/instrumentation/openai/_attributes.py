"""Pure attribute builders for OpenAI: request keyword arguments and response objects in, dicts out.

Nothing here imports ``openai``: requests are the caller's dicts, responses are read by
attribute access, so the builders are cheap and testable with plain objects. The stream
accumulators (``_stream.py``) end in the same output builders as the plain responses.
"""

from __future__ import annotations

from collections.abc import Iterable
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

_CHAT_CONTENT = frozenset({"messages", "tools", "functions"})
_RESPONSES_CONTENT = frozenset({"input", "instructions", "tools"})
_EMBEDDINGS_CONTENT = frozenset({"input"})

# The SDK's "not given" sentinels (openai.Omit, openai.NotGiven), set by the instrumentor.
omitted: tuple[type, ...] = ()


def _request_common(
    attributes: dict[str, Any],
    kwargs: dict[str, Any],
    content_keys: frozenset[str],
    config: TraceConfig,
    text_input: str | None = None,
) -> None:
    """Model, invocation parameters and ``input.value`` (`text_input` as text, else the payload as JSON)."""
    payload, parameters = request_parameters(kwargs, omitted, content_keys)
    # Sampling parameters stay in the invocation parameters JSON: a key each would cost a few
    # attributes per call for data no view needs separately.
    model = parameters.get("model")
    if model is not None:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    attributes[semconv.LLM_INVOCATION_PARAMETERS] = to_json(parameters)
    if text_input is not None:
        attributes[semconv.INPUT_VALUE] = text_input
        attributes[semconv.INPUT_MIME_TYPE] = semconv.MIME_TEXT
    else:
        attributes[semconv.INPUT_VALUE] = input_json(payload, config)
        attributes[semconv.INPUT_MIME_TYPE] = semconv.MIME_JSON


# --- chat completions ---


def _chat_part(part: Any, config: TraceConfig) -> tuple[str, Any]:
    kind = field(part, "type")
    if kind == "text":
        return TEXT, field(part, "text")
    if kind == "image_url":
        return IMAGE, image_url(field(field(part, "image_url"), "url"), config)
    if kind == "refusal":
        return "refusal", field(part, "refusal")
    return str(kind), None  # input_audio, file: the type only


def chat_tool_calls(tool_calls: Iterable[Any]) -> list[tuple[Any, Any, Any]]:
    calls = []
    for call in tool_calls:
        function = field(call, "function")
        if function is not None:
            calls.append((field(call, "id"), field(function, "name"), field(function, "arguments")))
        else:  # custom tools carry free text input
            custom = field(call, "custom")
            calls.append((field(call, "id"), field(custom, "name"), field(custom, "input")))
    return calls


def put_chat_input(attributes: dict[str, Any], index: int, message: Any, config: TraceConfig) -> None:
    if type(message) is dict:  # what callers pass, nearly always: plain lookups
        get = message.get
        role, content, tool_calls = get("role"), get("content"), get("tool_calls")
        name, tool_call_id = get("name"), get("tool_call_id")
    else:
        role, content = field(message, "role"), field(message, "content")
        tool_calls, name = field(message, "tool_calls"), field(message, "name")
        tool_call_id = field(message, "tool_call_id")
    parts = None
    if content is not None and type(content) is not str:
        parts = [_chat_part(part, config) for part in content]
        content = None
    put_message(
        attributes,
        f"{INPUT_MESSAGES}{index}.",
        role,
        content,
        parts,
        chat_tool_calls(tool_calls) if tool_calls else None,
        name,
        tool_call_id,
    )


# The role and content keys of the first messages, spelled once: a conversation of plain
# ``{"role": ..., "content": "text"}`` dicts (the usual request) costs two stores per message.
_KEYED = 64
_INPUT_ROLE = tuple(f"{INPUT_MESSAGES}{i}.{semconv.MESSAGE_ROLE}" for i in range(_KEYED))
_INPUT_CONTENT = tuple(f"{INPUT_MESSAGES}{i}.{semconv.MESSAGE_CONTENT}" for i in range(_KEYED))
_OUTPUT_ROLE_0 = f"{OUTPUT_MESSAGES}0.{semconv.MESSAGE_ROLE}"
_OUTPUT_CONTENT_0 = f"{OUTPUT_MESSAGES}0.{semconv.MESSAGE_CONTENT}"


def chat_request(kwargs: dict[str, Any], config: TraceConfig) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    messages = kwargs.get("messages")
    if messages and not isinstance(messages, omitted):
        for index, message in enumerate(messages):
            if type(message) is dict and len(message) == 2 and index < _KEYED:
                role = message.get("role")
                content = message.get("content")
                if role is not None and type(content) is str:  # what put_chat_input would record
                    attributes[_INPUT_ROLE[index]] = role
                    attributes[_INPUT_CONTENT[index]] = content
                    continue
            put_chat_input(attributes, index, message, config)
    tools = kwargs.get("tools")
    if tools and not isinstance(tools, omitted):
        put_tools(attributes, tools)
    _request_common(attributes, kwargs, _CHAT_CONTENT, config)
    return attributes


# One output choice as the builders take it: (role, text, tool calls, finish reason).
Choice = tuple[Any, Any, Any, Any]


def put_chat_output(
    attributes: dict[str, Any], choices: list[Choice], model: Any, usage: Any
) -> dict[str, Any]:
    finish_reasons = []
    for index, (role, content, tool_calls, finish_reason) in enumerate(choices):
        put_message(attributes, f"{OUTPUT_MESSAGES}{index}.", role, content, None, tool_calls)
        if finish_reason:
            finish_reasons.append(finish_reason)
    if finish_reasons:
        attributes[semconv.LLM_FINISH_REASON] = finish_reasons[0]
    if len(choices) == 1 and not choices[0][2] and type(choices[0][1]) is str:
        attributes[semconv.OUTPUT_VALUE] = choices[0][1]
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_TEXT
    elif choices:
        attributes[semconv.OUTPUT_VALUE] = to_json(
            [
                {
                    "role": role,
                    "content": content,
                    "tool_calls": [{"id": i, "name": n, "arguments": a} for i, n, a in calls or ()],
                }
                for role, content, calls, _ in choices
            ]
        )
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_JSON
    _put_model(attributes, model)
    if usage is not None:
        put_chat_usage(attributes, usage)
    return attributes


def _put_model(attributes: dict[str, Any], model: Any) -> None:
    if model:
        attributes[semconv.LLM_MODEL_NAME] = model
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model


def put_chat_usage(attributes: dict[str, Any], usage: Any) -> None:
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    put_token_counts(
        attributes,
        prompt=usage.prompt_tokens,
        completion=usage.completion_tokens,
        total=usage.total_tokens,
        cache_read=prompt_details.cached_tokens if prompt_details is not None else None,
        reasoning=completion_details.reasoning_tokens if completion_details is not None else None,
    )


def chat_response(response: Any, config: TraceConfig) -> dict[str, Any]:
    choices = response.choices
    if len(choices) == 1:  # one text answer, the usual response: what put_chat_output records
        choice = choices[0]
        message = choice.message
        content = message.content
        role = message.role
        if type(content) is str and role is not None and not message.tool_calls:
            return text_answer(role, content, choice.finish_reason, response.model, response.usage)
    return _chat_response(response)


def text_answer(role: Any, content: str, finish_reason: Any, model: Any, usage: Any) -> dict[str, Any]:
    """What `put_chat_output` records for one text choice without tool calls, the usual answer."""
    attributes = {_OUTPUT_ROLE_0: role, _OUTPUT_CONTENT_0: content}
    if finish_reason:
        attributes[semconv.LLM_FINISH_REASON] = finish_reason
    attributes[semconv.OUTPUT_VALUE] = content
    attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_TEXT
    _put_model(attributes, model)
    if usage is not None:
        put_chat_usage(attributes, usage)
    return attributes


def _chat_response(response: Any) -> dict[str, Any]:
    choices: list[Choice] = []
    for choice in response.choices:
        message = choice.message
        tool_calls = message.tool_calls
        content = message.content
        if content is None:
            content = getattr(message, "refusal", None)
        choices.append(
            (message.role, content, chat_tool_calls(tool_calls) if tool_calls else None, choice.finish_reason)
        )
    return put_chat_output({}, choices, response.model, response.usage)


# --- responses ---


def _response_part(part: Any, config: TraceConfig) -> tuple[str, Any]:
    kind = field(part, "type")
    if kind in ("input_text", "output_text", "text"):
        return TEXT, field(part, "text")
    if kind == "input_image":
        return IMAGE, image_url(field(part, "image_url") or field(part, "file_id"), config)
    if kind == "refusal":
        return "refusal", field(part, "refusal")
    return str(kind), None


def _put_response_item(attributes: dict[str, Any], prefix: str, item: Any, config: TraceConfig) -> None:
    kind = field(item, "type")
    if kind == "function_call":
        calls = [(field(item, "call_id"), field(item, "name"), field(item, "arguments"))]
        put_message(attributes, prefix, "assistant", None, None, calls)
    elif kind == "function_call_output":
        put_message(attributes, prefix, "tool", field(item, "output"), tool_call_id=field(item, "call_id"))
    elif kind in (None, "message"):
        content = field(item, "content")
        parts = None
        if content is not None and type(content) is not str:
            parts = [_response_part(part, config) for part in content]
            content = None
        put_message(attributes, prefix, field(item, "role"), content, parts)
    else:  # reasoning, web search, computer use...: recorded by type
        put_message(attributes, prefix, field(item, "role") or "assistant", None, [(str(kind), None)])


def responses_request(kwargs: dict[str, Any], config: TraceConfig) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    index = 0
    instructions = kwargs.get("instructions")
    if type(instructions) is str:
        put_message(attributes, f"{INPUT_MESSAGES}0.", "system", instructions)
        index = 1
    items = kwargs.get("input")
    if type(items) is str:
        put_message(attributes, f"{INPUT_MESSAGES}{index}.", "user", items)
    elif items and not isinstance(items, omitted):
        for offset, item in enumerate(items):
            _put_response_item(attributes, f"{INPUT_MESSAGES}{index + offset}.", item, config)
    tools = kwargs.get("tools")
    if tools and not isinstance(tools, omitted):
        put_tools(attributes, tools)
    _request_common(attributes, kwargs, _RESPONSES_CONTENT, config)
    return attributes


def responses_response(response: Any, config: TraceConfig) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    texts: list[str] = []
    for index, item in enumerate(response.output or ()):
        _put_response_item(attributes, f"{OUTPUT_MESSAGES}{index}.", item, config)
        if item.type == "message":
            texts.extend(part.text for part in item.content if part.type == "output_text")
    if texts:
        attributes[semconv.OUTPUT_VALUE] = "".join(texts)
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_TEXT
    elif response.output:
        attributes[semconv.OUTPUT_VALUE] = to_json(response.output)
        attributes[semconv.OUTPUT_MIME_TYPE] = semconv.MIME_JSON
    status = response.status
    details = response.incomplete_details
    reason = (details.reason if details is not None else None) or status
    if reason:
        attributes[semconv.LLM_FINISH_REASON] = reason
    _put_model(attributes, response.model)
    usage = response.usage
    if usage is not None:
        input_details = usage.input_tokens_details
        output_details = usage.output_tokens_details
        put_token_counts(
            attributes,
            prompt=usage.input_tokens,
            completion=usage.output_tokens,
            total=usage.total_tokens,
            cache_read=input_details.cached_tokens if input_details is not None else None,
            reasoning=output_details.reasoning_tokens if output_details is not None else None,
        )
    return attributes


# --- embeddings ---

_EMBEDDINGS = semconv.EMBEDDING_EMBEDDINGS + "."
_EMBEDDING_TEXT = "." + semconv.EMBEDDING_TEXT
_EMBEDDING_VECTOR = "." + semconv.EMBEDDING_VECTOR


def embeddings_request(kwargs: dict[str, Any], config: TraceConfig) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    value = kwargs.get("input")
    texts = [value] if type(value) is str else value
    if isinstance(texts, (list, tuple)):
        for index, text in enumerate(texts):
            if type(text) is str:  # token-id inputs have no text to show
                attributes[f"{_EMBEDDINGS}{index}{_EMBEDDING_TEXT}"] = text
    model = kwargs.get("model")
    if model is not None:
        attributes[semconv.EMBEDDING_MODEL_NAME] = model
    encoding = kwargs.get("encoding_format")
    if type(encoding) is str:
        attributes[semconv.GEN_AI_REQUEST_ENCODING_FORMATS] = [encoding]
    _request_common(attributes, kwargs, _EMBEDDINGS_CONTENT, config, value if type(value) is str else None)
    return attributes


def embeddings_response(response: Any, config: TraceConfig) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for index, item in enumerate(response.data):
        vector = item.embedding
        if isinstance(vector, list):  # a base64 string when the caller asked for that encoding
            attributes[f"{_EMBEDDINGS}{index}{_EMBEDDING_VECTOR}"] = vector
    model = response.model
    if model:
        attributes[semconv.EMBEDDING_MODEL_NAME] = model
        attributes[semconv.LLM_MODEL_NAME] = model
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    usage = response.usage
    if usage is not None:
        put_token_counts(attributes, prompt=usage.prompt_tokens, completion=None, total=usage.total_tokens)
    return attributes


# --- parse(): the same requests, with an output format class ---
_FORMAT_KEYS = ("response_format", "text_format", "parse_as")


def chat_parse_request(kwargs: dict[str, Any], config: TraceConfig) -> dict[str, Any]:
    return chat_request(with_formats_named(kwargs, _FORMAT_KEYS), config)


def responses_parse_request(kwargs: dict[str, Any], config: TraceConfig) -> dict[str, Any]:
    return responses_request(with_formats_named(kwargs, _FORMAT_KEYS), config)
