"""The project overview in Chromium: its charts render as SVG with axes, hover titles and the
same numbers as the JSON API, at laptop and phone widths, and a hostile project name stays text.

Against the dashboard tests' server (filled through the SDK, see dashboard_data). Screenshots go
with the others (`--screenshots docs/screenshots`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _server_kit import RunningServer
from dashboard_data import XSS_PROJECT
from page_watch import page_opener
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser
WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
CHARTS = ("sessions", "turns", "cost", "latency", "feedback", "pass-rate")


@pytest.fixture
def open_page(browser: Any, filled_server: RunningServer) -> Iterator[Any]:
    with page_opener(browser, filled_server.url, WIDE) as new_page:
        yield new_page


def _check_charts(page: Page) -> None:
    for key in CHARTS:
        figure = page.locator(f'figure[data-chart="{key}"]')
        expect(figure.locator("svg g.x-axis line").first).to_be_attached()
        expect(figure.locator("svg g.y-axis text").first).to_be_visible()
        box = figure.locator("svg").bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 60, (key, box)
    # A hover title on every turns bar, naming its hour and figure.
    titles = page.locator('figure[data-chart="turns"] svg rect title').all_text_contents()
    assert titles and all(": Turns " in title or ": Errors " in title for title in titles)


@pytest.mark.parametrize(("viewport", "name"), [(WIDE, "overview.png"), (PHONE, "overview-phone.png")])
def test_the_overview_draws_the_apis_numbers(
    open_page: Any, filled_server: RunningServer, screenshots: Path, viewport: dict[str, int], name: str
):
    page, watch = open_page(viewport)
    page.goto("/projects")
    page.get_by_role("link", name="shop", exact=True).click()
    expect(page.locator("h1")).to_contain_text("shop")
    _check_charts(page)
    api = filled_server.get_json("/api/projects/shop/trends")
    rows = page.locator('figure[data-chart="turns"] table tbody tr')
    expect(rows).to_have_count(len(api["buckets"]))
    shown = [
        int(cells[1].replace(",", ""))
        for cells in (row.locator("td, th").all_text_contents() for row in rows.all())
    ]
    assert shown == [bucket["turns"] for bucket in api["buckets"]] and sum(shown) > 0
    # The numbers are a click away (a disclosure), for eyes as well as screen readers.
    page.locator('figure[data-chart="turns"] summary').click()
    expect(rows.first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.screenshot(path=screenshots / name, full_page=True)
    watch.check()


def test_the_lists_show_the_strip_and_a_hostile_project_stays_text(open_page: Any, screenshots: Path):
    page, watch = open_page(WIDE)
    page.goto("/sessions?project=shop")
    expect(page.locator('section.trend-strip figure[data-chart="turns"] svg')).to_be_visible()
    page.screenshot(path=screenshots / "sessions-trends.png")
    page.goto(f"/projects/{quote(XSS_PROJECT, safe='')}")
    expect(page.locator("h1 .project-name")).to_have_text(XSS_PROJECT)
    expect(page.locator('figure[data-chart="sessions"] svg')).to_be_visible()
    watch.check()
