"""The session page's view: turns with their numbers, and the per-turn bar chart.

The chart is drawn by the chart module (charts.py) from the turns' numbers; the template writes
only those numbers and fixed labels into it, never text from a span.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spanloom.server.store.base import (
    FailingTurn,
    SessionDetail,
    SpanRecord,
    TraceSummary,
    failed_evaluations,
    turn_failed,
)
from spanloom.server.store.evaluation_types import EvaluationRecord
from spanloom.server.web.charts import Chart, SeriesData, chart
from spanloom.server.web.feedback_view import is_feedback
from spanloom.server.web.format import duration

# The per-turn chart spans the page: a viewBox twice as wide as the overview's half-width charts,
# so its labels come out the same size.
SESSION_CHART_WIDTH = 1280
MAX_TURN_LINKS = 50  # turns a session result links to; a judge may name many more


@dataclass
class TurnView:
    number: int
    trace: TraceSummary
    failed: bool
    error: bool
    failed_evaluations: list[EvaluationRecord]
    first_failure: bool  # where it breaks
    first_evaluation_failure: bool
    tool_calls: list[SpanRecord]


def turn_chart(turns: list[TraceSummary], first_number: int = 1) -> Chart:
    """Latency per turn (of the page shown), with axes; a turn with an error and one with a failed
    evaluation marked apart (a turn may be both), each bar a link to its turn, tokens in the hover
    titles and the table."""
    numbers = [first_number + index for index in range(len(turns))]
    errors = [turn.error_count > 0 for turn in turns]
    judged = [bool(failed_evaluations(turn)) for turn in turns]
    return chart(
        "turn-latency",
        "Latency per turn",
        "latency",
        [f"Turn {number}" for number in numbers],
        [
            SeriesData(
                "Latency",
                [turn.latency_ms for turn in turns],
                css="series-0",
                marks=[
                    "latency" + (" failed" if error else "") + (" judged" if failing else "")
                    for error, failing in zip(errors, judged, strict=True)
                ],
            )
        ],
        fmt=duration,
        integer=False,
        x_heading="Turn",
        tick_labels=[str(number) for number in numbers],
        hrefs=[f"#turn-{number}" for number in numbers],
        width=SESSION_CHART_WIDTH,
        notes=(
            ("Tokens", [f"{turn.total_tokens:,}" for turn in turns]),
            ("Status", [_status(error, failing) for error, failing in zip(errors, judged, strict=True)]),
        ),
    )


def _status(error: bool, judged_failing: bool) -> str:
    reasons = [name for name, on in (("error", error), ("failed evaluation", judged_failing)) if on]
    return ", ".join(reasons) or "ok"


def turn_views(detail: SessionDetail) -> list[TurnView]:
    """The page's turns, numbered in the whole session (from 1)."""
    first = detail.first_failing.index if detail.first_failing else None
    judged = detail.first_evaluation_failure.index if detail.first_evaluation_failure else None
    tools = detail.tool_calls
    return [
        TurnView(
            number=detail.first_turn_index + index + 1,
            trace=turn,
            failed=turn_failed(turn),  # an error, or a result that did not pass
            error=turn.error_count > 0,
            failed_evaluations=failed_evaluations(turn),
            first_failure=detail.first_turn_index + index == first,
            first_evaluation_failure=detail.first_turn_index + index == judged,
            tool_calls=list(tools.get(turn.trace_id, ())),
        )
        for index, turn in enumerate(detail.turns)
    ]


@dataclass
class Breaks:
    """Where the "where it breaks" link goes: the failing turn's number, and the page that shows
    it (None: this page)."""

    number: int
    by_evaluation: bool
    cursor: str | None


def _breaks(detail: SessionDetail, failing: FailingTurn) -> Breaks:
    on_this_page = detail.first_turn_index <= failing.index < detail.first_turn_index + len(detail.turns)
    return Breaks(failing.index + 1, failing.reason == "evaluation", None if on_this_page else failing.cursor)


def where_it_breaks(detail: SessionDetail) -> Breaks | None:
    """The first turn with an error, else the first with a failing result."""
    return _breaks(detail, detail.first_failing) if detail.first_failing else None


def first_judged_failure(detail: SessionDetail) -> Breaks | None:
    """The first turn with a failing result, offered beside "where it breaks" when it is another."""
    judged, failing = detail.first_evaluation_failure, detail.first_failing
    if judged is None or (failing is not None and failing.index == judged.index):
        return None
    return _breaks(detail, judged)


@dataclass
class TurnLink:
    number: int  # 1-based, as the transcript numbers turns
    href: str | None  # this page's anchor, else the turn's trace; None when neither is known


@dataclass
class SessionResult:
    """A judgement of the whole conversation, with the turns it points at."""

    record: EvaluationRecord
    turns: list[TurnLink]


def _turn_numbers(details: dict[str, object]) -> list[int]:
    raw = details.get("turns")
    if not isinstance(raw, list):
        return []
    return [n for n in raw if isinstance(n, int) and not isinstance(n, bool) and n > 0]


def session_results(detail: SessionDetail, trace_link: Callable[[str], str]) -> list[SessionResult]:
    """The session's results other than feedback. Their `details` may name turns (1-based
    numbers under "turns", their trace ids in the same order under "trace_ids"): a turn on this
    page links to its anchor, another to its trace."""
    on_page = range(detail.first_turn_index + 1, detail.first_turn_index + len(detail.turns) + 1)
    views = []
    for record in detail.results:
        if is_feedback(record):
            continue
        trace_ids = record.details.get("trace_ids")
        trace_ids = trace_ids if isinstance(trace_ids, list) else []
        links = []
        for position, number in enumerate(_turn_numbers(record.details)[:MAX_TURN_LINKS]):
            trace_id = trace_ids[position] if position < len(trace_ids) else None
            if number in on_page:
                href: str | None = f"#turn-{number}"
            elif isinstance(trace_id, str) and trace_id:
                href = trace_link(trace_id)
            else:
                href = None
            links.append(TurnLink(number, href))
        views.append(SessionResult(record, links))
    return views
