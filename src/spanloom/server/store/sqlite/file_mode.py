"""The database holds every prompt and answer the app traced: only its owner may read it.

When spanloom creates the file it is created 0600, and a folder it creates for it 0700 (SQLite
gives its -wal and -shm files the database file's mode). A file or folder that already exists
keeps its mode: it may be shared on purpose (a group that runs the server), so `serve` warns
about one that others can read instead of changing it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def create_private(path: Path) -> None:
    """Create the folders up to `path` (0700) and the empty file itself (0600), where missing."""
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            pass  # made by another process meanwhile
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)


def readable_by_others(path: Path) -> int | None:
    """The mode of an existing file that its group or other users can read, else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & (stat.S_IRGRP | stat.S_IROTH) else None
