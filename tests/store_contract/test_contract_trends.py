"""Trends: figures per time bucket, equal to what the stored spans and results say."""

from __future__ import annotations

import pytest
from contract_kit import T0, span, span_id, trace_id, write

from spanloom.server.store.base import Store
from spanloom.server.store.evaluation_types import EvaluationInput
from spanloom.server.store.trend_types import DAY_NS, HOUR_NS, MAX_BUCKETS

H0 = T0 // HOUR_NS * HOUR_NS + HOUR_NS  # a whole hour after T0
MINUTE_MS = 60_000


def _turn(number: int, minutes: float, latency_ms: float, **fields: object):
    """A one-span turn (trace `number`) starting `minutes` after H0."""
    start_ms = (H0 - T0) / 1e6 + minutes * MINUTE_MS
    return span(number, 1, start_ms=start_ms, duration_ms=latency_ms, **fields)


@pytest.fixture
def filled(store: Store) -> Store:
    write(
        store,
        [
            _turn(1, 10, 100, session_id="s1", user_id="u1", cost=0.01),
            _turn(2, 20, 300, session_id="s1", user_id="u1", cost=0.02, status_code="ERROR"),
            _turn(3, 30, 200, session_id="s2", user_id="u2", cost=0.005),
            _turn(4, 125, 1000, session_id="s3", user_id="u1", cost=0.1),
            _turn(5, 130, 50),
            # another project, and before the range: counted nowhere below
            _turn(6, 15, 5000, session_id="s1", user_id="u1", cost=1.0, project="p2"),
            _turn(7, -90, 10, session_id="s0", user_id="u1"),
        ],
    )
    results = [
        EvaluationInput("feedback", "feedback", trace_id=trace_id(1), score=1.0, project="p1", key="f1"),
        EvaluationInput("feedback", "feedback", trace_id=trace_id(2), score=0.0, project="p1", key="f2"),
        EvaluationInput("correct", "api", trace_id=trace_id(1), span_id=span_id(1001), label="pass"),
        EvaluationInput("correct", "api", trace_id=trace_id(4), span_id=span_id(4001), label="fail"),
        EvaluationInput("correct", "api", trace_id=trace_id(5), span_id=span_id(5001), score=0.9),
        EvaluationInput("correct", "api", trace_id=trace_id(6), span_id=span_id(6001), score=0.1),
    ]
    outcome = store.insert_evaluations(results).result(timeout=30)
    assert outcome.accepted == len(results), outcome.rejected
    return store


def _figures(trends, *names: str) -> list[tuple[object, ...]]:
    return [tuple(getattr(bucket, name) for name in names) for bucket in trends.buckets]


def test_hourly_buckets_hold_each_turns_figures(filled: Store):
    trends = filled.get_trends("p1", H0, H0 + 3 * HOUR_NS)
    assert trends.window.unit == "hour"
    assert [bucket.start_ns for bucket in trends.buckets] == [H0, H0 + HOUR_NS, H0 + 2 * HOUR_NS]
    assert _figures(trends, "sessions", "turns", "errors") == [(2, 3, 1), (0, 0, 0), (1, 2, 0)]
    assert [bucket.cost for bucket in trends.buckets] == pytest.approx([0.035, 0.0, 0.1])
    # [100, 200, 300] and [50, 1000]: linear interpolation between closest ranks
    assert [bucket.latency_p50_ms for bucket in trends.buckets] == [
        pytest.approx(200),
        None,
        pytest.approx(525),
    ]
    assert [bucket.latency_p95_ms for bucket in trends.buckets] == [
        pytest.approx(290),
        None,
        pytest.approx(952.5),
    ]
    assert _figures(trends, "feedback_positive", "feedback_negative") == [(1, 1), (0, 0), (0, 0)]
    assert _figures(trends, "evaluations", "evaluations_passed") == [(1, 1), (0, 0), (2, 1)]
    assert [bucket.pass_rate for bucket in trends.buckets] == [1.0, None, 0.5]


def test_one_users_trends(filled: Store):
    trends = filled.get_trends("p1", H0, H0 + 3 * HOUR_NS, user_id="u1")
    assert trends.user_id == "u1"
    assert _figures(trends, "sessions", "turns", "errors") == [(1, 2, 1), (0, 0, 0), (1, 1, 0)]
    assert [bucket.cost for bucket in trends.buckets] == pytest.approx([0.03, 0.0, 0.1])
    assert _figures(trends, "feedback_positive", "feedback_negative", "evaluations") == [
        (1, 1, 1),
        (0, 0, 0),
        (0, 0, 1),
    ]
    assert filled.get_trends("p1", H0, H0 + 3 * HOUR_NS, user_id="nobody").buckets[0].turns == 0


def test_a_long_range_takes_daily_buckets(filled: Store):
    first_day = H0 // DAY_NS * DAY_NS - 4 * DAY_NS
    trends = filled.get_trends("p1", first_day + 1, first_day + 10 * DAY_NS)
    assert trends.window.unit == "day"
    assert [bucket.start_ns for bucket in trends.buckets] == [first_day + day * DAY_NS for day in range(10)]
    # p1's turns by their start (minutes after H0); turn 7 is in this range
    expected = [0] * 10
    for minutes in (10, 20, 30, 125, 130, -90):
        expected[(H0 + minutes * 60 * 10**9 - first_day) // DAY_NS] += 1
    assert [bucket.turns for bucket in trends.buckets] == expected
    assert sum(bucket.sessions for bucket in trends.buckets) == 4
    assert sum(bucket.errors for bucket in trends.buckets) == 1
    assert sum(bucket.cost for bucket in trends.buckets) == pytest.approx(0.135)


def test_an_unbounded_range_stays_bounded(store: Store):
    trends = store.get_trends("p1", 0, T0)
    assert len(trends.buckets) <= MAX_BUCKETS
    assert all(bucket.turns == 0 for bucket in trends.buckets)


def test_percentiles_interpolate_between_ranks(store: Store):
    latencies = [70, 10, 110, 40, 90, 20, 100, 60, 30, 80, 50]  # 10..110 ms, out of order
    write(store, [_turn(100 + i, i, latency) for i, latency in enumerate(latencies)])
    (bucket,) = store.get_trends("p1", H0, H0 + HOUR_NS).buckets
    assert bucket.turns == 11
    assert bucket.latency_p50_ms == pytest.approx(60)
    assert bucket.latency_p95_ms == pytest.approx(105)  # rank 9.5: halfway from 100 to 110


def test_without_latency_the_counts_are_the_same(filled: Store):
    full = filled.get_trends("p1", H0, H0 + 3 * HOUR_NS)
    light = filled.get_trends("p1", H0, H0 + 3 * HOUR_NS, latency=False)
    names = ("sessions", "turns", "errors", "cost", "feedback_positive", "evaluations_passed")
    assert _figures(light, *names) == _figures(full, *names)
    for kept, left in zip(full.buckets, light.buckets, strict=True):
        assert left.latency_p50_ms in (None, kept.latency_p50_ms)
