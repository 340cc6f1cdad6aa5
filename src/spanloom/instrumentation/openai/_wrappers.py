"""What the OpenAI instrumentor patches, and as which operation; imports ``openai`` when called."""

from __future__ import annotations

from collections.abc import Iterator

from spanloom import semconv
from spanloom.instrumentation._instrumentor import Target
from spanloom.instrumentation._span import Operation
from spanloom.instrumentation._wrappers import async_method, sync_method
from spanloom.instrumentation.openai import _attributes
from spanloom.instrumentation.openai._stream import ChatStreamAccumulator, ResponsesStreamAccumulator
from spanloom.semconv import SpanKind

_PROVIDER = semconv.PROVIDER_OPENAI


def targets() -> Iterator[Target]:
    import openai
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.embeddings import AsyncEmbeddings, Embeddings
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion

    _attributes.omitted = tuple(
        sentinel
        for sentinel in (getattr(openai, "Omit", None), getattr(openai, "NotGiven", None))
        if sentinel
    )
    streams = (openai.Stream, openai.AsyncStream)
    chat = Operation(
        "ChatCompletion",
        SpanKind.LLM,
        _PROVIDER,
        _attributes.chat_request,
        _attributes.chat_response,
        (ChatCompletion,),
        streams,
        ChatStreamAccumulator,
        iterables=("messages", "tools"),
    )
    yield Completions, "create", sync_method(chat)
    yield AsyncCompletions, "create", async_method(chat)
    # parse() posts the request itself (not through create) and returns a ParsedChatCompletion
    chat_parse = Operation(
        "ChatCompletion",
        SpanKind.LLM,
        _PROVIDER,
        _attributes.chat_parse_request,
        _attributes.chat_response,
        (ChatCompletion,),
        iterables=("messages", "tools"),
    )
    yield Completions, "parse", sync_method(chat_parse)
    yield AsyncCompletions, "parse", async_method(chat_parse)

    embeddings = Operation(
        "CreateEmbeddings",
        SpanKind.EMBEDDING,
        _PROVIDER,
        _attributes.embeddings_request,
        _attributes.embeddings_response,
        (CreateEmbeddingResponse,),
        iterables=("input",),
    )
    yield Embeddings, "create", sync_method(embeddings)
    yield AsyncEmbeddings, "create", async_method(embeddings)

    try:  # the Responses API came with openai 1.66
        from openai.resources.responses import AsyncResponses, Responses
        from openai.types.responses import Response
    except ImportError:
        return
    responses = Operation(
        "Response",
        SpanKind.LLM,
        _PROVIDER,
        _attributes.responses_request,
        _attributes.responses_response,
        (Response,),
        streams,
        ResponsesStreamAccumulator,
        iterables=("input", "tools"),
    )
    yield Responses, "create", sync_method(responses)
    yield AsyncResponses, "create", async_method(responses)
    responses_parse = Operation(
        "Response",
        SpanKind.LLM,
        _PROVIDER,
        _attributes.responses_parse_request,
        _attributes.responses_response,
        (Response,),
        iterables=("input", "tools"),
    )
    yield Responses, "parse", sync_method(responses_parse)
    yield AsyncResponses, "parse", async_method(responses_parse)
