"""The text indexer thread: adds the turns' texts to the search index a few traces per
transaction, from what the writer noted (search_index.py), so ingest never tokenizes.

It and the writer take turns at SQLite's write lock through a lock of ours (`write_lock`), which
wakes the waiter at once (SQLite's busy handler would have it sleep and poll), and it mostly
waits while ingest is busy: on two cores its tokenizing would otherwise slow ingest by a fifth.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from spanloom.server.store.sqlite import search_index
from spanloom.server.store.sqlite.connection import connect_indexer

logger = logging.getLogger(__name__)

# While ingest is busy the indexer takes one transaction per pause: it yields the CPU and the
# write lock to ingest, and still gains ground under a steady load; it catches up at full speed
# once ingest pauses.
INDEXER_BUSY_PAUSE_SECONDS = 0.5
# The pause after a failed transaction (the storage failing) before it tries again.
INDEXER_RETRY_SECONDS = 1.0


class TextIndexer:
    """`writer_busy()`: whether ingest is busy now; `page_limit()`: the database's size limit in
    pages, which holds for the index's writes too (SQLite applies it per connection)."""

    def __init__(
        self,
        path: Path,
        write_lock: threading.Lock,
        writer_busy: Callable[[], bool],
        page_limit: Callable[[], int],
    ) -> None:
        self._write_lock = write_lock
        self._writer_busy = writer_busy
        self._page_limit = page_limit
        self._noted = threading.Event()
        self._stopping = threading.Event()
        connection = connect_indexer(path)
        self._thread = threading.Thread(
            target=self._run, args=(connection,), name="spanloom-sqlite-indexer", daemon=True
        )
        self._thread.start()

    def noted(self) -> None:
        """The writer committed, and may have noted traces to index."""
        self._noted.set()

    def stop(self) -> None:
        """Stop after the transaction under way (the writer has stopped: nothing new is noted)."""
        self._stopping.set()
        self._noted.set()
        self._thread.join()

    def _index_some(
        self, connection: sqlite3.Connection, applied_pages: int | None
    ) -> tuple[int, int | None]:
        """One transaction: (traces indexed, or -1 if it failed; the page limit now applied)."""
        with self._write_lock:
            try:
                wanted = self._page_limit()
                if wanted != applied_pages:
                    connection.execute(f"PRAGMA max_page_count = {int(wanted)}")
                    applied_pages = wanted
                if connection.in_transaction:
                    connection.execute("ROLLBACK")  # one whose rollback failed last time
                connection.execute("BEGIN IMMEDIATE")
                try:
                    indexed = search_index.index_pending(connection)
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
            except Exception:
                # Not fatal: the traces stay noted (searches read their texts); retry later.
                logger.warning("spanloom: indexing turn texts failed", exc_info=True)
                indexed = -1
        return indexed, applied_pages

    def _run(self, connection: sqlite3.Connection) -> None:
        applied_pages: int | None = None
        try:
            while not self._stopping.is_set():
                indexed, applied_pages = self._index_some(connection, applied_pages)
                if indexed < 0:
                    self._stopping.wait(INDEXER_RETRY_SECONDS)
                elif indexed < search_index.INDEX_CHUNK:
                    self._noted.wait()  # nothing left: until the writer commits again
                    self._noted.clear()
                elif self._writer_busy():
                    self._stopping.wait(INDEXER_BUSY_PAUSE_SECONDS)
        finally:
            connection.close()
