"""The instrument()/uninstrument() machinery both provider instrumentors share.

The instrumentors are OpenTelemetry instrumentors: subclasses of opentelemetry-instrumentation's
``BaseInstrumentor``, registered as ``opentelemetry_instrumentor`` entry points (pyproject), so
``opentelemetry-instrument python app.py`` finds and instruments them like any other, and its
dependency checks apply: `instrumentation_dependencies()` names the provider SDK versions an
instrumentor supports. Called by hand, instrument() logs a missing or unsupported SDK and
patches nothing (OpenTelemetry's behaviour); on the auto-instrumentation path, which skips
that check, `_instrument` makes it and raises `DependencyConflictError`, which the loader
reports and skips.

Patching is done by hand, on the SDK's resource classes: each target method is replaced by a
wrapper and the original is kept to be put back. A wrapper carries the original it wraps, so
instrumenting again wraps the original instead of the first wrapper: one call, one span.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.dependencies import DependencyConflictError

# The package ships no type information; mypy does not see the class its module defines.
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor as OTelBaseInstrumentor,
)
from opentelemetry.trace import TracerProvider

from spanloom.instrumentation._span import Tracing
from spanloom.sdk.mask import TraceConfig
from spanloom.sdk.register import config_of

_ORIGINAL = "__spanloom_original__"

# (class, method name, wrapper factory): the factory takes the original function and the
# instrumentor's Tracing and returns the function to install.
Target = tuple[type, str, Callable[[Callable[..., Any], Tracing], Callable[..., Any]]]


class BaseInstrumentor(OTelBaseInstrumentor):
    """instrument() patches the provider SDK's methods; uninstrument() puts the originals back.

    OpenTelemetry's base makes each instrumentor class a singleton, so the state lives on the
    one instance, set up by `_instrument` (never in ``__init__``, which runs at every
    ``OpenAIInstrumentor()``).
    """

    #: the provider SDK's import name
    provider_package = ""
    #: the provider SDK versions supported, as requirement strings
    dependencies: tuple[str, ...] = ()

    _tracing: Tracing | None = None
    # One Tracing for the instrumentor's lifetime, switched on and off: wrappers that clients
    # cached (the SDKs' with_raw_response binds the method it wraps on first use) trace again
    # when the instrumentor is instrumented again, with the new provider and config.
    _lifetime_tracing: Tracing | None = None
    _patches: list[tuple[type, str, Any, Any]] | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.dependencies

    @property
    def is_instrumented(self) -> bool:
        return self._tracing is not None

    def _targets(self) -> Iterable[Target]:
        """The methods to patch; imports the provider SDK (only ever called from instrument())."""
        raise NotImplementedError

    def instrument(
        self, tracer_provider: TracerProvider | None = None, config: TraceConfig | None = None, **kwargs: Any
    ) -> None:
        """Trace the provider SDK's calls from now on.

        Spans go to `tracer_provider` (default: the global one). Masking follows `config`, else
        the TraceConfig given to ``spanloom.register()`` for that provider, else the environment.
        Calling it again re-instruments with the new arguments; it never doubles spans. Other
        keywords are OpenTelemetry's (``skip_dep_check``, ``raise_exception_on_conflict``).
        """
        if self.is_instrumented_by_opentelemetry:
            self.uninstrument()
        return super().instrument(tracer_provider=tracer_provider, config=config, **kwargs)

    def _instrument(self, **kwargs: Any) -> None:
        conflict = self._check_dependency_conflicts()
        if conflict is not None:
            # Only reached when instrument() skipped its own check: opentelemetry-instrument's
            # loader catches this, logs it and moves on to the next instrumentor.
            raise DependencyConflictError(conflict)
        provider = kwargs.get("tracer_provider") or trace_api.get_tracer_provider()
        resolved = kwargs.get("config") or config_of(provider) or TraceConfig()
        from spanloom import __version__

        tracer = trace_api.get_tracer(
            f"spanloom.instrumentation.{self.provider_package}", __version__, tracer_provider=provider
        )
        targets = list(self._targets())  # imports the SDK: fails before anything is patched
        tracing = self._lifetime_tracing
        if tracing is None:
            tracing = self._lifetime_tracing = Tracing(tracer, resolved)
        else:
            tracing.tracer, tracing.config, tracing.active = tracer, resolved, True
        patches = []
        for owner, name, make in targets:
            current = owner.__dict__.get(name)
            if current is None:
                continue
            original = getattr(current, _ORIGINAL, current)
            wrapper = functools.wraps(original)(make(original, tracing))
            setattr(wrapper, _ORIGINAL, original)
            setattr(owner, name, wrapper)
            patches.append((owner, name, original, wrapper))
        self._patches = patches
        self._tracing = tracing

    def _uninstrument(self, **kwargs: Any) -> None:
        """Put the original methods back; calls made through wrappers cached elsewhere stop tracing."""
        tracing, self._tracing = self._tracing, None
        if tracing is not None:
            tracing.active = False
        for owner, name, original, wrapper in reversed(self._patches or ()):
            # Another instrumentor may have re-patched since; its wrapper is its to remove.
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)
        self._patches = None
