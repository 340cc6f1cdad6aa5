"""The read path for trends: a project's figures per time bucket (trend_types.py).

Three aggregations, each over one project's key range: its traces (the rollup rows, FINAL), its
sessions, and the results on those traces. Latency percentiles are ClickHouse's
`quantilesExactInclusive`: linear interpolation between closest ranks, the same rule as
`trace_rollup.percentile` and the SQLite store.
"""

from __future__ import annotations

from typing import Any

from spanloom.server.store.trend_types import (
    ResultBucketRow,
    Trends,
    TrendWindow,
    TurnBucketRow,
    assemble,
)

_RANGE = "project = {project:String} AND start_ns >= {start:Int64} AND start_ns < {end:Int64}"
_BUCKET = "intDiv(start_ns - {start:Int64}, {width:Int64})"
_TURNS = f"""
SELECT {_BUCKET} AS b, count(), countIf(error_count > 0), sum(cost_nanos),
    quantilesExactInclusive(0.5, 0.95)(latency_ms) AS q
FROM traces FINAL WHERE {_RANGE} {{user}}
GROUP BY b
"""
_SESSIONS = f"""
SELECT {_BUCKET} AS b, count() FROM sessions FINAL WHERE {_RANGE} {{user}} GROUP BY b
"""
_RESULTS = f"""
SELECT t.b,
    countIf(e.source = 'feedback' AND e.passed = 1), countIf(e.source = 'feedback' AND e.passed = 0),
    countIf(e.source != 'feedback'), countIf(e.source != 'feedback' AND e.passed = 1)
FROM evaluations AS e FINAL
INNER JOIN (SELECT trace_id, {_BUCKET} AS b FROM traces FINAL WHERE {_RANGE} {{user}}) AS t
    ON e.trace_id = t.trace_id
WHERE e.project = {{project:String}}
GROUP BY t.b
"""


def select_trends(
    client: Any, project: str, window: TrendWindow, user_id: str | None, latency: bool = True
) -> Trends:
    del latency  # quantiles come with the same pass over the traces: no cheaper without
    parameters = {
        "project": project,
        "start": window.start_ns,
        "end": window.query_end_ns,
        "width": window.width_ns,
        "user_id": user_id or "",
    }
    user = "AND user_id = {user_id:String}" if user_id is not None else ""
    turns = [
        TurnBucketRow(int(b), turns, errors, int(cost), q[0], q[1])
        for b, turns, errors, cost, q in client.query(
            _TURNS.replace("{user}", user), parameters=parameters
        ).result_rows
    ]
    sessions = [
        (int(b), count)
        for b, count in client.query(_SESSIONS.replace("{user}", user), parameters=parameters).result_rows
    ]
    results = [
        ResultBucketRow(int(b), *counts)
        for b, *counts in client.query(_RESULTS.replace("{user}", user), parameters=parameters).result_rows
    ]
    return assemble(project, user_id, window, turns, sessions, results)
