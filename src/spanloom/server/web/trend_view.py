"""The trend charts of the overview page and of the lists' strip, from a store's `Trends`."""

from __future__ import annotations

from typing import Any

from spanloom.server.store.trend_types import DAY_NS, HOUR_NS, Trends, TrendWindow
from spanloom.server.web.charts import Chart, SeriesData, chart
from spanloom.server.web.format import duration, moment, money, percent


def bucket_text(window: TrendWindow) -> str:
    """ "hourly", "daily", or "6-hour" / "5-day" for wider buckets."""
    unit_ns = HOUR_NS if window.unit == "hour" else DAY_NS
    units = window.width_ns // unit_ns
    if units == 1:
        return "hourly" if window.unit == "hour" else "daily"
    return f"{units}-{window.unit}"


TREND_FILTERS = {"bucket_text": bucket_text}


def bucket_labels(trends: Trends) -> tuple[list[str], list[str]]:
    """Each bucket's start as the table and titles show it, and as the axis does (shorter)."""
    full: list[str] = []
    short: list[str] = []
    hourly = trends.window.unit == "hour"
    for bucket in trends.buckets:
        start = moment(bucket.start_ns)
        assert start is not None
        full.append(start.strftime("%Y-%m-%d %H:%M" if hourly else "%Y-%m-%d"))
        if hourly and start.hour:
            short.append(start.strftime("%H:%M"))
        else:
            short.append(f"{start:%b} {start.day}")
    return full, short


def trend_charts(trends: Trends, compact: bool = False) -> list[Chart]:
    """Sessions, turns and errors, and cost; with latency, feedback and evaluation pass rate
    unless `compact` (the lists' strip)."""
    labels, ticks = bucket_labels(trends)
    heading = "Hour (UTC)" if trends.window.unit == "hour" else "Day (UTC)"
    buckets = trends.buckets
    common: dict[str, Any] = {"x_heading": heading, "tick_labels": ticks}
    charts = [
        chart(
            "sessions",
            "Sessions started",
            "sessions",
            labels,
            [SeriesData("Sessions", [b.sessions for b in buckets])],
            **common,
        ),
        chart(
            "turns",
            "Turns and errors",
            "turns",
            labels,
            [
                SeriesData("Turns", [b.turns for b in buckets]),
                SeriesData("Errors", [b.errors for b in buckets], css="series-bad"),
            ],
            **common,
        ),
        chart(
            "cost",
            "Cost",
            "USD",
            labels,
            [SeriesData("Cost", [b.cost for b in buckets])],
            fmt=money,
            integer=False,
            **common,
        ),
    ]
    if compact:
        return charts
    return [
        *charts,
        chart(
            "latency",
            "Turn latency",
            "latency",
            labels,
            [
                SeriesData("p50", [b.latency_p50_ms for b in buckets]),
                SeriesData("p95", [b.latency_p95_ms for b in buckets]),
            ],
            kind="lines",
            fmt=duration,
            integer=False,
            **common,
        ),
        chart(
            "feedback",
            "Feedback",
            "feedback",
            labels,
            [
                SeriesData("Thumbs up", [b.feedback_positive for b in buckets], css="series-good"),
                SeriesData("Thumbs down", [b.feedback_negative for b in buckets], css="series-bad"),
            ],
            **common,
        ),
        chart(
            "pass-rate",
            "Evaluation pass rate",
            "passed",
            labels,
            [SeriesData("Pass rate", [b.pass_rate for b in buckets])],
            kind="lines",
            fmt=percent,
            integer=False,
            y_top=1.0,
            **common,
        ),
    ]
