"""`list_replays`: the sessions whose metadata names a session under `replay_of`, within its
project, oldest first, bounded; a late turn that adds the metadata makes a session a replay."""

from __future__ import annotations

from contract_kit import span, write

from spanloom.server.store.base import REPLAY_OF, Store


def _session(
    store: Store, trace: int, session_id: str, start_ms: float, project: str = "p1", **metadata: object
):
    write(
        store,
        [span(trace, 1, project=project, start_ms=start_ms, session_id=session_id, metadata=dict(metadata))],
    )


def test_replays_of_a_session_oldest_first(store: Store):
    _session(store, 1, "orig", 0)
    _session(store, 2, "replay-b", 3_000, **{REPLAY_OF: "orig"})
    _session(store, 3, "replay-a", 2_000, **{REPLAY_OF: "orig", "plan": "pro"})
    _session(store, 4, "replay-c", 3_000, **{REPLAY_OF: "orig"})  # same start as replay-b: by id
    _session(store, 5, "other", 4_000, **{REPLAY_OF: "elsewhere"})
    _session(store, 6, "plain", 5_000, plan="pro")
    _session(store, 7, "numeric", 6_000, **{REPLAY_OF: 7})  # not a session id: ids are strings
    _session(store, 8, "in-p2", 7_000, project="p2", **{REPLAY_OF: "orig"})

    found = store.list_replays("p1", "orig", 10)
    assert [s.session_id for s in found] == ["replay-a", "replay-b", "replay-c"]
    assert all(s.project == "p1" and s.metadata[REPLAY_OF] == "orig" for s in found)
    assert found[0].metadata == {REPLAY_OF: "orig", "plan": "pro"}
    assert [s.session_id for s in store.list_replays("p1", "orig", 2)] == ["replay-a", "replay-b"]
    assert [s.session_id for s in store.list_replays("p2", "orig", 10)] == ["in-p2"]
    assert store.list_replays("p1", "7", 10) == []
    assert store.list_replays("p1", "plain", 10) == []
    assert store.list_replays("p3", "orig", 10) == []


def test_a_later_turn_can_make_a_session_a_replay(store: Store):
    _session(store, 1, "orig", 0)
    _session(store, 2, "late", 1_000)
    assert store.list_replays("p1", "orig", 10) == []
    _session(store, 3, "late", 2_000, **{REPLAY_OF: "orig"})
    (found,) = store.list_replays("p1", "orig", 10)
    assert (found.session_id, found.trace_count) == ("late", 2)


def test_odd_values_match_only_exactly(store: Store):
    # Metadata values are whatever the sender put there: quotes and braces match as themselves,
    # and a replay_of nested deeper is not the key.
    _session(store, 1, "odd", 0, **{REPLAY_OF: "quote\" brace} 'x", "nested": {"replay_of": "orig"}})
    assert [s.session_id for s in store.list_replays("p1", "quote\" brace} 'x", 10)] == ["odd"]
    assert store.list_replays("p1", "orig", 10) == []
