"""What the Anthropic instrumentor patches, and as which operation; imports ``anthropic`` when called.

``messages.stream(...)`` returns a manager that sends the request only when entered. Its
wrapper swaps the manager's request for a traced one, so the span starts at ``__enter__``
(when the call is made) in the context stream() was called in, and the raw stream the manager
hands its ``MessageStream`` records into that span like any other stream.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry.context import get_current

from spanloom import semconv
from spanloom.instrumentation._instrumentor import Target
from spanloom.instrumentation._span import Operation, Tracing, traced_call, traced_call_async
from spanloom.instrumentation._wrappers import Factory, async_method, sync_method
from spanloom.instrumentation.anthropic import _attributes
from spanloom.instrumentation.anthropic._stream import MessagesStreamAccumulator
from spanloom.sdk._guard import log_failure
from spanloom.semconv import SpanKind

# The managers keep their request in a private attribute; without it, stream() goes untraced.
_SYNC_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_REQUEST = "_AsyncMessageStreamManager__api_request"
_BETA_SYNC_REQUEST = "_BetaMessageStreamManager__api_request"
_BETA_ASYNC_REQUEST = "_BetaAsyncMessageStreamManager__api_request"


def _stream_method(operation: Operation, attribute: str, is_async: bool) -> Factory:
    def make(original: Callable[..., Any], tracing: Tracing) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            manager = original(self, *args, **kwargs)
            if tracing.active:
                _trace_manager(manager, attribute, is_async, tracing, operation, kwargs)
            return manager

        return wrapper

    return make


def _trace_manager(
    manager: Any,
    attribute: str,
    is_async: bool,
    tracing: Tracing,
    operation: Operation,
    kwargs: dict[str, Any],
) -> None:
    try:
        request = vars(manager).get(attribute)
        if request is None:
            raise AttributeError(f"{type(manager).__name__} has no {attribute}")
        # The span belongs to the context stream() was called in, though it starts at __enter__.
        context = get_current()
        if is_async:
            traced: Any = traced_call_async(tracing, operation, lambda: request, kwargs, context)
        else:
            traced = functools.partial(traced_call, tracing, operation, request, kwargs, context)
        setattr(manager, attribute, traced)
    except Exception:
        log_failure("anthropic messages.stream manager")


def targets() -> Iterator[Target]:
    import anthropic
    from anthropic.resources.messages import AsyncMessages, Messages
    from anthropic.types import Message

    _attributes.omitted = tuple(
        sentinel
        for sentinel in (getattr(anthropic, "Omit", None), getattr(anthropic, "NotGiven", None))
        if sentinel
    )
    messages = Operation(
        "Messages",
        SpanKind.LLM,
        semconv.PROVIDER_ANTHROPIC,
        _attributes.messages_request,
        _attributes.message_response,
        (Message,),
        (anthropic.Stream, anthropic.AsyncStream),
        MessagesStreamAccumulator,
        iterables=("messages", "tools", "system"),
    )
    yield Messages, "create", sync_method(messages)
    yield AsyncMessages, "create", async_method(messages)
    yield Messages, "stream", _stream_method(messages, _SYNC_REQUEST, is_async=False)
    yield AsyncMessages, "stream", _stream_method(messages, _ASYNC_REQUEST, is_async=True)

    try:  # client.beta.messages: the same Messages API with beta features, its own classes
        from anthropic.resources.beta.messages import AsyncMessages as AsyncBetaMessages
        from anthropic.resources.beta.messages import Messages as BetaMessages
        from anthropic.types.beta import BetaMessage
    except ImportError:
        return
    beta = Operation(
        "Messages",
        SpanKind.LLM,
        semconv.PROVIDER_ANTHROPIC,
        _attributes.messages_request,
        _attributes.message_response,
        (BetaMessage,),  # and ParsedBetaMessage, its subclass
        (anthropic.Stream, anthropic.AsyncStream),
        MessagesStreamAccumulator,
        iterables=("messages", "tools", "system"),
    )
    beta_parse = Operation(
        "Messages",
        SpanKind.LLM,
        semconv.PROVIDER_ANTHROPIC,
        _attributes.messages_parse_request,
        _attributes.message_response,
        (BetaMessage,),
        iterables=("messages", "tools", "system"),
    )
    yield BetaMessages, "create", sync_method(beta)
    yield AsyncBetaMessages, "create", async_method(beta)
    # parse() and stream() post the request themselves, not through create()
    yield BetaMessages, "parse", sync_method(beta_parse)
    yield AsyncBetaMessages, "parse", async_method(beta_parse)
    yield BetaMessages, "stream", _stream_method(beta, _BETA_SYNC_REQUEST, is_async=False)
    yield AsyncBetaMessages, "stream", _stream_method(beta, _BETA_ASYNC_REQUEST, is_async=True)
