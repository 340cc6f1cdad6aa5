"""log_evaluation(): results recorded as span events that travel with the span."""

from __future__ import annotations

import math
import warnings

import pytest

from spanloom import SpanloomWarning, log_evaluation

from .warning_kit import spanloom_warning_files


def evaluation_events(exporter):
    [span] = exporter.get_finished_spans()
    return [dict(event.attributes) for event in span.events if event.name == "evaluation"]


def test_on_the_current_span(provider, exporter):
    with provider.get_tracer("t").start_as_current_span("answer"):
        log_evaluation("helpfulness", score=0.8, explanation="clear and correct")
        log_evaluation("toxicity", label="safe")
    assert evaluation_events(exporter) == [
        {
            "evaluation.name": "helpfulness",
            "evaluation.score": 0.8,
            "evaluation.explanation": "clear and correct",
        },
        {"evaluation.name": "toxicity", "evaluation.label": "safe"},
    ]


def test_on_an_explicit_span(provider, exporter):
    span = provider.get_tracer("t").start_span("answer")
    log_evaluation("correct", score=1, label="pass", span=span)
    span.end()
    assert evaluation_events(exporter) == [
        {"evaluation.name": "correct", "evaluation.score": 1.0, "evaluation.label": "pass"}
    ]


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": "", "score": 1.0},
        {"name": "x"},
        {"name": "x", "score": "high"},
        {"name": "x", "score": math.nan},
        {"name": "x", "score": 1e7},
        {"name": "x", "score": True},
        {"name": "x", "label": 3},
    ],
)
def test_bad_input_warns_and_records_nothing(arguments, provider, exporter, monkeypatch):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    with provider.get_tracer("t").start_as_current_span("answer"), pytest.warns(SpanloomWarning) as record:
        log_evaluation(**arguments)
    assert spanloom_warning_files(record) == {__file__}
    assert evaluation_events(exporter) == []


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("SPANLOOM_STRICT", "1")
    with pytest.raises(ValueError):
        log_evaluation("x")


def test_outside_any_span_is_a_quiet_no_op(provider, exporter, monkeypatch, caplog):
    monkeypatch.setenv("SPANLOOM_STRICT", "1")  # even strict mode has nothing to complain about
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert log_evaluation("helpfulness", score=1.0) is None
    assert caught == [] and caplog.records == []
    # Nothing was kept for later: the next span carries no evaluation.
    with provider.get_tracer("t").start_as_current_span("answer"):
        pass
    assert evaluation_events(exporter) == []
