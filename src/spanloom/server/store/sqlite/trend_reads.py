"""SQL of the read path for trends: a project's figures per time bucket (trend_types.py).

Each statement is one pass over a key range of an index: the project's traces by start time
(`traces_by_project`, covering: no trace row is read), its sessions by start time, and the
results on those traces by their primary key. Turn latency percentiles are exact: the range's
latencies come out unsorted (one small row a turn, from the covering index) and Python sorts each
bucket's, which measured several times faster than SQLite's window functions ranking them (one
sort per partition in the VDBE) at 16,000 turns a bucket. With `user_id` the traces come from
`traces_by_user`: one user's turns are few.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from spanloom.server.store.trace_rollup import percentile
from spanloom.server.store.trend_types import ResultBucketRow, Trends, TrendWindow, TurnBucketRow, assemble

_RANGE = "project = :project AND start_ns >= :start AND start_ns < :end {user}"
_TURNS = f"""
SELECT (start_ns - :start) / :width, COUNT(*), SUM(error_count > 0), SUM(cost_nanos)
FROM traces WHERE {_RANGE} GROUP BY 1
"""
_LATENCIES = f"SELECT (start_ns - :start) / :width, latency_ms FROM traces WHERE {_RANGE}"
_SESSIONS = f"SELECT (start_ns - :start) / :width, COUNT(*) FROM sessions WHERE {_RANGE} GROUP BY 1"
_RESULTS = """
SELECT (t.start_ns - :start) / :width,
    SUM(e.source = 'feedback' AND e.passed), SUM(e.source = 'feedback' AND NOT e.passed),
    SUM(e.source <> 'feedback'), SUM(e.source <> 'feedback' AND e.passed)
FROM traces t JOIN evaluations e ON e.trace_id = t.trace_id AND e.project = t.project
WHERE t.project = :project AND t.start_ns >= :start AND t.start_ns < :end {user}
GROUP BY 1
"""


def select_trends(
    connection: sqlite3.Connection,
    project: str,
    window: TrendWindow,
    user_id: str | None,
    latency: bool = True,
) -> Trends:
    parameters = {
        "project": project,
        "start": window.start_ns,
        "end": window.query_end_ns,
        "width": window.width_ns,
        "user_id": user_id,
    }
    user = "AND user_id = :user_id" if user_id is not None else ""
    latencies: defaultdict[int, list[float]] = defaultdict(list)
    if latency:
        for index, value in connection.execute(_LATENCIES.format(user=user), parameters):
            latencies[index].append(value)
        for values in latencies.values():
            values.sort()
    turns = [
        TurnBucketRow(index, count, errors, cost, *_percentiles(latencies.get(index)))
        for index, count, errors, cost in connection.execute(_TURNS.format(user=user), parameters)
    ]
    sessions = connection.execute(_SESSIONS.format(user=user), parameters).fetchall()
    results = [
        ResultBucketRow(*row)
        for row in connection.execute(
            _RESULTS.format(user=user.replace("user_id", "t.user_id", 1)), parameters
        )
    ]
    return assemble(project, user_id, window, turns, sessions, results)


def _percentiles(latencies: list[float] | None) -> tuple[float | None, float | None]:
    if not latencies:
        return None, None
    return percentile(latencies, 0.5), percentile(latencies, 0.95)
