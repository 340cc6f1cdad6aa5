"""Screenshots of every dashboard page at 1440 px and 390 px, for docs/screenshots/.

    python scripts/screenshots.py                 # into docs/screenshots/
    python scripts/screenshots.py --out /tmp/shots --only session,trace

Starts a real `spanloom serve` (port 0, a temporary database), fills it with `spanloom demo`,
then opens each page of PAGES in Debian's chromium (Playwright) and saves NAME.png (1440 px wide,
full page) and NAME-phone.png (390 px). Needs the dev extra (`pip install -e ".[dev]"`) and
`chromium` on PATH. The test run never writes here: this command is the one way to refresh them.

To add a page, add a line to PAGES: its file name and a function from the filled server's JSON
API (a `Demo`) to the page's path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = {"": {"width": 1440, "height": 900}, "-phone": {"width": 390, "height": 844}}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SEED = 7


@dataclass
class Demo:
    """The filled server, as the pages' paths need it."""

    url: str

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=30) as response:
            return json.load(response)

    def sessions(self, **params: Any) -> list[dict[str, Any]]:
        return self.get("/api/sessions", project="demo", limit=100, **params)["items"]

    def broken_session(self) -> str:
        """The conversation that breaks: errors, and the most turns among those."""
        failing = self.sessions(has_error="true")
        return max(failing, key=lambda s: s["trace_count"])["session_id"]

    def failing_trace(self) -> str:
        return self.get("/api/traces", project="demo", status="ERROR", limit=1)["items"][0]["trace_id"]

    def replay(self) -> tuple[str, str]:
        """The broken conversation replayed against a "new version" through spanloom.replay, as
        a team would after a fix: (original, replay)."""
        import spanloom
        from spanloom.replay import replay_session

        original = self.broken_session()
        provider = spanloom.register(
            project_name="demo", endpoint=f"{self.url}/v1/traces", set_global_tracer_provider=False
        )
        try:
            result = replay_session(
                spanloom.Client(self.url), original, "demo", _new_version, tracer_provider=provider
            )
        finally:
            provider.shutdown()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the server has stored every replayed turn
            found = self.sessions(**{"metadata.replay_of": original})
            if found and found[0]["trace_count"] == len(result.turns):
                break
            time.sleep(0.2)
        return original, result.session_id

    def worst_user(self) -> str:
        users = self.get("/api/users", project="demo", limit=100)["items"]
        return max(users, key=lambda u: (u["error_rate"], u["session_count"]))["user_id"]


def _new_version(message: str, history: list[dict[str, str]]) -> str:
    return f"Sure. About {message.rstrip('?.!').lower()}: here is what I found, step by step."


def _compare(demo: Demo) -> str:
    original, replay = demo.replay()
    return f"/sessions/compare?project=demo&a={_quoted(original)}&b={_quoted(replay)}"


def _quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# (file name, the page's path). Pages from other branches (the project overview, the comparison
# of two users) are added here as they land.
PAGES: list[tuple[str, Callable[[Demo], str]]] = [
    ("projects", lambda demo: "/projects"),
    ("overview", lambda demo: "/projects/demo"),
    ("sessions", lambda demo: "/sessions?project=demo"),
    ("session", lambda demo: f"/sessions/{_quoted(demo.broken_session())}?project=demo"),
    ("trace", lambda demo: f"/traces/{demo.failing_trace()}"),
    ("traces", lambda demo: "/traces?project=demo"),
    ("users", lambda demo: "/users?project=demo"),
    ("user", lambda demo: f"/users/{_quoted(demo.worst_user())}?project=demo"),
    ("users-compare", lambda demo: "/users/compare?project=demo"),
    ("compare", _compare),
    ("docs", lambda demo: "/docs"),
    ("not-found", lambda demo: "/no/such/page"),
]


def _serve(folder: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    log = folder / "serve.log"
    command = [sys.executable, "-m", "spanloom.cli", "serve", "--port", "0", "--grpc-port", "0"]
    command += ["--db", str(folder / "screenshots.db"), "--log-level", "warning"]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SPANLOOM_")}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"dashboard at (http://\S+?)/\s", log.read_text())
        if found:
            return process, found[1], log
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"spanloom serve did not start:\n{log.read_text()}")


def _demo(url: str) -> None:
    command = [
        sys.executable,
        "-m",
        "spanloom.cli",
        "demo",
        "--endpoint",
        f"{url}/v1/traces",
        "--seed",
        str(SEED),
    ]
    subprocess.run(
        command, check=True, env={k: v for k, v in os.environ.items() if not k.startswith("SPANLOOM_")}
    )


def take(out: Path, only: set[str] | None = None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium is not on PATH (apt-get install chromium, or .ci/prerequisites)")
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with tempfile.TemporaryDirectory(prefix="spanloom-screenshots-") as folder:
        process, url, _ = _serve(Path(folder))
        try:
            _demo(url)
            demo = Demo(url)
            pages = [(name, path(demo)) for name, path in PAGES if only is None or name in only]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
                try:
                    for suffix, viewport in WIDTHS.items():
                        context = browser.new_context(viewport=viewport, base_url=url)
                        page = context.new_page()
                        for name, path in pages:
                            response = page.goto(path)
                            status = response.status if response is not None else 0
                            if status >= 500 or (status >= 400 and name != "not-found"):
                                raise SystemExit(f"{path} answered {status}")
                            page.wait_for_load_state("networkidle")
                            target = out / f"{name}{suffix}.png"
                            page.screenshot(path=target, full_page=True)
                            saved.append(target)
                            print(f"{target}  {path}")
                        context.close()
                finally:
                    browser.close()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    parser.add_argument(
        "--only", default="", help="comma-separated page names: " + ", ".join(n for n, _ in PAGES)
    )
    arguments = parser.parse_args()
    only = {name.strip() for name in arguments.only.split(",") if name.strip()} or None
    unknown = (only or set()) - {name for name, _ in PAGES}
    if unknown:
        parser.error(f"no page named {', '.join(sorted(unknown))}")
    saved = take(arguments.out, only)
    print(f"{len(saved)} screenshots in {arguments.out}")


if __name__ == "__main__":
    main()
