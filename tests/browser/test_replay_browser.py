"""Issue 17's whole loop in Chromium: a 5-turn conversation recorded through the SDK, replayed by
`spanloom.replay` against a new version of the app, both judged, and the comparison read in the
browser, with the links between replay and original followed both ways.

A real server on loopback; the app and its new version are plain functions (no provider). Waits
are polls and Playwright's own, each with a deadline.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server_kit import RunningServer, run_server, wait_for
from playwright.sync_api import Page, expect

import spanloom
from spanloom.client import SessionDetail, SpanloomClientError
from spanloom.replay import replay_session

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))
from _client_kit import PROJECT, say, traced_provider

pytestmark = pytest.mark.browser
QUESTIONS = ["Hello", "Where is order 7?", "It was due Friday", "Can you refund it?", "Thanks, bye"]
REGRESSED_TURN = 4  # the new version's answer to it is judged unhelpful


def _session(client: spanloom.Client, session_id: str, turns: int) -> SessionDetail | None:
    try:
        detail = client.session(session_id, PROJECT)
    except SpanloomClientError as error:
        assert error.status == 404
        return None
    return detail if len(detail.turns) == turns else None


def _judge(client: spanloom.Client, detail: SessionDetail, failing_turn: int | None) -> None:
    results: list[dict[str, object]] = [
        {
            "trace_id": turn.trace_id,
            "name": "helpfulness",
            "score": 0.1 if number == failing_turn else 0.9,
            "explanation": "answers the question" if number != failing_turn else "ignores the refund",
        }
        for number, turn in enumerate(detail.turns, start=1)
    ]
    assert client.log_evaluations(results)["accepted"] == len(results)


@pytest.fixture(scope="module")
def replayed(
    tmp_path_factory: pytest.TempPathFactory, store_backend: str
) -> Iterator[tuple[RunningServer, str]]:
    directory = tmp_path_factory.mktemp("replay-browser")
    with run_server(directory / "spanloom.db", backend=store_backend) as server:
        provider = traced_provider(server)
        client = spanloom.Client(server.url)
        for question in QUESTIONS:
            say(provider, "orig", "carol", question)
        original = wait_for(lambda: _session(client, "orig", 5), what="the recorded session")

        def new_version(message: str, history: list[dict[str, str]]) -> str:
            return "Please hold." if message == QUESTIONS[REGRESSED_TURN - 1] else f"v2: {message}"

        result = replay_session(client, "orig", PROJECT, new_version, tracer_provider=provider)
        assert result.failed_turns == []
        replay = wait_for(lambda: _session(client, result.session_id, 5), what="the replayed session")
        _judge(client, original, None)
        _judge(client, replay, REGRESSED_TURN)
        provider.shutdown()
        yield server, result.session_id


def test_a_replay_compared_with_its_original(browser: Any, replayed: tuple[RunningServer, str]):
    server, replay_id = replayed
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=server.url)
    context.set_default_timeout(15_000)
    try:
        page: Page = context.new_page()
        # The replay links to its original and to the comparison.
        page.goto(f"/sessions/{replay_id}?project={PROJECT}")
        expect(page.locator(".replay-of")).to_contain_text("Replay of orig")
        page.locator(".replay-of").get_by_role("link", name="Compare with the original").click()

        expect(page.locator("a.session-a")).to_have_text("orig")
        expect(page.locator("a.session-b")).to_have_text(replay_id)
        pairs = page.locator("ol.compare-turns > li")
        expect(pairs).to_have_count(5)
        # The same user words on both sides; the answers of the new version beside the old.
        for number, question in enumerate(QUESTIONS):
            expect(pairs.nth(number).locator(".side-a .role-user .content")).to_have_text(question)
            expect(pairs.nth(number).locator(".side-b .role-user .content")).to_have_text(question)
        expect(pairs.nth(0).locator(".side-b .role-assistant .content")).to_have_text("v2: Hello")
        # The evaluation that passed on the original and fails on the replay, marked on its turn.
        regressed = pairs.nth(REGRESSED_TURN - 1)
        expect(regressed).to_have_class("turn-pair regressed")
        helpfulness = regressed.locator('tr.eval-pair[data-eval="helpfulness"]')
        expect(helpfulness).to_have_attribute("data-change", "regressed")
        expect(helpfulness.locator("td").nth(2)).to_contain_text("passed in A, fails in B")
        expect(pairs.nth(0).locator('tr.eval-pair[data-eval="helpfulness"]')).to_have_attribute(
            "data-change", "same"
        )

        # Back to the original, which lists this replay among its replays.
        page.locator("a.session-a").click()
        expect(page.locator(".replayed-as")).to_have_text("Replayed as")
        expect(page.locator("ul.replays > li").filter(has_text=replay_id)).to_have_count(1)
    finally:
        context.close()
