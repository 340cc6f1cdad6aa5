"""What the Gemini instrumentor patches, and as which operation; imports ``google.genai`` when called.

``generate_content_stream`` returns a plain generator (an async generator from the async
client), which takes no hooks: the caller gets a generator of ours yielding the same chunks
(see ``_streams.wrap_stream``); the sync one sends its request at the first step, inside the span.
"""

from __future__ import annotations

import types
from collections.abc import Iterator

from spanloom import semconv
from spanloom.instrumentation._instrumentor import Target
from spanloom.instrumentation._span import Operation
from spanloom.instrumentation._wrappers import async_method, sync_method
from spanloom.instrumentation.google_genai import _attributes
from spanloom.instrumentation.google_genai._stream import GenerateStreamAccumulator
from spanloom.semconv import SpanKind

_SYSTEMS = (semconv.SYSTEM_GEMINI, semconv.GEN_AI_SYSTEM_GEMINI)


def targets() -> Iterator[Target]:
    from google.genai.models import AsyncModels, Models
    from google.genai.types import GenerateContentResponse

    generate = Operation(
        "GenerateContent",
        SpanKind.LLM,
        semconv.PROVIDER_GOOGLE,
        _attributes.generate_request,
        _attributes.generate_response,
        (GenerateContentResponse,),
        systems=_SYSTEMS,
    )
    yield Models, "generate_content", sync_method(generate)
    yield AsyncModels, "generate_content", async_method(generate)
    stream = Operation(
        "GenerateContent",
        SpanKind.LLM,
        semconv.PROVIDER_GOOGLE,
        _attributes.generate_request,
        _attributes.generate_response,
        (GenerateContentResponse,),
        (types.GeneratorType, types.AsyncGeneratorType),
        GenerateStreamAccumulator,
        systems=_SYSTEMS,
        wraps_streams=True,
    )
    yield Models, "generate_content_stream", sync_method(stream)
    yield AsyncModels, "generate_content_stream", async_method(stream)
