"""Built-in evaluators: judgements the server makes about a stored span without any network.

Each is a pure function of one `SpanRecord` and its options, returning a `Verdict` (a score
from 0 to 1, a label and an explanation) or None when it does not apply (no output to judge).
Scores are 1.0 for a pass and 0.0 for a failure, so every evaluator's mean score reads as its
pass rate.

Outputs are written by whoever can reach the ingest port, so judging must cost little whatever
they hold. The text evaluators search only the first MAX_JUDGED_CHARS characters of an output, with
patterns that run in linear time; every search runs in the `regex` engine with the GIL released
(``concurrent=True``), so requests are served while a long output is searched, and under a time
limit. A user's `regex` pattern that still runs out of time on an output gives no verdict for it
(logged), instead of holding the evaluator thread; `check_pattern_speed` refuses, at
``spanloom evaluators add``, patterns that already run out of time on simple probe texts.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import regex

from spanloom.sdk.mask import BUILTIN_PATTERNS
from spanloom.server.store.base import SpanRecord

logger = logging.getLogger(__name__)

PASS, FAIL = "pass", "fail"
# Text evaluators read at most this much of an output (a joined output can be megabytes long).
MAX_JUDGED_CHARS = 64 * 1024
# json_valid parses outputs up to this size and gives no verdict on longer ones.
MAX_JSON_CHARS = 1024 * 1024
# Time limits for one search: a user's pattern, and (a safety net: they are linear) the built-ins.
USER_PATTERN_TIMEOUT_SECONDS = 0.1
BUILTIN_PATTERN_TIMEOUT_SECONDS = 1.0
# `check_pattern_speed`: probe texts of this length, each searched within this time.
PROBE_CHARS = 8192
PROBE_TIMEOUT_SECONDS = 0.05


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


def _search(pattern: regex.Pattern[str], text: str, timeout: float) -> regex.Match[str] | None:
    """The first match in `text` (cut to MAX_JUDGED_CHARS), GIL released; TimeoutError past `timeout`."""
    return pattern.search(text[:MAX_JUDGED_CHARS], timeout=timeout, concurrent=True)


def _json_valid(span: SpanRecord, options: Mapping[str, Any]) -> Verdict | None:
    if span.output is None or len(span.output) > MAX_JSON_CHARS:
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
    try:
        found = _search(pattern, span.output, USER_PATTERN_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        _warn_slow(pattern.pattern)
        return None
    if found == must_match:
        return _verdict(True, f"the output {'matches' if found else 'does not match'} /{pattern.pattern}/")
    return _verdict(False, f"the output {'matches' if found else 'does not match'} /{pattern.pattern}/")


# Phrases a model uses when it declines; matched case-insensitively at word boundaries.
_REFUSALS = regex.compile(
    r"\b(?:I(?:'m| am) (?:sorry|afraid),? but I (?:can(?:no|')t|won't|am unable|'m unable)"
    r"|I (?:can(?:no|')t|won't|am unable to|'m unable to) (?:help|assist|comply|provide|do that|answer)"
    r"|I'?m not able to (?:help|assist|provide)"
    r"|as an AI(?: language model)?,? I (?:can(?:no|')t|don't|am not)"
    r"|I must (?:decline|refuse))",
    regex.IGNORECASE,
)


def _refusal(span: SpanRecord, options: Mapping[str, Any]) -> Verdict | None:
    if span.output is None:
        return None
    try:
        match = _search(_REFUSALS, span.output, BUILTIN_PATTERN_TIMEOUT_SECONDS)
    except TimeoutError:  # linear, so not expected: a safety net, like for the user's patterns
        return None
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


_PII = {kind: regex.compile(BUILTIN_PATTERNS[kind]) for kind in ("email", "phone", "card")}


def _contains_pii(span: SpanRecord, options: Mapping[str, Any]) -> Verdict | None:
    if span.output is None:
        return None
    try:
        found = [
            kind
            for kind, pattern in _PII.items()
            if _search(pattern, span.output, BUILTIN_PATTERN_TIMEOUT_SECONDS)
        ]
    except TimeoutError:  # linear, so not expected: a safety net, like for the user's patterns
        return None
    if found:
        # Name the kinds, never the values: the explanation is shown in the dashboard.
        return _verdict(False, f"the output contains: {', '.join(found)}")
    return _verdict(True, "no e-mail, phone or card number in the output")


def _compiled(pattern: object) -> regex.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise EvaluatorOptionError("regex needs a non-empty 'pattern'")
    return _compile(pattern)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern)
    except regex.error as error:
        raise EvaluatorOptionError(f"regex pattern {pattern!r} does not compile: {error}") from None


_warned_slow: set[str] = set()


def _warn_slow(pattern: str) -> None:
    if pattern not in _warned_slow and len(_warned_slow) < 1000:
        _warned_slow.add(pattern)
        logger.warning(
            "spanloom: regex evaluator pattern %r ran over %.0f ms on an output: no verdict for it",
            pattern,
            USER_PATTERN_TIMEOUT_SECONDS * 1000,
        )


_PROBE_CHARACTERS = "aA0 _-.@\n"


def check_pattern_speed(pattern: str) -> None:
    """Refuse a pattern that runs out of time on a simple long text: a run of one character (a
    letter, a digit, a space, one of the pattern's own characters...) and one character that ends
    it. That is what catastrophic backtracking looks like, exponential (``(a+)+$``, ``(a|aa)*$``)
    or quadratic (``\\w+@x`` on a long word then ``@``). Raises EvaluatorOptionError."""
    compiled = _compiled(pattern)
    own = list(dict.fromkeys(c for c in pattern if c.isprintable()))[:24]
    characters = list(dict.fromkeys([*_PROBE_CHARACTERS, *own]))
    ends = list(dict.fromkeys(["\x00", "!", *own]))
    for character in characters:
        for end in ends:
            text = character * PROBE_CHARS + end
            try:
                compiled.search(text, timeout=PROBE_TIMEOUT_SECONDS)
            except TimeoutError:
                shown = f"{character * 3!r}..."
                raise EvaluatorOptionError(
                    f"regex pattern {pattern!r} takes over {PROBE_TIMEOUT_SECONDS * 1000:.0f} ms on a "
                    f"{PROBE_CHARS:,}-character text like {shown}: it backtracks catastrophically "
                    "(look for a repeated group inside a repetition, such as (a+)+ or (a|aa)*)"
                ) from None


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
