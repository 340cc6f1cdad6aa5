"""Session rows recounted without asking ClickHouse: the embedded writer (the only writer of its
directory) keeps, for the sessions it wrote last, what a recount of their trace rows needs, and
moves each changed trace's figures in and out of it.

A batch touches a few hundred sessions, and recounting them from `traces FINAL` (plus reading the
texts of their stored rows) cost chDB two queries per project per batch, about a third of a
batch's time. The tallies hold exactly what rollups._SESSION_TOTALS aggregates (sums, the extreme
keys of the first user, first input and last output, the sorted latencies, the labeled traces,
each user's trace count), so a row built from them equals the recount. A change a tally cannot
follow exactly (a trace leaving the session, changing user, or the last output's trace moving
earlier) drops the tally, and that session is recounted by a query after the batch's trace rows
are written, as before; so is a session the tallies do not hold that may be stored (a Bloom
filter of stored session keys says which cannot be). A batch's new tallies replace the old ones
only once the batch is written; a batch cut short clears them all (writer.recover), as do
retention's deletes.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spanloom.server.store.clickhouse import rollups, schema
from spanloom.server.store.clickhouse.key_filter import KeyFilter
from spanloom.server.store.clickhouse.rows import StoredTrace, tombstone
from spanloom.server.store.json_values import to_json
from spanloom.server.store.trace_rollup import TraceRow, merge_labels, percentile, saturated

Key = tuple[str, str]  # (project, session id)
Order = tuple[int, str]  # (start_ns, trace_id): the order "first" and "last" go by
Texts = dict[str, tuple[str | None, str | None]]  # trace id -> (input, output)

# Tallies kept: about 1 KiB each (the texts of the first input and last output are kept only
# when short), so at most a few tens of MiB.
MAX_SESSIONS = 32_768
MAX_KEPT_TEXT = 1_024  # characters: longer texts are read from the trace row when needed


@dataclass(slots=True)
class Tally:
    trace_count: int = 0
    span_count: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    tokens: int = 0
    cost_nanos: int = 0
    errors: int = 0  # traces with an error
    first_user: tuple[int, str, str] | None = None  # (start_ns, trace_id, user_id)
    first_input: Order | None = None
    last_output: Order | None = None
    latencies: list[float] = field(default_factory=list)  # sorted
    labels: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # trace -> (start, tags, metadata)
    users: dict[str, int] = field(default_factory=dict)  # user -> traces
    # (trace id, text) of the first input and the last output, when short enough to keep.
    input_text: tuple[str, str | None] | None = None
    output_text: tuple[str, str | None] | None = None

    def copy(self) -> Tally:
        return Tally(
            self.trace_count,
            self.span_count,
            self.start_ns,
            self.end_ns,
            self.tokens,
            self.cost_nanos,
            self.errors,
            self.first_user,
            self.first_input,
            self.last_output,
            list(self.latencies),
            dict(self.labels),
            dict(self.users),
            self.input_text,
            self.output_text,
        )

    def remove(self, old: TraceRow, new: TraceRow) -> bool:
        """Take out a trace that stays in the session (`new`, its new figures, follow with `add`);
        False when the tally cannot follow exactly."""
        order = (old.start_ns, old.trace_id)
        at = bisect.bisect_left(self.latencies, old.latency_ms)
        if at == len(self.latencies) or self.latencies[at] != old.latency_ms:
            return False
        if order == self.last_output and new.start_ns != old.start_ns:
            return False  # the last output moved earlier: only a recount knows what is last now
        del self.latencies[at]
        self.trace_count -= 1
        self.span_count -= old.span_count
        self.tokens -= old.total_tokens
        self.cost_nanos -= old.cost_nanos
        self.errors -= old.error_count > 0
        self.labels.pop(old.trace_id, None)
        if old.user_id:
            self._count_user(old.user_id, -1)
        return True

    def add(self, new: TraceRow) -> None:
        """Put in a trace. The extremes only ever widen: a trace's start moves earlier and its end
        later as spans arrive, and it gains an input or output, never loses one (`follows`)."""
        order = (new.start_ns, new.trace_id)
        bisect.insort(self.latencies, new.latency_ms)
        self.trace_count += 1
        self.span_count += new.span_count
        self.tokens += new.total_tokens
        self.cost_nanos += new.cost_nanos
        self.errors += new.error_count > 0
        self.start_ns = new.start_ns if self.start_ns is None else min(self.start_ns, new.start_ns)
        self.end_ns = new.end_ns if self.end_ns is None else max(self.end_ns, new.end_ns)
        if new.user_id:
            self._count_user(new.user_id, 1)
            candidate = (*order, new.user_id)
            if self.first_user is None or candidate[:2] < self.first_user[:2]:
                self.first_user = candidate
        if new.has_input and (self.first_input is None or order < self.first_input):
            self.first_input = order
        if new.has_output and (self.last_output is None or order > self.last_output):
            self.last_output = order
        if new.labeled:
            self.labels[new.trace_id] = (new.start_ns, new.tags, new.metadata)

    def _count_user(self, user: str, step: int) -> None:
        count = self.users.get(user, 0) + step
        if count:
            self.users[user] = count
        else:
            self.users.pop(user, None)


def follows(old: TraceRow, new: TraceRow) -> bool:
    """Whether a trace's change (within one session) keeps every extreme of its session's tally
    exact: its user stays, its window only widens, its input and output stay once there."""
    return (
        old.user_id == new.user_id
        and new.start_ns <= old.start_ns
        and new.end_ns >= old.end_ns
        and new.has_input >= old.has_input
        and new.has_output >= old.has_output
    )


# What a Tally holds, recounted from the trace rows (rollups._SESSION_TOTALS with the keys of the
# extremes, and each labeled trace's id).
_TALLIES = """
SELECT session_id, count(), sum(span_count), min(start_ns), max(end_ns), sum(toInt128(total_tokens)),
    sum(toInt128(cost_nanos)), countIf(error_count > 0),
    argMinIf((start_ns, trace_id, user_id), (start_ns, trace_id), user_id != ''),
    argMinIf((start_ns, trace_id), (start_ns, trace_id), has_input = 1),
    argMaxIf((start_ns, trace_id), (start_ns, trace_id), has_output = 1),
    arraySort(groupArray(latency_ms)),
    groupArrayIf((trace_id, start_ns, tags, metadata), labeled = 1),
    groupArrayIf(user_id, user_id != '')
