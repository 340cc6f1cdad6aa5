"""Session rows recounted without asking ClickHouse: the embedded writer (the only writer of its
directory) keeps, for the sessions it wrote last, what a recount of their trace rows needs, and
moves each changed trace's figures in and out of it.

A batch touches a few hundred sessions, and recounting them from `traces FINAL` (plus reading the
texts of their stored rows) cost chDB two queries per project per batch, about a third of a
batch's time. A tally (session_tally.py) holds exactly what a recount aggregates (sums, the
extreme keys of the first user, first input and last output, the sorted latencies, the labeled
traces, each user's trace count), and the same function makes both rows, so a kept tally's row
equals the recount's. A change a tally cannot follow exactly (a trace leaving the session,
changing user, or the last output's trace moving earlier) drops the tally, and that session is
recounted by a query after the batch's trace rows are written, as before; so is a session the
tallies do not hold that may be stored (a Bloom filter of stored session keys says which cannot
be). A batch's new tallies replace the old ones only once the batch is written; a batch cut short
clears them all (writer.recover), as do retention's deletes.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from typing import Any

from spanloom.server.store.clickhouse import rollups, schema
from spanloom.server.store.clickhouse.key_filter import KeyFilter
from spanloom.server.store.clickhouse.rows import StoredTrace, tombstone
from spanloom.server.store.clickhouse.session_tally import Order, Tally, follows, select_tallies, session_row

Key = tuple[str, str]  # (project, session id)
Texts = dict[str, tuple[str | None, str | None]]  # trace id -> (input, output)

# Tallies kept: about 1 KiB each (the texts of the first input and last output are kept only
# when short), so at most a few tens of MiB.
MAX_SESSIONS = 32_768
MAX_KEPT_TEXT = 1_024  # characters: longer texts are read from the trace row when needed


class SessionTallies:
    def __init__(self, client: Any) -> None:
        self.client = client
        self._tallies: OrderedDict[Key, Tally] = OrderedDict()
        self._stored = self._stored_sessions()

    def _stored_sessions(self) -> KeyFilter:
        # Sessions with a trace row: from `traces` itself, so a batch cut short before its
        # session rows counts too.
        return KeyFilter(
            self.client, "SELECT DISTINCT project, session_id FROM traces WHERE session_id != ''"
        )

    def clear(self, recovered: bool = False) -> None:
        """Forget every tally; `recovered`: a recovery wrote trace rows (maybe of sessions the
        filter did not know), so it is built again."""
        self._tallies.clear()
        if recovered:
            self._stored = self._stored_sessions()

    def session_rows(
        self,
        changes: Iterable[tuple[StoredTrace | None, StoredTrace | None]],
        version: int,
        user_counts: Counter[tuple[str, str, str]],
        known: Texts,
    ) -> tuple[list[tuple[Any, ...]], dict[Key, Tally]]:
        """New rows (SESSIONS order) of the sessions these changes left or joined, as
        rollups.session_rows gives them, and the tallies to keep once they are written (`keep`).
        Call after the batch's trace rows are written (a session recounted reads them)."""
        tallies: dict[Key, Tally] = {}
        recount: set[Key] = set()
        for old, new in changes:
            old_row = old.row if old else None
            new_row = new.row if new else None
            old_key = (old_row.project, old_row.session_id) if old_row and old_row.session_id else None
            new_key = (new_row.project, new_row.session_id) if new_row and new_row.session_id else None
            if old_key is not None and old_key != new_key:
                recount.add(old_key)  # a trace left it: only a recount knows its extremes now
            if new_row is None or new_key is None or new_key in recount:
                continue
            tally = tallies.get(new_key)
            if tally is None:
                tally = self._start(new_key)
                if tally is None:
                    recount.add(new_key)
                    continue
                tallies[new_key] = tally
            if old_key == new_key:
                assert old_row is not None
                if not (follows(old_row, new_row) and tally.remove(old_row, new_row)):
                    recount.add(new_key)
                    continue
            tally.add(new_row)
        for key in recount:
            tallies.pop(key, None)
        if recount:
            tallies.update(_select_tallies(self.client, recount))
        rows = self._rows(tallies, version, known)
        emptied = {key: Tally() for key in recount if key not in tallies}
        rows.extend(
            tombstone(schema.SESSIONS, {"project": project, "session_id": session_id}, version)
            for project, session_id in emptied
        )
        for (project, session_id), tally in tallies.items():
            for user, count in tally.users.items():
                user_counts[(project, session_id, user)] += count
        # A session its last trace left is kept as empty: its tally from before would still
        # count that trace when the next one joins.
        return rows, {**tallies, **emptied}

    def keep(self, tallies: dict[Key, Tally]) -> None:
        """Keep these tallies (of a batch now written), the least recently written going first."""
        for key, tally in tallies.items():
            self._tallies[key] = tally
            self._tallies.move_to_end(key)
        joined = (f"{project}\x1f{session_id}" for project, session_id in tallies)
        self._stored.add([key for key in joined if not self._stored.may_hold(key)])
        while len(self._tallies) > MAX_SESSIONS:
            self._tallies.popitem(last=False)

    def _start(self, key: Key) -> Tally | None:
        """A copy of the kept tally, an empty one for a session surely not stored, else None."""
        kept = self._tallies.get(key)
        if kept is not None:
            return kept.copy()
        if not self._stored.may_hold(f"{key[0]}\x1f{key[1]}"):
            return Tally()
        return None

    def _rows(self, tallies: dict[Key, Tally], version: int, known: Texts) -> list[tuple[Any, ...]]:
        missing: dict[Key, set[str]] = {}
        for key, tally in tallies.items():
            for which, order in enumerate((tally.first_input, tally.last_output)):
                if order is not None and not _text(tally, which, order[1], known)[0]:
                    missing.setdefault(key, set()).add(order[1])
        read = _trace_texts(self.client, missing)
        rows = []
        for (project, session_id), tally in tallies.items():
            texts: list[str | None] = [None, None]
            for which, order in enumerate((tally.first_input, tally.last_output)):
                if order is None:
                    continue
                found, text = _text(tally, which, order[1], known)
                texts[which] = text if found else read[order[1]][which]
            tally.input_text = _kept(tally.first_input, texts[0])
            tally.output_text = _kept(tally.last_output, texts[1])
            rows.append(session_row(project, session_id, tally, texts, version))
        return rows


