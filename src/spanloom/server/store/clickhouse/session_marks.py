"""Session marks: when a session was ended, and up to which of its turns its session evaluators
have judged it. One row per (project, session), rewritten whole by the writer (it alone writes
them): the latest end wins, a judgement replaces the last."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from spanloom.server.store.clickhouse import schema

Key = tuple[str, str]


class Marks(NamedTuple):
    ended_ns: int  # 0: never ended
    judged_end_ns: int  # 0: never judged


def select_marks(client: Any, keys: Iterable[Key]) -> dict[Key, Marks]:
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = client.query(
        "SELECT project, session_id, ended_ns, judged_end_ns FROM session_marks FINAL"
        " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}",
        parameters={"keys": keys},
    ).result_rows
    return {(project, session_id): Marks(ended, judged) for project, session_id, ended, judged in rows}


def write_marks(
    client: Any,
    version: int,
    ended: Iterable[tuple[str, str, int]] = (),
    judged: Iterable[tuple[str, str, int]] = (),
) -> None:
    """(project, session id, when) ended, and (project, session id, its end_ns) judged."""
    ends: dict[Key, int] = {}
    for project, session_id, when in ended:
        ends[(project, session_id)] = max(ends.get((project, session_id), 0), when)
    judgements = {(project, session_id): end_ns for project, session_id, end_ns in judged}
    keys = set(ends) | set(judgements)
    if not keys:
        return
    current = select_marks(client, keys)
    rows = []
    for key in sorted(keys):
        old = current.get(key, Marks(0, 0))
        new = Marks(max(old.ended_ns, ends.get(key, 0)), judgements.get(key, old.judged_end_ns))
        if key not in current or new != old:
            rows.append((*key, *new, version, 0))
    if rows:
        schema.insert(client, schema.SESSION_MARKS, rows)
