"""The SQLite store: the only package that imports sqlite3."""

from spanloom.server.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
