"""Flattening messages, tools and request parameters into span attributes; shared by every provider.

Provider modules turn their SDK's shapes (dicts from the caller, pydantic models from the
response) into the plain pieces taken here: a role, a text, ``(type, value)`` content parts,
``(id, name, arguments)`` tool calls. The keys built here are the only place the
``llm.*_messages.{i}.message.*`` layout is spelled out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from spanloom import semconv
from spanloom.sdk._text import finite
from spanloom.sdk.mask import TraceConfig

INPUT_MESSAGES = semconv.LLM_INPUT_MESSAGES + "."
OUTPUT_MESSAGES = semconv.LLM_OUTPUT_MESSAGES + "."
_ROLE = semconv.MESSAGE_ROLE
_CONTENT = semconv.MESSAGE_CONTENT
_NAME = semconv.MESSAGE_NAME
_TOOL_CALL_ID = semconv.MESSAGE_TOOL_CALL_ID
_TOOL_CALLS = semconv.MESSAGE_TOOL_CALLS + "."
_CONTENTS = semconv.MESSAGE_CONTENTS + "."
_PART_TYPE = "." + semconv.MESSAGE_CONTENT_TYPE
_PART_TEXT = "." + semconv.MESSAGE_CONTENT_TEXT
_PART_IMAGE = "." + semconv.MESSAGE_CONTENT_IMAGE
_CALL_ID = "." + semconv.TOOL_CALL_ID
_CALL_NAME = "." + semconv.TOOL_CALL_FUNCTION_NAME
_CALL_ARGUMENTS = "." + semconv.TOOL_CALL_FUNCTION_ARGUMENTS
_TOOLS = semconv.LLM_TOOLS + "."
_TOOL_SCHEMA = "." + semconv.TOOL_JSON_SCHEMA

# Content part types as recorded (message_content.type).
TEXT = "text"
IMAGE = "image"

# Arguments of the SDK's methods that are transport options, not part of the request.
TRANSPORT_KWARGS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})

Part = tuple[str, Any]  # (type, text or image url or None)
ToolCall = tuple[Any, Any, Any]  # (id, function name, arguments as a JSON string)


def field(obj: Any, name: str) -> Any:
    """`obj[name]` for the dicts callers pass, `obj.name` for the SDK's models; None when absent."""
    if type(obj) is dict:
        return obj.get(name)
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="json", exclude_unset=True)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
        return "<iterable>"  # never consume a caller's iterator to describe it
    return str(value)


def _make_encoder() -> Callable[[Any, int], Iterable[str]]:
    """One JSON encoder for every call: `encoder(value, 0)` gives the JSON text in pieces.

    ``json.dumps`` builds its C encoder again on each call, which costs more than encoding a
    short request; this builds it once. Circular references are not tracked (the caller's
    request is JSON-shaped by contract) and show up as RecursionError, handled by `to_json`.
    """
    encoder = json.JSONEncoder(ensure_ascii=False, default=_default)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda value, _level: (encoder.encode(value),)
    return make(
        None,
        encoder.default,
        json.encoder.encode_basestring,
        None,
        encoder.key_separator,
        encoder.item_separator,
        False,
        False,
        False,  # allow_nan: NaN and Infinity are not JSON (see to_json)
    )


_encoder = _make_encoder()
_join = "".join


def to_json(value: Any) -> str:
    """JSON text for an attribute; pydantic models are dumped, anything else unknown becomes str()."""
    try:
        return _join(_encoder(value, 0))
    except ValueError:
        # A NaN or an infinity (say, temperature=float("nan")): encoded as the strings OTLP/JSON
        # uses, so backends that parse the attribute strictly still can.
        try:
            return _join(_encoder(finite(value), 0))
        except (TypeError, ValueError, RecursionError):
            return json.dumps(str(value), ensure_ascii=False)
    except (TypeError, RecursionError):
        return json.dumps(str(value), ensure_ascii=False)


def image_url(url: Any, config: TraceConfig) -> Any:
    """The image URL to record: over-long inline data is replaced even when nothing is configured."""
    if type(url) is str and url.startswith("data:"):
        mask_image = getattr(config, "mask_image", None)
        if mask_image is not None:
            return mask_image(url)
    return url


