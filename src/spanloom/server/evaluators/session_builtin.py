"""Built-in session evaluators: judgements of a whole conversation, made without any network.

Each is a pure function of a `Transcript` (the session's turns in order, bounded: see
transcript.py) and its options, returning a `SessionVerdict`: a score of 1.0 for a pass and 0.0
for a failure (so the mean score reads as the pass rate, as for the span built-ins), a label
("pass"/"fail"), an explanation, and the turns it points at (positions in the whole session, from
0) for the session page.

Questions are compared as normalized text (case, accents' compatibility forms, punctuation and
spacing folded) with the standard library's difflib ratio: no dependency, and the texts are cut
short enough (MAX_COMPARED_CHARS) and the comparisons few enough (each question against the
`window` before it, after difflib's cheap upper bounds) that a long session costs milliseconds.
"""

from __future__ import annotations

import difflib
import functools
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex

from spanloom.server.evaluators.builtin import PASS, EvaluatorOptionError
from spanloom.server.evaluators.transcript import Transcript, Turn

MAX_COMPARED_CHARS = 500  # of each normalized question
MAX_POINTED_TURNS = 50  # turn indexes a result carries at most
MAX_PHRASES = 200
MAX_PHRASE_CHARS = 200
PHRASE_TIMEOUT_SECONDS = 1.0  # a literal alternation is linear: a safety net
DEFAULT_THRESHOLD = 0.9  # 0.85 took 'cancel my subscription' for 'renew my subscription'
DEFAULT_WINDOW = 20
DEFAULT_MIN_WORDS = 3
DEFAULT_STREAK = 3
DEFAULT_MAX_TURNS = 20
# What people write when a conversation goes badly; matched case-insensitively as whole words.
DEFAULT_PHRASES = (
    "not helpful",
    "useless",
    "that's wrong",
    "that is wrong",
    "that's not what i asked",
    "not what i asked",
    "you're not listening",
    "you are not listening",
    "i already told you",
    "i already said",
    "i just said",
    "for the last time",
    "still not working",
    "still doesn't work",
    "still does not work",
    "doesn't work",
    "does not work",
    "makes no sense",
    "waste of time",
    "ridiculous",
    "frustrating",
    "talk to a human",
    "speak to a human",
    "real person",
    "human agent",
    "give up",
    "wtf",
)


@dataclass(frozen=True, slots=True)
class SessionVerdict:
    score: float | None
    label: str | None
    explanation: str
    turns: tuple[int, ...] = field(default=())


def _verdict(passed: bool, explanation: str, turns: Sequence[int] = ()) -> SessionVerdict:
    pointed = tuple(sorted(set(turns)))[:MAX_POINTED_TURNS]
    return SessionVerdict(1.0 if passed else 0.0, PASS if passed else "fail", explanation[:1000], pointed)


def _scope_note(transcript: Transcript) -> str:
    if transcript.truncated:
        return f" (read the last {len(transcript.turns)} of {transcript.total_turns} turns)"
    return ""


