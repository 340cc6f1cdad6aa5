"""Auto-instrumentation for Google's Gemini SDK, ``google-genai`` (``pip install spanloom[google-genai]``).

::

    from spanloom.instrumentation.google_genai import GoogleGenAIInstrumentor

    GoogleGenAIInstrumentor().instrument(tracer_provider=provider)

Traces ``models.generate_content`` and ``models.generate_content_stream``, sync
(``client.models``) and async (``client.aio.models``): one span per call with the messages,
model, token counts (thinking included in the completion count), output, finish reason and
function calls, and the session and user ids of the context it was made in. Importing this
module does not import ``google.genai``; instrument() does. ``opentelemetry-instrument``
finds it as the ``spanloom_google_genai`` entry point.
"""

from __future__ import annotations

from collections.abc import Iterable

from spanloom.instrumentation._instrumentor import BaseInstrumentor, Target

__all__ = ["GoogleGenAIInstrumentor"]


class GoogleGenAIInstrumentor(BaseInstrumentor):
    """Spans for Gemini generate_content calls, streamed or not."""

    provider_package = "google_genai"
    dependencies = ("google-genai >= 1.0",)

    def _targets(self) -> Iterable[Target]:
        from spanloom.instrumentation.google_genai._wrappers import targets

        return targets()
