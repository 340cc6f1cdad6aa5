"""Whether the SQLite store would take a write now, found out without keeping anything.

The probe runs in the writer thread, between two of its transactions, so it also proves the
writer is taking requests. It opens a write transaction and allocates `ROOM_BYTES` of pages (a
table and a blob of zeros) the way a batch of spans would, then rolls back: at the database's
size limit (SPANLOOM_MAX_DB_PAGES) the allocation fails with SQLITE_FULL, exactly as the next
batch would. A full disk is found before that from the free space of the file's filesystem,
as in WAL mode pages reach the disk only at commit, which the probe never does.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

# The room a write needs to be likely to succeed: some batches of LLM spans.
ROOM_BYTES = 1024 * 1024
_PROBE_TABLE = "spanloom_readiness_probe"


def disk_shortage(path: Path, room_bytes: int = ROOM_BYTES) -> str | None:
    """Why the disk holding `path` cannot take a write, or None when it has room."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError as error:
        return f"cannot read the free space of {path.parent}: {error}"
    if free < room_bytes:
        return f"storage is full: {free} bytes free on the disk holding {path}"
    return None


def probe_room(connection: sqlite3.Connection, room_bytes: int = ROOM_BYTES) -> None:
    """Allocate `room_bytes` of pages in a transaction that is rolled back. Raises the
    sqlite3.Error a write would meet (SQLITE_FULL past the size limit, a lock held elsewhere)."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")  # a failed rollback of an earlier write left one open
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(f"CREATE TABLE {_PROBE_TABLE} (pad BLOB)")
        connection.execute(f"INSERT INTO {_PROBE_TABLE} VALUES (zeroblob(?))", (room_bytes,))
    finally:
        # SQLite may have rolled back already (it can, on SQLITE_FULL).
        if connection.in_transaction:
            connection.execute("ROLLBACK")
