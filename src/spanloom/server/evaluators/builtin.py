"""Built-in evaluators: judgements the server makes about a stored span without any network.

Each is a pure function of one `SpanRecord` and its options, returning a `Verdict` (a score
from 0 to 1, a label and an explanation) or None when it does not apply (no output to judge).
Scores are 1.0 for a pass and 0.0 for a failure, so every evaluator's mean score reads as its
pass rate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spanloom.sdk.mask import BUILTIN_PATTERNS
from spanloom.server.store.base import SpanRecord

PASS, FAIL = "pass", "fail"


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    label: str
    explanation: str


def _verdict(passed: bool, explanation: str) -> Verdict:
    return Verdict(1.0 if passed else 0.0, PASS if passed else FAIL, explanation)


class EvaluatorOptionError(ValueError):
    """An evaluator was configured with options it cannot use."""


def _error(span: SpanRecord, options: Mapping[str, Any]) -> Verdict:
    if span.status_code == "ERROR":
        return _verdict(False, f"the span failed: {span.status_message or 'status ERROR'}"[:500])
    return _verdict(True, "the span succeeded")


def _latency(span: SpanRecord, options: Mapping[str, Any]) -> Verdict:
    threshold = float(options["threshold_ms"])
    took = span.duration_ms
    if took <= threshold:
        return _verdict(True, f"{took:.0f} ms, within {threshold:.0f} ms")
    return _verdict(False, f"{took:.0f} ms, over {threshold:.0f} ms")


def _json_valid(span: SpanRecord, options: Mapping[str, Any]) -> Verdict | None:
    if span.output is None:
        return None
    try:
        json.loads(span.output)
    except ValueError as error:
        return _verdict(False, f"the output is not JSON: {error}"[:500])
    return _verdict(True, "the output parses as JSON")


def _regex(span: SpanRecord, options: Mapping[str, Any]) -> Verdict | None:
    if span.output is None:
        return None
    pattern = _compiled(options["pattern"])
    must_match = options.get("mode", "match") == "match"
    found = pattern.search(span.output) is not None
    if found == must_match:
        return _verdict(True, f"the output {'matches' if found else 'does not match'} /{pattern.pattern}/")
    return _verdict(False, f"the output {'matches' if found else 'does not match'} /{pattern.pattern}/")


# Phrases a model uses when it declines; matched case-insensitively at word boundaries.
_REFUSALS = re.compile(
    r"\b(?:I(?:'m| am) (?:sorry|afraid),? but I (?:can(?:no|')t|won't|am unable|'m unable)"
    r"|I (?:can(?:no|')t|won't|am unable to|'m unable to) (?:help|assist|comply|provide|do that|answer)"
    r"|I'?m not able to (?:help|assist|provide)"
    r"|as an AI(?: language model)?,? I (?:can(?:no|')t|don't|am not)"
    r"|I must (?:decline|refuse))",
    re.IGNORECASE,
)


def _refusal(span: SpanRecord, options: Mapping[str, Any]) -> Verdict | None:
    if span.output is None:
        return None
    match = _REFUSALS.search(span.output)
    if match:
        return _verdict(False, f"the answer declines: {match.group(0)!r}")
    return _verdict(True, "the answer does not decline")


def _length(span: SpanRecord, options: Mapping[str, Any]) -> Verdict | None:
    if span.output is None:
        return None
    length = len(span.output)
    low = int(options.get("min_chars", 0))
    high = options.get("max_chars")
    if length < low:
        return _verdict(False, f"{length} characters, under {low}")
    if high is not None and length > int(high):
        return _verdict(False, f"{length} characters, over {int(high)}")
    return _verdict(True, f"{length} characters")


_PII = {kind: re.compile(BUILTIN_PATTERNS[kind]) for kind in ("email", "phone", "card")}


def _contains_pii(span: SpanRecord, options: Mapping[str, Any]) -> Verdict | None:
    if span.output is None:
        return None
    found = [kind for kind, pattern in _PII.items() if pattern.search(span.output)]
    if found:
        # Name the kinds, never the values: the explanation is shown in the dashboard.
        return _verdict(False, f"the output contains: {', '.join(found)}")
    return _verdict(True, "no e-mail, phone or card number in the output")


def _compiled(pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise EvaluatorOptionError("regex needs a non-empty 'pattern'")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise EvaluatorOptionError(f"regex pattern {pattern!r} does not compile: {error}") from None


def _check_latency(options: Mapping[str, Any]) -> None:
    threshold = options.get("threshold_ms")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or threshold <= 0:
        raise EvaluatorOptionError("latency needs a positive 'threshold_ms'")


def _check_regex(options: Mapping[str, Any]) -> None:
    _compiled(options.get("pattern"))
    if options.get("mode", "match") not in ("match", "not_match"):
        raise EvaluatorOptionError("regex 'mode' is 'match' or 'not_match'")


def _check_length(options: Mapping[str, Any]) -> None:
    for key in ("min_chars", "max_chars"):
        value = options.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise EvaluatorOptionError(f"length '{key}' must be a whole number >= 0")
    if options.get("min_chars") is None and options.get("max_chars") is None:
        raise EvaluatorOptionError("length needs 'min_chars' and/or 'max_chars'")


def _no_options(options: Mapping[str, Any]) -> None:
    pass


@dataclass(frozen=True, slots=True)
class BuiltinEvaluator:
    kind: str
    description: str
    judge: Callable[[SpanRecord, Mapping[str, Any]], Verdict | None]
    check: Callable[[Mapping[str, Any]], None]
    options: tuple[str, ...] = ()


BUILTIN_EVALUATORS: dict[str, BuiltinEvaluator] = {
    evaluator.kind: evaluator
    for evaluator in (
        BuiltinEvaluator("error", "fails spans whose status is ERROR", _error, _no_options),
        BuiltinEvaluator(
            "latency", "fails spans slower than threshold_ms", _latency, _check_latency, ("threshold_ms",)
        ),
        BuiltinEvaluator("json_valid", "fails outputs that do not parse as JSON", _json_valid, _no_options),
        BuiltinEvaluator(
            "regex",
            "fails outputs that do not match pattern (mode=match) or that match it (mode=not_match)",
            _regex,
            _check_regex,
            ("pattern", "mode"),
        ),
        BuiltinEvaluator("refusal", "fails answers that decline to help", _refusal, _no_options),
        BuiltinEvaluator(
            "length",
            "fails outputs outside min_chars..max_chars",
            _length,
            _check_length,
            ("min_chars", "max_chars"),
        ),
        BuiltinEvaluator(
            "contains_pii",
            "fails outputs that leak an e-mail, phone or card number",
            _contains_pii,
            _no_options,
        ),
    )
}
