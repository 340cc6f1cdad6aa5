"""Session and user rows, and their evaluation aggregates, recounted from the trace rows.

The writer recounts every session and user a batch touched (the keys its traces left or joined),
in a few statements per project for the whole batch, and writes new versions of their rows (or
tombstones, for a key no trace names any more). A recount, unlike a delta, needs no earlier state
to be right: the same code repairs a batch cut short (writer.py's recovery), and the rows equal a
recount from the raw spans whatever the arrival order. ClickHouse adds up (sums as Int128, so the
saturation at the 64-bit limit is ours, not a wrap-around); Python takes the percentiles (from
the sorted latencies: the interpolation is the protocol's, to the bit) and the label merge.

Why not materialized views: a view aggregates the rows inserted into its source, keyed by what
those rows say, and cannot take a trace out of the session it left when a late root names another
one. Aggregation at read time over all trace rows cost a list request a scan of every trace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from spanloom.server.store.clickhouse import schema
from spanloom.server.store.clickhouse.rows import tombstone
from spanloom.server.store.clickhouse.session_tally import select_tallies, session_row
from spanloom.server.store.trace_rollup import saturated

Key = tuple[str, str]  # (project, session or user id)


def by_project(keys: Iterable[Key]) -> dict[str, list[str]]:
    grouped: dict[str, dict[str, None]] = {}
    for project, identifier in keys:
        grouped.setdefault(project, {})[identifier] = None
    return {project: list(ids) for project, ids in grouped.items()}


Texts = dict[str, tuple[str | None, str | None]]  # trace id -> (input, output)


def _session_texts(
    client: Any, project: str, wanted: dict[str, tuple[str | None, str | None]], known: Texts
) -> dict[str, tuple[str | None, str | None]]:
    """session id -> (first input, last output) for these sessions' (first input trace, last
    output trace): from the traces just written (`known`), else from the session's stored row
    when it names the same trace, else (rarely: an earlier turn arrived late, or a row of schema
    version 1) from the trace rows."""
    previous = {
        session_id: (first_trace, first, last_trace, last)
        for session_id, first_trace, first, last_trace, last in client.query(
            "SELECT session_id, first_input_trace, first_input, last_output_trace, last_output"
            " FROM sessions FINAL WHERE project = {project:String} AND session_id IN {ids:Array(String)}",
            parameters={"project": project, "ids": sorted(wanted)},
        ).result_rows
    }
    found: dict[str, list[str | None]] = {}
    missing: dict[tuple[str, str], tuple[str, int]] = {}  # (session, trace) -> (session, which)
    for session_id, ids in wanted.items():
        texts: list[str | None] = [None, None]
        stored = previous.get(session_id, (None, None, None, None))
        for which, trace_id in enumerate(ids):
            if trace_id is None:
                continue
            if trace_id in known:
                texts[which] = known[trace_id][which]
            elif stored[2 * which] == trace_id and stored[2 * which + 1] is not None:
                texts[which] = stored[2 * which + 1]
            else:
                missing[(session_id, trace_id)] = (session_id, which)
        found[session_id] = texts
    if missing:
        for session_id, trace_id, input_text, output_text in client.query(
            "SELECT session_id, trace_id, input, output FROM traces FINAL WHERE project = {project:String}"
            " AND (session_id, trace_id) IN {keys:Array(Tuple(String, String))}",
            parameters={"project": project, "keys": sorted(missing)},
        ).result_rows:
            _, which = missing[(session_id, trace_id)]
            found[session_id][which] = (input_text, output_text)[which]
    return {session_id: (texts[0], texts[1]) for session_id, texts in found.items()}


def session_rows(
    client: Any,
    keys: Iterable[Key],
    version: int,
    user_counts: Counter[tuple[str, str, str]] | None = None,
    known: Texts | None = None,
) -> list[tuple[Any, ...]]:
    """New rows (SESSIONS order) for these sessions: recounted, or tombstones for the empty.
    `user_counts` is given each (project, session, user)'s traces, for user_deltas; `known`, the
    texts of the traces just written."""
    rows: list[tuple[Any, ...]] = []
    for project, session_ids in by_project(keys).items():
        tallies = select_tallies(client, project, session_ids)
        if user_counts is not None:
            for session_id, tally in tallies.items():
                for user, count in tally.users.items():
                    user_counts[(project, session_id, user)] += count
        wanted = {
            session_id: (
                tally.first_input[1] if tally.first_input else None,
                tally.last_output[1] if tally.last_output else None,
            )
            for session_id, tally in tallies.items()
        }
        texts = _session_texts(client, project, wanted, known or {}) if wanted else {}
        rows.extend(
            session_row(project, session_id, tally, list(texts[session_id]), version)
            for session_id, tally in tallies.items()
        )
        rows.extend(
            tombstone(schema.SESSIONS, {"project": project, "session_id": gone}, version)
            for gone in session_ids
            if gone not in tallies
        )
    return rows


_USER_TOTALS = """
SELECT user_id, uniqExactIf(session_id, session_id != ''), count(), sum(toInt128(total_tokens)),
    sum(toInt128(cost_nanos)), countIf(error_count > 0), min(start_ns), max(end_ns)
