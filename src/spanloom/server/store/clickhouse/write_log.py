"""The write log: each batch's keys (traces, sessions, users) before it is written, and a mark once
all of it is, so a batch cut short can be recounted (writer.recover).

On a server (several spanloom processes may share it, and a process may restart elsewhere) it is
the ``write_log`` table. Embedded (chDB), the process owning the directory is the only writer, so
it is a file in that directory: two appends per batch instead of two INSERTs, which on chDB cost
a part each (a third of a small batch's time). Lines are flushed to the OS before the batch's
first insert and after its last: they survive the process being killed, as chDB's own parts do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from spanloom.server.store.clickhouse import schema

Key = tuple[str, str]
Pending = tuple[int, list[str], list[Key], list[Key]]  # (batch, trace ids, sessions, users)
_COLUMNS = ("batch", "done", "trace_ids", "sessions", "users")
# The file is emptied when it is this large and no batch is pending.
_MAX_FILE_BYTES = 8 * 1024 * 1024


class WriteLog(Protocol):
    def last_batch(self) -> int: ...

    def begin(self, batch: int, trace_ids: list[str], sessions: set[Key], users: set[Key]) -> None: ...

    def end(self, batch: int) -> None: ...

    def pending(self) -> list[Pending]: ...


class TableLog:
    def __init__(self, client: Any) -> None:
        self.client = client

    def last_batch(self) -> int:
        return int(self.client.query("SELECT max(batch) FROM write_log").result_rows[0][0] or 0)

    def begin(self, batch: int, trace_ids: list[str], sessions: set[Key], users: set[Key]) -> None:
        schema.insert(
            self.client, schema.WRITE_LOG, [(batch, 0, trace_ids, sorted(sessions), sorted(users))], _COLUMNS
        )

    def end(self, batch: int) -> None:
        schema.insert(self.client, schema.WRITE_LOG, [(batch, 1, [], [], [])], _COLUMNS)

    def pending(self) -> list[Pending]:
        return [
            (batch, list(trace_ids), [tuple(key) for key in sessions], [tuple(key) for key in users])
            for batch, trace_ids, sessions, users in self.client.query(
                "SELECT batch, groupArrayArray(trace_ids), groupArrayArray(sessions), groupArrayArray(users)"
                " FROM write_log GROUP BY batch HAVING max(done) = 0 ORDER BY batch"
            ).result_rows
        ]


class FileLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: set[int] = set()
        self._file = path.open("a", encoding="utf-8")

    def _lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by the kill: its batch's insert never started
        return lines

    def last_batch(self) -> int:
        return max((line["batch"] for line in self._lines()), default=0)

    def _append(self, entry: dict[str, Any]) -> None:
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._file.flush()

    def begin(self, batch: int, trace_ids: list[str], sessions: set[Key], users: set[Key]) -> None:
        self._open.add(batch)
        self._append(
            {"batch": batch, "traces": trace_ids, "sessions": sorted(sessions), "users": sorted(users)}
        )

    def end(self, batch: int) -> None:
        self._append({"batch": batch, "done": True})
        self._open.discard(batch)
        if not self._open and self._file.tell() > _MAX_FILE_BYTES:
            self._file.close()
            self._file = self.path.open("w", encoding="utf-8")  # nothing pending: start afresh
            os.fsync(self._file.fileno())

    def pending(self) -> list[Pending]:
        begun: dict[int, Pending] = {}
        for line in self._lines():
            if line.get("done"):
                begun.pop(line["batch"], None)
            else:
                begun[line["batch"]] = (
                    line["batch"],
                    line["traces"],
                    [tuple(key) for key in line["sessions"]],
                    [tuple(key) for key in line["users"]],
                )
        return sorted(begun.values())

    def close(self) -> None:
        self._file.close()
