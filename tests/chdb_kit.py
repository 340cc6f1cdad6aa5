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
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_engine: Path | None = None
_keeper: object = None


KNOWN_BACKENDS = ("sqlite", "chdb")


def test_stores() -> tuple[str, ...]:
    """SPANLOOM_TEST_STORE: the backends the server, API, page, browser and JS end-to-end tests
    run on, comma-separated: "sqlite" by default, "chdb" in CI's chDB stage, "sqlite,chdb" both."""
    names = tuple(
        name.strip() for name in os.environ.get("SPANLOOM_TEST_STORE", "sqlite").split(",") if name.strip()
    )
    unknown = sorted(set(names) - set(KNOWN_BACKENDS))
    if unknown or not names:
        given = os.environ.get("SPANLOOM_TEST_STORE")
        raise pytest.UsageError(f"SPANLOOM_TEST_STORE={given!r}: name some of {', '.join(KNOWN_BACKENDS)}")
    return names


def chdb_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("clickhouse_connect", "chdb"))


def require_chdb() -> None:
    """Skip a chDB test where the extra is not installed (the README's `.[dev]`), unless
    SPANLOOM_TEST_STORE names chDB: then its absence fails the run instead of hiding it."""
    if chdb_installed():
        return
    if "chdb" in test_stores():
        pytest.fail(
            "SPANLOOM_TEST_STORE names chdb, but chDB is not installed: pip install -e '.[clickhouse]'"
        )
    pytest.skip("chDB is not installed (pip install -e '.[clickhouse]'; CI's chDB stage runs these)")


def engine_directory() -> Path:
    global _engine
    if _engine is None:
        _engine = Path(tempfile.mkdtemp(prefix="spanloom-chdb-"))
        atexit.register(shutil.rmtree, _engine, ignore_errors=True)
        import clickhouse_connect

        from spanloom.server.store.clickhouse.location import CHDB_OPTIONS

        global _keeper
        # The engine starts with its first client's options: the server's, as its stores' clients.
        _keeper = clickhouse_connect.get_client(
            interface="chdb", path=str(_engine), chdb_options=CHDB_OPTIONS
        )
    return _engine


def chdb_url(directory: Path) -> str:
    """The URL of the chDB store of a test directory (the same one each time it is asked)."""
    database = "t_" + hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:20]
    return f"chdb://{engine_directory()}?database={database}"
