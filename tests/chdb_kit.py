"""chDB in tests: one engine per process, a database per store.

chDB runs one ClickHouse engine per process, on one directory, and refuses to open another while
a client of the first is open. So every chDB store a test process opens lives in the same engine
directory (made once per process, removed at exit), each in its own database named after the
test's directory: two stores open at once stay apart, and reopening a directory's URL finds the
same store again.

Opening the engine costs half a second and more with every database it holds, and chDB shuts
it down when its last client closes: a client kept open for the whole process keeps it running
between stores. (So a store "restarted" within a test process reopens its clients, not the
engine; the SIGKILL test restarts a real server process on chDB.)
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

_engine: Path | None = None
_keeper: object = None


def engine_directory() -> Path:
    global _engine
    if _engine is None:
        _engine = Path(tempfile.mkdtemp(prefix="spanloom-chdb-"))
        atexit.register(shutil.rmtree, _engine, ignore_errors=True)
        import clickhouse_connect

        global _keeper
        _keeper = clickhouse_connect.get_client(interface="chdb", path=str(_engine))
    return _engine


def chdb_url(directory: Path) -> str:
    """The URL of the chDB store of a test directory (the same one each time it is asked)."""
    database = "t_" + hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:20]
    return f"chdb://{engine_directory()}?database={database}"
