"""Pages opened in their own browser context, each watched for what it must never do: open a
dialog (a script from span data ran) or break the Content Security Policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import ConsoleMessage, Dialog, Page

# Each Playwright wait's deadline: generous, as a loaded CI machine needs.
WAIT_MS = 15_000


class Watch:
    def __init__(self, page: Page) -> None:
        self.dialogs: list[str] = []
        self.csp_violations: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp_violations.append(message.text)

    def check(self) -> None:
        assert self.dialogs == [], f"a script from span data ran: {self.dialogs}"
        assert self.csp_violations == [], self.csp_violations


@contextmanager
def page_opener(
    browser: Any, base_url: str, default_viewport: dict[str, int]
) -> Iterator[Callable[..., tuple[Page, Watch]]]:
    """`new_page(viewport=default_viewport)` -> (page, its watch); every context closed at the end."""
    contexts: list[Any] = []

    def new_page(viewport: dict[str, int] = default_viewport) -> tuple[Page, Watch]:
        context = browser.new_context(viewport=viewport, base_url=base_url)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        return page, Watch(page)

    try:
        yield new_page
    finally:
        for context in contexts:
            context.close()
