"""Wrapper factories: the function installed in place of an SDK method, sync or async."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spanloom.instrumentation._span import Operation, Tracing, async_wrapper, sync_wrapper

Factory = Callable[[Callable[..., Any], Tracing], Callable[..., Any]]


def sync_method(operation: Operation) -> Factory:
    """A factory for a plain method traced as `operation`."""

    def make(original: Callable[..., Any], tracing: Tracing) -> Callable[..., Any]:
        return sync_wrapper(tracing, operation, original)

    return make


def async_method(operation: Operation) -> Factory:
    """A factory for a coroutine method traced as `operation`."""

    def make(original: Callable[..., Any], tracing: Tracing) -> Callable[..., Any]:
        return async_wrapper(tracing, operation, original)

    return make