FROM traces FINAL
WHERE project = {project:String} AND user_id IN {ids:Array(String)}
GROUP BY user_id
"""


def user_rows(client: Any, keys: Iterable[Key], version: int) -> list[tuple[Any, ...]]:
    """New rows (USERS order) for these users: recounted, or tombstones for the gone."""
    rows = []
    for project, user_ids in by_project(keys).items():
        found = set()
        for user_id, sessions, traces, tokens, nanos, errors, first, last in client.query(
            _USER_TOTALS, parameters={"project": project, "ids": user_ids}
        ).result_rows:
            found.add(user_id)
            nanos = saturated(nanos)
            rows.append(
                (
                    project,
                    user_id,
                    sessions,
                    traces,
                    saturated(tokens),
                    nanos / 1e9,
                    nanos,
                    errors,
                    first,
                    last,
                    version,
                    0,
                )
            )
        rows.extend(
            tombstone(schema.USERS, {"project": project, "user_id": gone}, version)
            for gone in user_ids
            if gone not in found
        )
    return rows


def micros(score: float | None) -> int:
    return round(score * 1_000_000) if score is not None else 0


# Every result on the traces of these sessions (users), and on the sessions themselves (on the
# sessions whose user they are), with empty trace and span ids: (owner id, trace, span, name,
# score, passed).
_RESULTS_OF = {
    "session_id": """
SELECT t.session_id, e.trace_id, e.span_id, e.name, e.score, e.passed
FROM evaluations AS e FINAL
INNER JOIN (
    SELECT trace_id, session_id FROM traces FINAL
    WHERE project = {project:String} AND session_id IN {ids:Array(String)}
) AS t ON t.trace_id = e.trace_id
WHERE e.project = {project:String}
UNION ALL
SELECT session_id, '', '', name, score, passed FROM session_results FINAL
WHERE project = {project:String} AND session_id IN {ids:Array(String)}
""",
    "user_id": """
SELECT t.user_id, e.trace_id, e.span_id, e.name, e.score, e.passed
FROM evaluations AS e FINAL
INNER JOIN (
    SELECT trace_id, user_id FROM traces FINAL
    WHERE project = {project:String} AND user_id IN {ids:Array(String)}
) AS t ON t.trace_id = e.trace_id
WHERE e.project = {project:String}
UNION ALL
SELECT s.user_id, '', '', r.name, r.score, r.passed FROM session_results AS r FINAL
INNER JOIN (
    SELECT session_id, user_id FROM sessions FINAL
    WHERE project = {project:String} AND user_id IN {ids:Array(String)}
) AS s ON s.session_id = r.session_id
WHERE r.project = {project:String}
""",
}
_STORED_AGGREGATES = """
SELECT {column}, name FROM {table} FINAL
WHERE project = {{project:String}} AND {column} IN {{ids:Array(String)}}
"""


def evaluation_aggregate_rows(
    client: Any, table: schema.Table, keys: Iterable[Key], version: int
) -> list[tuple[Any, ...]]:
    """New rows of `table` (SESSION_EVALUATIONS or USER_EVALUATIONS) for these keys: each
    (key, name) recounted from the results on the key's traces now, tombstones for the rest."""
    column = "session_id" if table is schema.SESSION_EVALUATIONS else "user_id"
    with_worst = table is schema.SESSION_EVALUATIONS
    rows: list[tuple[Any, ...]] = []
    for project, ids in by_project(keys).items():
        parameters = {"project": project, "ids": ids}
        by_key: dict[tuple[str, str], list[Any]] = {}
        results = client.query(_RESULTS_OF[column], parameters=parameters).result_rows
        for owner, trace_id, span_id, name, score, passed in results:
            entry = by_key.setdefault((owner, name), [0, 0, 0, 0, None])
            entry[0] += 1
            entry[1] += score is not None
            entry[2] += micros(score)
            entry[3] += passed
            # The worst result: failing before passing, then the lowest score (unscored last).
            rank = (passed, score is None, score or 0.0, trace_id, span_id)
            if entry[4] is None or rank < entry[4]:
                entry[4] = rank
        for (owner, name), (count, scored, total, passed, worst) in sorted(by_key.items()):
            worst_ids = (worst[3], worst[4]) if with_worst else ()
            rows.append(
                (
                    project,
                    owner,
                    name,
                    count,
                    scored,
                    saturated(total),
                    passed,
                    total / 1e6 / scored if scored else None,
                    *worst_ids,
                    version,
                    0,
                )
            )
        stored = client.query(
            _STORED_AGGREGATES.format(column=column, table=table.name), parameters=parameters
        ).result_rows
        rows.extend(
            tombstone(table, {"project": project, column: owner, "name": name}, version)
            for owner, name in stored
            if (owner, name) not in by_key
        )
    return rows