# --- normalized questions ---
_NOT_WORD = regex.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Lower case, compatibility forms, letters and digits only, single spaces."""
    folded = unicodedata.normalize("NFKC", text[: MAX_COMPARED_CHARS * 2]).casefold()
    return _NOT_WORD.sub(" ", folded).strip()[:MAX_COMPARED_CHARS]


@dataclass(frozen=True, slots=True)
class Repeat:
    earlier: int  # turn indexes
    later: int
    similarity: float


def find_repeats(turns: Sequence[Turn], threshold: float, window: int, min_words: int) -> list[Repeat]:
    """Each question that repeats one asked in the `window` turns before it (similarity at least
    `threshold`), with the most similar earlier one; questions under `min_words` words ("ok",
    "thanks") are never compared."""
    # resolved and repeated_question both ask this of the same transcript: computed once.
    return list(_find_repeats(tuple(turns), threshold, window, min_words))


@functools.lru_cache(maxsize=16)
def _find_repeats(
    turns: tuple[Turn, ...], threshold: float, window: int, min_words: int
) -> tuple[Repeat, ...]:
    asked: list[tuple[int, str]] = []
    repeats = []
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    for turn in turns:
        text = normalize(turn.question)
        if len(text.split()) < min_words:
            continue
        # difflib indexes its second text: set once, compared with each earlier question.
        matcher.set_seq2(text)
        best: Repeat | None = None
        for index, earlier in reversed(asked[-window:]):
            if index < turn.index - window:
                break
            if earlier == text:
                ratio = 1.0
            else:
                matcher.set_seq1(earlier)
                # Upper bounds first: most pairs are far apart and cost no full comparison.
                if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                    continue
                ratio = matcher.ratio()
            if ratio >= threshold and (best is None or ratio > best.similarity):
                best = Repeat(index, turn.index, ratio)
        if best is not None:
            repeats.append(best)
        asked.append((turn.index, text))
    return tuple(repeats)


def _number(index: int) -> int:
    """Turns are shown numbered from 1."""
    return index + 1


# --- the evaluators ---
def _repeated_question(transcript: Transcript, options: Mapping[str, Any]) -> SessionVerdict:
    repeats = find_repeats(
        transcript.turns,
        float(options.get("threshold", DEFAULT_THRESHOLD)),
        int(options.get("window", DEFAULT_WINDOW)),
        int(options.get("min_words", DEFAULT_MIN_WORDS)),
    )
    if not repeats:
        return _verdict(True, "no question was asked again" + _scope_note(transcript))
    shown = "; ".join(
        f"turn {_number(r.later)} repeats turn {_number(r.earlier)} ({r.similarity:.0%} similar)"
        for r in repeats[:5]
    )
    more = f" and {len(repeats) - 5} more" if len(repeats) > 5 else ""
    turns = [index for r in repeats for index in (r.earlier, r.later)]
    return _verdict(False, f"{shown}{more}{_scope_note(transcript)}", turns)


def _resolved(transcript: Transcript, options: Mapping[str, Any]) -> SessionVerdict:
    if not transcript.turns:
        return _verdict(False, "the session has no turns")
    last = transcript.turns[-1]
    where = f"turn {_number(last.index)}"
    if last.failed:
        return _verdict(False, f"the last turn ({where}) failed", [last.index])
    if any(feedback.negative for feedback in last.feedback):
        return _verdict(False, f"negative feedback on the last turn ({where})", [last.index])
    if any(feedback.negative for feedback in transcript.feedback):
        return _verdict(False, "negative feedback on the session")
    repeats = [
        repeat
        for repeat in find_repeats(
            transcript.turns,
            float(options.get("threshold", DEFAULT_THRESHOLD)),
            int(options.get("window", DEFAULT_WINDOW)),
            int(options.get("min_words", DEFAULT_MIN_WORDS)),
        )
        if repeat.later == last.index
    ]
    if repeats:
        earlier = repeats[0].earlier
        return _verdict(
            False,
            f"the user came back with the same question: {where} repeats turn {_number(earlier)}",
            [earlier, last.index],
        )
    return _verdict(True, f"the last turn ({where}) succeeded and its question is new")


@functools.lru_cache(maxsize=64)
def _phrase_pattern(phrases: tuple[str, ...]) -> regex.Pattern[str]:
    # Literal phrases, longest first, between word boundaries: linear whatever the text.
    escaped = "|".join(regex.escape(phrase) for phrase in sorted(phrases, key=len, reverse=True))
    return regex.compile(rf"(?<!\w)(?:{escaped})(?!\w)", regex.IGNORECASE)


def _phrases(options: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(options.get("phrases") or DEFAULT_PHRASES)


def _frustration(transcript: Transcript, options: Mapping[str, Any]) -> SessionVerdict:
    pattern = _phrase_pattern(_phrases(options))
    signs: list[str] = []
    turns: list[int] = []
    for turn in transcript.turns:
        if any(feedback.negative for feedback in turn.feedback):
            signs.append(f"negative feedback on turn {_number(turn.index)}")
            turns.append(turn.index)
        try:
            match = pattern.search(turn.question, timeout=PHRASE_TIMEOUT_SECONDS, concurrent=True)
        except TimeoutError:
            match = None
        if match:
            signs.append(f"turn {_number(turn.index)} says {match.group(0).lower()!r}")
            turns.append(turn.index)
    if any(feedback.negative for feedback in transcript.feedback):
        signs.insert(0, "negative feedback on the session")
    if not signs:
        return _verdict(True, "no negative feedback and no frustration phrase" + _scope_note(transcript))
    more = f" and {len(signs) - 5} more" if len(signs) > 5 else ""
    return _verdict(False, "; ".join(signs[:5]) + more + _scope_note(transcript), turns)


def _error_streak(transcript: Transcript, options: Mapping[str, Any]) -> SessionVerdict:
    needed = int(options.get("n", DEFAULT_STREAK))
    start = length = 0  # the current run of failing turns
    best_start = best_length = 0
    for turn in transcript.turns:
        start, length = (start if length else turn.index, length + 1) if turn.failed else (0, 0)
        if length > best_length:
            best_start, best_length = start, length
    longest = list(range(best_start, best_start + best_length))
    if len(longest) >= needed:
        span = f"turns {_number(longest[0])}-{_number(longest[-1])}"
        return _verdict(
            False,
            f"{span} failed in a row ({len(longest)}, limit {needed}){_scope_note(transcript)}",
            longest,
        )
    return _verdict(
        True, f"at most {len(longest)} failing turns in a row (limit {needed}){_scope_note(transcript)}"
    )


def _turns_over(transcript: Transcript, options: Mapping[str, Any]) -> SessionVerdict:
    limit = int(options.get("n", DEFAULT_MAX_TURNS))
    total = transcript.total_turns
    if total > limit:
        # The first turn past the limit, when the transcript holds it.
        pointed = [turn.index for turn in transcript.turns if turn.index == limit]
        return _verdict(False, f"{total} turns, over {limit}", pointed)
    return _verdict(True, f"{total} turns, within {limit}")


# --- options ---
def _positive_int(options: Mapping[str, Any], key: str, kind: str) -> None:
    value = options.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise EvaluatorOptionError(f"{kind} '{key}' must be a whole number >= 1")


def _check_similarity(kind: str) -> Callable[[Mapping[str, Any]], None]:
    def check(options: Mapping[str, Any]) -> None:
        threshold = options.get("threshold")
        if threshold is not None and (
            not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 < threshold <= 1
        ):
            raise EvaluatorOptionError(f"{kind} 'threshold' is a similarity above 0 and at most 1")
        _positive_int(options, "window", kind)
        _positive_int(options, "min_words", kind)

    return check


def _check_phrases(options: Mapping[str, Any]) -> None:
    phrases = options.get("phrases")
    if phrases is None:
        return
    if (
        not isinstance(phrases, list)
        or not phrases
        or len(phrases) > MAX_PHRASES
        or not all(isinstance(p, str) and p.strip() and len(p) <= MAX_PHRASE_CHARS for p in phrases)
    ):
        raise EvaluatorOptionError(
            f"frustration 'phrases' is a JSON list of 1 to {MAX_PHRASES} non-empty strings of at most "
            f'{MAX_PHRASE_CHARS} characters, e.g. phrases=\'["not helpful", "talk to a human"]\''
        )


def _check_n(kind: str) -> Callable[[Mapping[str, Any]], None]:
    def check(options: Mapping[str, Any]) -> None:
        _positive_int(options, "n", kind)

    return check


@dataclass(frozen=True, slots=True)
class SessionBuiltin:
    kind: str
    description: str
    judge: Callable[[Transcript, Mapping[str, Any]], SessionVerdict]
    check: Callable[[Mapping[str, Any]], None]
    options: tuple[str, ...] = ()


SESSION_BUILTINS: dict[str, SessionBuiltin] = {
    evaluator.kind: evaluator
    for evaluator in (
        SessionBuiltin(
            "resolved",
            "fails sessions whose last turn failed, got negative feedback, or repeats an earlier question",
            _resolved,
            _check_similarity("resolved"),
            ("threshold", "window", "min_words"),
        ),
        SessionBuiltin(
            "repeated_question",
            "fails sessions where the user asked the same thing again (similarity >= threshold)",
            _repeated_question,
            _check_similarity("repeated_question"),
            ("threshold", "window", "min_words"),
        ),
        SessionBuiltin(
            "frustration",
            "fails sessions with negative feedback or a frustration phrase in a user turn",
            _frustration,
            _check_phrases,
            ("phrases",),
        ),
        SessionBuiltin(
            "error_streak",
            "fails sessions with n failing turns in a row (default 3)",
            _error_streak,
            _check_n("error_streak"),
            ("n",),
        ),
        SessionBuiltin(
            "turns_over",
            "fails sessions longer than n turns (default 20)",
            _turns_over,
            _check_n("turns_over"),
            ("n",),
        ),
    )
}
