"""The demo's conversations: `build_conversations` makes a believable day of data, deterministic
for a seed (the same ids, texts, timings and verdicts): conversations spread over the last 24
hours, questions and answers from a small corpus per topic (corpus.py), model calls of hundreds of
milliseconds to seconds and tool and retrieval calls of tens, one long conversation (a trip
planned over 30-odd turns), and a few users whose experience is clearly worse (slower answers,
failing tools, thumbs down, failing evaluations). Errors fit their durations: a tool that timed
out after 10 s took 10 s.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from spanloom.demo.corpus import (
    FALLBACK_ANSWERS,
    FOLLOW_UPS,
    FRUSTRATED,
    NEGATIVE_COMMENTS,
    OPENINGS,
    POSITIVE_COMMENTS,
    RETRIEVAL_TOPICS,
    TOOLS,
    TRIP_CITIES,
    TRIP_TEMPLATES,
)

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet-20241022", "gpt-4.1-mini")
TOPICS = tuple(sorted(OPENINGS))
USER_NAMES = ("ana.silva", "ben.okafor", "chloe.martin", "dmitri.ivanov", "emma.schulz", "farid.haddad",
              "grace.lee", "hugo.moreau", "ines.costa", "jon.berg")  # fmt: skip
SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly, cite the tool results you used, and be concise."
DAY_MS = 24 * 3_600_000
TOOL_TIMEOUT_S = 10
EVALUATION = "answer_quality"
CONTEXT_TURNS = 8
JUDGE_DELAY_NS = 4_000_000_000
JUDGE_MODEL = "gpt-4o-mini"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`])")


@dataclass
class Turn:
    question: str
    answer: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    tool: str | None = None  # name of the tool the agent calls first, if any
    tool_fails: bool = False  # the tool fails (see `tool_error`): the turn's trace has an error
    latency_ms: int = 800  # the model call
    feedback: tuple[int, str | None] | None = None  # the end user's thumb (1 or -1) and comment
    offset_ms: int = 0  # when the turn starts, after its conversation's start
    tool_ms: int = 0  # the tool call's duration
    tool_error: str | None = None  # what the failing tool raised
    retrieval_ms: int = 0  # the knowledge-base lookup, 0 for none
    verdict: tuple[float, str, str] | None = None  # the LLM judge's score, label and explanation

    @property
    def duration_ms(self) -> int:
        """The whole turn: retrieval, tool, then the model unless the tool failed."""
        model = 0 if self.tool_fails else self.latency_ms
        return self.retrieval_ms + self.tool_ms + model + 40


@dataclass
class Conversation:
    session_id: str
    user_id: str
    topic: str
    turns: list[Turn] = field(default_factory=list)
    ended: bool = False  # the app calls end_session() after the last turn
    start_ago_ms: int = 0  # how long before "now" the conversation started

    @property
    def metadata(self) -> dict[str, Any]:
        return {"topic": self.topic, "app_version": "1.4.2"}

    @property
    def tags(self) -> list[str]:
        return [self.topic, "demo"]

    @property
    def span_ms(self) -> int:
        last = self.turns[-1]
        return last.offset_ms + last.duration_ms


def _sentences(rng: random.Random, text: str, bounds: tuple[int, int]) -> str:
    """The answer's first sentences, as many as drawn from `bounds` (all of them by default)."""
    parts = _SENTENCE_END.split(text)
    return " ".join(parts[: max(1, rng.randint(*bounds))])


def _user_ids(users: int) -> list[str]:
    return [
        USER_NAMES[index % len(USER_NAMES)]
        + (f"{index // len(USER_NAMES) + 1}" if index >= len(USER_NAMES) else "")
        for index in range(users)
    ]


