"""The session page's view: turns with their numbers, and the per-turn bar chart.

The chart is inline SVG drawn from numbers computed here (bar heights in viewBox units); the
template writes only these numbers and fixed labels into it, never text from a span.
"""

from __future__ import annotations

from dataclasses import dataclass

from spanloom.server.store.base import SessionDetail, SpanRecord, TraceSummary, turn_failed

CHART_HEIGHT = 100  # viewBox units for the tallest bar
SLOT = 24  # viewBox units per turn: two bars and a gap
BAR = 9


@dataclass
class Bar:
    number: int  # 1-based turn number, the anchor #turn-N
    x: float
    latency_height: float
    token_height: float
    latency_ms: float
    tokens: int
    failed: bool


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    max_latency_ms: float
    max_tokens: int


@dataclass
class TurnView:
    number: int
    trace: TraceSummary
    failed: bool
    first_failure: bool
    tool_calls: list[SpanRecord]


def turn_chart(turns: list[TraceSummary]) -> Chart:
    """Latency and tokens per turn, each scaled to its own maximum."""
    max_latency = max((turn.latency_ms for turn in turns), default=0.0)
    max_tokens = max((turn.total_tokens for turn in turns), default=0)
    bars = []
    for index, turn in enumerate(turns):
        bars.append(
            Bar(
                number=index + 1,
                x=index * SLOT + 3,
                latency_height=round(turn.latency_ms / max_latency * CHART_HEIGHT, 2) if max_latency else 0,
                token_height=round(turn.total_tokens / max_tokens * CHART_HEIGHT, 2) if max_tokens else 0,
                latency_ms=turn.latency_ms,
                tokens=turn.total_tokens,
                failed=turn_failed(turn),
            )
        )
    return Chart(max(len(turns), 1) * SLOT, CHART_HEIGHT, bars, max_latency, max_tokens)


def turn_views(detail: SessionDetail) -> list[TurnView]:
    first = detail.first_failing_turn
    tools = detail.tool_calls
    return [
        TurnView(
            number=index + 1,
            trace=turn,
            failed=turn_failed(turn),  # an error, or a result that did not pass
            first_failure=index == first,
            tool_calls=list(tools.get(turn.trace_id, ())),
        )
        for index, turn in enumerate(detail.turns)
    ]
