"""Two sessions side by side, turn by turn: what the compare page and its API twin show.

Turn i of A stands beside turn i of B (a replay re-runs the original's user turns in order), and
each pair says what differs: the texts, each figure with its delta and whether it got better or
worse, and each evaluation result paired by name and source (passed in A and failed in B is a
regression). The session figures and the results on the whole conversations are paired the same
way. Pure over the store's records: the API and the pages only serialize or render it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from typing import Literal

from spanloom.server.compare_params import END, CompareParams
from spanloom.server.store.base import REPLAY_OF, SessionDetail, SessionSummary, Store, TraceSummary
from spanloom.server.store.evaluation_types import FEEDBACK, EvaluationAggregate, EvaluationRecord

# Replays listed on a session's page; the rest are a filtered sessions list away.
MAX_REPLAYS_LISTED = 20

Direction = Literal["better", "worse", "same", "changed"]
Change = Literal["regressed", "improved", "lower", "higher", "changed", "same", "only_a", "only_b"]


@dataclass(frozen=True, slots=True)
class Delta:
    """A figure of A and of B, `delta` = B - A, and whether B is better, worse or the same
    (None when the figure is neither: more turns is not worse)."""

    a: float | None
    b: float | None
    delta: float | None
    direction: Direction | None


def delta(a: float | None, b: float | None, higher_is_better: bool | None = False) -> Delta:
    if a is None or b is None:
        return Delta(a, b, None, None)
    difference = b - a
    if higher_is_better is None:
        direction: Direction | None = None
    elif difference == 0:
        direction = "same"
    else:
        direction = "better" if (difference > 0) == higher_is_better else "worse"
    return Delta(a, b, difference, direction)


@dataclass(frozen=True, slots=True)
class ResultPair:
    """Results of one evaluation name and source: A's and B's (None where a side has none)."""

    name: str
    source: str
    a: EvaluationRecord | None
    b: EvaluationRecord | None
    change: Change


def _change(a: EvaluationRecord | None, b: EvaluationRecord | None) -> Change:
    if a is None:
        return "only_b"
    if b is None:
        return "only_a"
    if a.passed != b.passed:
        return "regressed" if a.passed else "improved"
    if a.score is not None and b.score is not None and a.score != b.score:
        return "lower" if b.score < a.score else "higher"
    if (a.score, a.label) != (b.score, b.label):
        return "changed"
    return "same"


def _is_feedback(record: EvaluationRecord) -> bool:
    return record.name == FEEDBACK and record.source == "feedback"


def pair_results(a: Iterable[EvaluationRecord], b: Iterable[EvaluationRecord]) -> list[ResultPair]:
    """The judgements (not end users' feedback) of A and B paired by (name, source), in name
    order; several of one name and source on one side pair up in their order."""
    grouped: dict[tuple[str, str], tuple[list[EvaluationRecord], list[EvaluationRecord]]] = {}
    for side, records in enumerate((a, b)):
        for record in records:
            if not _is_feedback(record):
                grouped.setdefault((record.name, record.source), ([], []))[side].append(record)
    pairs = []
    for (name, source), (of_a, of_b) in sorted(grouped.items()):
        for left, right in zip_longest(of_a, of_b):
            pairs.append(ResultPair(name, source, left, right, _change(left, right)))
    return pairs


def feedback_in(records: Iterable[EvaluationRecord]) -> list[EvaluationRecord]:
    return [record for record in records if _is_feedback(record)]


@dataclass(slots=True)
class TurnPair:
    """Turn `position` of the page on each side; None where that side has no such turn."""

    position: int  # from 0, in the page
    a: TraceSummary | None
    b: TraceSummary | None
    a_number: int | None  # 1-based turn number in its session
    b_number: int | None
    input_differs: bool
    output_differs: bool
    latency_ms: Delta
    total_tokens: Delta
    cost: Delta
    error_count: Delta
    evaluations: list[ResultPair]
    a_feedback: list[EvaluationRecord]
    b_feedback: list[EvaluationRecord]

    @property
    def regressed(self) -> bool:
        """B failed where A did not: a new error, or a result that passed in A and fails in B."""
        return self.error_count.direction == "worse" or any(
            pair.change == "regressed" for pair in self.evaluations
        )


def _figure(turn: TraceSummary | None, name: str) -> float | None:
    return None if turn is None else getattr(turn, name)


def pair_turn(
    position: int, a: TraceSummary | None, b: TraceSummary | None, a_first: int, b_first: int
) -> TurnPair:
    both = a is not None and b is not None
    return TurnPair(
        position=position,
        a=a,
        b=b,
        a_number=None if a is None else a_first + position + 1,
        b_number=None if b is None else b_first + position + 1,
        input_differs=both and (a.input or "") != (b.input or ""),  # type: ignore[union-attr]
        output_differs=both and (a.output or "") != (b.output or ""),  # type: ignore[union-attr]
        latency_ms=delta(_figure(a, "latency_ms"), _figure(b, "latency_ms")),
        total_tokens=delta(_figure(a, "total_tokens"), _figure(b, "total_tokens")),
        cost=delta(_figure(a, "cost"), _figure(b, "cost")),
        error_count=delta(_figure(a, "error_count"), _figure(b, "error_count")),
        evaluations=pair_results(a.evaluations if a else (), b.evaluations if b else ()),
        a_feedback=feedback_in(a.evaluations) if a else [],
        b_feedback=feedback_in(b.evaluations) if b else [],
    )


# The session figures of the totals row: (field, label, higher is better; None: neither).
TOTALS: tuple[tuple[str, str, bool | None], ...] = (
    ("trace_count", "Turns", None),
    ("duration_ms", "Duration", None),
    ("total_tokens", "Tokens", False),
    ("cost", "Cost", False),
    ("error_count", "Failing turns", False),
    ("latency_p50_ms", "Latency p50", False),
    ("latency_p95_ms", "Latency p95", False),
)


@dataclass(frozen=True, slots=True)
class Total:
    name: str
    label: str
    figures: Delta


@dataclass(frozen=True, slots=True)
class ScorePair:
    """One evaluation over the whole session (its turns' results and the session's): A's and B's
    aggregate, and the change of the mean score (else the pass rate)."""

    name: str
    a: EvaluationAggregate | None
    b: EvaluationAggregate | None
    figures: Delta
    by_score: bool  # the figures are mean scores (both sides have scores), else pass rates


def _headline(aggregate: EvaluationAggregate | None, by_score: bool) -> float | None:
    if aggregate is None:
        return None
    return aggregate.mean_score if by_score else aggregate.pass_rate


def pair_scores(a: SessionSummary, b: SessionSummary) -> list[ScorePair]:
    names = sorted((set(a.evaluations) | set(b.evaluations)) - {FEEDBACK})
    pairs = []
    for name in names:
        left, right = a.evaluations.get(name), b.evaluations.get(name)
        # Mean scores compare only when each side has one; else the pass rates do.
        by_score = all(side is None or side.mean_score is not None for side in (left, right))
        figures = delta(_headline(left, by_score), _headline(right, by_score), True)
        pairs.append(ScorePair(name, left, right, figures, by_score))
    return pairs


@dataclass(frozen=True, slots=True)
class NextPage:
    a_cursor: str
    b_cursor: str


@dataclass(slots=True)
class Comparison:
    a: SessionDetail
    b: SessionDetail
    limit: int
    turns: list[TurnPair]
    totals: list[Total]
    scores: list[ScorePair]  # per evaluation name, over each whole session
    session_results: list[ResultPair]  # judgements of each conversation as a whole
    a_feedback: list[EvaluationRecord] = field(default_factory=list)  # on the whole session
    b_feedback: list[EvaluationRecord] = field(default_factory=list)
    next_page: NextPage | None = None

    @property
    def first_number(self) -> int:
        """The turn number of the page's first row (1-based)."""
        return max(self.a.first_turn_index, self.b.first_turn_index) + 1


def compare(a: SessionDetail, b: SessionDetail, limit: int) -> Comparison:
    """A page of A beside a page of B (each a `get_session` answer, or `read_side`'s)."""
    a_first, b_first = a.first_turn_index, b.first_turn_index
    turns = [
        pair_turn(position, left, right, a_first, b_first)
        for position, (left, right) in enumerate(zip_longest(a.turns, b.turns))
    ]
    totals = [
        Total(name, label, delta(getattr(a.summary, name), getattr(b.summary, name), better))
        for name, label, better in TOTALS
    ]
    next_page = None
    if a.next_cursor or b.next_cursor:
        next_page = NextPage(a.next_cursor or END, b.next_cursor or END)
    return Comparison(
        a=a,
        b=b,
        limit=limit,
        turns=turns,
        totals=totals,
        scores=pair_scores(a.summary, b.summary),
        session_results=pair_results(a.results, b.results),
        a_feedback=feedback_in(a.results),
        b_feedback=feedback_in(b.results),
        next_page=next_page,
    )


def read_side(
    store: Store, project: str, session_id: str, limit: int, cursor: str | None
) -> SessionDetail | None:
    """One side's page: `get_session` from `cursor`, or, past its last turn (END), the session
    without turns, numbered where its turns ran out."""
    if cursor != END:
        return store.get_session(project, session_id, limit, cursor)
    detail = store.get_session(project, session_id, 1)
    if detail is None:
        return None
    return replace(
        detail,
        turns=[],
        tool_calls={},
        first_turn_index=detail.summary.trace_count,
        next_cursor=None,
        previous_cursor=None,
    )


@dataclass(frozen=True, slots=True)
class Missing:
    """A session of the pair that is not there (or not the caller's to read)."""

    session_id: str


def load_comparison(store: Store, project: str, params: CompareParams) -> Comparison | Missing:
    """The page of the comparison `params` asks for, both sessions read in `project`."""
    assert params.a is not None and params.b is not None
    a = read_side(store, project, params.a, params.limit, params.a_cursor)
    if a is None:
        return Missing(params.a)
    b = read_side(store, project, params.b, params.limit, params.b_cursor)
    if b is None:
        return Missing(params.b)
    return compare(a, b, params.limit)


def replay_source(session: SessionSummary) -> str | None:
    """The id of the session this one replays, from its metadata."""
    value = session.metadata.get(REPLAY_OF)
    return value if isinstance(value, str) and value else None


def list_replays(
    store: Store, project: str, session_id: str, limit: int = MAX_REPLAYS_LISTED
) -> Sequence[SessionSummary]:
    """The sessions of `project` that replay `session_id`, oldest first: `limit` of them plus one,
    so the caller knows whether there are more."""
    return store.list_replays(project, session_id, limit + 1)
