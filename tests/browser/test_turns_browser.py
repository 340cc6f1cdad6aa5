"""Conversations read as conversations, in Chromium against a real server: the user's words in the
bubbles for our OpenAI instrumentor's spans and for OpenInference-shaped ones, one rule for a
failing turn (count, marks, where it breaks), evaluations with their explanations on the trace
page, OK for UNSET, and the root's input and output opening the trace page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from _server_kit import RunningServer, run_server, wait_for
from playwright.sync_api import expect
from tests.instrumentation.fakes import http_library

import spanloom
from spanloom.client import SpanloomClient
from spanloom.instrumentation.openai import OpenAIInstrumentor

pytestmark = pytest.mark.browser
QUESTIONS = [
    "Which trains go from Prague to Vienna tomorrow?",
    "Is there one before 8 in the morning?",
    "How much is a first-class seat?",
    "Book it for me, please",
]
ANSWERS = ["RJ 71 at 06:12 and RJ 73 at 08:12.", "Yes, RJ 71 leaves at 06:12.", "About 49 EUR."]
EXPLANATION = "took 4.2 s, over the 2 s budget <b>slow</b>"
OI_QUESTION = "What is the capital of Australia?"
OI_ANSWER = "Canberra is the capital of Australia."
# httpx up to openai 1.x, httpx2 after: the library the SDK's own client is built on
HTTP = http_library(openai)


def _openai_turns(endpoint: str) -> None:
    """Four turns through the real OpenAI SDK and our instrumentor; the fourth fails (HTTP 500)."""
    provider = spanloom.register(
        project_name="trains", endpoint=endpoint, batch=False, set_global_tracer_provider=False
    )
    calls = iter(range(10))

    def handler(request: HTTP.Request) -> HTTP.Response:
        number = next(calls)
        if number == 3:
            return HTTP.Response(
                500, json={"error": {"message": "upstream overloaded", "type": "server_error"}}
            )
        body = {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWERS[number]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 30 + number, "completion_tokens": 12, "total_tokens": 42 + number},
        }
        return HTTP.Response(200, json=body)

    client = openai.OpenAI(
        api_key="test", max_retries=0, http_client=HTTP.Client(transport=HTTP.MockTransport(handler))
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        history: list[dict[str, str]] = [{"role": "system", "content": "You sell train tickets."}]
        for number, question in enumerate(QUESTIONS):
            history.append({"role": "user", "content": question})
            with spanloom.using_session("trains-chat"), spanloom.using_user("ann"):
                try:
                    reply = client.chat.completions.create(model="gpt-4o-mini", messages=history)
                except openai.InternalServerError:
                    assert number == 3
                    continue
            history.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def _openinference_turn(endpoint: str) -> None:
    """A span shaped like openinference-instrumentation-openai's: input.value holds the request
    JSON and the messages are flattened too; status left UNSET."""
    provider = spanloom.register(
        project_name="trains", endpoint=endpoint, batch=False, set_global_tracer_provider=False
    )
    request = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Answer geography questions."},
            {"role": "user", "content": OI_QUESTION},
        ],
    }
    response = {
        "id": "chatcmpl-oi",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": OI_ANSWER}, "finish_reason": "stop"}
        ],
    }
    tracer = provider.get_tracer("openinference.instrumentation.openai")
    with tracer.start_as_current_span("ChatCompletion") as span:
        span.set_attributes(
            {
                "openinference.span.kind": "LLM",
                "session.id": "geo-chat",
                "input.value": json.dumps(request),
                "input.mime_type": "application/json",
                "output.value": json.dumps(response),
                "output.mime_type": "application/json",
                "llm.model_name": "gpt-4o",
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "Answer geography questions.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": OI_QUESTION,
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": OI_ANSWER,
            }
        )
    provider.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("turns") / "spanloom.db", backend=store_backend) as running:
        _openai_turns(running.traces_endpoint)
        _openinference_turn(running.traces_endpoint)
        turns = wait_for(
            lambda: (
                (t := running.get_json("/api/sessions/trains-chat", project="trains")["turns"])
                and len(t) == 4
                and t
            ),
            what="four turns stored",
        )
        answer = SpanloomClient(running.url).log_evaluations(
            [
                {"trace_id": turn["trace_id"], "name": "latency", "label": "fail", "explanation": EXPLANATION}
                for turn in turns
            ]
        )
        assert answer == {"accepted": 4, "rejected": []}
        yield running


@pytest.fixture
def page(browser: Any, server: RunningServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=server.url)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_the_user_bubble_holds_the_users_words(page: Any):
    page.goto("/sessions/trains-chat?project=trains")
    users = page.locator(".turn .msg.role-user .content")
    expect(users).to_have_text(QUESTIONS)
    expect(page.locator(".turn .msg.role-assistant .content").first).to_have_text(ANSWERS[0])
    raw = page.locator("#turn-1 details.raw-turn")
    expect(raw.locator("summary")).to_be_visible()
    expect(raw.locator("pre.raw-input")).to_be_hidden()  # one click away
    raw.locator("summary").click()
    expect(raw.locator("pre.raw-input")).to_contain_text('"model": "gpt-4o-mini"')
    page.goto("/sessions?project=trains")
    expect(page.get_by_role("cell", name=QUESTIONS[0])).to_be_visible()
    expect(page.get_by_role("cell", name=OI_QUESTION)).to_be_visible()
    expect(page.locator("body")).not_to_contain_text('"messages"')


def test_openinference_shaped_spans_read_the_same(page: Any):
    page.goto("/sessions/geo-chat?project=trains")
    expect(page.locator(".turn .msg.role-user .content")).to_have_text([OI_QUESTION])
    expect(page.locator(".turn .msg.role-assistant .content")).to_have_text([OI_ANSWER])
    expect(page.locator(".turn .badge", has_text=re.compile(r"^\s*unset\s*$"))).to_have_count(0)
    expect(page.locator(".turn .turn-stats .badge.ok")).to_have_text(["ok"])


def test_the_failing_turn_count_equals_the_marked_turns(page: Any, server: RunningServer, screenshots: Path):
    page.goto("/sessions/trains-chat?project=trains")
    page.screenshot(path=screenshots / "session-failing-turns.png", full_page=True)
    expect(page.locator("#failing-turns dd")).to_have_text(re.compile(r"^\s*4\s*\(1 with an error\)\s*$"))
    expect(page.locator("li.turn.failed")).to_have_count(4)
    expect(page.locator("li.turn.error")).to_have_count(1)
    expect(page.locator("li.turn.error")).to_have_id("turn-4")
    expect(page.locator("li.turn.judged-failing")).to_have_count(4)
    expect(page.locator(".chart rect.failed")).to_have_count(1)
    expect(page.locator(".chart rect.judged")).to_have_count(4)
    expect(page.locator(".chart-hint")).to_contain_text("failed evaluation")
    # turns without an error read OK, never "unset"
    expect(page.locator("#turn-1 .turn-stats .badge")).to_have_text(["ok"])
    expect(page.get_by_text(re.compile(r"^unset$"))).to_have_count(0)
    expect(page.locator("#turn-1 .badge", has_text="first failed evaluation")).to_have_count(1)
    judged = page.locator("#first-judged-failure")
    expect(judged).to_have_text(re.compile(r"turn 1\b"))
    breaks = page.locator("#where-it-breaks")
    expect(breaks).to_have_text(re.compile(r"turn 4 \(error\)"))
    breaks.click()
    expect(page).to_have_url(re.compile(r"#turn-4$"))
    judged.click()
    expect(page).to_have_url(re.compile(r"#turn-1$"))
    # the explanation is on the turn too (its evaluation opens)
    page.locator("#turn-1 details.eval summary").click()
    expect(page.locator("#turn-1 .evals .explanation")).to_contain_text("over the 2 s budget <b>slow</b>")
    api = server.get_json("/api/sessions/trains-chat", project="trains")
    assert api["failing_turn_count"] == 4
    assert [turn["failed"] for turn in api["turns"]] == [True] * 4
    assert [turn["error"] for turn in api["turns"]] == [False, False, False, True]
    assert {name for turn in api["turns"] for name in turn["failed_evaluations"]} == {"latency"}
    assert (api["first_failing_turn"]["index"], api["first_failing_turn"]["reason"]) == (3, "error")
    assert api["first_evaluation_failure"]["index"] == 0
    assert [turn["input_text"] for turn in api["turns"]] == QUESTIONS


def test_the_trace_page_opens_with_input_output_and_evaluations(
    page: Any, server: RunningServer, screenshots: Path
):
    trace_id = server.get_json("/api/sessions/trains-chat", project="trains")["turns"][1]["trace_id"]
    page.goto(f"/traces/{trace_id}")
    page.screenshot(path=screenshots / "trace-evaluations.png", full_page=True)
    top = page.locator(".trace-results")
    expect(top).to_contain_text("latency")
    expect(top.locator(".badge.bad")).to_contain_text("fail")
    expect(top.locator(".explanation")).to_have_text(EXPLANATION)  # escaped text, shown as written
    io = page.locator(".root-io")
    expect(io.locator(".msg.role-user .content").last).to_have_text(QUESTIONS[1])
    expect(io.locator("section.payload").last.locator(".msg .content")).to_have_text([ANSWERS[1]])
    panel = page.locator("#span-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".span-results .explanation")).to_have_text(EXPLANATION)
    expect(panel).to_contain_text("OK")
    expect(page.get_by_text(re.compile(r"^unset$"))).to_have_count(0)
    # the collapsed tree still names each span and its evaluations
    expect(page.locator(".span summary .badge", has_text="1 eval, 1 failed")).to_have_count(1)
    page.set_viewport_size({"width": 390, "height": 844})
    expect(panel).to_be_hidden()
    expect(io).to_be_visible()
    page.screenshot(path=screenshots / "trace-evaluations-phone.png", full_page=True)


def test_the_failed_turns_trace_shows_the_error(page: Any, server: RunningServer):
    trace_id = server.get_json("/api/sessions/trains-chat", project="trains")["turns"][3]["trace_id"]
    page.goto(f"/traces/{trace_id}")
    expect(page.locator("#span-panel")).to_contain_text("ERROR")
    expect(page.locator(".root-io .msg.role-user .content").last).to_have_text(QUESTIONS[3])