def _text(tally: Tally, which: int, trace_id: str, known: Texts) -> tuple[bool, str | None]:
    """(found, text) of a trace's input (`which` 0) or output (1), from the batch or the tally."""
    if trace_id in known:
        return True, known[trace_id][which]
    kept = (tally.input_text, tally.output_text)[which]
    if kept is not None and kept[0] == trace_id:
        return True, kept[1]
    return False, None


def _kept(order: Order | None, text: str | None) -> tuple[str, str | None] | None:
    if order is None or (text is not None and len(text) > MAX_KEPT_TEXT):
        return None
    return (order[1], text)


def _trace_texts(client: Any, wanted: dict[Key, set[str]]) -> Texts:
    found: Texts = {}
    by_project: dict[str, list[tuple[str, str]]] = {}
    for (project, session_id), trace_ids in wanted.items():
        by_project.setdefault(project, []).extend((session_id, trace_id) for trace_id in trace_ids)
    for project, keys in by_project.items():
        for trace_id, input_text, output_text in client.query(
            "SELECT trace_id, input, output FROM traces FINAL WHERE project = {project:String}"
            " AND (session_id, trace_id) IN {keys:Array(Tuple(String, String))}",
            parameters={"project": project, "keys": sorted(keys)},
        ).result_rows:
            found[trace_id] = (input_text, output_text)
    return found


def _select_tallies(client: Any, keys: Iterable[Key]) -> dict[Key, Tally]:
    return {
        (project, session_id): tally
        for project, session_ids in rollups.by_project(keys).items()
        for session_id, tally in select_tallies(client, project, session_ids).items()
    }
