"""What `q=` asks of the turn-text index (search_index.py): the traces that may hold `q`.

The index holds trigrams, folded to one case, without positions. A text holding `q` (as LIKE
sees it: ASCII letters in either case, everything else as it is) holds every trigram of `q`
folded, so the traces holding all of them are a superset of those that match: the reads keep
their LIKE as the final check, and the results are exactly the LIKE's. A `q` of fewer than three
characters has no trigram: the reads scan as before.

The traces the indexer has not reached (noted in `turn_text_pending`, search_index.py) are
candidates whatever the index says: their texts are read, so results never depend on how far
the indexer has got.
"""

from __future__ import annotations

# Trigrams asked for at most: more narrow the candidates little, and each is a doclist to read.
_MOST_TRIGRAMS = 12

# For `t`, a trace: true when its texts may hold `q`, as the index says or because the trace
# waits for the indexer. One parameter, the MATCH.
CANDIDATE = (
    "(t.rowid IN (SELECT rowid FROM turn_text_index WHERE turn_text_index MATCH ?)"
    " OR t.rowid IN (SELECT trace_rowid FROM turn_text_pending))"
)


def match_expression(q: str) -> str | None:
    """An FTS5 query for the traces whose texts hold every trigram of `q` (a spread of them when
    `q` is long), or None when `q` is too short to have one. Each trigram is a quoted string, so
    nothing in `q` is read as query syntax."""
    if "\x00" in q:
        return None  # a NUL would end the query string early: such a `q` is scanned for
    trigrams = list(dict.fromkeys(q[start : start + 3] for start in range(len(q) - 2)))
    if not trigrams:
        return None
    if len(trigrams) > _MOST_TRIGRAMS:
        step = (len(trigrams) - 1) / (_MOST_TRIGRAMS - 1)
        trigrams = [trigrams[round(index * step)] for index in range(_MOST_TRIGRAMS)]
    return " AND ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)
