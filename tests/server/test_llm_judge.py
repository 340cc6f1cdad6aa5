"""The llm_judge session evaluator against a fake OpenAI-compatible endpoint (an httpx
MockTransport: never the network), on a real server: the rubric and transcript it sends, the
verdict it stores; a malformed answer, a timeout and HTTP errors (a judge_error result, the
session tried again later, no crash); the daily budget running out (a budget_exhausted result);
the concurrency limit."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from _server_kit import BASE_TIME_NS, wait_for
from _session_kit import (
    HOUR_MS,
    PROJECT,
    FakeClock,
    full_pass,
    post_conversation,
    results,
    runner,
    session_server,
    wait_for_results,
)

from spanloom.server.evaluators import session_runner
from spanloom.server.evaluators.config import EvaluatorConfig
from spanloom.server.evaluators.llm_judge import DailyBudget, LlmJudge
from spanloom.server.evaluators.transcript import Transcript, Turn

BASE_URL = "http://judge.invalid/v1"
RUBRIC = "Pass when the user got a clear answer to what they asked."


def judge_config(name: str = "judge", **options: Any) -> EvaluatorConfig:
    return EvaluatorConfig(
        name,
        "llm_judge",
        PROJECT,
        {"rubric": RUBRIC, "base_url": BASE_URL, "model": "judge-model", **options},
        scope="session",
    )


def completion(content: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})


def verdict(score: float, label: str, explanation: str, turns: list[int]) -> httpx.Response:
    return completion(
        json.dumps({"score": score, "label": label, "explanation": explanation, "turns": turns})
    )


class FakeEndpoint:
    """Answers each call by what the transcript holds; records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[httpx.Request, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.recovered = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        with self.lock:
            self.requests.append((request, body))
        transcript = body["messages"][1]["content"]
        if not self.recovered:
            if "MALFORMED" in transcript:
                return completion("I think this conversation went fine overall.")
            if "TIMEOUT" in transcript:
                raise httpx.ReadTimeout("the fake endpoint took too long", request=request)
            if "OVERLOADED" in transcript:
                return httpx.Response(503, headers={"Retry-After": "0"}, text="overloaded")
            if "FORBIDDEN" in transcript:
                return httpx.Response(401, json={"error": {"message": "Incorrect API key sk-...abcd"}})
        return verdict(0.9, "pass", "The user got an answer.", [1])

    def calls_about(self, word: str) -> int:
        with self.lock:
            return sum(word in body["messages"][1]["content"] for _, body in self.requests)


def test_the_judge_sends_rubric_and_transcript_and_stores_the_verdict(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-test-123")
    sent: list[tuple[httpx.Request, dict[str, Any]]] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        sent.append((request, json.loads(request.content)))
        return verdict(0.25, "fail", "The user had to ask twice about the refund.", [1, 3, 42])

    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)
    config = judge_config(api_key_env="JUDGE_TEST_KEY")
    with session_server(
        tmp_path, config, clock=clock, judge_transport=httpx.MockTransport(endpoint)
    ) as server:
        trace_ids = post_conversation(
            server,
            "refund",
            [
                {"question": "How do I get a refund?", "answer": "Open Orders and pick Refund."},
                {
                    "question": "There is no Refund button",
                    "answer": "Sorry, try again.",
                    "error": True,
                    "tool": True,
                },
                {"question": "How do I get a refund??", "answer": "Write to support@example.com."},
            ],
        )
        result = wait_for_results(server, "refund", {"judge"})["judge"]
    assert (result["score"], result["label"], result["passed"]) == (0.25, "fail", False)
    assert result["explanation"] == "The user had to ask twice about the refund."
    # Turn 42 does not exist.
    assert result["details"] == {"turns": [1, 3], "trace_ids": trace_ids[::2], "kind": "llm_judge"}
    [(request, body)] = sent
    assert str(request.url) == f"{BASE_URL}/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test-123"
    assert body["model"] == "judge-model" and body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and system["content"].endswith(RUBRIC)
    assert user["content"].startswith("The conversation has 3 turns.")
    assert (
        "User: There is no Refund button" in user["content"] and "--- Turn 2 (failed) ---" in user["content"]
    )
    assert "Tools called: search" in user["content"]
    assert "sk-test-123" not in json.dumps(body)


def test_failed_calls_leave_a_judge_error_and_the_session_is_tried_again(tmp_path: Path, caplog):
    endpoint = FakeEndpoint()
    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)
    configs = [
        judge_config(retries=1),
        EvaluatorConfig("long", "turns_over", PROJECT, {"n": 5}, scope="session"),
    ]
    transport = httpx.MockTransport(endpoint)
    with (
        caplog.at_level("WARNING"),
        session_server(tmp_path, *configs, clock=clock, judge_transport=transport) as server,
    ):
        for word in ("MALFORMED", "TIMEOUT", "OVERLOADED", "FORBIDDEN"):
            post_conversation(server, word.lower(), [{"question": f"please answer {word} now"}])
        post_conversation(server, "fine", [{"question": "What are your opening hours?"}])
        failures = {
            word: wait_for_results(server, word.lower(), {"judge", "long"})
            for word in ("MALFORMED", "TIMEOUT", "OVERLOADED", "FORBIDDEN")
        }
        assert wait_for_results(server, "fine", {"judge"})["judge"]["label"] == "pass"
        for word, found in failures.items():
            assert (found["judge"]["label"], found["judge"]["score"]) == ("judge_error", None), word
            assert found["long"]["label"] == "pass"  # the heuristics of the session were written
        assert "holds no JSON object" in failures["MALFORMED"]["judge"]["explanation"]
        assert "no answer within 30 s (2 attempts)" in failures["TIMEOUT"]["judge"]["explanation"]
        assert "HTTP 503" in failures["OVERLOADED"]["judge"]["explanation"]
        explanation = failures["FORBIDDEN"]["judge"]["explanation"]
        assert "HTTP 401" in explanation and "sk-" not in explanation  # the body goes to the log only
        assert endpoint.calls_about("FORBIDDEN") == 1  # a 401 is not retried at once
        assert endpoint.calls_about("TIMEOUT") == 2  # retries=1
        assert "llm_judge 'judge' on session 'timeout'" in caplog.text

        # Not marked judged: due again, but not before the retry delay.
        def due() -> set[str]:
            return {session for _, session, _ in server.store.sessions_to_judge(clock(), 100)}

        # "fine" is marked judged in a write of its own after its result: wait for it (the four
        # failed ones are never marked, so the set only shrinks to them if all is right).
        failed = {"malformed", "timeout", "overloaded", "forbidden"}
        wait_for(lambda: due() == failed, what="only the failed sessions due")
        calls = len(endpoint.requests)
        full_pass(server)
        assert len(endpoint.requests) == calls  # waiting for the retry delay: no new call

        endpoint.recovered = True
        clock.set_ms(10 * HOUR_MS + (session_runner.RETRY_BASE_SECONDS + 1) * 1000)

        def recovered() -> bool:
            return all(results(server, w.lower())["judge"]["label"] == "pass" for w in failures)

        wait_for(recovered, what="the failed sessions judged again")
        wait_for(lambda: not due(), what="the sessions marked judged")
        assert runner(server)._thread.is_alive()


