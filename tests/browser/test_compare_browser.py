"""The session comparison in Chromium: a replay beside its original, the evaluation that regressed
marked, and the links both ways between replay and original.

Against a real server filled through the SDK (tests/server/_compare_kit.py). Screenshots go to a
temporary folder; `--screenshots docs/screenshots` refreshes the README's. Waits are Playwright's
own (each with a deadline), never sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _compare_kit import (
    FAILING_TURN,
    ORIGINAL,
    PROJECT,
    REPLAY,
    REPLAY_ANSWERS,
    SHORT_REPLAY,
    XSS_A,
    XSS_B,
    fill,
)
from _server_kit import RunningServer, run_server
from page_watch import page_opener
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def compare_server(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("compare") / "spanloom.db", backend=store_backend) as server:
        fill(server.url, time.time_ns() - 3 * 3600 * 10**9, {}, None)
        yield server


@pytest.fixture
def open_page(browser: Any, compare_server: RunningServer) -> Iterator[Any]:
    with page_opener(browser, compare_server.url, WIDE) as new_page:
        yield new_page


def test_replay_beside_its_original(open_page: Any, screenshots: Path):
    page, watch = open_page()
    # From the replay's page to the comparison with its original.
    page.goto(f"/sessions/{REPLAY}?project={PROJECT}")
    replay_of = page.locator(".replay-of")
    expect(replay_of).to_contain_text(f"Replay of {ORIGINAL}")
    replay_of.get_by_role("link", name="Compare with the original").click()

    expect(page.locator("h1")).to_have_text("Compare sessions")
    expect(page.locator("a.session-a")).to_have_text(ORIGINAL)
    expect(page.locator("a.session-b")).to_have_text(REPLAY)
    pairs = page.locator("ol.compare-turns > li")
    expect(pairs).to_have_count(5)
    # Each row holds both sides' texts, side by side.
    second = pairs.nth(1)
    expect(second.locator(".side-b .role-assistant .content")).to_have_text(REPLAY_ANSWERS[1])
    expect(second.locator(".pair-head")).to_contain_text("output differs")
    a_box = second.locator(".side-a").bounding_box()
    b_box = second.locator(".side-b").bounding_box()
    assert (
        a_box and b_box and b_box["x"] > a_box["x"] + a_box["width"] - 1 and abs(b_box["y"] - a_box["y"]) < 2
    )
    expect(second.locator('[data-figure="latency"] .delta.worse')).to_be_visible()

    # The failing turn: the error, and the evaluation that passed in A and fails in B.
    failing = pairs.nth(FAILING_TURN - 1)
    expect(failing).to_have_class("turn-pair regressed")
    expect(failing.locator(".pair-head")).to_contain_text("regressed in B")
    expect(failing.locator(".side-b .badge.bad").first).to_have_text("error")
    helpfulness = failing.locator('tr.eval-pair[data-eval="helpfulness"]')
    expect(helpfulness).to_have_attribute("data-change", "regressed")
    expect(helpfulness.locator("td").nth(0)).to_contain_text("pass · 0.90")
    expect(helpfulness.locator("td").nth(1)).to_contain_text("fail · 0.20")
    expect(helpfulness.locator("td").nth(2)).to_contain_text("passed in A, fails in B")
    # The conversations as a whole, and the totals.
    goal = page.locator('table.session-evals tr[data-eval="goal_met"]')
    expect(goal).to_have_attribute("data-change", "regressed")
    expect(page.locator('tr[data-total="error_count"] .delta.worse')).to_contain_text("+1")
    page.screenshot(path=screenshots / "compare.png", full_page=True)

    # Back to the original, which lists its replays, and from there to the replay again.
    page.locator("a.session-a").click()
    expect(page.locator("h1")).to_contain_text(ORIGINAL)
    replays = page.locator("ul.replays > li")
    expect(replays).to_have_count(2)
    expect(page.locator(".replayed-as")).to_have_text("Replayed as")
    replays.filter(has_text=SHORT_REPLAY).get_by_role("link", name="Compare").click()
    expect(page.locator("a.session-b")).to_have_text(SHORT_REPLAY)
    expect(page.locator("ol.compare-turns > li .side-b.absent")).to_have_count(2)
    page.go_back()
    replays.filter(has_text=REPLAY).locator("a.replay").click()
    expect(page.locator("h1")).to_contain_text(REPLAY)
    watch.check()


def test_pick_the_other_session_by_id(open_page: Any):
    page, watch = open_page()
    page.goto(f"/sessions/{ORIGINAL}?project={PROJECT}")
    page.get_by_text("Compare with another session").click()
    form = page.locator("form.compare-form")
    expect(form.locator("input[name=a]")).to_have_value(ORIGINAL)
    form.locator("input[name=b]").fill(SHORT_REPLAY)
    form.get_by_role("button", name="Compare").click()
    expect(page.locator("a.session-b")).to_have_text(SHORT_REPLAY)
    expect(page.locator("ol.compare-turns > li")).to_have_count(5)
    watch.check()


def test_compare_on_a_phone(open_page: Any, screenshots: Path):
    page, watch = open_page(PHONE)
    page.goto(f"/sessions/compare?project={PROJECT}&a={ORIGINAL}&b={REPLAY}")
    expect(page.locator("ol.compare-turns > li")).to_have_count(5)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=screenshots / "compare-phone.png", full_page=True)
    watch.check()


def test_hostile_text_stays_text(open_page: Any):
    page, watch = open_page()
    page.goto(f"/sessions/{quote(XSS_B, safe='')}?project={PROJECT}")
    page.locator(".replay-of").get_by_role("link", name="Compare with the original").click()
    expect(page.locator("a.session-a")).to_have_text(XSS_A)
    expect(page.locator("a.session-b")).to_have_text(XSS_B)
    expect(page.locator(".side-a .role-user .content")).to_contain_text("<script>alert(1)</script>")
    assert page.locator("img").count() == 0
    watch.check()
