"""Every table of a ClickHouse store merges its parts a column at a time (ddl.MERGE_SETTINGS),
also in a store made before version 3 set it."""

from __future__ import annotations

from pathlib import Path

from tests.chdb_kit import chdb_url

from spanloom.server.store.clickhouse import ddl, schema
from spanloom.server.store.url import open_store

_TABLES = {table.name for table in (*schema.V1_TABLES, *schema.V2_TABLES)}


def _unset(store) -> set[str]:
    """The store's tables that do not have the merge setting."""
    rows = store._writer_client.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase()"
    ).result_rows
    found = {name for name, _ in rows}
    assert found >= _TABLES
    return {name for name, create in rows if name in _TABLES and ddl.MERGE_SETTINGS not in create}


def test_a_store_made_before_version_3_takes_the_merge_setting(tmp_path: Path):
    url = chdb_url(tmp_path)
    store = open_store(url)
    try:
        assert _unset(store) == set()
        # As version 2 left the tables, and its record of the versions applied.
        for name in _TABLES:
            store._writer_client.command(
                f"ALTER TABLE {name} RESET SETTING vertical_merge_algorithm_min_rows_to_activate"
            )
        store._writer_client.command("DELETE FROM schema_migrations WHERE version = 3")
        assert _unset(store) == _TABLES
    finally:
        store.close()
    store = open_store(url)
    try:
        assert _unset(store) == set()
    finally:
        store.close()
