"""End users' feedback on the pages: thumbs on turns and sessions, the thumbs-up rate in lists.

Feedback is stored as evaluation results named FEEDBACK (source "feedback"); the pages show it
apart from the judges' results, as a thumb with the user's comment. A comment is end-user text
and reaches the page only as escaped text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spanloom.server.store.evaluation_types import FEEDBACK, EvaluationAggregate, EvaluationRecord


def is_feedback(record: EvaluationRecord) -> bool:
    return record.name == FEEDBACK and record.source == "feedback"


def feedback_of(records: Iterable[EvaluationRecord]) -> list[EvaluationRecord]:
    return [record for record in records if is_feedback(record)]


def judgements(records: Iterable[EvaluationRecord]) -> list[EvaluationRecord]:
    """The results other than end users' feedback: evaluators, the SDK and the API."""
    return [record for record in records if not is_feedback(record)]


def thumb(record: EvaluationRecord) -> str:
    """ "up" for feedback that passed (a score of at least 0.5, or a passing label), else "down"."""
    return "up" if record.passed else "down"


@dataclass(frozen=True)
class Tally:
    ups: int
    downs: int

    @property
    def count(self) -> int:
        return self.ups + self.downs


def feedback_tally(aggregate: EvaluationAggregate | None) -> Tally | None:
    """Thumbs up and down from a row's feedback aggregate; None when it has no feedback."""
    if aggregate is None or not aggregate.count:
        return None
    ups = round(aggregate.count * aggregate.pass_rate)
    return Tally(ups, aggregate.count - ups)


FEEDBACK_FILTERS = {
    "feedback_of": feedback_of,
    "judgements": judgements,
    "thumb": thumb,
    "feedback_tally": feedback_tally,
}