def test_a_session_that_keeps_failing_is_given_up_after_the_last_attempt(tmp_path: Path):
    endpoint = FakeEndpoint()
    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)
    transport = httpx.MockTransport(endpoint)
    with session_server(tmp_path, judge_config(retries=0), clock=clock, judge_transport=transport) as server:
        post_conversation(server, "broken", [{"question": "MALFORMED again and again"}])
        for attempt in range(1, session_runner.MAX_ATTEMPTS + 1):
            wait_for(lambda n=attempt: endpoint.calls_about("MALFORMED") >= n, what=f"attempt {attempt}")
            clock.set_ms(clock() / 1e6 - BASE_TIME_NS / 1e6 + session_runner.MAX_RETRY_SECONDS * 1000)
        wait_for(lambda: not server.store.sessions_to_judge(clock(), 10), what="the session given up")
        full_pass(server)
        assert endpoint.calls_about("MALFORMED") == session_runner.MAX_ATTEMPTS
        assert results(server, "broken")["judge"]["label"] == "judge_error"


def test_the_daily_budget_runs_out_and_comes_back_the_next_day(tmp_path: Path):
    endpoint = FakeEndpoint()
    clock = FakeClock(BASE_TIME_NS + 10 * HOUR_MS * 10**6)
    transport = httpx.MockTransport(endpoint)
    config = judge_config(daily_budget=2, retries=0, concurrency=1)
    with session_server(tmp_path, config, clock=clock, judge_transport=transport) as server:
        for number in range(3):
            post_conversation(
                server, f"day-one-{number}", [{"question": f"question number {number} of today"}]
            )
        labels = sorted(
            wait_for_results(server, f"day-one-{number}", {"judge"})["judge"]["label"] for number in range(3)
        )
        assert labels == ["budget_exhausted", "pass", "pass"]
        assert len(endpoint.requests) == 2
        exhausted = next(
            r["judge"]
            for r in (results(server, f"day-one-{n}") for n in range(3))
            if r["judge"]["score"] is None
        )
        assert "daily budget of 2 calls is spent" in exhausted["explanation"]
        assert not server.store.sessions_to_judge(clock(), 10)  # final: marked judged
        # The next day the budget is back.
        next_day = 48 * HOUR_MS
        post_conversation(server, "day-two", [{"question": "a question on the next day"}], start_ms=next_day)
        clock.set_ms(next_day + HOUR_MS)
        assert wait_for_results(server, "day-two", {"judge"})["judge"]["label"] == "pass"
        assert len(endpoint.requests) == 3


