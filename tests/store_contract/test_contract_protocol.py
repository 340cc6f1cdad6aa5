"""Every backend implements the whole `Store` protocol, with its signatures: the app calls nothing
else (no probing for optional methods)."""

from __future__ import annotations

import inspect

from spanloom.server.store.base import Store


def _protocol_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(Store).items()
        if callable(member) and not name.startswith("_")
    }


def test_the_store_has_every_protocol_method_with_its_signature(store: Store):
    methods = _protocol_methods()
    assert {"insert_spans", "get_session", "find_session_projects", "count_trace_spans"} <= set(methods)
    for name, expected in methods.items():
        implemented = getattr(type(store), name, None)
        assert implemented is not None, f"{type(store).__name__} has no {name}"
        parameters = list(inspect.signature(implemented).parameters.values())
        wanted = list(expected.parameters.values())
        assert [(p.name, p.kind, p.default) for p in parameters] == [
            (p.name, p.kind, p.default) for p in wanted
        ], name
