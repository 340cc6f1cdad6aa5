"""Opening SQLite connections: one writer, and one reader per reading thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from spanloom.server.store.sqlite.file_mode import create_private

# How long a connection waits for a lock held by another process (a second server on the same
# file, a backup tool) before failing. In-process readers never take write locks (WAL).
BUSY_TIMEOUT_MS = 10_000
PAGE_SIZE = 32_768


def _apply_common(connection: sqlite3.Connection, cache_kib: int) -> None:
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # A bounded page cache per connection (negative means KiB): memory stays flat however big
    # the file grows, which keeps the server's RSS predictable.
    connection.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
    # Sorts and temporary indexes of list queries stay in memory: they are small (one page).
    connection.execute("PRAGMA temp_store = MEMORY")


def connect_writer(path: Path) -> sqlite3.Connection:
    """The single writing connection. Used only by the writer thread after migrations."""
    create_private(path)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), so one
    # commit covers a whole batch and the rollups written with it.
    # check_same_thread=False: opened (and migrated) by the constructing thread, then handed to
    # the writer thread, which is its only user from then on.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # 32 KiB pages for a new file (an existing one keeps its own): a span row of an LLM call is a
    # few KiB, and at SQLite's default 4 KiB most pages held one row and a gap it could not use
    # (1.5x the bytes received; 1.25x at 32 KiB). Larger pages gained nothing more.
    connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    # WAL: readers see the last committed state and never wait for the writer, and a commit is
    # one sequential append to the log. The mode is stored in the file, so it persists.
    connection.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a committed transaction survives the process being killed (it is in
    # the OS's file cache); only a power loss can lose the last commits, and never corrupts the
    # file. FULL would add an fsync per batch for that case.
    connection.execute("PRAGMA synchronous = NORMAL")
    # Checkpoints (copying the WAL back into the file, with an fsync) run on the store's
    # checkpoint thread, overlapping the writer's work. The writer's own checkpoint after a commit
    # is the backstop that keeps the WAL bounded (64 MiB) when that thread falls behind; at
    # SQLite's default of 4 MiB it would run after nearly every busy commit and stall it.
    connection.execute("PRAGMA wal_autocheckpoint = 16384")
    # Keep the WAL file from staying large after bursts: truncate it to 64 MiB on checkpoint.
    connection.execute("PRAGMA journal_size_limit = 67108864")
    _apply_common(connection, cache_kib=32_768)
    return connection


def connect_reader(path: Path) -> sqlite3.Connection:
    """A connection for one reading thread; it cannot write."""
    # check_same_thread=False only so that close() can run from the closing thread; each
    # reader connection is used by the one thread that opened it.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # A guard: the read path must never write (it would contend with the writer).
    connection.execute("PRAGMA query_only = ON")
    _apply_common(connection, cache_kib=8_192)
    return connection


def connect_checkpointer(path: Path) -> sqlite3.Connection:
    """The connection of the checkpoint thread: it only runs PASSIVE checkpoints, which never
    block the writer or readers."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return connection


def connect_indexer(path: Path) -> sqlite3.Connection:
    """The connection of the text indexer thread (search_index.py): it writes, in short
    transactions of its own, with the writer's durability and checkpoint settings."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA wal_autocheckpoint = 16384")
    _apply_common(connection, cache_kib=8_192)
    return connection
