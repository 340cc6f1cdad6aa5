"""spanloom: OpenTelemetry-native tracing for LLM applications, grouped by session and user.

``import spanloom`` stays light: it loads the OpenTelemetry API and SDK only, never the
server, the CLI or the exporter's HTTP stack (a test checks ``sys.modules``). ``spanloom.Client``
and ``spanloom.AsyncClient`` (spanloom/client/) load httpx when first named.
"""

from typing import Any

from spanloom.sdk._validate import SpanloomWarning
from spanloom.sdk.context import (
    get_attributes_from_context,
    suppress_tracing,
    using_attributes,
    using_metadata,
    using_prompt_template,
    using_session,
    using_tags,
    using_user,
)
from spanloom.sdk.evaluation import log_evaluation
from spanloom.sdk.feedback import end_session, flush_feedback, log_feedback
from spanloom.sdk.mask import REDACTED_VALUE, TraceConfig
from spanloom.sdk.processor import SessionSpanProcessor
from spanloom.sdk.register import register
from spanloom.sdk.threads import ContextThreadPoolExecutor, context_executor, wrap
from spanloom.sdk.trace_ids import current_trace_id
from spanloom.sdk.tracer import SpanloomTracer, get_tracer
from spanloom.semconv import SpanKind

__version__ = "0.1.0"

__all__ = [
    "REDACTED_VALUE",
    "AsyncClient",
    "Client",
    "ContextThreadPoolExecutor",
    "SessionSpanProcessor",
    "SpanKind",
    "SpanloomTracer",
    "SpanloomWarning",
    "TraceConfig",
    "__version__",
    "context_executor",
    "current_trace_id",
    "end_session",
    "flush_feedback",
    "get_attributes_from_context",
    "get_tracer",
    "log_evaluation",
    "log_feedback",
    "register",
    "suppress_tracing",
    "using_attributes",
    "using_metadata",
    "using_prompt_template",
    "using_session",
    "using_tags",
    "using_user",
    "wrap",
]


def __getattr__(name: str) -> Any:
    # The API client is for notebooks and scripts, not the traced app: loaded when first named.
    if name in ("Client", "AsyncClient"):
        from spanloom import client

        return getattr(client, name)
    raise AttributeError(f"module 'spanloom' has no attribute {name!r}")
