"""A span's resource (its service's attributes) is the same text on every span one service sends:
it is kept once, in `resources` (schema.V10), and spans name it by `resource_key`.

The key is a hash of the resource's JSON, computed where the rows are built (span_rows.py), so
the writer does not look keys up per span. Two texts can share a key: the writer checks, per
transaction, that the row under each key holds this very text, and a span whose resource lost
that race keeps its text in its own row (`resource`) instead. A span either names a row of
`resources` or holds its resource itself; reads take whichever it has (`RESOURCE_SQL`).

Rows of `resources` are never deleted: there are as many as distinct resources ever sent (a few
per service and version), and deleting one would need a scan of the spans for its key.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping

from spanloom.server.store.json_values import to_json

# A span's resource as stored, for a query over `spans` (unaliased).
RESOURCE_SQL = (
    "COALESCE((SELECT r.resource FROM resources r WHERE r.resource_key = spans.resource_key), spans.resource)"
)


def resource_key(resource_json: str) -> int:
    """The key of a resource's JSON: 31 bits of its hash, so SQLite stores it in 4 bytes."""
    digest = hashlib.blake2b(resource_json.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF


def store_resources(connection: sqlite3.Connection, resources: Mapping[int, str]) -> set[int]:
    """Keep these resources (key -> JSON); returns the keys under which another text is stored
    already (their spans must hold their resource themselves)."""
    if not resources:
        return set()
    keys = to_json(list(resources))
    connection.executemany(
        "INSERT OR IGNORE INTO resources (resource_key, resource) VALUES (?, ?)", resources.items()
    )
    return {
        key
        for key, stored in connection.execute(
            "SELECT resource_key, resource FROM resources"
            " WHERE resource_key IN (SELECT value FROM json_each(?))",
            (keys,),
        )
        if stored != resources[key]
    }
