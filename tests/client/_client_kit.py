"""The client tests' world: keys, conversations sent through the SDK, a server filled with them."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

# The server kit lives with the server tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _server_kit import RunningServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

import spanloom

INGEST, READ, OTHER_READ = "ingest-key-0123456789", "read-key-0123456789", "other-read-key-0123456789"
PROJECT = "shop"
# user -> their sessions -> the user messages of each session's turns
CONVERSATIONS = {
    "alice": {"a1": ["Where is my order?", "It was due Monday"], "a2": ["Cancel it"], "a3": ["Hi"]},
    "bob": {"b1": ["Refund please", "Order 42", "Thanks"], "b2": ["Broken link"]},
}
FAILING_SESSION = "b2"  # its one turn raises


@dataclass
class Filled:
    server: RunningServer
    provider: TracerProvider


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def traced_provider(server: RunningServer, project: str = PROJECT) -> TracerProvider:
    """The app's tracing as register() sets it up, sending each span as it ends."""
    return spanloom.register(
        project_name=project,
        endpoint=server.traces_endpoint,
        headers=bearer(INGEST),
        batch=False,
        set_global_tracer_provider=False,
    )


def say(provider: TracerProvider, session_id: str, user_id: str, message: str, fail: bool = False) -> None:
    tracer = provider.get_tracer("app")
    with (
        spanloom.using_session(session_id),
        spanloom.using_user(user_id),
        spanloom.using_metadata({"plan": "pro" if user_id == "alice" else "free"}),
        spanloom.using_tags(["support"]),
        tracer.start_as_current_span("turn") as root,
    ):
        root.set_attribute("openinference.span.kind", "CHAIN")
        root.set_attribute("input.value", message)
        with tracer.start_as_current_span("llm") as llm:
            llm.set_attribute("openinference.span.kind", "LLM")
            llm.set_attribute("llm.model_name", "gpt-4o-mini")
            llm.set_attribute("llm.token_count.prompt", 10)
            llm.set_attribute("llm.token_count.completion", 5)
            llm.set_attribute("llm.token_count.total", 15)
            if fail:
                llm.set_status(Status(StatusCode.ERROR, "model timed out"))
        root.set_attribute("output.value", f"Answer to {message}")


def keys_file(directory: Path) -> Path:
    path = directory / "keys.json"
    entries = [
        {"key": INGEST, "role": "ingest", "projects": "*"},
        {"key": READ, "role": "read", "projects": "*"},
        {"key": OTHER_READ, "role": "read", "projects": ["elsewhere"]},
    ]
    path.write_text(json.dumps({"keys": entries}))
    return path
