"""Evaluation results in Chromium: a session's badges (explanation on hover and on expand), the
turn a low score breaks, the evaluation columns and the per-user comparison."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server_kit import RunningServer, run_server
from dashboard_data import fill
from playwright.sync_api import expect

from spanloom.client import SpanloomClient

pytestmark = pytest.mark.browser
SESSION = "recipe-chat"  # bob's two turns, neither fails with an error


@pytest.fixture(scope="module")
def judged_server(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("evaluations") / "spanloom.db", backend=store_backend) as server:
        fill(server.traces_endpoint, xss=False)
        turns = server.get_json(f"/api/sessions/{SESSION}")["turns"]
        client = SpanloomClient(server.url)
        answer = client.log_evaluations(
            [
                {
                    "trace_id": turns[0]["trace_id"],
                    "name": "helpfulness",
                    "score": 0.9,
                    "explanation": "clear recipe",
                },
                {
                    "trace_id": turns[1]["trace_id"],
                    "name": "helpfulness",
                    "score": 0.2,
                    "label": "fail",
                    "explanation": "ignored <the> vegan request",
                },
                {"trace_id": turns[1]["trace_id"], "name": "tone", "label": "polite"},
            ]
        )
        assert answer == {"accepted": 3, "rejected": []}
        alice = server.get_json("/api/sessions/checkout-help")["turns"]
        client.log_evaluations([{"trace_id": alice[0]["trace_id"], "name": "helpfulness", "score": 0.6}])
        yield server


@pytest.fixture
def page(browser: Any, judged_server: RunningServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=judged_server.url)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_session_badges_show_scores_and_explanations(page: Any, screenshots: Path):
    page.goto(f"/sessions/{SESSION}")
    first, second = page.locator("#turn-1"), page.locator("#turn-2")
    expect(first.locator(".evals summary.badge")).to_have_count(1)
    expect(first.locator(".evals summary.badge")).to_have_text("helpfulness 0.90")
    expect(first.locator("details.eval")).to_have_class(re.compile(r"\bok\b"))
    badges = second.locator(".evals summary.badge")
    expect(badges).to_have_text(["helpfulness 0.20 · fail", "tone · polite"])
    # The explanation: on hover (title) and on expand (<details>), as text, never markup.
    low = second.locator("details.eval[data-eval=helpfulness]")
    expect(low).to_have_class(re.compile(r"\bbad\b"))
    expect(low.locator("summary")).to_have_attribute("title", "ignored <the> vegan request")
    expect(low.locator(".explanation")).to_be_hidden()
    low.locator("summary").click()
    expect(low.locator(".explanation")).to_be_visible()
    expect(low.locator(".explanation")).to_contain_text("ignored <the> vegan request")
    # A low score is a failure: the second turn is where it breaks, though nothing errored.
    expect(second).to_have_class(re.compile(r"\bfirst-failure\b"))
    expect(page.get_by_role("link", name=re.compile("Where it breaks: turn 2"))).to_be_visible()
    page.screenshot(path=screenshots / "session-evaluations.png", full_page=True)


def test_lists_and_comparison_put_the_lowest_score_first(page: Any):
    page.goto("/sessions?project=shop")
    header = page.locator("table.sessions th.eval-col a", has_text="helpfulness")
    header.click()
    expect(page).to_have_url(re.compile(r"sort=eval%3Ahelpfulness&order=asc"))
    rows = page.locator("table.sessions tbody tr")
    expect(rows.first.locator("td.id").first).to_have_text(SESSION)  # mean 0.55 < 0.60
    expect(rows.first.locator("td.eval-cell[data-eval=helpfulness]")).to_have_text("0.55")
    page.goto("/users/compare?project=shop")
    users = page.locator("table.compare tbody tr td.id")
    expect(users.first).to_have_text("bob")
    expect(users.nth(1)).to_have_text("alice")
