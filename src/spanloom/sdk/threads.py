"""Carry the OpenTelemetry context (and so the session and user) into worker threads.

asyncio tasks copy the context when they are created, so ids set with `using_session` reach
them without help. Threads do not: a `ThreadPoolExecutor` worker runs with whatever context
the thread last had. `wrap` captures the caller's context and `context_executor` does it for
every submitted call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from opentelemetry.context import attach, detach, get_current

_P = ParamSpec("_P")
_R = TypeVar("_R")


def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Bind `fn` to the current context: wherever it later runs, it runs with the ids set now.

    ``executor.submit(spanloom.wrap(work), item)``
    """
    captured = get_current()

    @functools.wraps(fn)
    def run_in_captured_context(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        token = attach(captured)
        try:
            return fn(*args, **kwargs)
        finally:
            detach(token)

    return run_in_captured_context


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose submitted calls (and `map`) run in the submitter's context."""

    def submit(self, fn: Callable[..., _R], /, *args: Any, **kwargs: Any) -> Future[_R]:
        return super().submit(wrap(fn), *args, **kwargs)


def context_executor(max_workers: int | None = None, **kwargs: Any) -> ContextThreadPoolExecutor:
    """A thread pool that carries the caller's context (session, user, trace) into each task."""
    return ContextThreadPoolExecutor(max_workers=max_workers, **kwargs)
