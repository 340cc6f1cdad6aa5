"""Session evaluators as pure functions over transcripts: their options and edge cases, the text a
turn's input or output holds, and the LLM judge's prompt and answer parsing. (On a real server,
with each built-in flagging one crafted conversation and passing another: test_session_evaluators.)"""

from __future__ import annotations

import json

import pytest

from spanloom.server.evaluators.builtin import EvaluatorOptionError
from spanloom.server.evaluators.config import EvaluatorConfig, load_configs, parse_configs, save_configs
from spanloom.server.evaluators.judge_prompt import MalformedAnswerError, parse_verdict, render_transcript
from spanloom.server.evaluators.session_builtin import SESSION_BUILTINS, find_repeats, normalize
from spanloom.server.evaluators.transcript import Feedback, Transcript, Turn, message_text


def turn(
    index: int, question: str, answer: str = "ok", *, failed: bool = False, negative: bool = False
) -> Turn:
    feedback = (Feedback(-1.0, None, "bad", True),) if negative else ()
    return Turn(index, f"{index:032x}", question, answer, failed, (), feedback)


def transcript(*turns: Turn, total: int | None = None, feedback: tuple[Feedback, ...] = ()) -> Transcript:
    return Transcript("p", "s", "u", total if total is not None else len(turns), turns, feedback)


def judge(kind: str, conversation: Transcript, **options):
    return SESSION_BUILTINS[kind].judge(conversation, options)


def test_normalize_folds_case_punctuation_and_width():
    assert normalize("  Where's   my ORDER #42?!  ") == "where s my order 42"
    assert (
        normalize("\uff37\uff28\uff25\uff32\uff25 is it") == "where is it"
    )  # full-width letters: compatibility forms


def test_repeats_need_the_threshold_the_window_and_enough_words():
    turns = [
        turn(0, "How do I reset my password?"),
        turn(1, "thanks"),
        turn(2, "thanks"),  # short: never a repeated question
        turn(3, "how do i reset my password"),
        turn(4, "What are your opening hours on Sunday?"),
    ]
    [repeat] = find_repeats(turns, threshold=0.85, window=20, min_words=3)
    assert (repeat.earlier, repeat.later) == (0, 3) and repeat.similarity > 0.95
    assert find_repeats(turns, threshold=0.85, window=1, min_words=3) == []  # turn 0 is out of reach
    assert len(find_repeats(turns, threshold=0.85, window=20, min_words=1)) == 2  # thanks, thanks


def test_the_default_threshold_tells_a_typo_from_another_question():
    typo = transcript(turn(0, "How do I reset my password?"), turn(1, "how do i reset my pasword"))
    assert judge("repeated_question", typo).label == "fail"
    other = transcript(
        turn(0, "How do I cancel my subscription?"), turn(1, "How do I renew my subscription?")
    )
    assert judge("repeated_question", other).label == "pass"
    assert judge("repeated_question", other, threshold=0.85).label == "fail"


def test_repeated_question_points_at_both_turns_numbered_from_one():
    verdict = judge(
        "repeated_question",
        transcript(turn(0, "cancel my subscription please"), turn(1, "Cancel my subscription, please!")),
    )
    assert (verdict.score, verdict.label, verdict.turns) == (0.0, "fail", (0, 1))
    assert "turn 2 repeats turn 1" in verdict.explanation


def test_error_streak_finds_the_longest_run():
    turns = [turn(i, f"question number {i}", failed=i in (1, 2, 4, 5, 6)) for i in range(8)]
    verdict = judge("error_streak", transcript(*turns), n=3)
    assert (verdict.label, verdict.turns) == ("fail", (4, 5, 6))
    assert "turns 5-7 failed in a row" in verdict.explanation
    assert judge("error_streak", transcript(*turns), n=4).label == "pass"


def test_turns_over_counts_the_whole_session_even_when_only_its_end_was_read():
    tail = [turn(i, f"question {i}") for i in range(1000, 1010)]
    verdict = judge("turns_over", transcript(*tail, total=1010), n=20)
    assert verdict.label == "fail" and "1010 turns, over 20" in verdict.explanation
    assert judge("turns_over", transcript(turn(0, "hi")), n=1).label == "pass"


def test_frustration_phrases_are_an_option_matched_as_whole_words():
    conversation = transcript(turn(0, "this bot is useless"), turn(1, "I want a refund"))
    assert judge("frustration", conversation).turns == (0,)
    assert judge("frustration", conversation, phrases=["refund"]).turns == (1,)
    assert (
        judge("frustration", transcript(turn(0, "a uselessness index")), phrases=["useless"]).label == "pass"
    )
    session_feedback = (Feedback(None, "thumbs-down", None, True),)
    verdict = judge("frustration", transcript(turn(0, "hello there"), feedback=session_feedback))
    assert verdict.label == "fail" and "negative feedback on the session" in verdict.explanation


