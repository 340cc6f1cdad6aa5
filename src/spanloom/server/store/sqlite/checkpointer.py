"""The checkpoint thread: copies committed WAL pages back into the database file soon after the
writer's commits, in parallel with the writer.

SQLite's default is for the committing connection to checkpoint, which would stall ingest for
the checkpoint's I/O and fsync. Checkpoints here are PASSIVE, so they never block the writer or
readers; the writer's own autocheckpoint (connection.py) is only the backstop that keeps the WAL
bounded when this thread falls behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from spanloom.server.store.sqlite.connection import connect_checkpointer

logger = logging.getLogger(__name__)

# Pause between checkpoints: each copies whatever the commits since the last one wrote, so a
# page rewritten by several commits (an index leaf, a session row) is copied once.
CHECKPOINT_INTERVAL_SECONDS = 0.25


class Checkpointer:
    def __init__(self, path: Path) -> None:
        self._committed = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(connect_checkpointer(path),),
            name="spanloom-sqlite-checkpointer",
            daemon=True,
        )
        self._thread.start()

    def committed(self) -> None:
        """The writer committed: checkpoint soon."""
        self._committed.set()

    def stop(self) -> None:
        """Stop after the checkpoint under way, if any (the writer has stopped)."""
        self._stopping.set()
        self._committed.set()
        self._thread.join()

    def _run(self, connection: sqlite3.Connection) -> None:
        try:
            while True:
                self._committed.wait()
                self._committed.clear()
                if self._stopping.is_set():
                    break
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    # Not fatal: the writer's own checkpoint is the backstop.
                    logger.warning("spanloom: background checkpoint failed", exc_info=True)
                self._stopping.wait(CHECKPOINT_INTERVAL_SECONDS)
        finally:
            connection.close()
