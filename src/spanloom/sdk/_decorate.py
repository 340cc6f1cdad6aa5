"""Decorating with a context: plain functions, coroutines, generators and async generators.

The context is attached around each run of the wrapped code and nowhere else. For a generator
that means around each resume: the ids hold across `yield`s inside the body, and the caller
between items sees its own context.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry.context import Context

from spanloom.sdk._runtime import attach_fast, detach_fast, get_current_fast

_F = TypeVar("_F", bound=Callable[..., Any])
# Builds the context to attach from the current one.
MakeContext = Callable[[Context], Context]


def decorate(fn: _F, make_context: MakeContext) -> _F:
    """`fn`, running with `make_context(current)` attached, whatever kind of callable it is."""
    if inspect.isasyncgenfunction(fn):
        return _wrap_async_generator(fn, make_context)  # type: ignore[return-value]  # same signature as fn
    if inspect.isgeneratorfunction(fn):
        return _wrap_generator(fn, make_context)  # type: ignore[return-value]  # same signature as fn
    if inspect.iscoroutinefunction(fn):
        return _wrap_coroutine(fn, make_context)  # type: ignore[return-value]  # same signature as fn
    return _wrap_function(fn, make_context)  # type: ignore[return-value]  # same signature as fn


def _wrap_function(fn: Callable[..., Any], make_context: MakeContext) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = attach_fast(make_context(get_current_fast()))
        try:
            return fn(*args, **kwargs)
        finally:
            detach_fast(token)

    return wrapper


def _wrap_coroutine(fn: Callable[..., Any], make_context: MakeContext) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        # A coroutine runs in its task's context; attach/detach stay in that one task.
        token = attach_fast(make_context(get_current_fast()))
        try:
            return await fn(*args, **kwargs)
        finally:
            detach_fast(token)

    return wrapper


def _wrap_generator(fn: Callable[..., Any], make_context: MakeContext) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The ids hold while the generator body runs, and only then: each resume attaches
        # on top of the caller's context of that moment and detaches before yielding.
        generator = fn(*args, **kwargs)
        step: Callable[[], Any] = generator.__next__
        while True:
            token = attach_fast(make_context(get_current_fast()))
            try:
                item = step()
            except StopIteration as stop:
                return stop.value
            finally:
                detach_fast(token)
            try:
                sent = yield item
            except GeneratorExit:
                token = attach_fast(make_context(get_current_fast()))
                try:
                    generator.close()
                finally:
                    detach_fast(token)
                raise
            except BaseException as error:
                step = functools.partial(generator.throw, error)
            else:
                step = functools.partial(generator.send, sent)

    return wrapper


def _wrap_async_generator(fn: Callable[..., Any], make_context: MakeContext) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        generator = fn(*args, **kwargs)
        step: Callable[[], Any] = generator.__anext__
        while True:
            token = attach_fast(make_context(get_current_fast()))
            try:
                item = await step()
            except StopAsyncIteration:
                return
            finally:
                detach_fast(token)
            try:
                sent = yield item
            except GeneratorExit:
                token = attach_fast(make_context(get_current_fast()))
                try:
                    await generator.aclose()
                finally:
                    detach_fast(token)
                raise
            except BaseException as error:
                step = functools.partial(generator.athrow, error)
            else:
                step = functools.partial(generator.asend, sent)

    return wrapper