def test_resolved_reasons():
    ok = transcript(turn(0, "where is my parcel"), turn(1, "thank you, that helps"))
    assert judge("resolved", ok).label == "pass"
    assert judge("resolved", transcript(turn(0, "where is my parcel", failed=True))).turns == (0,)
    disliked = judge("resolved", transcript(turn(0, "where is my parcel", negative=True)))
    assert disliked.label == "fail" and "negative feedback" in disliked.explanation
    again = judge(
        "resolved", transcript(turn(0, "where is my parcel now"), turn(1, "where is my parcel now?"))
    )
    assert again.turns == (0, 1) and "came back with the same question" in again.explanation
    assert judge("resolved", transcript()).label == "fail"


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("repeated_question", {"threshold": 1.5}, "threshold"),
        ("repeated_question", {"threshold": 0}, "threshold"),
        ("resolved", {"window": 0}, "window"),
        ("frustration", {"phrases": "useless"}, "JSON list"),
        ("frustration", {"phrases": [""]}, "JSON list"),
        ("error_streak", {"n": 0}, "'n'"),
        ("turns_over", {"n": 2.5}, "'n'"),
        ("turns_over", {"max": 3}, "takes no option"),
        ("llm_judge", {}, "rubric"),
        ("llm_judge", {"rubric": "x", "base_url": "ftp://x", "model": "m"}, "base_url"),
        ("llm_judge", {"rubric": "x", "base_url": "http://h/v1"}, "model"),
        (
            "llm_judge",
            {"rubric": "x", "base_url": "http://h/v1", "model": "m", "api_key_env": "sk-abc123"},
            "name of",
        ),
        ("llm_judge", {"rubric": "x", "base_url": "http://h/v1", "model": "m", "timeout": 0}, "timeout"),
        (
            "llm_judge",
            {"rubric": "x", "base_url": "http://h/v1", "model": "m", "daily_budget": 0},
            "daily_budget",
        ),
        (
            "llm_judge",
            {"rubric": "x", "base_url": "http://h/v1", "model": "m", "concurrency": True},
            "concurrency",
        ),
        ("latency", {"threshold_ms": 5}, "is a span evaluator"),
        ("nope", {}, "unknown evaluator kind"),
    ],
)
def test_bad_session_options_are_refused_with_a_reason(kind, options, message):
    with pytest.raises(EvaluatorOptionError, match=message):
        EvaluatorConfig(name="x", kind=kind, options=options, scope="session")


def test_a_session_kind_as_a_span_evaluator_says_which_scope():
    with pytest.raises(EvaluatorOptionError, match="resolved is a session evaluator: give it scope session"):
        EvaluatorConfig(name="x", kind="resolved")
    with pytest.raises(EvaluatorOptionError, match="scope is 'span' or 'session'"):
        EvaluatorConfig(name="x", kind="resolved", scope="conversation")  # type: ignore[arg-type]


def test_scope_round_trips_and_older_files_read_as_span(tmp_path):
    path = tmp_path / "evaluators.json"
    configs = [
        EvaluatorConfig("fast", "latency", options={"threshold_ms": 100}),
        EvaluatorConfig("done", "resolved", "shop", scope="session"),
    ]
    save_configs(path, configs)
    assert load_configs(path) == configs
    written = json.loads(path.read_text())["evaluators"]
    assert "scope" not in written[0] and written[1]["scope"] == "session" and "span_kinds" not in written[1]
    older = parse_configs(
        {"evaluators": [{"name": "fast", "kind": "latency", "options": {"threshold_ms": 5}}]}
    )
    assert older[0].scope == "span"
    with pytest.raises(EvaluatorOptionError, match="#1"):
        parse_configs({"evaluators": [{"name": "x", "kind": "resolved", "scope": "session", "options": [1]}]})


@pytest.mark.parametrize(
    ("raw", "role", "text"),
    [
        (None, "user", ""),
        ("plain question", "user", "plain question"),
        (
            json.dumps([{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi there"}]),
            "user",
            "hi there",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}]}),
            "user",
            "parts",
        ),
        (json.dumps({"question": "from a web handler"}), "user", "from a web handler"),
        (json.dumps({"role": "assistant", "content": "the reply"}), "assistant", "the reply"),
        ('{"not": "a known shape"}', "user", '{"not": "a known shape"}'),
        ("{broken json", "user", "{broken json"),
    ],
)
def test_message_text_reads_common_shapes(raw, role, text):
    assert message_text(raw, role) == text


def test_message_text_is_bounded():
    assert len(message_text("x" * 100_000)) == 2001  # 2,000 characters and an ellipsis


def test_judge_prompt_keeps_the_first_and_last_turns_and_says_what_it_left_out():
    turns = [turn(i, f"question {i} " + "words " * 200, "answer " * 200) for i in range(60)]
    text = render_transcript(transcript(*turns), max_chars=12_000)
    assert len(text) < 12_000 + 2000
    assert "--- Turn 1 ---" in text and "--- Turn 60 ---" in text and "--- Turn 30 ---" not in text
    assert "turns left out" in text and text.startswith("The conversation has 60 turns.")
    long_answer = render_transcript(transcript(turn(0, "q", "z" * 5000)))
    assert "more characters cut" in long_answer


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"score": 0.8, "label": "pass", "explanation": "fine", "turns": [2, 99, "x"]}',
            (0.8, "pass", "fine", (1,)),
        ),
        ('```json\n{"label": "fail", "explanation": "no"}\n```', (None, "fail", "no", ())),
        ('Sure! {"score": 1} hope that helps', (1.0, None, "", ())),
    ],
)
def test_answers_parse_into_verdicts(content, expected):
    verdict = parse_verdict(content, total_turns=3)
    assert (verdict.score, verdict.label, verdict.explanation, verdict.turns) == expected


@pytest.mark.parametrize(
    "content",
    [
        "no json here",
        '{"score": "high"}',
        '{"score": 7}',
        '{"explanation": "only words"}',
        "[1, 2]",
        '{"score": true}',
    ],
)
def test_malformed_answers_are_refused(content):
    with pytest.raises(MalformedAnswerError):
        parse_verdict(content, total_turns=3)
