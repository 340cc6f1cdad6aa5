"""Jinja filters for a turn's text: the user's words and the answer, not the request around them
(see `server.turn_text`), so transcripts and lists read as conversations."""

from __future__ import annotations

from spanloom.server.turn_text import answer_text, user_text

TURN_FILTERS = {"user_text": user_text, "answer_text": answer_text}
