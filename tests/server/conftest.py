"""Fixtures for the server tests: each test gets its own server over its own SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _server_kit import RunningServer, run_server


@pytest.fixture
def server(tmp_path: Path, store_backend: str) -> Iterator[RunningServer]:
    with run_server(tmp_path / "spanloom.db", backend=store_backend) as running:
        yield running
