"""The embedded engine runs its merges at a lower CPU priority than ingest (location.CHDB_OPTIONS).

chDB takes engine options from the client that starts the engine, and this test process's engine
is started by the test kit (tests/chdb_kit.py) with the same options: checked here, it would pass
whatever the store's clients asked. So a fresh process opens a store alone, as `spanloom serve`
does, and reads the setting its engine runs with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spanloom.server.store.clickhouse.location import CHDB_OPTIONS

_READ_SETTING = """
import sys
from spanloom.server.store.clickhouse.location import connect
from spanloom.server.store.url import open_store
store = open_store(sys.argv[1])
client = connect(store.location, store.location.database)
print(client.query(
    "SELECT value FROM system.server_settings WHERE name = 'os_threads_nice_value_merge_mutate'"
).result_rows[0][0])
client.close()
store.close()
"""


def test_a_store_starts_its_engine_with_merges_at_a_lower_priority(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _READ_SETTING, f"chdb://{tmp_path / 'ch'}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == CHDB_OPTIONS["os_threads_nice_value_merge_mutate"] > 0
