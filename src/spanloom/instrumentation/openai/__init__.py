"""Auto-instrumentation for the ``openai`` SDK (``pip install spanloom[openai]``).

::

    from spanloom.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)

Traces ``chat.completions.create`` and ``.parse``, ``responses.create`` and ``.parse``, and
``embeddings.create``, sync and async, streamed or not (the ``stream()`` helpers go through
``create`` and are traced too). Each call is one span carrying the session and user ids of the
context it was made in. Importing this module does not import ``openai``; instrument() does.
``opentelemetry-instrument`` finds it as the ``spanloom_openai`` entry point.
"""

from __future__ import annotations

from collections.abc import Iterable

from spanloom.instrumentation._instrumentor import BaseInstrumentor, Target

__all__ = ["OpenAIInstrumentor"]


class OpenAIInstrumentor(BaseInstrumentor):
    """Spans for OpenAI chat completions, responses and embeddings."""

    provider_package = "openai"
    dependencies = ("openai >= 1.40",)

    def _targets(self) -> Iterable[Target]:
        from spanloom.instrumentation.openai._wrappers import targets

        return targets()
