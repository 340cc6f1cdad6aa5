"""SQL of the read path for trends: a project's figures per time bucket (trend_types.py).

Three statements, each one pass over a key range of an index: the project's (or user's) traces
by start time, its sessions by start time, and the results on those traces by their primary
key. Turn latency percentiles come out of SQLite itself: window functions rank each bucket's
latencies and only the two values around each percentile's rank leave the database, so a
bucket of 10,000 turns costs no Python loop.
"""

from __future__ import annotations

import sqlite3

from spanloom.server.store.trend_types import (
    P50,
    P95,
    ResultBucketRow,
    Trends,
    TrendWindow,
    TurnBucketRow,
    assemble,
)

# `b` is the bucket index; `r` a latency's 0-based rank in its bucket, `n` the bucket's turns.
# The percentile ranks are integer arithmetic on n (trend_types.percentile_ranks).
_TURNS = f"""
WITH ranked AS (
    SELECT (start_ns - :origin) / :width AS b, latency_ms, error_count, cost_nanos,
        ROW_NUMBER() OVER (PARTITION BY (start_ns - :origin) / :width ORDER BY latency_ms) - 1 AS r,
        COUNT(*) OVER (PARTITION BY (start_ns - :origin) / :width) AS n
    FROM traces
    WHERE project = :project AND start_ns >= :start AND start_ns < :end {{user}}
)
SELECT b, COUNT(*), SUM(error_count > 0), SUM(cost_nanos),
    MAX(CASE WHEN r = (n - 1) * {P50} / 100 THEN latency_ms END),
    MAX(CASE WHEN r = ((n - 1) * {P50} + 99) / 100 THEN latency_ms END),
    MAX(CASE WHEN r = (n - 1) * {P95} / 100 THEN latency_ms END),
    MAX(CASE WHEN r = ((n - 1) * {P95} + 99) / 100 THEN latency_ms END)
FROM ranked GROUP BY b
"""
_SESSIONS = """
SELECT (start_ns - :origin) / :width, COUNT(*) FROM sessions
WHERE project = :project AND start_ns >= :start AND start_ns < :end {user}
GROUP BY 1
"""
_RESULTS = """
SELECT (t.start_ns - :origin) / :width,
    SUM(e.source = 'feedback' AND e.passed), SUM(e.source = 'feedback' AND NOT e.passed),
    SUM(e.source <> 'feedback'), SUM(e.source <> 'feedback' AND e.passed)
FROM traces t JOIN evaluations e ON e.trace_id = t.trace_id AND e.project = t.project
WHERE t.project = :project AND t.start_ns >= :start AND t.start_ns < :end {user}
GROUP BY 1
"""


def select_trends(
    connection: sqlite3.Connection, project: str, window: TrendWindow, user_id: str | None
) -> Trends:
    parameters = {
        "project": project,
        "origin": window.start_ns,
        "width": window.width_ns,
        "start": window.start_ns,
        "end": window.end_ns,
        "user_id": user_id,
    }
    user = "AND user_id = :user_id" if user_id is not None else ""
    turns = [
        TurnBucketRow(*row) for row in connection.execute(_TURNS.format(user=user), parameters).fetchall()
    ]
    sessions = connection.execute(_SESSIONS.format(user=user), parameters).fetchall()
    results = [
        ResultBucketRow(*row)
        for row in connection.execute(
            _RESULTS.format(user=user.replace("user_id", "t.user_id", 1)), parameters
        ).fetchall()
    ]
    return assemble(project, user_id, window, turns, sessions, results)
