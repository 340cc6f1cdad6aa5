"""Where a ClickHouse store lives, from its URL, and opening clients to it.

``chdb:///path/to/dir``: ClickHouse embedded in this process through chDB, its data in that
directory. ``clickhouse://user:password@host:8123/database`` (``clickhouses://`` for HTTPS): a
ClickHouse server or cluster over HTTP. Both are driven by clickhouse-connect, one client API and
one SQL dialect. Query parameters: ``database`` (chDB; a server's comes from the path),
``cluster`` (create the tables ON CLUSTER, replicated and distributed: see ddl.py).

chDB runs one engine per process, on one directory: every store opened in a process at the same
time must name the same directory (they may name different databases in it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from spanloom.server.store.base import StoreOpenError

CHDB_SCHEME = "chdb"
SERVER_SCHEMES = ("clickhouse", "clickhouses")
DEFAULT_DATABASE = "spanloom"
# Database and cluster names are written into DDL (identifiers cannot be bound): only plain names.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Location:
    url: str  # as given, for messages (without the password)
    database: str
    cluster: str | None = None
    path: str | None = None  # chDB's data directory
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str = ""
    secure: bool = False

    @property
    def embedded(self) -> bool:
        return self.path is not None


def _name(value: str, what: str, url: str) -> str:
    if not _NAME.match(value):
        raise StoreOpenError(f"{url!r}: {what} {value!r} must be letters, digits and underscores")
    return value


def parse_location(url: str, cluster: str | None = None) -> Location | None:
    """The location a chdb:// or clickhouse:// URL names; None for another scheme."""
    parts = urlsplit(url)
    if parts.scheme not in (CHDB_SCHEME, *SERVER_SCHEMES):
        return None
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"database", "cluster"}
    if unknown:
        raise StoreOpenError(f"{url!r}: unknown parameter {sorted(unknown)[0]!r} (database, cluster)")
    cluster = cluster or query.get("cluster")
    if cluster is not None:
        _name(cluster, "the cluster", url)
    shown = url.replace(f":{parts.password}@", ":***@") if parts.password else url
    if parts.scheme == CHDB_SCHEME:
        path = unquote(parts.path)
        if parts.netloc or not path.strip("/"):
            raise StoreOpenError(f"{url!r}: a chDB URL is chdb:///absolute/dir or chdb:///./relative/dir")
        # chdb:///abs/dir -> "/abs/dir"; chdb:///./rel -> "./rel"
        path = path[1:] if path.startswith("/./") else path
        if cluster is not None:
            raise StoreOpenError(f"{url!r}: chDB runs in this process; a cluster needs a ClickHouse server")
        return Location(shown, _name(query.get("database", DEFAULT_DATABASE), "the database", url), path=path)
    database = unquote(parts.path.strip("/")) or DEFAULT_DATABASE
    if "database" in query:
        raise StoreOpenError(f"{url!r}: a server URL names its database in the path")
    return Location(
        shown,
        _name(database, "the database", url),
        cluster=cluster,
        host=parts.hostname or "localhost",
        port=parts.port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else "",
        secure=parts.scheme == "clickhouses",
    )


# Settings of every session: see docs/clickhouse.md for why each is set.
CLIENT_SETTINGS = {
    # An INSERT returns once its part is written, never queued for later (the server's async
    # inserts would answer before the data is readable): acknowledged means stored and readable.
    "async_insert": 0,
    # Into a Distributed table (cluster mode), an INSERT returns once every shard has its rows.
    "distributed_foreground_insert": 1,
}


# The writer's session: its statements are small (a batch's keys, a few hundred rows), and on a
# machine of a few busy cores a pipeline of one thread answers them sooner than one of several.
WRITER_SETTINGS = {"max_threads": 1}


# The embedded engine's merges run at a lower CPU priority than the process's other threads
# (ClickHouse's own server setting, applied when the first client starts the engine). On a machine
# of a few cores ingest (decoding, the writer, the inserts) and merges compete for them; merges
# only combine parts already stored and queryable, so they yield and catch up when ingest pauses.
CHDB_OPTIONS = {"os_threads_nice_value_merge_mutate": 10}


def connect(location: Location, database: str | None = None, extra: dict[str, Any] | None = None) -> Any:
    """A new clickhouse-connect client (one per thread: a client runs one query at a time), with
    `extra` settings beside CLIENT_SETTINGS."""
    import clickhouse_connect

    settings = {**CLIENT_SETTINGS, **(extra or {})}
    if location.cluster is None:
        settings.pop("distributed_foreground_insert")
    if location.embedded:
        assert location.path is not None
        return clickhouse_connect.get_client(
            interface="chdb",
            path=location.path,
            database=database,
            settings=settings,
            chdb_options=CHDB_OPTIONS,
        )
    return clickhouse_connect.get_client(
        host=location.host,
        port=location.port,
        username=location.username,
        password=location.password,
        secure=location.secure,
        database=database,
        settings=settings,
        # Each thread has its own client and session-free queries: no "session is locked" errors.
        autogenerate_session_id=False,
    )
