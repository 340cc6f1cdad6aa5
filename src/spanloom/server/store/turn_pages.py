"""How a session's turns page (Store.get_session), the same in every backend: what a cursor asks
for, how many turns to fetch, where the next page starts, and the cursors of the answer. The
backends read the turns and count them; this holds the arithmetic around those reads."""

from __future__ import annotations

from typing import NamedTuple

from spanloom.server.store.cursor import TURNS_BEFORE, TURNS_FROM, decode_turns_cursor, encode_cursor
from spanloom.server.store.records import FailingReason, FailingTurn, TraceSummary

TurnKey = tuple[int, str]  # (start time, trace id): the order of a session's turns


class TurnWindow(NamedTuple):
    """Turns from `after` on (inclusive), or those before `before`; neither: from the first."""

    after: TurnKey | None
    before: TurnKey | None

    @classmethod
    def of(cls, cursor: str | None) -> TurnWindow:
        if not cursor:
            return cls(None, None)
        kind, start_ns, trace_id = decode_turns_cursor(cursor)
        return cls((start_ns, trace_id), None) if kind == TURNS_FROM else cls(None, (start_ns, trace_id))

    def fetch(self, limit: int | None) -> int | None:
        """Turns to read for a page of `limit`: one more going forward, to know if a next page is."""
        return None if limit is None else limit + (self.before is None)

    def next_key(self, turns: list[TraceSummary], limit: int | None) -> TurnKey | None:
        """Where the page after `turns` (as read, `fetch` of them) starts; takes the extra turn off
        `turns`."""
        if limit is not None and self.before is None and len(turns) > limit:
            extra = turns.pop()
            return (extra.start_time_ns, extra.trace_id)
        return self.before


def first_key(turns: list[TraceSummary]) -> TurnKey | None:
    return (turns[0].start_time_ns, turns[0].trace_id) if turns else None


def failing_turn_at(key: TurnKey, index: int, reason: FailingReason) -> FailingTurn:
    """The failing turn at `key`, the `index`-th of its session, with the cursor of its page."""
    return FailingTurn(index, key[1], reason, turns_from(key))


def turns_from(key: TurnKey) -> str:
    """The cursor of the page that starts at `key`."""
    return encode_cursor(TURNS_FROM, key[0], (key[1],))


def turns_before(key: TurnKey) -> str:
    """The cursor of the page that ends before `key`."""
    return encode_cursor(TURNS_BEFORE, key[0], (key[1],))
