"""The one "never break the host" mechanism.

Tracing runs inside other people's applications. A bug in spanloom, or a provider SDK that
changed shape, must cost at most the telemetry of one call: never the call itself. Every hook
that runs on the user's path goes through `guarded` (or `log_failure` in a hand-written
``try``), which logs a failing site once with its traceback and then stays quiet, so a hot
loop cannot flood the host's logs.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger("spanloom")

_F = TypeVar("_F", bound=Callable[..., Any])
_reported: set[str] = set()
_reported_lock = threading.Lock()


def log_failure(site: str) -> None:
    """Log the exception being handled, once per `site`. Call from an ``except`` block."""
    with _reported_lock:
        if site in _reported:
            return
        _reported.add(site)
    logger.warning("spanloom: %s failed; tracing skipped this call (logged once)", site, exc_info=True)


def guarded(site: str, default: Any = None) -> Callable[[_F], _F]:
    """Decorate a hook so that any exception it raises is logged once and `default` returned."""

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception:
                log_failure(site)
                return default

        return wrapper  # type: ignore[return-value]  # same signature as fn

    return decorate


def strict_mode() -> bool:
    """`SPANLOOM_STRICT=1` turns bad input to the SDK into exceptions (tests use it)."""
    return os.environ.get("SPANLOOM_STRICT", "").strip().lower() in {"1", "true", "yes", "on"}
