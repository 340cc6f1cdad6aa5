"""The instrument()/uninstrument() machinery both provider instrumentors share.

Patching is done by hand, on the SDK's resource classes: each target method is replaced by a
wrapper and the original is kept to be put back. A wrapper carries the original it wraps, so a
second instrumentation (the same instrumentor twice, or two instrumentor objects) wraps the
original again instead of the first wrapper: one call, one span.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import TracerProvider

from spanloom.instrumentation._span import Tracing
from spanloom.sdk.mask import TraceConfig
from spanloom.sdk.register import config_of

_ORIGINAL = "__spanloom_original__"

# (class, method name, wrapper factory): the factory takes the original function and the
# instrumentor's Tracing and returns the function to install.
Target = tuple[type, str, Callable[[Callable[..., Any], Tracing], Callable[..., Any]]]


class BaseInstrumentor:
    """instrument() patches the provider SDK's methods; uninstrument() puts the originals back."""

    #: the provider SDK's import name, for the error raised when it is missing
    provider_package = ""

    def __init__(self) -> None:
        self._tracing: Tracing | None = None
        self._patches: list[tuple[type, str, Any, Any]] = []

    @property
    def is_instrumented(self) -> bool:
        return self._tracing is not None

    def _targets(self) -> Iterable[Target]:
        """The methods to patch; imports the provider SDK (only ever called from instrument())."""
        raise NotImplementedError

    def instrument(
        self, tracer_provider: TracerProvider | None = None, config: TraceConfig | None = None
    ) -> None:
        """Trace the provider SDK's calls from now on.

        Spans go to `tracer_provider` (default: the global one). Masking follows `config`, else
        the TraceConfig given to ``spanloom.register()`` for that provider, else the environment.
        Calling it again re-instruments with the new arguments; it never doubles spans.
        """
        provider = tracer_provider or trace_api.get_tracer_provider()
        resolved = config or config_of(provider) or TraceConfig()
        from spanloom import __version__

        tracer = trace_api.get_tracer(
            f"spanloom.instrumentation.{self.provider_package}", __version__, tracer_provider=provider
        )
        targets = list(self._targets())  # raises ImportError before anything is patched
        if self._tracing is not None:
            self.uninstrument()
        tracing = Tracing(tracer, resolved)
        for owner, name, make in targets:
            current = owner.__dict__.get(name)
            if current is None:
                continue
            original = getattr(current, _ORIGINAL, current)
            wrapper = functools.wraps(original)(make(original, tracing))
            setattr(wrapper, _ORIGINAL, original)
            setattr(owner, name, wrapper)
            self._patches.append((owner, name, original, wrapper))
        self._tracing = tracing

    def uninstrument(self) -> None:
        """Put the original methods back; calls made through wrappers cached elsewhere stop tracing."""
        tracing, self._tracing = self._tracing, None
        if tracing is not None:
            tracing.active = False
        for owner, name, original, wrapper in reversed(self._patches):
            # Another instrumentor may have re-patched since; its wrapper is its to remove.
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)
        self._patches.clear()
