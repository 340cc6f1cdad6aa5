"""A session's transcript as its evaluators read it from a real server's store: bounded to its last
turns, read a page at a time, with positions in the whole session, texts, failures, tools and
feedback."""

from __future__ import annotations

from _server_kit import RunningServer
from _session_kit import PROJECT, post_conversation

from spanloom.server.evaluators.transcript import MAX_TEXT_CHARS, read_transcript


def test_a_long_session_is_read_from_its_end_within_the_bound(server: RunningServer):
    turns = [
        {"question": f"question {n}", "answer": f"answer {n}", "error": n == 48, "tool": n == 49}
        for n in range(50)
    ]
    turns[-1]["answer"] = "x" * 10_000
    trace_ids = post_conversation(server, "long", turns)
    server.client.post(
        "/api/feedback", json={"trace_id": trace_ids[49], "score": -1, "comment": "meh", "project": PROJECT}
    )
    server.client.post("/api/feedback", json={"session_id": "long", "label": "good", "project": PROJECT})
    transcript = read_transcript(server.store, PROJECT, "long", max_turns=23, page_turns=7)
    assert transcript is not None
    assert (transcript.total_turns, len(transcript.turns), transcript.truncated) == (50, 23, True)
    assert [t.index for t in transcript.turns] == list(range(27, 50))
    assert [t.question for t in transcript.turns] == [f"question {n}" for n in range(27, 50)]
    last = transcript.turns[-1]
    assert last.trace_id == trace_ids[49] and len(last.answer) == MAX_TEXT_CHARS + 1
    assert [tool.name for tool in last.tools] == ["search"] and transcript.turns[-2].failed
    assert [(f.score, f.comment, f.negative) for f in last.feedback] == [(-1.0, "meh", True)]
    assert [(f.label, f.negative) for f in transcript.feedback] == [("good", False)]
    whole = read_transcript(server.store, PROJECT, "long")
    assert whole is not None and not whole.truncated and [t.index for t in whole.turns] == list(range(50))
    assert read_transcript(server.store, PROJECT, "nobody") is None