def _transcript(number: int) -> Transcript:
    turn = Turn(0, f"{number:032x}", f"question {number}", "answer", False, (), ())
    return Transcript(PROJECT, f"s-{number}", None, 1, (turn,), ())


def test_calls_run_concurrently_up_to_the_limit():
    in_flight = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def endpoint(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        release.wait(timeout=30)
        with lock:
            in_flight -= 1
        return verdict(1, "pass", "ok", [])

    options = {"rubric": RUBRIC, "base_url": BASE_URL, "model": "m", "concurrency": 2}
    judge = LlmJudge("judge", options, DailyBudget(100), httpx.MockTransport(endpoint))
    answers: list[Any] = []
    worker = threading.Thread(
        target=lambda: answers.extend(judge.judge_many([_transcript(n) for n in range(6)]))
    )
    worker.start()
    try:
        wait_for(lambda: in_flight == 2, what="two calls at once")
    finally:
        release.set()
        worker.join(timeout=30)
        judge.close()
    assert most == 2 and [a.label for a in answers] == ["pass"] * 6


def test_a_missing_key_variable_is_a_judge_error_and_spends_nothing():
    calls = []
    options = {"rubric": RUBRIC, "base_url": BASE_URL, "model": "m", "api_key_env": "NO_SUCH_KEY_VAR"}
    budget = DailyBudget(5)
    judge = LlmJudge("judge", options, budget, httpx.MockTransport(calls.append), environ={})
    try:
        failure = judge.judge(_transcript(1))
    finally:
        judge.close()
    assert (failure.label, failure.transient) == ("judge_error", True)
    assert "NO_SUCH_KEY_VAR is not set" in failure.explanation
    assert calls == [] and budget.used == 0


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="not json at all"),
        httpx.Response(200, json={"choices": []}),
        httpx.Response(200, json={"choices": [{"message": {"content": None}}]}),
        httpx.Response(200, content=b'{"choices": "' + b"x" * (2 * 1024 * 1024) + b'"}'),
    ],
)
def test_odd_responses_are_judge_errors(response: httpx.Response):
    options = {"rubric": RUBRIC, "base_url": BASE_URL, "model": "m", "retries": 0}
    judge = LlmJudge("judge", options, DailyBudget(5), httpx.MockTransport(lambda request: response))
    try:
        failure = judge.judge(_transcript(1))
    finally:
        judge.close()
    assert failure.label == "judge_error" and failure.explanation


def test_a_server_without_a_judge_does_not_load_httpx():
    # httpx brings its command line's rich and pygments: megabytes under the server's memory cap.
    code = (
        "import sys\n"
        "import spanloom.server.app, spanloom.server.evaluators.session_runner\n"
        "print('httpx' in sys.modules)\n"
        "from spanloom.server.evaluators.llm_judge import DailyBudget, LlmJudge\n"
        "options = {'rubric': 'r', 'base_url': 'http://judge.invalid/v1', 'model': 'm'}\n"
        "LlmJudge('judge', options, DailyBudget(1)).close()\n"
        "print('httpx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "True"]
