"""The previews a session row keeps of its first input and last output (turn_previews.py), brought
up to date as turns arrive while reading back as few texts as possible.

A new turn nearly always becomes its session's last output, and its text is in the batch being
written: it need not be read back from the spans (an answer is kilobytes, and reading it back for
every session of every commit was a tenth of the writer's time). A first input or last output
still on the trace the stored row names, a trace this transaction did not change, keeps the
preview stored. Only the rest is read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence

from spanloom.server.store.sqlite import session_writes
from spanloom.server.store.sqlite.session_writes import SessionFirsts, SessionRow
from spanloom.server.store.turn_previews import input_preview, output_preview

# Trace id -> (input, output): the texts of traces written whole in this transaction.
TurnTexts = Mapping[str, tuple[str | None, str | None]]
# (first input preview, last output preview)
Previews = tuple[str | None, str | None]


class _Unread:
    """A preview whose text must be read from the store."""


_UNREAD = _Unread()


def _known_preview(
    trace_id: str | None,
    output: bool,
    stored: SessionRow | None,
    known: TurnTexts,
    changed: Collection[str] | None,
) -> str | _Unread | None:
    if trace_id is None:
        return None
    if stored is not None and changed is not None and trace_id not in changed:
        kept_trace = stored.last_output_trace if output else stored.first_input_trace
        if kept_trace == trace_id:
            return stored.last_output_preview if output else stored.first_input_preview
    texts = known.get(trace_id)
    if texts is None:
        return _UNREAD
    return output_preview(texts[1]) if output else input_preview(texts[0])


def session_previews(
    connection: sqlite3.Connection,
    firsts: Sequence[SessionFirsts],
    stored: Mapping[str, SessionRow],
    known: TurnTexts,
    changed: Collection[str] | None,
) -> dict[str, Previews]:
    """The previews of each session of `firsts`, by session id. `stored`: the sessions' rows as
    they are. `known`: texts of traces this transaction wrote whole (new traces: every span of
    theirs is in it). `changed`: every trace this transaction changed, whose texts may differ
    from what the stored previews were made of; None when not known (nothing stored is reused)."""
    found: dict[str, tuple[str | _Unread | None, str | _Unread | None]] = {}
    unread: tuple[set[str], set[str]] = (set(), set())  # traces whose input, output to read
    for row in firsts:
        kept = stored.get(row.session_id)
        first = _known_preview(row.first_input_trace, False, kept, known, changed)
        last = _known_preview(row.last_output_trace, True, kept, known, changed)
        found[row.session_id] = (first, last)
        if isinstance(first, _Unread) and row.first_input_trace is not None:
            unread[0].add(row.first_input_trace)
        if isinstance(last, _Unread) and row.last_output_trace is not None:
            unread[1].add(row.last_output_trace)
    texts = tuple(
        session_writes.select_trace_texts(connection, bool(output), sorted(traces)) if traces else {}
        for output, traces in enumerate(unread)
    )
    return {
        row.session_id: (
            _read(found[row.session_id][0], row.first_input_trace, texts[0], input_preview),
            _read(found[row.session_id][1], row.last_output_trace, texts[1], output_preview),
        )
        for row in firsts
    }


def _read(
    preview: str | _Unread | None,
    trace_id: str | None,
    texts: Mapping[str, str | None],
    make: Callable[[str | None], str | None],
) -> str | None:
    if isinstance(preview, _Unread):
        return make(texts.get(trace_id or ""))
    return preview
