"""log_evaluation(): a score or label on a span, sent with the span itself.

The result travels as a span event named ``evaluation`` with ``evaluation.name/score/label/
explanation`` attributes, inside the normal OTLP export: no second channel, no extra request,
and it works with any OpenTelemetry backend. The spanloom server turns such events into
evaluation results, aggregated by trace, session and user.
"""

from __future__ import annotations

import math
from typing import Any

from opentelemetry import trace as trace_api

from spanloom import semconv
from spanloom.sdk._guard import log_failure
from spanloom.sdk._text import clean_text
from spanloom.sdk._validate import reject

# The largest score magnitude spanloom's server aggregates (as it says in its store).
MAX_ABS_SCORE = 1_000_000.0


def log_evaluation(
    name: str,
    score: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    span: trace_api.Span | None = None,
) -> None:
    """Record an evaluation result on `span` (default: the current span).

    `name` says what was judged (``"helpfulness"``); give a `score` (a number), a `label`
    (``"pass"``, ``"hallucinated"``...) or both, and optionally an `explanation`. Bad input gives
    a warning and records nothing (an exception under SPANLOOM_STRICT=1).
    """
    if not isinstance(name, str) or not name.strip():
        reject(f"evaluation name must be a non-empty string, got {name!r:.80}", TypeError, stacklevel=3)
        return
    if score is None and label is None:
        reject(f"evaluation {name!r} needs a score or a label", ValueError, stacklevel=3)
        return
    attributes: dict[str, Any] = {semconv.EVALUATION_NAME: clean_text(name)}
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            reject(f"evaluation score must be a finite number, got {score!r:.80}", TypeError, stacklevel=3)
            return
        if abs(score) > MAX_ABS_SCORE:
            # The server's aggregates take no larger score (they add scores up in 64-bit sums).
            reject(
                f"evaluation score must be within ±{MAX_ABS_SCORE:,.0f}, got {score!r:.80}",
                ValueError,
                stacklevel=3,
            )
            return
        attributes[semconv.EVALUATION_SCORE] = float(score)
    if label is not None:
        if not isinstance(label, str):
            reject(f"evaluation label must be a string, got {type(label).__name__}", TypeError, stacklevel=3)
            return
        attributes[semconv.EVALUATION_LABEL] = clean_text(label)
    if explanation is not None:
        attributes[semconv.EVALUATION_EXPLANATION] = clean_text(str(explanation))
    try:
        target = span if span is not None else trace_api.get_current_span()
        target.add_event(semconv.EVALUATION_EVENT, attributes=attributes)
    except Exception:
        log_failure("log_evaluation")
