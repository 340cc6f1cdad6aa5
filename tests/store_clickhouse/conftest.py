"""The ClickHouse backend's own tests need the `clickhouse` extra (CI's chDB stage has it)."""

from __future__ import annotations

import pytest
from tests.chdb_kit import require_chdb


@pytest.fixture(autouse=True)
def _chdb_installed() -> None:
    require_chdb()
