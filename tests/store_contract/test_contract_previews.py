"""A list shows each session's first input and last output as previews (the words said and the
answer, cut), the same on every backend; one session shows the texts whole."""

from __future__ import annotations

import json

from contract_kit import every, span, write

from spanloom.server.store.base import Store
from spanloom.server.store.turn_previews import PREVIEW_CHARS


def _chat_request(question: str) -> str:
    return json.dumps(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Answer in one line. " * 500},
                {"role": "user", "content": question},
            ],
        }
    )


def _chat_response(answer: str) -> str:
    return json.dumps(
        {"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}
    )


def _listed(store: Store) -> list[tuple[str | None, str | None]]:
    return [(session.first_input, session.last_output) for session in every(store.list_sessions)]


def test_a_list_shows_previews_and_one_session_the_texts_whole(store: Store):
    question = "Where is my order? " + "It was due on Monday, and then on Tuesday. " * 10
    first_input, last_output = _chat_request(question), _chat_response("It ships tomorrow.")
    llm = {"session_id": "s", "span_kind": "LLM"}
    write(store, [span(1, 1, start_ms=0, input=first_input, output=_chat_response("Looking."), **llm)])
    write(store, [span(2, 1, start_ms=1_000, input=_chat_request("Thanks"), output=last_output, **llm)])
    (listed,) = every(store.list_sessions)
    assert listed.first_input == question[: PREVIEW_CHARS - 1] + "…"
    assert listed.last_output == "It ships tomorrow."
    detail = store.get_session("p1", "s")
    assert detail is not None
    assert (detail.summary.first_input, detail.summary.last_output) == (first_input, last_output)


def test_previews_follow_spans_and_turns_whatever_their_arrival_order(store: Store):
    # A child before its root: the trace's texts are the child's until the root arrives.
    child = span(1, 2, parent=1, start_ms=5, input="child asks", output="child says", session_id="s")
    write(store, [child])
    assert _listed(store) == [("child asks", "child says")]
    root = span(1, 1, start_ms=0, duration_ms=50, input="root asks", output="root says", session_id="s")
    write(store, [root])
    assert _listed(store) == [("root asks", "root says")]
    # An earlier turn, arriving last, is the first input; a later one the last output.
    write(store, [span(0, 1, start_ms=-1_000, input="earliest", output="early answer", session_id="s")])
    write(store, [span(3, 1, start_ms=9_000, input="latest", output="last answer", session_id="s")])
    assert _listed(store) == [("earliest", "last answer")]
