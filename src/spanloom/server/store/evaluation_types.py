"""Evaluation results as the store takes and gives them, and the rule that says which passed.

Nothing here is SQLite-specific; `base` builds its summaries and the `Store` protocol on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

GroupBy = Literal["session", "user", "project"]
EvaluationSource = Literal["sdk", "api", "server", "feedback"]
# End users' feedback is stored as results of this name, source "feedback", one per feedback id.
FEEDBACK = "feedback"
# Labels that mean "passed" (compared lower-cased). Any other label is a failure; a result with
# no label passes when its score is at least PASS_SCORE. Scores are read as "higher is better".
PASS_LABELS = frozenset(
    {
        "pass",
        "passed",
        "correct",
        "yes",
        "true",
        "safe",
        "ok",
        "good",
        "success",
        "accurate",
        "relevant",
        "helpful",
        "grounded",
        "factual",
        "compliant",
    }
)
PASS_SCORE = 0.5
# `sort=eval:NAME` sorts sessions or users by their mean score for evaluation NAME.
EVAL_SORT_PREFIX = "eval:"
MAX_EVALUATION_NAME = 200


# The largest score magnitude taken: aggregates add scores up as integer micro-units in 64-bit
# sums, which stay exact for millions of results at this bound (and overflowed past it).
MAX_ABS_SCORE = 1_000_000.0


def evaluation_passed(score: float | None, label: str | None, source: str = "") -> bool:
    """The pass rule: a label decides when there is one, else the score against PASS_SCORE.
    End users' feedback with a score is a thumb: its score decides, and its label ("thanks",
    "wrong answer") says what it is about."""
    if source == "feedback" and score is not None:
        return score >= PASS_SCORE
    if label is not None:
        return label.strip().lower() in PASS_LABELS
    return score is not None and score >= PASS_SCORE


@dataclass(slots=True)
class EvaluationInput:
    """One result to store, on a span, a trace or a session. `span_id` names the span (with
    `trace_id` if known); `trace_id` alone names that trace's root span; `session_id` (with
    `project`, or the only project holding it) names a session: a judgement of the whole
    conversation. At least one of `score` and `label`.

    Feedback (source "feedback") judges a turn (`trace_id`) or a session, and may arrive before
    the spans it judges (a web handler answers before the exporter sends): it is kept, with its
    `project`, and counts once they arrive. `key` tells apart several results of one name and
    source on one target (each feedback's own id); a result with the same key replaces it."""

    name: str
    source: EvaluationSource
    span_id: str | None = None
    trace_id: str | None = None
    score: float | None = None
    label: str | None = None
    explanation: str | None = None
    time_ns: int | None = None  # default: when it is written
    session_id: str | None = None
    project: str | None = None
    key: str = ""
    details: dict[str, object] = field(default_factory=dict)  # e.g. the turns a judgement points at


@dataclass(slots=True)
class EvaluationRecord:
    """A stored result. On a session, `trace_id` and `span_id` are empty; on a whole trace
    (feedback on a turn), `span_id` is."""

    trace_id: str
    span_id: str
    name: str
    source: str
    score: float | None
    label: str | None
    explanation: str | None
    time_ns: int
    key: str = ""
    session_id: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return evaluation_passed(self.score, self.label, self.source)


@dataclass(slots=True)
class EvaluationAggregate:
    count: int
    mean_score: float | None  # over the results that have a score; None when none has
    pass_rate: float  # passed / count

    @classmethod
    def of(cls, results: Sequence[EvaluationRecord]) -> EvaluationAggregate:
        scores = [result.score for result in results if result.score is not None]
        passed = sum(result.passed for result in results)
        return cls(len(results), sum(scores) / len(scores) if scores else None, passed / len(results))


@dataclass(slots=True)
class EvaluationRejection:
    index: int  # position in the request
    reason: str


@dataclass(slots=True)
class EvaluationInsertResult:
    accepted: int
    rejected: list[EvaluationRejection] = field(default_factory=list)


@dataclass(slots=True)
class EvaluationGroup:
    """One row of the evaluation summary: a session, user or project and one evaluation name."""

    group_by: GroupBy
    project: str
    key: str  # the session id, user id or project name (then the same as `project`)
    name: str
    aggregate: EvaluationAggregate
    worst: EvaluationRecord | None  # the lowest-scoring (or first failing) result
