"""The write path: one batch of requests at a time, from the store's single writer thread.

A batch: read which of its traces are stored and whose they are (`trace_keys`), give each
request its spans by the ownership rule (claims.py), read the stored spans of the traces that
already had some, and leave out every span already stored: nothing is ever inserted twice, so
reads need no dedup and a retried or half-resent batch shows once, at once. Each touched trace is
recounted from all its spans (the shared `compute_trace`), and only changed traces go on:

    write_log (the batch's traces, sessions and users) -> trace_keys -> spans -> traces
    -> sessions, users (recounted, rollups.py) -> evaluation results -> their aggregates
    -> write_log (done)

Each step is an INSERT that has returned from ClickHouse before the next starts, and the futures
resolve after the last: a 200 means stored and readable. ClickHouse has no transaction over
several tables, so a batch cut short (the process killed, an insert failing) can leave its rows
half written; its write_log entry has no done mark, and `recover` recounts its traces from the
spans that did get stored, then its sessions, users and aggregates, before the next write (at
start-up after a crash). A half-written batch's request was not acknowledged; when the client
sends it again, the spans already stored are left out as usual.

Readers may see a batch between its inserts (a trace's spans before its rollup): every read is
of stored rows, never of a duplicate, but two reads of one request may straddle a write.

Several writers (cluster mode, several `spanloom serve`): each one is exact for the batches it
writes, but two writers writing spans of the same trace (or traces of the same session or user)
at the same moment can each recount without the other's rows, and the later version wins: route
a trace's spans to one writer (the SDK sends a trace from one process), and see docs/clickhouse.md.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from spanloom import semconv
from spanloom.server.store.base import InsertResult, Retention, RetentionResult, SpanRecord
from spanloom.server.store.clickhouse import evaluation_writes, rollups, schema, session_marks, user_deltas
from spanloom.server.store.clickhouse import retention as expiry
from spanloom.server.store.clickhouse.claims import claim
from spanloom.server.store.clickhouse.key_filter import KeyFilter
from spanloom.server.store.clickhouse.recent_traces import Facts, RecentTraces
from spanloom.server.store.clickhouse.rows import (
    FACT_COLUMNS,
    StoredFacts,
    StoredTrace,
    facts_of_record,
    facts_of_row,
    span_rows,
    tombstone,
    trace_insert_row,
)
from spanloom.server.store.clickhouse.session_tallies import SessionTallies, Tally
from spanloom.server.store.clickhouse.trace_lookup import (
    TraceKey,
    select_stored_traces,
    select_trace_keys,
)
from spanloom.server.store.clickhouse.write_log import WriteLog
from spanloom.server.store.evaluation_events import evaluations_of_spans
from spanloom.server.store.evaluation_types import EvaluationInput, EvaluationInsertResult
from spanloom.server.store.trace_rollup import compute_trace

Key = tuple[str, str]


@dataclass(slots=True)
class TraceChange:
    old: StoredTrace | None
    new: StoredTrace | None  # None: the trace has no stored span (a recovery found none)


class Clock:
    """Row versions: strictly increasing, from the wall clock (a later start continues above the
    last version written, whatever the clock did meanwhile)."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next(self) -> int:
        self.last = max(self.last + 1, time.time_ns())
        return self.last


