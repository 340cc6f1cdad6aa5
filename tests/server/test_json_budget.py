"""The OTLP/JSON value budget, counted before decoding: separators and brackets outside strings
only, whatever the strings hold, and without copying the body."""

from __future__ import annotations

import json
import re
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spanloom.server.ingest.value_budget import TooManyValuesError, check_json_budget

MARKS = (b",", b":", b"[", b"{")
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from(',:[]{}"\\ a\u00e9\n')),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=30,
)


def outside_strings(body: bytes) -> int:
    """The count, the plain way: every string blanked first."""
    blanked = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', body)
    return sum(blanked.count(mark) for mark in MARKS)


@given(documents, st.integers(min_value=0, max_value=40), st.booleans())
def test_only_separators_outside_strings_count(document, max_values, ascii_only):
    body = json.dumps(document, ensure_ascii=ascii_only).encode()
    if outside_strings(body) > max_values:
        with pytest.raises(TooManyValuesError):
            check_json_budget(body, max_values)
    else:
        check_json_budget(body, max_values)


def test_a_string_full_of_separators_is_one_value():
    text = '{"a": [1, 2], "b": "x\\"}' * 5000
    body = json.dumps({"resourceSpans": [{"text": text, "quoted": '\\", [{:'}]}).encode()
    check_json_budget(body, 10)


def test_millions_of_tiny_strings_are_refused_without_copying_the_body():
    # re.sub over such a body built a piece per string: 60 times the body, per request.
    body = b"[" + b",".join([b'""'] * 300_000) + b"]"
    tracemalloc.start()
    try:
        with pytest.raises(TooManyValuesError):
            check_json_budget(body, 100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(body) // 10, peak
