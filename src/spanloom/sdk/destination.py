"""Where spanloom sends things: the traces endpoint and its headers (register()), and the server
that feedback and ended sessions go to.

Feedback goes to the server the spans go to: the one `register()` was last given in this
process, else the one the environment names (SPANLOOM_ENDPOINT, the OTLP variables), with the
same key. A web handler calling `log_feedback` needs no configuration of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.util.re import parse_env_headers

DEFAULT_ENDPOINT = "http://127.0.0.1:4318/v1/traces"
TRACES_PATH = "/v1/traces"


def resolve_endpoint(endpoint: str | None = None) -> str:
    """Where spans go: the argument, else SPANLOOM_ENDPOINT, else the OTLP variables, else local."""
    if endpoint:
        return endpoint
    for variable in ("SPANLOOM_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        # The generic variable names the collector; the traces path is appended, per the spec.
        return base.rstrip("/") + TRACES_PATH
    return DEFAULT_ENDPOINT


def resolve_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """`headers`, plus ``Authorization: Bearer $SPANLOOM_API_KEY`` unless one is given."""
    resolved = dict(headers or {})
    api_key = os.environ.get("SPANLOOM_API_KEY", "").strip()
    if api_key and not any(name.lower() == "authorization" for name in resolved):
        resolved["Authorization"] = f"Bearer {api_key}"
    return resolved


def server_url(endpoint: str) -> str:
    """The spanloom server behind a traces endpoint: the URL without its ``/v1/traces`` (a
    server mounted under a path keeps it), query and fragment; any other URL is taken as the
    server's own."""
    parts = urlsplit(endpoint.strip())
    path = parts.path.rstrip("/").removesuffix(TRACES_PATH)
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


class Destination(NamedTuple):
    """A spanloom server's JSON API: its base URL, the headers that authenticate, the project."""

    url: str
    headers: dict[str, str]
    project: str | None


_lock = threading.Lock()
_registered: Destination | None = None


def remember_registration(traces_endpoint: str, headers: Mapping[str, str], project: str) -> None:
    """Called by `register()`: feedback goes where these spans go, with the same key and project."""
    global _registered
    with _lock:
        _registered = Destination(server_url(traces_endpoint), dict(headers), project)


def _environment_headers() -> dict[str, str]:
    raw = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or os.environ.get(
        "OTEL_EXPORTER_OTLP_HEADERS", ""
    )
    return dict(parse_env_headers(raw, liberal=True)) if raw.strip() else {}


def api_destination() -> Destination:
    """The server feedback goes to now: the last `register()`'s, else the environment's.

    Headers from OTEL_EXPORTER_OTLP_(TRACES_)HEADERS apply as they do to the span exporter, with
    the explicit ones (and SPANLOOM_API_KEY) winning; the project is register()'s, else
    SPANLOOM_PROJECT, else None: the server then takes the key's only project, or the one
    project that holds the session or turn.
    """
    with _lock:
        registered = _registered
    merged = {name.lower(): value for name, value in _environment_headers().items()}
    if registered is not None:
        merged.update({name.lower(): value for name, value in registered.headers.items()})
        return Destination(registered.url, merged, registered.project)
    merged.update({name.lower(): value for name, value in resolve_headers(None).items()})
    project = os.environ.get("SPANLOOM_PROJECT", "").strip() or None
    return Destination(server_url(resolve_endpoint()), merged, project)
