"""The DDL of every schema version, single-node and ON CLUSTER, checked by ClickHouse's own
parser (chDB's formatQuery): no ClickHouse cluster can run here, so this is how cluster mode's
statements are known to be ClickHouse SQL, with replicated engines and Distributed tables."""

from __future__ import annotations

import pytest
from tests.chdb_kit import engine_directory, require_chdb

from spanloom.server.store.clickhouse import ddl, schema
from spanloom.server.store.clickhouse.location import parse_location
from spanloom.server.store.clickhouse.migrations import all_statements


@pytest.fixture(scope="module")
def parser():
    # Module-scoped, so it runs before the package's autouse check: the same check, here first.
    require_chdb()
    import clickhouse_connect

    client = clickhouse_connect.get_client(interface="chdb", path=str(engine_directory()))
    yield lambda statement: client.query(
        "SELECT formatQuery({q:String})", parameters={"q": statement}
    ).result_rows[0][0]
    client.close()


def test_cluster_ddl_parses_with_replicated_engines_and_distributed_tables(parser):
    statements = all_statements("spanloom", cluster="analytics")
    formatted = [parser(statement) for statement in statements]
    assert all(" ON CLUSTER analytics" in text for text in formatted)
    tables = [*schema.V1_TABLES, *schema.V2_TABLES, schema.MIGRATIONS]
    for table in tables:
        local = next(text for text in formatted if f"spanloom.{table.name}_local ON CLUSTER" in text)
        assert "ENGINE = Replicated" in local
        assert f"'/clickhouse/tables/{{shard}}/spanloom/{table.name}'" in local
        distributed = next(
            text for text in formatted if f"TABLE IF NOT EXISTS spanloom.{table.name} ON CLUSTER" in text
        )
        assert f"Distributed(analytics, spanloom, {table.name}_local, {table.shard_by})" in distributed
    # Version 2 extends the results' key on every node, and their columns on the Distributed table.
    altered = [
        text
        for text in formatted
        if text.startswith("ALTER TABLE spanloom.evaluations") and "MODIFY SETTING" not in text
    ]
    assert len(altered) == 2
    assert "MODIFY ORDER BY" in altered[0] and "evaluations_local ON CLUSTER analytics" in altered[0]
    assert "MODIFY ORDER BY" not in altered[1] and "ADD COLUMN IF NOT EXISTS `result_key`" in altered[1]
    # Version 3 sets how every node's tables merge.
    settings = [text for text in formatted if "MODIFY SETTING" in text]
    assert {text.split()[2] for text in settings} == {f"spanloom.{table.name}_local" for table in tables[:-1]}
    assert all(ddl.MERGE_SETTINGS in text for text in settings)
    replacing = next(text for text in formatted if "spanloom.traces_local" in text)
    engine = "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/spanloom/traces', '{replica}'"
    assert f"{engine}, version, deleted)" in replacing


def test_single_node_ddl_parses(parser):
    for statement in all_statements("spanloom"):
        text = parser(statement)
        assert "ON CLUSTER" not in text and "Distributed" not in text and "Replicated" not in text


def test_versions_of_one_key_land_on_one_shard():
    """FINAL is exact on a Distributed table only when every version of a row's key is on one
    shard: each table shards by a function of its key's leading columns (or of the trace id,
    which its key holds and which never changes)."""
    for table in (*schema.V1_TABLES, *schema.V2_TABLES, schema.MIGRATIONS):
        if table.replacing:
            columns = table.shard_by.removeprefix("cityHash64(").removesuffix(")").split(", ")
            assert all(column in table.order_by for column in columns), table.name


def test_cluster_names_and_urls():
    location = parse_location("clickhouse://ingest:s3cret@ch.internal:8443/traces?cluster=main")
    assert location is not None
    assert (location.host, location.port, location.database, location.cluster) == (
        "ch.internal",
        8443,
        "traces",
        "main",
    )
    assert "s3cret" not in location.url
    with pytest.raises(Exception, match="letters, digits"):
        parse_location("clickhouse://h/db?cluster=x;DROP")
    with pytest.raises(Exception, match="cluster needs a ClickHouse server"):
        parse_location("chdb:///tmp/x?cluster=main")