class Writer:
    def __init__(self, client: Any, spans_client: Any, log: WriteLog, embedded: bool = False) -> None:
        """`spans_client`: a second client, for the spans' INSERT to run beside the rest of the
        batch. `embedded`: this writer is the only one of its database (chDB): it may keep what it
        wrote in memory (a filter of the stored trace ids, the traces and session tallies it wrote
        last, the users' rows) instead of reading."""
        self.client = client
        self._spans_client = spans_client
        self._beside = ThreadPoolExecutor(1, "spanloom-clickhouse-spans")
        self.log = log
        self.clock = Clock(log.last_batch())
        self.trace_filter = KeyFilter(client, "SELECT trace_id FROM trace_keys") if embedded else None
        self.recent = RecentTraces() if embedded else None
        self.tallies = SessionTallies(client) if embedded else None
        self.user_cache: dict[Key, tuple[Any, ...]] | None = {} if embedded else None
        # So that the hot path asks nothing when nothing waits: traces with feedback waiting for
        # their spans, and whether any session has results of its own (whose aggregates follow
        # the session to its user). Only the embedded writer is alone in knowing (None, True:
        # ask every time).
        self.waiting: set[str] | None = (
            evaluation_writes.select_waiting_trace_ids(client) if embedded else None
        )
        self.sessions_have_results = evaluation_writes.any_session_results(client) if embedded else True

    def maybe_stored(self, trace_ids: Iterable[str]) -> list[str]:
        """The traces that may have stored spans: all of them, or, for the embedded writer, those
        its filter of stored traces holds (safe from any thread: see key_filter.py)."""
        trace_filter = self.trace_filter
        if trace_filter is None:
            return list(trace_ids)
        return [trace_id for trace_id in trace_ids if trace_filter.may_hold(trace_id)]

    # --- spans ---
    def write_spans(
        self, requests: Sequence[tuple[Sequence[SpanRecord], frozenset[str] | None]]
    ) -> list[InsertResult]:
        """Write these requests' spans as one batch; each request's result."""
        trace_ids = {span.trace_id for spans, _ in requests for span in spans}
        if self.trace_filter is not None:
            trace_ids = {trace_id for trace_id in trace_ids if self.trace_filter.may_hold(trace_id)}
        recent = self.recent.find(trace_ids) if self.recent is not None else {}
        asked = trace_ids - recent.keys()
        keys = select_trace_keys(self.client, asked) if asked else {}
        keys.update(
            (trace_id, (trace.row.project, trace.row.session_id or ""))
            for trace_id, (trace, _) in recent.items()
        )
        owners = {trace_id: key[0] for trace_id, key in keys.items()}
        claimed = [claim(spans, scope, owners) for spans, scope in requests]
        self._write_spans([span for claim_ in claimed for span in claim_.spans], keys, recent)
        return [InsertResult(len(c.spans), c.rejected, c.reasons, c.spans) for c in claimed]

    def _write_spans(
        self,
        spans: list[SpanRecord],
        keys: dict[str, TraceKey],
        recent: dict[str, tuple[StoredTrace, Facts]],
    ) -> None:
        by_trace: dict[str, dict[str, SpanRecord]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, {}).setdefault(span.span_id, span)
        asked = {tid: keys[tid] for tid in by_trace if tid in keys and tid not in recent}
        old = select_stored_traces(self.client, asked)
        stored = self._stored_facts(old.values())
        for trace_id, (trace, facts) in recent.items():
            if trace_id in by_trace:
                old[trace_id], stored[trace_id] = trace, facts
        new_spans = [
            span
            for trace_id, members in by_trace.items()
            for span_id, span in members.items()
            if span_id not in stored.get(trace_id, {})
        ]
        changes: dict[str, TraceChange] = {}
        written: dict[str, tuple[StoredTrace, Facts]] = {}  # for self.recent, once written
        for trace_id, members in by_trace.items():
            facts = dict(stored.get(trace_id, {}))
            for span_id, span in members.items():
                facts.setdefault(span_id, facts_of_record(span))
            new = self._trace_of(trace_id, facts, members, old.get(trace_id))
            if new != old.get(trace_id):
                changes[trace_id] = TraceChange(old.get(trace_id), new)
                written[trace_id] = (new, facts)
        events = evaluations_of_spans(new_spans)
        if not new_spans and not changes:
            return  # every span was stored already, and so were their rollups
        version = self.clock.next()
        sessions, users = _owners(changes.values())
        self._begin(version, list(changes), sessions, users)
        self._write_trace_keys(changes, version)
        # The spans' INSERT, the batch's biggest, runs in the engine (the GIL released) while
        # this thread builds and inserts the rollup rows, which do not read the spans.
        spans_written = self._insert_spans(new_spans) if new_spans else None
        try:
            self._write_traces(changes, version)
            # Sessions with results of their own: their users before this batch.
            judged: dict[Key, str | None] = {}
            if sessions and self.sessions_have_results:
                with_results = evaluation_writes.select_judged_sessions(self.client, sessions)
                before = evaluation_writes.select_session_users(self.client, with_results)
                judged = {key: before.get(key) for key in with_results}
            session_users: Counter[tuple[str, str, str]] = Counter()
            after: dict[Key, str | None] = {}
            tallies: dict[Key, Tally] = {}
            if sessions:
                known = {
                    tid: (change.new.input, change.new.output)
                    for tid, change in changes.items()
                    if change.new
                }
                if self.tallies is not None:
                    pairs = [(change.old, change.new) for change in changes.values()]
                    rows, tallies = self.tallies.session_rows(pairs, version, session_users, known)
                else:
                    rows = rollups.session_rows(self.client, sessions, version, session_users, known)
                schema.insert(self.client, schema.SESSIONS, rows)
                after = {(row[0], row[1]): None if row[-1] else row[2] for row in rows}
            if users:
                changed = ((c.old, c.new) for c in changes.values())
                rows = user_deltas.user_rows(self.client, changed, version, session_users, self.user_cache)
                schema.insert(self.client, schema.USERS, rows)
        finally:
            if spans_written is not None:
                _wait_for(spans_written)  # also when a rollup failed: recovery must not race it
        if new_spans:
            _mark_ended(self.client, new_spans, version)
        # Results after the rollups: they count under their trace's session and user as of now.
        moved = _moved_owners(changes.values())
        arrived = self._arrived(changes)
        if arrived:
            gained = evaluation_writes.adopt(self.client, arrived, version)
            moved = _union(moved, _owners(changes[trace_id] for trace_id in gained))
        moved = _union(moved, _followed(judged, after))
        if events:
            moved = _union(moved, evaluation_writes.write_results(self.client, events, None, version))
        self._write_evaluation_aggregates(*moved, version)
        self._end(version)
        if self.waiting is not None:
            self.waiting.difference_update(arrived)
        if self.recent is not None and self.tallies is not None:
            self.recent.keep(written)
            self.tallies.keep(tallies)

    def _arrived(self, changes: dict[str, TraceChange]) -> dict[str, str]:
        """New traces that may have feedback waiting for them -> the project they came in."""
        new = {
            trace_id: change.new.row.project
            for trace_id, change in changes.items()
            if change.old is None and change.new is not None
        }
        if self.waiting is None:
            return new
        return {trace_id: project for trace_id, project in new.items() if trace_id in self.waiting}

    def _stored_facts(self, traces: Sequence[StoredTrace] | Any) -> dict[str, dict[str, StoredFacts]]:
        """Every stored span of these traces (trace id -> span id -> facts): per project, one key
        range of the spans table over their time windows."""
        found: dict[str, dict[str, StoredFacts]] = {}
        windows: dict[str, list[StoredTrace]] = {}
        for trace in traces:
            windows.setdefault(trace.row.project, []).append(trace)
        for project, members in windows.items():
            rows = self.client.query(
                f"SELECT trace_id, {FACT_COLUMNS} FROM spans WHERE project = {{project:String}}"
                " AND start_ns >= {low:Int64} AND start_ns <= {high:Int64}"
                " AND trace_id IN {ids:Array(String)}",
                parameters={
                    "project": project,
                    "low": min(t.row.start_ns for t in members),
                    "high": max(t.row.end_ns for t in members),
                    "ids": [t.row.trace_id for t in members],
                },
            ).result_rows
            for trace_id, *row in rows:
                found.setdefault(trace_id, {})[row[0]] = facts_of_row(row)
        return found

    def _trace_of(
        self,
        trace_id: str,
        facts: dict[str, StoredFacts],
        batch: dict[str, SpanRecord],
        old: StoredTrace | None,
    ) -> StoredTrace:
        rollup = compute_trace(trace_id, (item.facts for item in facts.values()))
        texts: dict[str, str | None] = {}
        for span_id, attribute in ((rollup.input_span_id, "input"), (rollup.output_span_id, "output")):
            if span_id is None:
                texts[attribute] = None
            elif span_id in batch:
                texts[attribute] = getattr(batch[span_id], attribute)
            elif old is not None and getattr(old, f"{attribute}_span_id") == span_id:
                texts[attribute] = getattr(old, attribute)
            else:
                texts[attribute] = self._span_text(rollup.row.project, trace_id, span_id, attribute)
        kinds = tuple(sorted({item.facts.span_kind for item in facts.values()}))
        models = tuple(sorted({item.model for item in facts.values() if item.model}))
        return StoredTrace(
            rollup.row,
            rollup.input_span_id,
            rollup.output_span_id,
            texts["input"],
            texts["output"],
            kinds,
            models,
        )

    def _span_text(self, project: str, trace_id: str, span_id: str, attribute: str) -> str | None:
        """A stored span's input or output (`attribute` is one of those two names)."""
        rows = self.client.query(
            f"SELECT {attribute} FROM spans WHERE project = {{project:String}} "
            " AND trace_id = {trace:String}"
            " AND span_id = {span:String} LIMIT 1",
            parameters={"project": project, "trace": trace_id, "span": span_id},
        ).result_rows
        return rows[0][0] if rows else None

    # --- the batch's steps ---
    def _insert_spans(self, spans: Sequence[SpanRecord]) -> Future[None]:
        return self._beside.submit(_insert_spans, self._spans_client, spans)

    def close(self) -> None:
        self._beside.shutdown()

    def _begin(self, version: int, trace_ids: list[str], sessions: set[Key], users: set[Key]) -> None:
        self.log.begin(version, trace_ids, sessions, users)

    def _end(self, version: int) -> None:
        self.log.end(version)

    def _write_trace_keys(self, changes: dict[str, TraceChange], version: int) -> None:
        rows = []
        for trace_id, change in changes.items():
            if change.new is None:
                rows.append((trace_id, change.old.row.project if change.old else "", "", version, 1))
            elif change.old is None or change.old.row.session_id != change.new.row.session_id:
                rows.append((trace_id, change.new.row.project, change.new.row.session_id or "", version, 0))
        if rows:
            schema.insert(self.client, schema.TRACE_KEYS, rows)
            if self.trace_filter is not None:
                self.trace_filter.add(row[0] for row in rows if not row[-1])

    def _write_traces(self, changes: dict[str, TraceChange], version: int) -> None:
        rows = []
        for trace_id, change in changes.items():
            old, new = change.old, change.new
            if old is not None and (new is None or old.row.session_id != new.row.session_id):
                key = {
                    "project": old.row.project,
                    "session_id": old.row.session_id or "",
                    "trace_id": trace_id,
                }
                rows.append(tombstone(schema.TRACES, key, version))
            if new is not None:
                rows.append(trace_insert_row(new, version))
        if rows:
            schema.insert(self.client, schema.TRACES, rows)

    def _write_rollups(self, sessions: set[Key], users: set[Key], version: int) -> None:
        if sessions:
            rows = rollups.session_rows(self.client, sessions, version)
            schema.insert(self.client, schema.SESSIONS, rows)
        if users:
            rows = rollups.user_rows(self.client, users, version)
            schema.insert(self.client, schema.USERS, rows)
            if self.user_cache is not None:
                user_deltas.remember(self.user_cache, rows)

    def _write_evaluation_aggregates(self, sessions: set[Key], users: set[Key], version: int) -> None:
        for table, keys in ((schema.SESSION_EVALUATIONS, sessions), (schema.USER_EVALUATIONS, users)):
            if keys:
                rows = rollups.evaluation_aggregate_rows(self.client, table, keys, version)
                if rows:
                    schema.insert(self.client, table, rows)

    # --- evaluation results ---
    def write_evaluations(
        self, items: Sequence[EvaluationInput], projects: frozenset[str] | None
    ) -> EvaluationInsertResult:
        version = self.clock.next()
        resolved = evaluation_writes.resolve(self.client, items, projects)
        answer = EvaluationInsertResult(resolved.accepted, resolved.rejected)
        if not (resolved.rows or resolved.waiting or resolved.session_rows):
            return answer
        sessions, users = resolved.owners()
        # Results on sessions count once the session is stored, for it and its user.
        session_users = evaluation_writes.select_session_users(
            self.client, {(row.project, row.session_id) for row in resolved.session_rows}
        )
        sessions |= set(session_users)
        users |= {(project, user) for (project, _), user in session_users.items() if user}
        trace_ids = sorted({row.trace_id for row in resolved.rows})
        self._begin(version, trace_ids, sessions, users)
        changed_sessions, changed_users = evaluation_writes.write_rows(self.client, resolved, version)
        judged = evaluation_writes.write_session_rows(self.client, resolved.session_rows, version)
        self.sessions_have_results |= bool(resolved.session_rows)
        for key in judged & set(session_users):
            changed_sessions.add(key)
            if session_users[key]:
                changed_users.add((key[0], session_users[key]))
        waiting = evaluation_writes.write_waiting(self.client, resolved.waiting, version)
        if self.waiting is not None:
            self.waiting |= waiting
        self._write_evaluation_aggregates(changed_sessions, changed_users, version)
        self._end(version)
        return answer

    # --- session marks ---
    def end_session(self, project: str, session_id: str, ended_ns: int) -> None:
        session_marks.write_marks(self.client, self.clock.next(), ended=[(project, session_id, ended_ns)])

    def mark_judged(self, project: str, session_id: str, judged_end_ns: int) -> None:
        session_marks.write_marks(
            self.client, self.clock.next(), judged=[(project, session_id, judged_end_ns)]
        )

    def mark_judged_many(self, marks: list[tuple[str, str, int]]) -> None:
        # One insert for the batch: the session runner marks a whole pass at once.
        if marks:
            session_marks.write_marks(self.client, self.clock.next(), judged=marks)

    # --- retention ---
    def delete_expired(self, retention: Retention, limit: int) -> RetentionResult:
        self._forget_written()
        sessions, loose = expiry.expired(self.client, retention, limit)
        traces = expiry.traces_of(self.client, sessions, loose)
        if not traces:
            return RetentionResult()
        version = self.clock.next()
        users = {(project, user_id) for project, _, _, user_id in traces if user_id}
        self._begin(version, [trace_id for _, _, trace_id, _ in traces], set(sessions), users)
        spans = expiry.delete(self.client, traces, sessions, version)
        self._write_rollups(set(), users, version)
        self._write_evaluation_aggregates(set(), users, version)
        self._end(version)
        return expiry.result(sessions, loose, len(traces), spans, limit)

    # --- recovery ---
    def recover(self) -> int:
        """Recount every batch cut short: its traces from their stored spans, then its sessions,
        users and aggregates. Returns how many batches it repaired."""
        pending = self.log.pending()
        for batch, trace_ids, sessions, users in pending:
            self._recover(set(trace_ids), set(sessions), set(users))
            self._end(batch)
        if pending:
            self._forget_written(recovered=True)
        return len(pending)

    def _recover(self, trace_ids: set[str], sessions: set[Key], users: set[Key]) -> None:
        keys = select_trace_keys(self.client, trace_ids)
        old = select_stored_traces(self.client, keys)
        facts: dict[str, dict[str, StoredFacts]] = {}
        if trace_ids:
            for trace_id, *row in self.client.query(
                f"SELECT trace_id, {FACT_COLUMNS} FROM spans WHERE trace_id IN {{ids:Array(String)}}",
                parameters={"ids": list(trace_ids)},
            ).result_rows:
                facts.setdefault(trace_id, {})[row[0]] = facts_of_row(row)
        changes = {}
        for trace_id in trace_ids:
            new = (
                self._trace_of(trace_id, facts[trace_id], {}, old.get(trace_id))
                if trace_id in facts
                else None
            )
            if new != old.get(trace_id) or (new is None and trace_id in keys):
                changes[trace_id] = TraceChange(old.get(trace_id), new)
        version = self.clock.next()
        more_sessions, more_users = _owners(changes.values())
        sessions |= more_sessions
        users |= more_users
        self._write_trace_keys(changes, version)
        self._write_traces(changes, version)
        self._drop_stale_trace_rows(trace_ids, sessions, keys, changes, version)
        # Feedback that waited for these traces, if the batch stopped before moving it (their
        # rows may be written already, and unchanged by this recount).
        stored = {trace_id: keys[trace_id][0] for trace_id in facts if trace_id in keys}
        stored.update((tid, change.new.row.project) for tid, change in changes.items() if change.new)
        evaluation_writes.adopt(self.client, stored, version)
        if self.waiting is not None:
            self.waiting.difference_update(stored)
        self._write_rollups(sessions, users, version)
        self._write_evaluation_aggregates(sessions, users, version)

    def _drop_stale_trace_rows(
        self,
        trace_ids: set[str],
        sessions: set[Key],
        keys: dict[str, TraceKey],
        changes: dict[str, TraceChange],
        version: int,
    ) -> None:
        """A batch cut short after its trace keys and before its trace rows left a moved trace's
        row in its old session, where the keys no longer point: tombstone such rows (their
        sessions are the batch's, recounted after this)."""
        if not trace_ids or not sessions:
            return
        where = {tid: (c.new.row.project, c.new.row.session_id or "") for tid, c in changes.items() if c.new}
        rows = self.client.query(
            "SELECT project, session_id, trace_id FROM traces FINAL"
            " WHERE (project, session_id) IN {keys:Array(Tuple(String, String))}"
            " AND trace_id IN {ids:Array(String)} AND deleted = 0",
            parameters={"keys": sorted(sessions), "ids": sorted(trace_ids)},
        ).result_rows
        stale = [
            tombstone(
                schema.TRACES, {"project": project, "session_id": session_id, "trace_id": trace_id}, version
            )
            for project, session_id, trace_id in rows
            if where.get(trace_id, keys.get(trace_id)) != (project, session_id)
        ]
        if stale:
            schema.insert(self.client, schema.TRACES, stale)

    def _forget_written(self, recovered: bool = False) -> None:
        """Drop what the writer keeps of the rows it wrote: a batch cut short may have written
        some of its rows and not others (`recovered`: and its recovery wrote the rest), and
        retention deletes rows."""
        if self.recent is not None and self.tallies is not None:
            self.recent.clear()
            self.tallies.clear(recovered)


