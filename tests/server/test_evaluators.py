"""Built-in evaluators and their configuration file, as pure functions over span records."""

from __future__ import annotations

import json

import pytest

from spanloom.server.evaluators.builtin import (
    BUILTIN_EVALUATORS,
    MAX_JUDGED_CHARS,
    EvaluatorOptionError,
    check_pattern_speed,
)
from spanloom.server.evaluators.config import (
    EvaluatorConfig,
    evaluate,
    load_configs,
    parse_configs,
    save_configs,
)
from spanloom.server.store.base import SpanRecord


def span(output: str | None = "ok", *, status: str = "OK", duration_ms: float = 100, **fields) -> SpanRecord:
    return SpanRecord(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id=None,
        name="llm",
        project=fields.pop("project", "bot"),
        start_time_ns=0,
        end_time_ns=int(duration_ms * 1e6),
        span_kind=fields.pop("span_kind", "LLM"),
        status_code=status,  # type: ignore[arg-type]
        status_message=fields.pop("status_message", ""),
        output=output,
        **fields,
    )


def judge(kind: str, record: SpanRecord, **options):
    return EvaluatorConfig(name=kind, kind=kind, options=options).judge(record)


@pytest.mark.parametrize(
    ("kind", "options", "record", "passed"),
    [
        ("error", {}, span(status="ERROR", status_message="rate limited"), False),
        ("error", {}, span(), True),
        ("latency", {"threshold_ms": 500}, span(duration_ms=800), False),
        ("latency", {"threshold_ms": 500}, span(duration_ms=200), True),
        ("json_valid", {}, span('{"a": [1, 2]}'), True),
        ("json_valid", {}, span("{not json"), False),
        ("regex", {"pattern": r"order #\d+"}, span("see order #42"), True),
        ("regex", {"pattern": r"order #\d+"}, span("no order"), False),
        ("regex", {"pattern": r"(?i)password", "mode": "not_match"}, span("your Password is x"), False),
        ("refusal", {}, span("I'm sorry, but I can't help with that."), False),
        ("refusal", {}, span("As an AI language model, I cannot browse."), False),
        ("refusal", {}, span("Sure! Your order shipped yesterday."), True),
        ("length", {"min_chars": 5, "max_chars": 20}, span("tiny"), False),
        ("length", {"min_chars": 5, "max_chars": 20}, span("just right"), True),
        ("length", {"max_chars": 3}, span("too long"), False),
        ("contains_pii", {}, span("mail me at ann@example.com"), False),
        ("contains_pii", {}, span("card 4111 1111 1111 1111"), False),
        ("contains_pii", {}, span("call +1 415 555 0132"), False),
        ("contains_pii", {}, span("nothing personal here"), True),
    ],
)
def test_builtin_verdicts(kind, options, record, passed):
    verdict = judge(kind, record, **options)
    assert verdict is not None
    assert (verdict.score, verdict.label) == ((1.0, "pass") if passed else (0.0, "fail"))
    assert verdict.explanation


def test_pii_explanation_names_kinds_not_values():
    verdict = judge("contains_pii", span("ann@example.com"))
    assert "ann@example.com" not in verdict.explanation and "email" in verdict.explanation


@pytest.mark.parametrize("kind", ["json_valid", "regex", "refusal", "length", "contains_pii"])
def test_output_evaluators_skip_spans_without_output(kind):
    options = {"regex": {"pattern": "x"}, "length": {"max_chars": 3}}.get(kind, {})
    assert judge(kind, span(None), **options) is None


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("nope", {}, "unknown evaluator kind"),
        ("latency", {}, "threshold_ms"),
        ("latency", {"threshold_ms": -1}, "threshold_ms"),
        ("regex", {"pattern": "("}, "does not compile"),
        ("regex", {"pattern": "x", "mode": "sometimes"}, "mode"),
        ("length", {}, "min_chars"),
        ("error", {"threshold_ms": 1}, "takes no option"),
    ],
)
def test_bad_options_are_refused_with_a_reason(kind, options, message):
    with pytest.raises(EvaluatorOptionError, match=message):
        EvaluatorConfig(name="x", kind=kind, options=options)


def test_applies_by_project_and_span_kind():
    configs = [
        EvaluatorConfig(name="slow", kind="latency", project="bot", options={"threshold_ms": 50}),
        EvaluatorConfig(name="errors", kind="error", span_kinds=("LLM", "TOOL")),
    ]
    assert [name for name, _ in evaluate(configs, span(duration_ms=100))] == ["slow", "errors"]
    assert [name for name, _ in evaluate(configs, span(project="other"))] == ["errors"]
    assert [name for name, _ in evaluate(configs, span(span_kind="CHAIN"))] == []


def test_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "conf" / "evaluators.json"
    assert load_configs(path) == []
    configs = [
        EvaluatorConfig(name="fast", kind="latency", project="bot", options={"threshold_ms": 2000}),
        EvaluatorConfig(name="pii", kind="contains_pii"),
    ]
    save_configs(path, configs)
    assert load_configs(path) == configs
    assert json.loads(path.read_text())["evaluators"][0]["kind"] == "latency"
    path.write_text("{broken")
    with pytest.raises(EvaluatorOptionError, match="not JSON"):
        load_configs(path)
    with pytest.raises(EvaluatorOptionError, match="#2"):
        parse_configs({"evaluators": [{"name": "a", "kind": "error"}, {"name": "b", "kind": "latency"}]})
    with pytest.raises(EvaluatorOptionError, match="share a name"):
        parse_configs({"evaluators": [{"name": "a", "kind": "error"}, {"name": "a", "kind": "refusal"}]})


def test_every_builtin_is_described():
    assert set(BUILTIN_EVALUATORS) == {
        "error",
        "latency",
        "json_valid",
        "regex",
        "refusal",
        "length",
        "contains_pii",
    }
    assert all(evaluator.description for evaluator in BUILTIN_EVALUATORS.values())


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+$", r"(a|aa)+$", r"(\w+\s?)*$", r"(x+x+)+y", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}"],
)
def test_catastrophic_patterns_are_refused_where_detectable(pattern):
    with pytest.raises(EvaluatorOptionError, match="backtracks catastrophically"):
        check_pattern_speed(pattern)


@pytest.mark.parametrize(
    "pattern", [r"order #\d+", r"(?i)password", r"^\s*\{.*\}\s*$", r"\bsk-[A-Za-z0-9]{20,}\b"]
)
def test_ordinary_patterns_pass_the_speed_check(pattern):
    check_pattern_speed(pattern)


def test_a_pattern_that_runs_out_of_time_gives_no_verdict(caplog):
    # Configured by hand (the CLI would refuse it): the time limit still holds. A pattern no other
    # test uses: the warning is logged once per pattern and process.
    config = EvaluatorConfig(name="shape", kind="regex", options={"pattern": "(q|qq)+$"})
    with caplog.at_level("WARNING"):
        assert config.judge(span("q" * 5000 + "!")) is None
    assert "(q|qq)+$" in caplog.text
    assert config.judge(span("qqqq")).label == "pass"  # short outputs are still judged


def test_text_evaluators_read_a_bounded_prefix():
    late = "x" * MAX_JUDGED_CHARS + " write to ann@example.com"
    assert judge("contains_pii", span(late)).label == "pass"  # past the bound: not read
    assert judge("contains_pii", span(late[-40:])).label == "fail"
    assert judge("length", span(late), max_chars=MAX_JUDGED_CHARS).label == "fail"  # length is exact
