"""Wrapper factories: the function installed in place of an SDK method, sync or async."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spanloom.instrumentation._span import Operation, Tracing, traced_call, traced_call_async

Factory = Callable[[Callable[..., Any], Tracing], Callable[..., Any]]


def sync_method(operation: Operation) -> Factory:
    """A factory for a plain method traced as `operation`."""

    def make(original: Callable[..., Any], tracing: Tracing) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            return traced_call(tracing, operation, original, (self, *args), kwargs)

        return wrapper

    return make


def async_method(operation: Operation) -> Factory:
    """A factory for a coroutine method traced as `operation`."""

    def make(original: Callable[..., Any], tracing: Tracing) -> Callable[..., Any]:
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await traced_call_async(tracing, operation, original, (self, *args), kwargs)

        return wrapper

    return make
