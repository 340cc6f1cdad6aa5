"""Code written against OpenInference's context helpers behaves the same with spanloom's.

The semantics follow OpenInference's own tests of its context managers: what
``get_attributes_from_context()`` yields, and that the OpenTelemetry context holds the attribute
entries and nothing else. The same blocks are also run through OpenInference itself (the dev
extra installs it) and the two compared.
"""

from __future__ import annotations

import asyncio
import json

import openinference.instrumentation as openinference
import pytest
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_current, get_value

from spanloom import (
    get_attributes_from_context,
    suppress_tracing,
    using_attributes,
    using_metadata,
    using_prompt_template,
    using_session,
    using_tags,
    using_user,
)

EVERYTHING = {
    "session_id": "test-session",
    "user_id": "test-user",
    "metadata": {"key-int": 1, "key-str": "2", "key-list": [1, 2, 3]},
    "tags": ["tag_2", "tag_1", "tag_2"],  # order and repeats as given
    "prompt_template": "int {var_int}, string {var_str} and list {var_list}",
    "prompt_template_version": "v1.0",
    "prompt_template_variables": {"var_int": 1, "var_str": "2", "var_list": [1, 2, 3]},
}
EXPECTED = {
    "session.id": "test-session",
    "user.id": "test-user",
    "metadata": json.dumps(EVERYTHING["metadata"]),
    "tag.tags": ["tag_2", "tag_1", "tag_2"],
    "llm.prompt_template.template": EVERYTHING["prompt_template"],
    "llm.prompt_template.version": "v1.0",
    "llm.prompt_template.variables": json.dumps(EVERYTHING["prompt_template_variables"]),
}


def test_the_context_inside_using_attributes_holds_the_attributes_and_nothing_else():
    with using_attributes(**EVERYTHING):
        context = get_current()
        yielded = dict(get_attributes_from_context())
        assert dict(context.items()) == EXPECTED
        assert list(context) == list(EXPECTED)
        assert len(context) == len(yielded)
        assert yielded == EXPECTED
    assert dict(get_attributes_from_context()) == {}
    assert len(get_current()) == 0


def test_yields_keys_in_openinference_order_with_tags_as_a_list():
    with using_attributes(**EVERYTHING):
        pairs = list(get_attributes_from_context())
    assert [key for key, _ in pairs] == list(EXPECTED)
    tags = dict(pairs)["tag.tags"]
    assert type(tags) is list
    assert tags == ["tag_2", "tag_1", "tag_2"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: using_session("test-session"), {"session.id": "test-session"}),
        (lambda: using_session(session_id="test-session"), {"session.id": "test-session"}),
        (lambda: using_user("test-user"), {"user.id": "test-user"}),
        (lambda: using_metadata(EVERYTHING["metadata"]), {"metadata": EXPECTED["metadata"]}),
        (lambda: using_tags(["tag_1", "tag_2"]), {"tag.tags": ["tag_1", "tag_2"]}),
        (
            lambda: using_prompt_template(template="T {x}", version="v2", variables={"x": 1}),
            {
                "llm.prompt_template.template": "T {x}",
                "llm.prompt_template.version": "v2",
                "llm.prompt_template.variables": '{"x": 1}',
            },
        ),
    ],
)
def test_each_helper_as_block_and_decorator(make, expected):
    with make():
        assert dict(get_current()) == expected
        assert {key: get_value(key) for key in expected} == expected

    @make()
    def call() -> dict[str, object]:
        return dict(get_current())

    assert call() == expected
    assert dict(get_current()) == {}


def test_inside_a_span_the_context_holds_the_span_and_the_attributes_only(provider):
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("request"):
        span_keys = list(get_current())
        with using_session("s1"), using_user("u1"), using_attributes(session_id="s2", user_id="u2"):
            assert sorted(get_current()) == sorted([*span_keys, "session.id", "user.id"])
            assert get_current()["session.id"] == "s2"
        with using_session("s3"):  # one helper of a new id, then the same helper entered again
            assert sorted(get_current()) == sorted([*span_keys, "session.id"])
        assert list(get_current()) == span_keys


def test_the_same_id_entered_again_and_nested_leaves_no_entries_behind():
    for _ in range(3):
        with using_session("again"):
            with using_session("again"):
                assert list(get_current()) == ["session.id"]
            assert list(get_current()) == ["session.id"]
    assert list(get_current()) == []


def test_suppress_tracing_sets_opentelemetrys_key():
    with suppress_tracing():
        assert get_value(_SUPPRESS_INSTRUMENTATION_KEY) is True
    assert get_value(_SUPPRESS_INSTRUMENTATION_KEY) is None


def test_empty_values_set_nothing_as_in_openinference():
    with using_attributes(metadata={}, tags=[], prompt_template_variables={}):
        assert dict(get_current()) == {}


# --- side by side with OpenInference itself ---


def snapshot() -> tuple[dict[str, object], dict[str, object]]:
    return dict(get_current()), dict(openinference.get_attributes_from_context())


@pytest.mark.parametrize(
    "block",
    [
        {"session_id": "s"},
        {"user_id": "u"},
        {"session_id": "s", "user_id": "u"},
        EVERYTHING,
        {"metadata": {"plan": "pro", "nested": {"a": [1, 2]}}, "tags": ["b", "a"]},
    ],
)
def test_the_same_blocks_give_what_openinference_gives(block):
    with openinference.using_attributes(**block):
        theirs = snapshot()
        their_yield = list(openinference.get_attributes_from_context())
    with using_attributes(**block):
        ours = snapshot()
        our_yield = list(get_attributes_from_context())
    assert ours == theirs
    assert our_yield == their_yield


def test_ids_set_by_either_are_read_by_the_other(provider, exporter):
    with openinference.using_session("from-openinference"):
        assert dict(get_attributes_from_context()) == {"session.id": "from-openinference"}
        provider.get_tracer("t").start_span("theirs").end()
    with using_attributes(session_id="from-spanloom", tags=["t"]):
        assert dict(openinference.get_attributes_from_context()) == {
            "session.id": "from-spanloom",
            "tag.tags": ["t"],
        }
    (span,) = exporter.get_finished_spans()
    assert span.attributes["session.id"] == "from-openinference"


def test_decorated_coroutines_and_generators_match_openinference():
    def run(helpers) -> list[object]:
        @helpers.using_session("s")
        async def coroutine() -> object:
            await asyncio.sleep(0)
            return dict(get_current())

        @helpers.using_user("u")
        def generator():
            yield dict(get_current())
            yield dict(get_current())

        return [asyncio.run(coroutine()), list(generator()), dict(get_current())]

    import spanloom

    assert run(spanloom) == run(openinference)
