"""A session read from its end: `last_turns_cursor()` gives the page of its last turns, and
`previous_cursor` the pages before, down to the first (how session evaluators read a long session)."""

from __future__ import annotations

from contract_kit import span, trace_id, write

from spanloom.server.store.base import Store
from spanloom.server.store.cursor import last_turns_cursor


def test_last_turns_cursor_reads_a_session_backwards(store: Store):
    write(store, [span(n, 1, start_ms=n * 10, session_id="long", input=f"q{n}") for n in range(1, 24)])
    last = store.get_session("p1", "long", 5, last_turns_cursor())
    assert last is not None
    assert [t.trace_id for t in last.turns] == [trace_id(n) for n in range(19, 24)]
    assert last.first_turn_index == 18
    if last.next_cursor is not None:  # a cursor past the last turn may be given: it reads nothing
        after = store.get_session("p1", "long", 5, last.next_cursor)
        assert after is not None and after.turns == []
    seen = [t.input for t in last.turns]
    cursor = last.previous_cursor
    while cursor is not None:
        page = store.get_session("p1", "long", 5, cursor)
        assert page is not None and page.turns
        assert page.first_turn_index + len(page.turns) == int(seen[0][1:]) - 1
        seen = [t.input for t in page.turns] + seen
        cursor = page.previous_cursor
    assert seen == [f"q{n}" for n in range(1, 24)]
    short = store.get_session("p1", "long", 100, last_turns_cursor())
    assert short is not None and len(short.turns) == 23 and short.previous_cursor is None
    assert store.get_session("p1", "nobody", 5, last_turns_cursor()) is None
