"""Trends: a project's figures per time bucket, as every store returns them.

The bucket width is picked from the range alone (`TrendWindow.of`), so both stores, the API and
the pages agree on it: hours up to 72 hours, days beyond, and never more than `MAX_BUCKETS`
buckets (a longer range takes several days a bucket), so no request builds an unbounded answer.
Buckets are aligned on whole UTC hours or days and cover the range; a turn (trace) counts in the
bucket of its start, a session in that of its first turn, an evaluation result in its turn's.

Nothing here is backend-specific: each store fetches a few figures per bucket index (the rows
below) and `assemble` fills in every bucket, empty ones included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS
# Ranges up to this long are bucketed by hour, longer ones by day.
HOURLY_UP_TO_NS = 72 * HOUR_NS
MAX_BUCKETS = 200
TrendUnit = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class TrendWindow:
    """`count` buckets of `width_ns` each from `start_ns` (a whole hour or day, UTC)."""

    start_ns: int
    width_ns: int
    count: int
    unit: TrendUnit

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.width_ns * self.count

    @property
    def query_end_ns(self) -> int:
        """`end_ns` as a store's 64-bit parameter: the last bucket of a range ending in 2262 may
        reach past what an integer column holds, and no time stored lies beyond it."""
        return min(self.end_ns, 2**63 - 1)

    def bucket_start(self, index: int) -> int:
        return self.start_ns + index * self.width_ns

    @classmethod
    def of(cls, start_ns: int, end_ns: int, unit: TrendUnit | None = None) -> TrendWindow:
        """The buckets covering [start_ns, end_ns): hourly up to 72 hours, else daily (or by
        `unit`); several units a bucket when one a bucket would make more than MAX_BUCKETS."""
        # OTLP times are unsigned: nothing stored lies before the epoch, and a range starting
        # there keeps a store's `time - start` within 64 bits (it overflowed from 1678).
        start_ns = max(start_ns, 0)
        end_ns = max(end_ns, start_ns + 1)
        if unit is None:
            unit = "hour" if end_ns - start_ns <= HOURLY_UP_TO_NS else "day"
        unit_ns = HOUR_NS if unit == "hour" else DAY_NS
        first = start_ns // unit_ns * unit_ns
        units = -(-(end_ns - first) // unit_ns)
        width = unit_ns * -(-units // MAX_BUCKETS)
        count = -(-(end_ns - first) // width)
        return cls(first, width, count, unit)


@dataclass(frozen=True, slots=True)
class TurnBucketRow:
    """A store's figures of the turns started in one bucket. Latency percentiles interpolate
    linearly between closest ranks (`trace_rollup.percentile`, as sessions' are)."""

    index: int
    turns: int
    errors: int  # turns with at least one failed span
    cost_nanos: int
    latency_p50_ms: float | None  # None when the store was asked for no latency
    latency_p95_ms: float | None


@dataclass(frozen=True, slots=True)
class ResultBucketRow:
    """A store's counts of the results on the turns started in one bucket: end users' feedback
    (source "feedback") apart from the evaluations."""

    index: int
    feedback_positive: int
    feedback_negative: int
    evaluations: int
    evaluations_passed: int


@dataclass(slots=True)
class TrendBucket:
    start_ns: int
    end_ns: int
    sessions: int = 0  # sessions whose first turn started in the bucket
    turns: int = 0
    errors: int = 0  # turns with at least one failed span
    cost: float = 0.0  # USD
    latency_p50_ms: float | None = None  # None without turns
    latency_p95_ms: float | None = None
    feedback_positive: int = 0
    feedback_negative: int = 0
    evaluations: int = 0  # results other than feedback, on the bucket's turns and their spans
    evaluations_passed: int = 0

    @property
    def pass_rate(self) -> float | None:
        return self.evaluations_passed / self.evaluations if self.evaluations else None


@dataclass(slots=True)
class Trends:
    project: str
    window: TrendWindow
    user_id: str | None = None
    buckets: list[TrendBucket] = field(default_factory=list)


def assemble(
    project: str,
    user_id: str | None,
    window: TrendWindow,
    turns: Iterable[TurnBucketRow],
    sessions: Iterable[tuple[int, int]],
    results: Iterable[ResultBucketRow],
) -> Trends:
    """Every bucket of the window, from a store's rows (`sessions`: (bucket index, count))."""
    buckets = [
        TrendBucket(window.bucket_start(index), window.bucket_start(index + 1))
        for index in range(window.count)
    ]
    for row in turns:
        bucket = buckets[row.index]
        bucket.turns, bucket.errors, bucket.cost = row.turns, row.errors, row.cost_nanos / 1e9
        bucket.latency_p50_ms, bucket.latency_p95_ms = row.latency_p50_ms, row.latency_p95_ms
    for index, count in sessions:
        buckets[index].sessions = count
    for judged in results:
        bucket = buckets[judged.index]
        bucket.feedback_positive, bucket.feedback_negative = (
            judged.feedback_positive,
            judged.feedback_negative,
        )
        bucket.evaluations, bucket.evaluations_passed = judged.evaluations, judged.evaluations_passed
    return Trends(project, window, user_id, buckets)
