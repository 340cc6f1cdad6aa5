"""Browser tests: Playwright driving Debian's chromium against a real server filled through the SDK."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The server kit (a real uvicorn on port 0 over a tmp SQLite file) lives with the server tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _server_kit import RunningServer, run_server
from dashboard_data import fill

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def filled_server(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("dashboard") / "spanloom.db", backend=store_backend) as server:
        fill(server.traces_endpoint)
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "the browser tests need Debian's chromium on PATH: run .ci/prerequisites (apt-get install"
            ' chromium), or leave them out with -m "not browser"',
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary folder, or the one given with --screenshots."""
    chosen = request.config.getoption("--screenshots")
    if chosen is None:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(chosen)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
