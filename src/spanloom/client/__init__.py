"""A Python client of the spanloom server's JSON API: read sessions, users, traces, spans and
evaluation results as records or DataFrames, and send evaluation results.

    import spanloom
    client = spanloom.Client()  # the server register() sends to, with SPANLOOM_API_KEY
    frame = client.sessions("support", has_error=True).to_pandas()
    conversation = client.session("s-42", "support")  # with all its turns
    results = client.evaluations("support", name="helpful").to_pandas()  # one row per result
    client.log_evaluations([{"trace_id": "...", "name": "resolved", "label": "yes"}])

It never imports the server; httpx (a dependency already) sends. `SpanloomClient(url)` is the
older name of `Client`.
"""

from __future__ import annotations

from spanloom.client.clients import AsyncClient, Client
from spanloom.client.errors import SpanloomClientError
from spanloom.client.pages import AsyncPages, Pages
from spanloom.client.records import (
    Evaluation,
    EvaluationGroup,
    EvaluationResult,
    Project,
    Session,
    SessionDetail,
    Span,
    Trace,
    TraceDetail,
    Turn,
    User,
)
from spanloom.client.transport import Retry

SpanloomClient = Client

__all__ = [
    "AsyncClient",
    "AsyncPages",
    "Client",
    "Evaluation",
    "EvaluationGroup",
    "EvaluationResult",
    "Pages",
    "Project",
    "Retry",
    "Session",
    "SessionDetail",
    "Span",
    "SpanloomClient",
    "SpanloomClientError",
    "Trace",
    "TraceDetail",
    "Turn",
    "User",
]
