"""What a list of sessions shows of a session's first input and last output: the words a person
said and the answer (turn_text.py), cut to `PREVIEW_CHARS`.

A list answers with previews, not the texts: a text can be megabytes (a whole chat request with
its system prompt), so fifty of them would make a list page unbounded; and a session's page, not
its list row, is where a turn is read whole. Every backend cuts them here, so they agree.
"""

from __future__ import annotations

from spanloom.server.turn_text import answer_text, user_text

PREVIEW_CHARS = 200
_MORE = "…"


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= PREVIEW_CHARS:
        return text
    return text[: PREVIEW_CHARS - len(_MORE)] + _MORE


def input_preview(text: str | None) -> str | None:
    """The last user message of an input text (the text itself if it holds none), cut."""
    return _clip(user_text(text))


def output_preview(text: str | None) -> str | None:
    """The answer in an output text (the text itself if it holds none), cut."""
    return _clip(answer_text(text))
