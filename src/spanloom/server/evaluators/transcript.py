"""A session as its evaluators read it: the turns in order, each with what the user asked, what they
got, whether it failed, the tools it called and the end user's feedback.

Sessions can be very long (a 20,000-turn agent loop) and each text up to 64 KiB, so a transcript
is bounded: it holds the last MAX_TURNS turns (read a page at a time from the end, the part that
says how the conversation ended), each text cut to MAX_TEXT_CHARS. `total_turns` is the whole
session's count, and `truncated` says when earlier turns were left out; turn indexes are always
positions in the whole session, so results point at the right turns either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spanloom.server.json_text import parse_json
from spanloom.server.store.base import SessionDetail, SpanRecord, Store, TraceSummary
from spanloom.server.store.cursor import last_turns_cursor
from spanloom.server.store.evaluation_types import FEEDBACK, EvaluationRecord

MAX_TURNS = 1000  # the last turns of a session its evaluators read
PAGE_TURNS = 100  # read at a time: a page of long texts stays a few megabytes at most
MAX_TEXT_CHARS = 2000  # of each question and answer
MAX_JSON_CHARS = 256 * 1024  # a longer input is not parsed for its messages: its text is cut
# Keys under which a JSON input or output holds the text itself (LangChain, agents, web handlers).
_TEXT_KEYS = ("input", "question", "query", "message", "prompt", "text", "content", "output", "answer")


@dataclass(frozen=True, slots=True)
class Feedback:
    """An end user's feedback on a turn or on the whole session."""

    score: float | None
    label: str | None
    comment: str | None
    negative: bool  # it did not pass: the rule of the lists' has_negative_feedback filter


@dataclass(frozen=True, slots=True)
class ToolUse:
    name: str
    failed: bool


@dataclass(frozen=True, slots=True)
class Turn:
    index: int  # its position in the whole session, from 0
    trace_id: str
    question: str  # what the user asked (the last user message of the input), cut
    answer: str  # what they got, cut
    failed: bool  # a span of the turn failed
    tools: tuple[ToolUse, ...]
    feedback: tuple[Feedback, ...]


@dataclass(frozen=True, slots=True)
class Transcript:
    project: str
    session_id: str
    user_id: str | None
    total_turns: int  # in the whole session; `turns` may hold only the last MAX_TURNS of them
    turns: tuple[Turn, ...]
    feedback: tuple[Feedback, ...]  # on the whole session

    @property
    def truncated(self) -> bool:
        return len(self.turns) < self.total_turns


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "…"


def _content(value: object) -> str | None:
    """The text of a message's content: a string, or a list of parts with text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [part.get("text") for part in value if isinstance(part, dict)]
        texts = [part for part in parts if isinstance(part, str)]
        return " ".join(texts) if texts else None
    return None


def _from_messages(messages: list[object], role: str) -> str | None:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == role:
            found = _content(message.get("content"))
            if found is not None:
                return found
    return None


def message_text(raw: str | None, role: str = "user") -> str:
    """The text a person wrote or read in a turn's input or output: the last message of `role`
    when it is a list of chat messages (or an object holding one under "messages"), the text
    under a common key when it is a JSON object, else the text itself; cut to MAX_TEXT_CHARS."""
    if not raw:
        return ""
    stripped = raw.strip()
    if stripped[:1] in ("{", "[") and len(stripped) <= MAX_JSON_CHARS:
        try:
            parsed = parse_json(stripped)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
            parsed = parsed["messages"]
        if isinstance(parsed, list):
            found = _from_messages(parsed, role)
            if found is not None:
                return _cut(found)
        elif isinstance(parsed, dict):
            for key in _TEXT_KEYS:
                found = _content(parsed.get(key))
                if found is not None:
                    return _cut(found)
    return _cut(raw)


def _feedback(results: Sequence[EvaluationRecord]) -> tuple[Feedback, ...]:
    return tuple(
        Feedback(result.score, result.label, result.explanation, not result.passed)
        for result in results
        if result.name == FEEDBACK and result.source == "feedback"
    )


def _tool(span: SpanRecord) -> ToolUse:
    name = span.attributes.get("tool.name")
    return ToolUse(str(name) if name else span.name, span.status_code == "ERROR")


def _turn(index: int, trace: TraceSummary, tools: Sequence[SpanRecord]) -> Turn:
    return Turn(
        index=index,
        trace_id=trace.trace_id,
        question=message_text(trace.input, "user"),
        answer=message_text(trace.output, "assistant"),
        failed=trace.error_count > 0,
        tools=tuple(_tool(span) for span in tools),
        feedback=_feedback(trace.evaluations),
    )


def _turns(detail: SessionDetail) -> list[Turn]:
    return [
        _turn(detail.first_turn_index + offset, trace, detail.tool_calls.get(trace.trace_id, ()))
        for offset, trace in enumerate(detail.turns)
    ]


def read_transcript(
    store: Store, project: str, session_id: str, max_turns: int = MAX_TURNS, page_turns: int = PAGE_TURNS
) -> Transcript | None:
    """The session's last `max_turns` turns, or None when it is not stored (any more)."""
    last = store.get_session(project, session_id, min(page_turns, max_turns), last_turns_cursor())
    if last is None:
        return None
    pages = [_turns(last)]
    read = len(last.turns)
    cursor = last.previous_cursor
    while cursor is not None and read < max_turns:
        detail = store.get_session(project, session_id, min(page_turns, max_turns - read), cursor)
        if detail is None or not detail.turns:
            break
        pages.append(_turns(detail))
        read += len(detail.turns)
        cursor = detail.previous_cursor
    turns = tuple(turn for page in reversed(pages) for turn in page)
    summary = last.summary
    return Transcript(
        project=project,
        session_id=session_id,
        user_id=summary.user_id,
        total_turns=max(summary.trace_count, len(turns)),
        turns=turns,
        feedback=_feedback(last.results),
    )
