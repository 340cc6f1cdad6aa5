"""What the LLM judge sends and what it accepts back: the rubric and a bounded transcript as chat
messages, and the model's JSON answer parsed into a `SessionVerdict`.

The transcript is cut to fit `max_chars`: each question and answer to MAX_SHOWN_TEXT characters,
then, when the session is still too long, its first turn and as many of its last turns as fit,
with a line saying how many turns were left out (the model is told, so it does not judge what it
cannot see).
"""

from __future__ import annotations

import math
import re
from typing import Any

from spanloom.server.evaluators.session_builtin import MAX_POINTED_TURNS, SessionVerdict
from spanloom.server.evaluators.transcript import Transcript, Turn
from spanloom.server.json_text import parse_json
from spanloom.server.store.evaluation_types import MAX_EVALUATION_NAME

DEFAULT_MAX_TRANSCRIPT_CHARS = 24_000
MAX_SHOWN_TEXT = 1500  # of each question and answer
MAX_ANSWER_CHARS = 64 * 1024  # a longer answer is not parsed
MAX_EXPLANATION = 2000

SYSTEM_PROMPT = """You judge a whole conversation between a user and an AI assistant, by the rubric \
below. Read every turn shown. Answer with one JSON object and nothing else:
{"score": a number from 0 to 1 (1 is best), "label": "pass" or "fail", \
"explanation": "one or two sentences saying why", "turns": [the numbers of the turns your judgement \
points at]}

Rubric:
"""
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def _shown(text: str) -> str:
    if len(text) <= MAX_SHOWN_TEXT:
        return text
    return f"{text[:MAX_SHOWN_TEXT]} [... {len(text) - MAX_SHOWN_TEXT} more characters cut]"


def _block(turn: Turn) -> str:
    lines = [f"--- Turn {turn.index + 1}{' (failed)' if turn.failed else ''} ---"]
    lines.append(f"User: {_shown(turn.question)}")
    lines.append(f"Assistant: {_shown(turn.answer)}")
    if turn.tools:
        tools = ", ".join(f"{tool.name}{' (failed)' if tool.failed else ''}" for tool in turn.tools[:20])
        more = f" and {len(turn.tools) - 20} more" if len(turn.tools) > 20 else ""
        lines.append(f"Tools called: {tools}{more}")
    for feedback in turn.feedback[:5]:
        lines.append(f"User feedback: {_feedback_text(feedback.negative, feedback.comment)}")
    return "\n".join(lines)


def _feedback_text(negative: bool, comment: str | None) -> str:
    kind = "negative" if negative else "positive"
    return f'{kind}, "{_shown(comment)}"' if comment else kind


def render_transcript(transcript: Transcript, max_chars: int = DEFAULT_MAX_TRANSCRIPT_CHARS) -> str:
    """The conversation as text of at most about `max_chars` characters."""
    header = [f"The conversation has {transcript.total_turns} turns."]
    for feedback in transcript.feedback[:5]:
        header.append(
            f"User feedback on the whole conversation: {_feedback_text(feedback.negative, feedback.comment)}"
        )
    blocks = [_block(turn) for turn in transcript.turns]
    budget = max_chars - sum(len(line) + 1 for line in header)
    first_kept = blocks[:1] if transcript.turns and transcript.turns[0].index == 0 else []
    budget -= sum(len(block) + 2 for block in first_kept)
    tail: list[str] = []
    for block in reversed(blocks[len(first_kept) :]):
        if budget - len(block) - 2 < 0 and tail:
            break
        tail.append(block)
        budget -= len(block) + 2
    tail.reverse()
    shown = len(first_kept) + len(tail)
    left_out = transcript.total_turns - shown
    parts = ["\n".join(header), *first_kept]
    if left_out > 0:
        parts.append(f"[... {left_out} turns left out to keep the transcript short ...]")
    parts.extend(tail)
    return "\n\n".join(parts)[: max_chars + MAX_SHOWN_TEXT]


def build_messages(rubric: str, transcript: Transcript, max_chars: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT + rubric},
        {"role": "user", "content": render_transcript(transcript, max_chars)},
    ]


class MalformedAnswerError(ValueError):
    """The model's answer is not the JSON object asked for."""


def answer_content(body: Any) -> str:
    """The first choice's message content of a /chat/completions response body."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedAnswerError("the response has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise MalformedAnswerError("the answer's content is not text")
    return content


def parse_verdict(content: str, total_turns: int) -> SessionVerdict:
    """The model's JSON object as a verdict; raises MalformedAnswerError saying what is wrong."""
    if len(content) > MAX_ANSWER_CHARS:
        raise MalformedAnswerError(f"the answer is over {MAX_ANSWER_CHARS} characters")
    text = _FENCE.sub("", content.strip())
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise MalformedAnswerError(f"the answer holds no JSON object: {content[:80]!r}")
    try:
        answer = parse_json(text[start : end + 1])
    except ValueError as error:
        raise MalformedAnswerError(f"the answer's JSON does not parse: {error}") from None
    if not isinstance(answer, dict):
        raise MalformedAnswerError("the answer is not a JSON object")
    score = answer.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
    ):
        raise MalformedAnswerError(f"score is not a number: {str(score)[:40]!r}")
    if score is not None and not 0 <= score <= 1:
        raise MalformedAnswerError(f"score {score} is not from 0 to 1")
    label = answer.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise MalformedAnswerError("label is not text")
    if score is None and label is None:
        raise MalformedAnswerError("the answer has neither a score nor a label")
    explanation = answer.get("explanation")
    if explanation is not None and not isinstance(explanation, str):
        explanation = str(explanation)
    turns = answer.get("turns")
    pointed = (
        sorted(
            {n - 1 for n in turns if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= total_turns}
        )
        if isinstance(turns, list)
        else []
    )
    return SessionVerdict(
        None if score is None else float(score),
        label.strip()[:MAX_EVALUATION_NAME] if label is not None else None,
        (explanation or "")[:MAX_EXPLANATION],
        tuple(pointed[:MAX_POINTED_TURNS]),
    )
