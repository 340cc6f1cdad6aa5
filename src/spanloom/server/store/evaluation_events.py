"""Evaluation results carried inside spans: the ``evaluation`` events `spanloom.log_evaluation` adds.

A pure function over a `SpanRecord`, shared by every store: results from events are written in
the same transaction as their spans, so a span and its judgements become visible together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from spanloom import semconv
from spanloom.server.store.base import SpanRecord
from spanloom.server.store.evaluation_types import MAX_ABS_SCORE, MAX_EVALUATION_NAME, EvaluationInput

MAX_LABEL = 200
MAX_EXPLANATION = 10_000


def clean_score(value: object) -> float | None:
    """A finite float within ±MAX_ABS_SCORE, or None for anything else (booleans are not scores)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    score = float(value)
    return score if math.isfinite(score) and abs(score) <= MAX_ABS_SCORE else None


def evaluations_of_spans(spans: Iterable[SpanRecord]) -> list[EvaluationInput]:
    """Every well-formed ``evaluation`` event of these spans, as source ``sdk`` results. An event
    without a name, or with neither a score nor a label, is not a result and is skipped (the span
    keeps it as an ordinary event)."""
    results = []
    for span in spans:
        if not span.events:
            continue
        for event in span.events:
            if event.get("name") != semconv.EVALUATION_EVENT:
                continue
            attributes = event.get("attributes") or {}
            name = attributes.get(semconv.EVALUATION_NAME)
            if not isinstance(name, str) or not name.strip():
                continue
            score = clean_score(attributes.get(semconv.EVALUATION_SCORE))
            label = attributes.get(semconv.EVALUATION_LABEL)
            label = label[:MAX_LABEL] if isinstance(label, str) and label.strip() else None
            if score is None and label is None:
                continue
            explanation = attributes.get(semconv.EVALUATION_EXPLANATION)
            results.append(
                EvaluationInput(
                    name=name.strip()[:MAX_EVALUATION_NAME],
                    source="sdk",
                    span_id=span.span_id,
                    trace_id=span.trace_id,
                    score=score,
                    label=label,
                    explanation=explanation[:MAX_EXPLANATION] if isinstance(explanation, str) else None,
                    time_ns=event.get("time_ns") or span.end_time_ns,
                )
            )
    return results
