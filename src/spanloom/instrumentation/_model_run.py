"""A model call's span opened by a framework instrumentor, for a provider instrumentor to fill in.

LangChain's handler opens the span of a chat-model run before the model's code calls the
provider SDK. With the provider SDK instrumented too, one model call would be two LLM spans,
its tokens and cost counted twice. So the framework's span is the one: the handler puts a
`ModelRun` into the context it makes current for the run, and the provider wrapper claims it,
writing the call's attributes (the provider's view: the exact request, every usage detail)
onto that span instead of starting one of its own. The framework ends the span, and writes its
own view of the call only when no provider call recorded one.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import create_key

# The context entry holding the open ModelRun of the current framework model run, if any.
MODEL_RUN_KEY = create_key("spanloom-model-run")


class ModelRun:
    """One framework model run's span: claimed by the first provider call made inside it."""

    __slots__ = ("claimed", "recorded", "span")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.claimed = False
        self.recorded = False  # a provider call wrote the response side

    def claim(self) -> bool:
        """True for the first provider call of an open run; then False."""
        if self.claimed:
            return False
        self.claimed = True
        return True

    def close(self) -> None:
        """The run ended: a context still holding it (one its end could not restore) offers
        nothing more to a provider call."""
        self.claimed = True
