"""The store contract: one suite, through the `Store` protocol only, run against every backend
(contract_kit.BACKENDS)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from contract_kit import BACKENDS, store_url
from tests.chdb_kit import require_chdb

from spanloom.server.store.base import Store
from spanloom.server.store.url import open_store


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "chdb":
        require_chdb()
    return request.param


@pytest.fixture
def open_contract_store(backend: str, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the test's store: the first call a fresh one, later calls the same one again (after
    the earlier one was closed), to check what survives a restart."""
    opened: list[Store] = []

    def opener() -> Store:
        store = open_store(store_url(backend, tmp_path))
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_contract_store: Callable[[], Store]) -> Store:
    return open_contract_store()
