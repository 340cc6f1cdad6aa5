"""Auto-instrumentation for LangChain and LangGraph (``pip install spanloom[langchain]``).

::

    from spanloom.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)

A callback handler on LangChain's callback manager turns every run into a span with its
parent: chains, agents, tools, retrievers, LLM and chat-model runs (messages, model, token
usage); a LangGraph graph invoked once is one trace, its nodes one span each. Spans start in
the current OpenTelemetry context, so the ids of ``using_session`` / ``using_user`` are on
every one and the app's own spans hold them.

With the OpenAI or Anthropic instrumentor on as well, a model call is recorded once: on
LangChain's chat-model span, which the provider instrumentor fills with its own details
(exact request, usage, finish reason) instead of starting a span of its own.

The handler is registered through ``langchain_core``'s configure hooks, so every callback
manager LangChain builds includes it, with no change to the app's code. Importing this module
does not import LangChain; instrument() does. ``opentelemetry-instrument`` finds it as the
``spanloom_langchain`` entry point.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from spanloom.instrumentation._instrumentor import BaseInstrumentor, Target

__all__ = ["LangChainInstrumentor"]


class _HandlerSlot:
    """What LangChain's configure hook reads: the handler while instrumented, else None.

    LangChain keeps the hooks registered for good and calls ``get()`` on each when it builds a
    callback manager (as it does a ``ContextVar``'s). One slot read by every thread and task
    makes instrument() apply everywhere at once, which a context variable set in the
    instrumenting thread would not; the hook is registered once per process.
    """

    __slots__ = ("handler",)

    def __init__(self) -> None:
        self.handler: Any = None

    def get(self, default: Any = None) -> Any:
        return self.handler


_slot = _HandlerSlot()
_registered = False
_register_lock = threading.Lock()


def _register_hook() -> None:
    global _registered
    with _register_lock:
        if _registered:
            return
        from langchain_core.tracers.context import register_configure_hook

        # The hook is typed as a ContextVar; LangChain only calls its get(), which the slot has.
        register_configure_hook(_slot, inheritable=True)  # type: ignore[arg-type]
        _registered = True


class LangChainInstrumentor(BaseInstrumentor):
    """Spans for LangChain and LangGraph runs."""

    provider_package = "langchain"
    dependencies = ("langchain-core >= 0.3",)

    def _targets(self) -> Iterable[Target]:
        _register_hook()  # imports langchain_core: fails before anything is set up
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        super()._instrument(**kwargs)
        from spanloom.instrumentation.langchain._handler import SpanloomCallbackHandler

        if self._tracing is not None:  # set by the base's _instrument
            _slot.handler = SpanloomCallbackHandler(self._tracing)

    def _uninstrument(self, **kwargs: Any) -> None:
        _slot.handler = None
        super()._uninstrument(**kwargs)