def _owners(changes: Any) -> tuple[set[Key], set[Key]]:
    """The sessions and users the changed traces left or joined."""
    sessions: set[Key] = set()
    users: set[Key] = set()
    for change in changes:
        for trace in (change.old, change.new):
            if trace is None:
                continue
            if trace.row.session_id:
                sessions.add((trace.row.project, trace.row.session_id))
            if trace.row.user_id:
                users.add((trace.row.project, trace.row.user_id))
    return sessions, users


def _union(*owners: tuple[set[Key], set[Key]]) -> tuple[set[Key], set[Key]]:
    return set().union(*(pair[0] for pair in owners)), set().union(*(pair[1] for pair in owners))


def _followed(before: dict[Key, str | None], after: dict[Key, str | None]) -> tuple[set[Key], set[Key]]:
    """Sessions with results of their own that appeared, went or changed user in this batch
    (`before`: their users before it, None when not stored): those sessions, and their users
    before and after, whose aggregates count the session's results."""
    sessions: set[Key] = set()
    users: set[Key] = set()
    for key, user in before.items():
        now = after.get(key, user)
        if now != user:
            sessions.add(key)
            users.update((key[0], who) for who in (user, now) if who)
    return sessions, users


def _insert_spans(client: Any, spans: Sequence[SpanRecord]) -> None:
    schema.insert(client, schema.SPANS, span_rows(spans))


def _wait_for(insert: Future[None]) -> None:
    """The insert's end; its error only when no other is on its way (in a `finally`)."""
    if sys.exc_info()[1] is None:
        insert.result()
    else:
        wait([insert])


def _mark_ended(client: Any, spans: Sequence[SpanRecord], version: int) -> None:
    """A span with ``session.ended`` true ends its session, as of the span's end."""
    ended = [
        (span.project, span.session_id, span.end_time_ns)
        for span in spans
        if span.session_id and span.attributes.get(semconv.SESSION_ENDED) in (True, "true")
    ]
    if ended:
        session_marks.write_marks(client, version, ended=ended)


def _moved_owners(changes: Any) -> tuple[set[Key], set[Key]]:
    """The sessions and users of traces that changed session or user: their results move too."""
    moved = [
        change
        for change in changes
        if change.old is not None
        and (
            change.new is None
            or (change.old.row.session_id, change.old.row.user_id)
            != (change.new.row.session_id, change.new.row.user_id)
        )
    ]
    return _owners(moved)
