"""The OpenTelemetry context at the cost of a context variable.

Entering a `using_*` block happens on every request of the host application. OpenTelemetry's
public `attach`/`detach`/`get_current` each add wrapper layers over one context variable; when
the default runtime context is in use, these names are that variable's own methods.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context, attach, detach, get_current

from spanloom.sdk._guard import log_failure


def _runtime_context_variable() -> contextvars.ContextVar[Context] | None:
    """The ContextVar behind OpenTelemetry's default runtime context, when that is in use."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    return variable if isinstance(variable, contextvars.ContextVar) else None


# Entering a block is on the host's request path: calling the context variable directly skips
# three layers of wrapper functions (the public attach/detach/get_current do exactly this).
# Any other runtime context configured through OTEL_PYTHON_CONTEXT gets the public functions.
_RUNTIME_VARIABLE = _runtime_context_variable()
get_current_fast: Callable[[], Context]
attach_fast: Callable[[Context], Any]  # returns the token reset_fast takes
reset_fast: Callable[[Any], Any]
if _RUNTIME_VARIABLE is not None:
    get_current_fast = _RUNTIME_VARIABLE.get
    attach_fast = _RUNTIME_VARIABLE.set
    reset_fast = _RUNTIME_VARIABLE.reset
else:  # pragma: no cover - only with a custom OTEL_PYTHON_CONTEXT
    get_current_fast = get_current
    attach_fast = attach
    reset_fast = detach


# The current OpenTelemetry context: the fast path of `opentelemetry.context.get_current`.
current_context = get_current_fast


def root_context() -> Context | None:
    """The context current where nothing was ever attached (the context variable's default).

    Read in a fresh `contextvars.Context`, so whatever the importing code attached does not
    count. None with a custom runtime context, where no such object is known.
    """
    if _RUNTIME_VARIABLE is None:  # pragma: no cover - only with a custom OTEL_PYTHON_CONTEXT
        return None
    return contextvars.Context().run(_RUNTIME_VARIABLE.get)


def detach_fast(token: Any) -> None:
    try:
        reset_fast(token)
    except Exception:  # a token from another context, or reset twice: restore nothing
        log_failure("context detach")
