"""Store URLs: which backend a URL names, and opening it.

``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain path (the default
backend, an embedded SQLite file); ``chdb:///dir`` (ClickHouse embedded through chDB) or
``clickhouse://user:password@host:8123/database`` (a ClickHouse server or cluster; see
store/clickhouse/location.py). Only the backend's own package imports its driver, so this
imports it when a URL names it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from spanloom.server.store.base import Progress, Store, StoreOpenError

SQLITE_SCHEME = "sqlite"
CLICKHOUSE_SCHEMES = ("chdb", "clickhouse", "clickhouses")


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL (or a plain path) names; None when the URL names another backend."""
    if "://" not in url:
        return Path(url).expanduser()
    parts = urlsplit(url)
    if parts.scheme != SQLITE_SCHEME:
        return None
    if parts.netloc or parts.query or parts.fragment:
        raise StoreOpenError(
            f"{url!r}: a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    # sqlite:///x.db -> path "/x.db": the first slash ends the (empty) host part.
    path = unquote(parts.path)[1:]
    if not path:
        raise StoreOpenError(f"{url!r} names no file")
    return Path(path).expanduser()


def sqlite_url(path: Path) -> str:
    return f"{SQLITE_SCHEME}:///{path}"


def open_store(
    url: str,
    *,
    queue_size: int = 16,
    max_batch_spans: int = 8192,
    max_db_pages: int | None = None,
    progress: Progress | None = None,
    cluster: str | None = None,
) -> Store:
    """The store a URL names, opened (and its schema brought up to date). Raises StoreOpenError,
    having changed nothing, when the URL names no backend this spanloom has or a store it cannot
    open. `cluster`: a ClickHouse cluster to create the tables on (clickhouse:// only)."""
    path = sqlite_path(url)
    if path is None:
        return _open_clickhouse(url, queue_size, max_batch_spans, progress, cluster)
    if cluster is not None:
        raise StoreOpenError("--cluster applies to a clickhouse:// store only")
    from spanloom.server.store.sqlite import SqliteStore

    return SqliteStore(
        path,
        queue_size=queue_size,
        max_batch_spans=max_batch_spans,
        max_db_pages=max_db_pages,
        progress=progress,
    )


def _open_clickhouse(
    url: str, queue_size: int, max_batch_spans: int, progress: Progress | None, cluster: str | None
) -> Store:
    scheme = urlsplit(url).scheme
    if scheme not in CLICKHOUSE_SCHEMES:
        raise StoreOpenError(
            f"{scheme}:// is not a store this spanloom can open; use sqlite:///path.db, chdb:///dir"
            " or clickhouse://host:8123/database"
        )
    try:
        from spanloom.server.store.clickhouse import ClickHouseStore
        from spanloom.server.store.clickhouse.location import parse_location
    except ImportError as error:
        raise StoreOpenError(
            f"{scheme}:// needs the ClickHouse extra: pip install 'spanloom[clickhouse]' ({error})"
        ) from error
    location = parse_location(url, cluster)
    assert location is not None  # the scheme is one of ClickHouse's
    return ClickHouseStore(
        location, queue_size=queue_size, max_batch_spans=max_batch_spans, progress=progress
    )
