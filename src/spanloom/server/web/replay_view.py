"""What a session's page says of replays: the original it replays (its metadata's ``replay_of``)
and the sessions that replay it, each with a link to the comparison."""

from __future__ import annotations

from typing import Any

from spanloom.server.session_compare import MAX_REPLAYS_LISTED, list_replays, replay_source
from spanloom.server.store.base import SessionSummary, Store


def replay_context(store: Store, session: SessionSummary) -> dict[str, Any]:
    replays = list_replays(store, session.project, session.session_id, MAX_REPLAYS_LISTED)
    return {
        "replay_of": replay_source(session),
        "replays": replays[:MAX_REPLAYS_LISTED],
        "more_replays": len(replays) > MAX_REPLAYS_LISTED,
    }