def build_conversations(
    sessions: int = 12, users: int = 5, seed: int = 7, answer_sentences: tuple[int, int] = (3, 40)
) -> list[Conversation]:
    """`sessions` conversations among `users` users over the last day (see the module's text).

    Guaranteed, whatever the seed: a failing tool call (a timeout after 10 s, with a thumbs-down)
    in the middle conversation, and a frustrated user in the one a third in; with 6 sessions or
    more, a conversation of 30-odd turns; with 3 users or more, one user in five (at least one)
    struggles. `answer_sentences` bounds the number of sentences kept of each answer (the
    benchmarks ask for short texts).
    """
    rng = random.Random(seed)
    user_ids = _user_ids(users)
    struggling = set(rng.sample(user_ids, max(1, users // 5))) if users >= 3 else set()
    long_index = sessions - 2 if sessions >= 6 else None
    conversations = []
    for index in range(sessions):
        topic = "travel" if index == long_index else rng.choice(TOPICS)
        user_id = rng.choice(user_ids)
        if index == long_index and user_id in struggling:
            # The long conversation reads as a good one: a struggling user's would be all errors.
            user_id = rng.choice([user for user in user_ids if user not in struggling])
        conversation = Conversation(f"session-{seed}-{index:05d}", user_id, topic)
        pairs = _trip(rng) if index == long_index else _exchange(rng, topic)
        for question, answer in pairs:
            conversation.turns.append(
                _turn(rng, topic, question, answer, user_id in struggling, answer_sentences)
            )
        conversation.ended = rng.random() < 0.7
        conversations.append(conversation)
    _frustrate(conversations[len(conversations) // 3], rng)
    # One failure everyone sees, whoever struggles: the conversation's first tool times out.
    middle = conversations[len(conversations) // 2]
    failing = middle.turns[-1]
    _fail_tool(failing, TOOLS[middle.topic][0], timeout=True)
    failing.feedback = (-1, "It never answered.")
    for conversation in conversations:
        _schedule(rng, conversation)
    return conversations


def _exchange(rng: random.Random, topic: str) -> list[tuple[str, str]]:
    """An opening question and 0 to 5 follow-ups, none asked twice."""
    follow_ups = rng.sample(FOLLOW_UPS[topic], rng.randint(0, min(5, len(FOLLOW_UPS[topic]))))
    return [rng.choice(OPENINGS[topic]), *follow_ups]


def _trip(rng: random.Random) -> list[tuple[str, str]]:
    """The long conversation: four questions a city, none repeated (31 turns)."""
    pairs = []
    previous = None
    for city, sight, dish, area, nights in TRIP_CITIES:
        values = {"city": city, "sight": sight, "dish": dish, "area": area, "nights": nights}
        values.update(previous=previous, hours=rng.choice(("2", "2½", "3", "4")))
        for question, answer in TRIP_TEMPLATES:
            if "{previous}" in question and previous is None:
                continue
            pairs.append((question.format(**values), answer.format(**values)))
        previous = city
    return pairs


def _turn(
    rng: random.Random, topic: str, question: str, answer: str, struggling: bool, sentences: tuple[int, int]
) -> Turn:
    answer = _sentences(rng, answer, sentences)
    model = rng.choice(MODELS)
    # A model call: about 0.6 s to 6 s, longer for longer answers; three times as slow for a
    # struggling user (an overloaded region, the biggest model, long contexts).
    latency = int(rng.lognormvariate(7.0, 0.45) + len(answer) * 4)
    turn = Turn(
        question=question,
        answer=answer,
        model=model,
        prompt_tokens=rng.randint(250, 3500),
        completion_tokens=max(20, len(answer) // 4),
        latency_ms=latency * (3 if struggling else 1),
        feedback=_thumb(rng, struggling),
        retrieval_ms=rng.randint(12, 80) if topic in RETRIEVAL_TOPICS else 0,
    )
    if rng.random() < 0.45:
        turn.tool, turn.tool_ms = rng.choice(TOOLS[topic]), rng.randint(25, 350)
    turn.verdict = _verdict(rng, turn, struggling)
    if struggling and rng.random() < 0.25:
        # After the verdict: a failed turn's verdict says why it failed.
        _fail_tool(turn, turn.tool or rng.choice(TOOLS[topic]), timeout=rng.random() < 0.5)
    return turn


def _fail_tool(turn: Turn, tool: str, *, timeout: bool) -> None:
    """The tool fails, in a way its duration agrees with: a timeout lasts the timeout; a refusal
    from the service behind it comes back fast."""
    turn.tool, turn.tool_fails = tool, True
    if timeout:
        turn.tool_ms = TOOL_TIMEOUT_S * 1000 + 3
        turn.tool_error = f"{tool} timed out after {TOOL_TIMEOUT_S} s"
    else:
        turn.tool_ms = 90
        turn.tool_error = f"{tool}: the service answered 503 Service Unavailable"
    turn.answer = FALLBACK_ANSWERS[tool]
    turn.completion_tokens = 0
    turn.verdict = (0.0, "fail", f"The assistant could not answer: {turn.tool_error}.")


def _verdict(rng: random.Random, turn: Turn, struggling: bool) -> tuple[float, str, str]:
    """An LLM judge's score of the answer: most pass; a struggling user's answers often do not."""
    if rng.random() < (0.45 if struggling else 0.08):
        score = round(rng.uniform(0.1, 0.45), 2)
        reason = rng.choice(
            (
                "The answer is generic and ignores the details the user gave.",
                "The answer contradicts the tool result it cites.",
                "The answer is correct but far longer than the question needs.",
            )
        )
        return score, "fail", reason
    score = round(rng.uniform(0.7, 1.0), 2)
    return score, "pass", "The answer addresses the question directly and uses the tool results correctly."


def _thumb(rng: random.Random, struggling: bool = False) -> tuple[int, str | None] | None:
    draw = rng.random()
    if struggling:
        if draw < 0.35:
            return -1, rng.choice(NEGATIVE_COMMENTS)
        return (1, None) if draw < 0.42 else None
    if draw < 0.18:
        return 1, rng.choice(POSITIVE_COMMENTS)
    if draw < 0.23:
        return -1, rng.choice(NEGATIVE_COMMENTS)
    return None


def _frustrate(conversation: Conversation, rng: random.Random) -> None:
    """The user asks the first question again, then gives up: not ended, a thumbs-down."""
    first = conversation.turns[0]
    again = Turn(
        first.question, first.answer, first.model, first.prompt_tokens + 400, first.completion_tokens
    )
    again.latency_ms, again.verdict = (
        first.latency_ms,
        (0.3, "fail", "The answer repeats the previous one word for word."),
    )
    annoyed = Turn(
        FRUSTRATED,
        "I am sorry. Could you tell me which part of the answer missed what you needed?",
        first.model,
        900,
        40,
    )
    annoyed.latency_ms, annoyed.feedback = 700, (-1, "Gave up.")
    annoyed.verdict = (0.5, "pass", "A polite request for clarification.")
    conversation.turns[1:] = [again, annoyed]
    conversation.ended = False


def _schedule(rng: random.Random, conversation: Conversation) -> None:
    """Each turn after the previous one's answer plus the user's reading and typing time; the
    conversation starts some time in the last day, early enough to be over by now."""
    offset = 0
    for turn in conversation.turns:
        turn.offset_ms = offset
        offset += turn.duration_ms + rng.randint(8_000, 90_000)
    latest = conversation.span_ms + 60_000
    conversation.start_ago_ms = rng.randint(latest, max(latest + 1, DAY_MS - 60_000))
