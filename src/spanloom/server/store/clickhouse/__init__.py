"""The ClickHouse store: embedded (chDB) or a server/cluster, through clickhouse-connect. The only
package that imports clickhouse_connect or chdb."""

from spanloom.server.store.clickhouse.store import ClickHouseStore

__all__ = ["ClickHouseStore"]