FROM traces FINAL
WHERE project = {project:String} AND session_id IN {ids:Array(String)}
GROUP BY session_id
"""


def _select_tallies(client: Any, keys: Iterable[Key]) -> dict[Key, Tally]:
    found: dict[Key, Tally] = {}
    for project, session_ids in rollups.by_project(keys).items():
        for (
            session_id,
            count,
            spans,
            start_ns,
            end_ns,
            tokens,
            nanos,
            errors,
            first_user,
            first_input,
            last_output,
            latencies,
            labels,
            users,
        ) in client.query(_TALLIES, parameters={"project": project, "ids": session_ids}).result_rows:
            found[(project, session_id)] = Tally(
                count,
                spans,
                start_ns,
                end_ns,
                int(tokens),
                int(nanos),
                errors,
                tuple(first_user) if first_user[1] else None,
                tuple(first_input) if first_input[1] else None,
                tuple(last_output) if last_output[1] else None,
                list(latencies),
                {trace_id: (start, tags, meta) for trace_id, start, tags, meta in labels},
                dict(Counter(users)),
            )
    return found


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
            rows.append(_row(project, session_id, tally, texts, version))
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


def _row(
    project: str, session_id: str, tally: Tally, texts: list[str | None], version: int
) -> tuple[Any, ...]:
    labels = (tally.labels[trace_id] + (trace_id,) for trace_id in tally.labels)
    ordered = sorted(labels, key=lambda label: (label[0], label[3]))
    tags, metadata = merge_labels((json.loads(tags), json.loads(meta)) for _, tags, meta, _ in ordered)
    nanos = saturated(tally.cost_nanos)
    return (
        project,
        session_id,
        tally.first_user[2] if tally.first_user else "",
        tally.trace_count,
        tally.span_count,
        tally.start_ns,
        tally.end_ns,
        saturated(tally.tokens),
        nanos / 1e9,
        nanos,
        tally.errors,
        percentile(tally.latencies, 0.5),
        percentile(tally.latencies, 0.95),
        tally.first_input[1] if tally.first_input else None,
        tally.last_output[1] if tally.last_output else None,
        to_json(tags) if tags else "[]",
        to_json(metadata) if metadata else "{}",
        *texts,
        version,
        0,
    )
