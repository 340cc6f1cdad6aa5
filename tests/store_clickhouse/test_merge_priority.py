"""The embedded engine runs its merges at a lower CPU priority than ingest (location.CHDB_OPTIONS):
every client the store opens starts or joins the engine with that option."""

from __future__ import annotations

from pathlib import Path

from tests.chdb_kit import chdb_url

from spanloom.server.store.clickhouse.location import CHDB_OPTIONS, connect
from spanloom.server.store.clickhouse.store import ClickHouseStore
from spanloom.server.store.url import open_store


def test_the_embedded_engine_merges_at_a_lower_priority(tmp_path: Path) -> None:
    store = open_store(chdb_url(tmp_path))
    assert isinstance(store, ClickHouseStore)
    client = connect(store.location, store.location.database)
    try:
        (value,) = client.query(
            "SELECT value FROM system.server_settings WHERE name = 'os_threads_nice_value_merge_mutate'"
        ).result_rows[0]
    finally:
        client.close()
        store.close()
    assert int(value) == CHDB_OPTIONS["os_threads_nice_value_merge_mutate"] > 0
