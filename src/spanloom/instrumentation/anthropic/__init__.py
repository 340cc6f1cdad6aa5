"""Auto-instrumentation for the ``anthropic`` SDK (``pip install spanloom[anthropic]``).

::

    from spanloom.instrumentation.anthropic import AnthropicInstrumentor

    AnthropicInstrumentor().instrument(tracer_provider=provider)

Traces ``messages.create`` (sync, async, ``stream=True``) and ``messages.stream(...)``, and the
same on ``beta.messages`` (plus ``beta.messages.parse``). Each call is one span carrying the
session and user ids of the context it was made in. Importing this module does not import
``anthropic``; instrument() does. ``opentelemetry-instrument`` finds it as the
``spanloom_anthropic`` entry point.
"""

from __future__ import annotations

from collections.abc import Iterable

from spanloom.instrumentation._instrumentor import BaseInstrumentor, Target

__all__ = ["AnthropicInstrumentor"]


class AnthropicInstrumentor(BaseInstrumentor):
    """Spans for Anthropic Messages calls, streamed or not."""

    provider_package = "anthropic"
    dependencies = ("anthropic >= 0.40",)

    def _targets(self) -> Iterable[Target]:
        from spanloom.instrumentation.anthropic._wrappers import targets

        return targets()
