"""Evaluation results on the pages: Jinja filters for scores, badges and the per-name columns.

Class names come from fixed sets here; names, labels and explanations are span data and reach
the page only as escaped text (including `title` attributes, which autoescape quotes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spanloom.server.store.base import ListQuery
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX, FEEDBACK, EvaluationAggregate

BAR_WIDTH = 100  # viewBox units of a full score bar on the comparison page


def score(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}"


def eval_names(items: Iterable[Any], query: ListQuery | None = None) -> list[str]:
    """The evaluation names present on a page's rows (sessions or users), plus the one it is
    sorted by, in name order: one column each. Feedback has a column of its own (thumbs)."""
    names = {name for item in items for name in item.evaluations}
    sort = query.sort if query is not None else None
    if sort and sort.startswith(EVAL_SORT_PREFIX):
        names.add(sort[len(EVAL_SORT_PREFIX) :])
    names.discard(FEEDBACK)
    return sorted(names)


def eval_sort(name: str) -> str:
    return EVAL_SORT_PREFIX + name


def aggregate_class(aggregate: EvaluationAggregate | None) -> str:
    """ok when at least half the results passed, bad otherwise."""
    if aggregate is None:
        return ""
    return "ok" if aggregate.pass_rate >= 0.5 else "bad"


def result_class(passed: bool) -> str:
    return "ok" if passed else "bad"


def bar_width(value: float | None) -> float:
    """A mean score as a bar length, clamped to 0..1 of the bar."""
    if value is None:
        return 0.0
    return round(max(0.0, min(1.0, value)) * BAR_WIDTH, 2)


EVALUATION_FILTERS = {
    "score": score,
    "eval_names": eval_names,
    "eval_sort": eval_sort,
    "aggregate_class": aggregate_class,
    "result_class": result_class,
    "bar_width": bar_width,
}
