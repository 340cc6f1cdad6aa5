"""Where the SDK's warnings point.

`pytest.warns` records every warning raised in its block, in any thread. A ResourceWarning from
a socket that a finished test left to the garbage collector lands there too, attributed to
whichever line was running when the collector ran (so to an SDK module, now and then). Only the
SDK's own warnings say where they point.
"""

from __future__ import annotations

import warnings

from spanloom import SpanloomWarning


def spanloom_warning_files(record: list[warnings.WarningMessage]) -> set[str]:
    """The files the SpanloomWarnings in `record` point at; there must be at least one."""
    files = {entry.filename for entry in record if issubclass(entry.category, SpanloomWarning)}
    assert files, f"no SpanloomWarning among {[str(entry.message) for entry in record]}"
    return files
