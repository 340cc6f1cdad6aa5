"""The statements that create and upgrade the tables of schema.py: their engines (replicated on a
cluster, with a Distributed table over them), their settings, each version's ALTERs, the database.
Every statement is idempotent: migrations.py may run any of them again after a stop.
"""

from __future__ import annotations

from spanloom.server.store.clickhouse import schema
from spanloom.server.store.clickhouse.schema import Table

EVALUATIONS_V2_ALTER = (
    "ADD COLUMN IF NOT EXISTS result_key String AFTER source,"
    " ADD COLUMN IF NOT EXISTS details String CODEC(ZSTD(3)) AFTER explanation"
)
EVALUATIONS_V2_KEY = f"MODIFY ORDER BY {schema.EVALUATIONS.order_by}"


def engine_of(table: Table, cluster: str | None, database: str) -> str:
    """The table's engine: (Replacing)MergeTree, replicated on a cluster."""
    family = "ReplacingMergeTree" if table.replacing else "MergeTree"
    arguments = []
    if cluster is not None:
        family = f"Replicated{family}"
        # The usual macros of a cluster's config: each shard's replicas share one path.
        arguments = [f"'/clickhouse/tables/{{shard}}/{database}/{table.name}'", "'{replica}'"]
    if table.replacing:
        arguments.append("version")
        if table.deletable:
            arguments.append("deleted")
    return f"{family}({', '.join(arguments)})"


# Every table merges its parts a column at a time (ClickHouse's vertical merge) whatever their
# size; by default only merges of 131,072 rows or more do, and a merge of smaller parts reads all
# their columns at once, each with its own buffers. Merges run behind ingest all the time, so that
# was most of the embedded engine's memory above its resting size: at 300,000 spans the server's
# peak RSS went from 938 to 699 MiB with this. Narrow tables (under 11 columns besides the sorting
# key, ClickHouse's default minimum) still merge as before.
MERGE_SETTINGS = "vertical_merge_algorithm_min_rows_to_activate = 1"


def merge_settings_statements(database: str, cluster: str | None = None) -> list[str]:
    """Version 3: the tables made before take MERGE_SETTINGS (on a cluster, the local ones)."""
    on, local = (f" ON CLUSTER {cluster}", "_local") if cluster else ("", "")
    return [
        f"ALTER TABLE {database}.{table.name}{local}{on} MODIFY SETTING {MERGE_SETTINGS}"
        for table in (*schema.V1_TABLES, *schema.V2_TABLES)
    ]


def create_statements(table: Table, database: str, cluster: str | None = None) -> list[str]:
    """The DDL creating `table` in `database`: one table on a server (or chDB); on a cluster, a
    replicated local table on every node and a Distributed table of the same name over them
    (sharded so that every version of a key lands on the same shard: FINAL stays exact)."""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    local = f"{table.name}_local" if cluster else table.name
    body = ",\n    ".join([*(f"{name} {kind}" for name, kind in table.columns), *table.indexes])
    tail = f"\nORDER BY {table.order_by}"
    if table.ttl:
        tail += f"\nTTL {table.ttl}"
    tail += f"\nSETTINGS {', '.join(filter(None, (table.settings, MERGE_SETTINGS)))}"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {database}.{local}{on_cluster} (\n    {body}\n)"
        f"\nENGINE = {engine_of(table, cluster, database)}{tail}"
    ]
    if cluster:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {database}.{table.name}{on_cluster} AS {database}.{local}"
            f"\nENGINE = Distributed({cluster}, {database}, {local}, {table.shard_by})"
        )
    return statements


SESSIONS_V2_ALTER = (
    "ADD COLUMN IF NOT EXISTS first_input Nullable(String) CODEC(ZSTD(3)) AFTER metadata,"
    " ADD COLUMN IF NOT EXISTS last_output Nullable(String) CODEC(ZSTD(3)) AFTER first_input"
)


def sessions_v2_statements(database: str, cluster: str | None = None) -> list[str]:
    """Version 2's columns of `sessions` (on a cluster: the local tables and the Distributed one)."""
    if not cluster:
        return [f"ALTER TABLE {database}.sessions {SESSIONS_V2_ALTER}"]
    on = f"ON CLUSTER {cluster}"
    return [
        f"ALTER TABLE {database}.sessions_local {on} {SESSIONS_V2_ALTER}",
        f"ALTER TABLE {database}.sessions {on} {SESSIONS_V2_ALTER}",
    ]


def evaluations_v2_statements(database: str, cluster: str | None = None) -> list[str]:
    """Version 2's change of `evaluations`: two columns, and `result_key` at the end of its key
    (ClickHouse extends a sorting key only by columns added in the same ALTER; running it again
    changes nothing). On a cluster: the local tables on every node, and the columns of the
    Distributed table over them."""
    if not cluster:
        return [f"ALTER TABLE {database}.evaluations {EVALUATIONS_V2_ALTER}, {EVALUATIONS_V2_KEY}"]
    on = f"ON CLUSTER {cluster}"
    return [
        f"ALTER TABLE {database}.evaluations_local {on} {EVALUATIONS_V2_ALTER}, {EVALUATIONS_V2_KEY}",
        f"ALTER TABLE {database}.evaluations {on} {EVALUATIONS_V2_ALTER}",
    ]


def create_database(database: str, cluster: str | None = None) -> str:
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    return f"CREATE DATABASE IF NOT EXISTS {database}{on_cluster}"
