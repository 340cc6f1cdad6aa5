"""User rows kept by deltas on the write path: a user can have any number of traces, and a recount
reads all of them (every trace of the project: `traces` is ordered by session, not user), so the
writer reads the touched users' rows and adds each changed trace's difference, as the SQLite store
does. A trace leaving a user (a late root naming another) cannot be undone by a delta on first/last
seen: that user is recounted (rollups.user_rows), as after a batch cut short.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spanloom.server.store.clickhouse import rollups, schema
from spanloom.server.store.clickhouse.rows import StoredTrace
from spanloom.server.store.trace_rollup import TraceRow, saturated

Key = tuple[str, str]
_COLUMNS = schema.USERS.column_names[:-2]  # without version, deleted


@dataclass(slots=True)
class _Tally:
    project: str
    user_id: str
    session_count: int = 0
    trace_count: int = 0
    total_tokens: int = 0
    cost_nanos: int = 0
    error_count: int = 0
    first_seen_ns: int | None = None
    last_seen_ns: int | None = None

    def add_trace(self, old: TraceRow | None, new: TraceRow) -> None:
        """Subtract `old` (None: the trace is new to the user) and add `new`. A trace's start only
        moves earlier and its end later as spans arrive, so first/last seen stay exact."""
        if old is None:
            self.trace_count += 1
        else:
            self.total_tokens -= old.total_tokens
            self.cost_nanos -= old.cost_nanos
            self.error_count -= old.error_count > 0
        self.total_tokens += new.total_tokens
        self.cost_nanos += new.cost_nanos
        self.error_count += new.error_count > 0
        if self.first_seen_ns is None or new.start_ns < self.first_seen_ns:
            self.first_seen_ns = new.start_ns
        if self.last_seen_ns is None or new.end_ns > self.last_seen_ns:
            self.last_seen_ns = new.end_ns

    def row(self, version: int) -> tuple[Any, ...]:
        nanos = saturated(self.cost_nanos)
        return (
            self.project,
            self.user_id,
            self.session_count,
            self.trace_count,
            saturated(self.total_tokens),
            nanos / 1e9,
            nanos,
            self.error_count,
            self.first_seen_ns,
            self.last_seen_ns,
            version,
            0,
        )


Change = tuple[StoredTrace | None, StoredTrace | None]  # (old, new)


def user_rows(
    client: Any,
    changes: Iterable[Change],
    version: int,
    session_users: Counter[tuple[str, str, str]],
    cache: dict[Key, tuple[Any, ...]] | None = None,
) -> list[tuple[Any, ...]]:
    """New rows (USERS order) of every user the changed traces touched. `session_users`: each
    (project, session, user)'s traces now, for every session the changes left or joined (from
    rollups.session_rows). `cache`: the rows this writer wrote last, by key (embedded only: the
    only writer), read instead of ClickHouse and kept up to date."""
    changes = list(changes)
    recount: set[Key] = set()
    touched: set[Key] = set()
    joined: dict[Key, Counter[str]] = {}  # (project, session) -> user -> traces that came
    left: dict[Key, Counter[str]] = {}
    for old, new in changes:
        old_row = old.row if old else None
        new_row = new.row if new else None
        project = (new_row or old_row).project  # type: ignore[union-attr]
        old_user = old_row.user_id if old_row else None
        new_user = new_row.user_id if new_row else None
        if old_user and old_user != new_user:
            recount.add((project, old_user))
        for row, moved in ((old_row, left), (new_row, joined)):
            if row is not None and row.session_id and row.user_id:
                moved.setdefault((project, row.session_id), Counter())[row.user_id] += 1
        if new_user:
            touched.add((project, new_user))
    tallies: dict[Key, _Tally] = {}
    wanted = touched - recount
    if cache is not None:
        for key in list(wanted):
            cached = cache.get(key)
            if cached is not None:
                tallies[key] = _Tally(*cached[:5], *cached[6:10])
                wanted.discard(key)
    for project, user_ids in rollups.by_project(wanted).items():
        for row in client.query(
            f"SELECT {', '.join(_COLUMNS)} FROM users FINAL WHERE project = {{p:String}}"
            " AND user_id IN {ids:Array(String)}",
            parameters={"p": project, "ids": user_ids},
        ).result_rows:
            tallies[(row[0], row[1])] = _Tally(
                row[0], row[1], row[2], row[3], row[4], row[6], row[7], row[8], row[9]
            )
    for old, new in changes:
        if new is None or not new.row.user_id:
            continue
        key = (new.row.project, new.row.user_id)
        if key in recount:
            continue
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = _Tally(*key)
        same_user = old is not None and old.row.user_id == new.row.user_id
        tally.add_trace(old.row if same_user and old else None, new.row)
    # A session counts for a user while one of its traces names them.
    sessions_by_project: dict[str, set[str]] = {}
    users_by_project: dict[str, set[str]] = {}
    for moved in (joined, left):
        for (project, session_id), users in moved.items():
            sessions_by_project.setdefault(project, set()).add(session_id)
            users_by_project.setdefault(project, set()).update(users)
    for project in sessions_by_project:
        pairs = {
            (session_id, user)
            for moved in (joined, left)
            for (key_project, session_id), users in moved.items()
            if key_project == project
            for user in users
        }
        for session_id, user in pairs:
            key = (project, user)
            if key in recount or key not in tallies:
                continue
            came = joined.get((project, session_id), Counter())[user]
            went = left.get((project, session_id), Counter())[user]
            count = session_users[(project, session_id, user)]
            tallies[key].session_count += (count > 0) - (count - came + went > 0)
    rows = [tally.row(version) for tally in tallies.values()]
    if recount:
        rows += rollups.user_rows(client, recount, version)
    if cache is not None:
        remember(cache, rows)
    return rows


def remember(cache: dict[Key, tuple[Any, ...]], rows: Iterable[tuple[Any, ...]]) -> None:
    """Keep these user rows (USERS order) in the writer's cache; a tombstone forgets its key."""
    for row in rows:
        if row[-1]:  # deleted
            cache.pop((row[0], row[1]), None)
        else:
            cache[(row[0], row[1])] = row
