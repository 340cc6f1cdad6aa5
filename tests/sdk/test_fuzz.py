"""Fuzzing the SDK's public functions: nothing reaches the caller outside strict mode, and every
span they produce still encodes as OTLP (one bad string must not cost a whole batch).

The default budget keeps the suite fast; `-m slow` runs the long version.
"""

from __future__ import annotations

import asyncio
import math
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

import spanloom
from spanloom import (
    get_attributes_from_context,
    get_tracer,
    log_evaluation,
    using_attributes,
    using_metadata,
    using_prompt_template,
    using_session,
    using_tags,
    using_user,
)

# Text with lone surrogates mixed in often (plain st.text() almost never makes them), plus
# control characters, NULs and astral characters from the full range.
surrogate_text = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(exclude_categories=()), max_size=8),
        st.sampled_from(["\ud800", "\udfff", "\udc80", "\x00", "\U0001f600", "'\"<>&"]),
    ),
    max_size=6,
).map("".join)
odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    surrogate_text,
    st.binary(max_size=50),
    st.builds(object),
    st.sets(st.integers(), max_size=3),
    st.tuples(st.integers(), surrogate_text),
)
json_like = st.recursive(
    odd_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(surrogate_text, st.integers(), st.tuples(st.integers())), children, max_size=4
        ),
    ),
    max_leaves=30,
)
ids = st.one_of(odd_values, st.lists(surrogate_text, max_size=2), st.text(min_size=1000, max_size=5000))

BUDGET = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LONG = settings(BUDGET, max_examples=3000)


@pytest.fixture(autouse=True)
def not_strict(monkeypatch):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    warnings.simplefilter("ignore", spanloom.SpanloomWarning)


def exercise(provider, exporter, session_id, user_id, metadata, tags, template, variables) -> None:
    tracer = get_tracer("fuzz", tracer_provider=provider)

    @tracer.chain
    def step(*args, **kwargs):
        log_evaluation(template if isinstance(template, str) else "score", score=0.5, label=template)
        return {"args": args, "kwargs": kwargs}

    with (
        using_session(session_id),
        using_user(user_id),
        using_metadata(metadata),
        using_tags(tags),
        using_prompt_template(template=template, version=template, variables=variables),
        using_attributes(session_id=session_id, user_id=user_id, metadata=metadata, tags=tags),
    ):
        dict(get_attributes_from_context())
        step(metadata, tags, key=variables)
        with provider.get_tracer("plain").start_as_current_span("plain"):
            pass

    @using_attributes(session_id=session_id, metadata=metadata)
    async def coroutine():
        return step(session_id)

    asyncio.run(coroutine())
    finished = exporter.get_finished_spans()
    assert finished
    for span in finished:
        # OTLP loses (and logs) any attribute whose text is not valid UTF-8.
        for value in [*span.attributes.values(), *(v for e in span.events for v in e.attributes.values())]:
            for text in value if isinstance(value, tuple) else (value,):
                if isinstance(text, str):
                    text.encode("utf-8")
    encode_spans(finished).SerializeToString()
    exporter.clear()


@given(ids, ids, json_like, json_like, odd_values, json_like)
@BUDGET
def test_public_functions_never_raise(
    provider, exporter, session_id, user_id, metadata, tags, template, variables
):
    exercise(provider, exporter, session_id, user_id, metadata, tags, template, variables)


@pytest.mark.slow
@given(ids, ids, json_like, json_like, odd_values, json_like)
@LONG
def test_public_functions_never_raise_long(
    provider, exporter, session_id, user_id, metadata, tags, template, variables
):
    exercise(provider, exporter, session_id, user_id, metadata, tags, template, variables)


def test_deep_nesting_and_huge_metadata(provider, exporter):
    deep: object = "leaf"
    for _ in range(5000):
        deep = {"d": deep}
    huge = {f"key-{index}": "x" * 1000 for index in range(2000)}
    exercise(provider, exporter, "s", "u", deep, ["t"], "tmpl", huge)


def test_nan_scores_and_cycles(provider, exporter):
    cycle: list = []
    cycle.append(cycle)
    exercise(provider, exporter, "s", "u", {"cycle": cycle}, ["t"], "tmpl", {"nan": math.nan})
