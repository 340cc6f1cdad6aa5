"""A real server (uvicorn on loopback, a tmp SQLite file) with keys, filled through the SDK."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _client_kit import (
    CONVERSATIONS,
    FAILING_SESSION,
    READ,
    Filled,
    bearer,
    keys_file,
    say,
    traced_provider,
)
from _server_kit import run_server, wait_for


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[Filled]:
    directory = tmp_path_factory.mktemp("client")
    with run_server(directory / "client.db", keys_file=keys_file(directory), backend=store_backend) as server:
        provider = traced_provider(server)
        for user, sessions in CONVERSATIONS.items():
            for session_id, messages in sessions.items():
                for message in messages:
                    say(provider, session_id, user, message, fail=session_id == FAILING_SESSION)
        turns = sum(len(messages) for sessions in CONVERSATIONS.values() for messages in sessions.values())

        def stored() -> bool:
            page = server.client.get("/api/traces", params={"limit": 100}, headers=bearer(READ)).json()
            return len(page["items"]) == turns

        wait_for(stored, what="the SDK's spans to be stored")
        yield Filled(server, provider)
        provider.shutdown()