def put_message(
    attributes: dict[str, Any],
    prefix: str,
    role: Any,
    content: Any = None,
    parts: Iterable[Part] | None = None,
    tool_calls: Iterable[ToolCall] | None = None,
    name: Any = None,
    tool_call_id: Any = None,
) -> None:
    """One message under `prefix` (``llm.input_messages.3.``): role, text or parts, tool calls."""
    if role is not None:
        attributes[prefix + _ROLE] = role
    if content is not None:
        attributes[prefix + _CONTENT] = content if type(content) is str else to_json(content)
    if name:
        attributes[prefix + _NAME] = name
    if tool_call_id:
        attributes[prefix + _TOOL_CALL_ID] = tool_call_id
    if parts:
        base = prefix + _CONTENTS
        for index, (kind, value) in enumerate(parts):
            part = f"{base}{index}"
            attributes[part + _PART_TYPE] = kind
            if value is None:
                continue
            if kind == IMAGE:
                attributes[part + _PART_IMAGE] = value
            else:
                attributes[part + _PART_TEXT] = value if type(value) is str else to_json(value)
    if tool_calls:
        base = prefix + _TOOL_CALLS
        for index, (call_id, function_name, arguments) in enumerate(tool_calls):
            call = f"{base}{index}"
            if call_id:
                attributes[call + _CALL_ID] = call_id
            if function_name:
                attributes[call + _CALL_NAME] = function_name
            if arguments is not None:
                attributes[call + _CALL_ARGUMENTS] = (
                    arguments if type(arguments) is str else to_json(arguments)
                )


def put_tools(attributes: dict[str, Any], tools: Iterable[Any]) -> None:
    """``llm.tools.{i}.tool.json_schema``: each tool definition as JSON."""
    for index, tool in enumerate(tools):
        attributes[f"{_TOOLS}{index}{_TOOL_SCHEMA}"] = to_json(tool)


def materialize(kwargs: dict[str, Any], names: tuple[str, ...]) -> None:
    """Turn one-shot iterables among the request's arguments into lists, in place.

    The caller may pass a generator of messages; reading it for the span (after the call) would
    find it empty, so the wrapper hands the SDK a list instead, before the call.
    """
    for name in names:
        value = kwargs.get(name)
        if value is not None and type(value) is not list and not isinstance(value, (tuple, str, dict)):
            try:
                kwargs[name] = list(value)
            except TypeError:
                pass


def request_parameters(
    kwargs: Mapping[str, Any], omitted: tuple[type, ...], content_keys: frozenset[str]
) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """Split the call's keyword arguments into (request payload, invocation parameters).

    The payload is what went to the provider (``input.value``); the parameters are the payload
    without its content (messages, tools...). `omitted` are the SDK's "not given" sentinels,
    which the SDK's own helpers pass explicitly.
    """
    payload: Mapping[str, Any] = kwargs  # copied only when something is left out (rarely)
    parameters: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in TRANSPORT_KWARGS or isinstance(value, omitted):
            if payload is kwargs:
                payload = {
                    k: v
                    for k, v in kwargs.items()
                    if k not in TRANSPORT_KWARGS and not isinstance(v, omitted)
                }
            continue
        if key not in content_keys:
            parameters[key] = value
    return payload, parameters


def with_formats_named(kwargs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """`kwargs` with the classes a ``parse()`` call takes as its output format (a pydantic
    model in ``response_format``, ``text_format``...) given by name: the JSON of the request
    would otherwise hold their repr. A copy: the call's own arguments are never changed."""
    if not any(isinstance(kwargs.get(key), type) for key in keys):
        return kwargs
    named = dict(kwargs)
    for key in keys:
        value = named.get(key)
        if isinstance(value, type):
            named[key] = value.__name__
    return named


def input_json(payload: Any, config: TraceConfig) -> str:
    """``input.value`` for a request payload, with its images masked as the image attributes are.

    With a masking config the payload is scrubbed, then encoded once. Without one, only
    over-long inline images are cut, and only a payload longer than that limit can hold one:
    the common short request is encoded once and never walked.
    """
    if not config.is_noop:
        return to_json(scrub_images(payload, config))
    value = to_json(payload)
    if len(value) > (config.base64_image_max_length or 0):
        value = to_json(scrub_images(payload, config))
    return value


_IMAGE_PART_KEYS = ("image_url", "source", "url", "data")


def scrub_images(value: Any, config: TraceConfig) -> Any:
    """A copy of a request payload with image data hidden as `config` says, for ``input.value``.

    Only called when the config masks something; the flattened image attributes are masked by
    TraceConfig itself, this keeps the same images out of the JSON copy of the request.
    """
    if isinstance(value, list):
        return [scrub_images(item, config) for item in value]
    if not isinstance(value, Mapping):
        return value
    kind = value.get("type")
    if kind in ("image_url", "input_image", "image"):
        scrubbed = dict(value)
        for key in _IMAGE_PART_KEYS:
            if key in scrubbed:
                scrubbed[key] = _scrubbed_image(scrubbed[key], config)
        return scrubbed
    return {key: scrub_images(item, config) for key, item in value.items()}


def _scrubbed_image(value: Any, config: TraceConfig) -> Any:
    if config.hide_input_images:
        return semconv.REDACTED_VALUE
    if isinstance(value, str):
        if value.startswith("data:"):
            return image_url(value, config)
        # raw base64 (Anthropic's source.data): the same length limit as inline data URLs
        if len(value) > (config.base64_image_max_length or 0) and "://" not in value[:16]:
            return semconv.REDACTED_VALUE
        return value
    if isinstance(value, Mapping):
        return {key: _scrubbed_image(item, config) for key, item in value.items()}
    return value
