"""Tracer decorators: span kinds, inputs, outputs, errors, generators, masking."""

from __future__ import annotations

import asyncio
import json

import pytest
from openinference.semconv.trace import OpenInferenceSpanKindValues
from opentelemetry.trace import SpanKind as OTelSpanKind
from opentelemetry.trace import StatusCode, get_current_span, set_span_in_context

from spanloom import (
    REDACTED_VALUE,
    SpanKind,
    SpanloomWarning,
    TraceConfig,
    get_tracer,
    suppress_tracing,
    using_attributes,
)


@pytest.fixture
def tracer(provider):
    return get_tracer(__name__, tracer_provider=provider, config=TraceConfig())


def spans_by_name(exporter):
    return {span.name: span for span in exporter.get_finished_spans()}


def test_chain_bare_records_kind_inputs_output(tracer, exporter):
    @tracer.chain
    def plan(question: str, depth: int = 2) -> dict:
        return {"steps": depth}

    assert plan("why?", depth=3) == {"steps": 3}
    span = spans_by_name(exporter)["plan"]
    assert span.attributes["openinference.span.kind"] == "CHAIN"
    assert span.attributes["gen_ai.span.kind"] == "CHAIN"
    assert json.loads(span.attributes["input.value"]) == {"question": "why?", "depth": 3}
    assert span.attributes["input.mime_type"] == "application/json"
    assert json.loads(span.attributes["output.value"]) == {"steps": 3}
    assert span.status.status_code is StatusCode.OK


def test_single_string_argument_is_recorded_as_text(tracer, exporter):
    @tracer.llm(name="answer")
    def call_model(prompt: str) -> str:
        return "hello"

    call_model("Say hi")
    span = spans_by_name(exporter)["answer"]
    assert span.attributes["openinference.span.kind"] == "LLM"
    assert (span.attributes["input.value"], span.attributes["input.mime_type"]) == ("Say hi", "text/plain")
    assert (span.attributes["output.value"], span.attributes["output.mime_type"]) == ("hello", "text/plain")


def test_tool_records_name_description_and_schema(tracer, exporter):
    @tracer.tool
    def get_weather(city: str, days: int = 1) -> str:
        """Forecast for a city."""
        return "sunny"

    @tracer.tool(name="lookup", description="Find a user")
    def find(user_id: str) -> str:
        return user_id

    get_weather("Oslo")
    find("u1")
    spans = spans_by_name(exporter)
    weather = spans["get_weather"]
    assert weather.attributes["openinference.span.kind"] == "TOOL"
    assert weather.attributes["tool.name"] == "get_weather"
    assert weather.attributes["tool.description"] == "Forecast for a city."
    assert json.loads(weather.attributes["tool.parameters"]) == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    }
    assert spans["lookup"].attributes["tool.description"] == "Find a user"


def test_methods_do_not_record_self(tracer, exporter):
    class Agent:
        @tracer.agent
        def run(self, task: str) -> str:
            return task.upper()

    assert Agent().run("go") == "GO"
    span = spans_by_name(exporter)["run"]
    assert span.attributes["openinference.span.kind"] == "AGENT"
    assert span.attributes["input.value"] == "go"


def test_exception_sets_error_and_is_reraised_unchanged(tracer, exporter):
    failure = ValueError("bad input")

    @tracer.chain
    def broken() -> None:
        raise failure

    with pytest.raises(ValueError) as raised:
        broken()
    assert raised.value is failure
    span = spans_by_name(exporter)["broken"]
    assert span.status.status_code is StatusCode.ERROR
    assert "bad input" in span.status.description
    assert span.events[0].name == "exception"


def test_nested_spans_and_context_ids(tracer, exporter):
    @tracer.tool
    def search(query: str) -> list:
        return ["a"]

    @tracer.agent
    async def agent(query: str) -> list:
        return search(query)

    with using_attributes(session_id="s1", user_id="u1"):
        assert asyncio.run(agent("q")) == ["a"]
    spans = spans_by_name(exporter)
    assert spans["search"].parent.span_id == spans["agent"].context.span_id
    for span in spans.values():
        assert (span.attributes["session.id"], span.attributes["user.id"]) == ("s1", "u1")


def test_ids_land_without_the_processor(bare_provider, exporter):
    tracer = get_tracer("t", tracer_provider=bare_provider)

    @tracer.chain
    def step() -> int:
        return 1

    with using_attributes(session_id="s", user_id="u"):
        step()
    span = exporter.get_finished_spans()[0]
    assert (span.attributes["session.id"], span.attributes["user.id"]) == ("s", "u")


def test_generator_span_covers_iteration_and_joins_text(tracer, exporter):
    @tracer.llm
    def stream(prompt: str):
        yield "Hel"
        yield "lo"

    assert list(stream("hi")) == ["Hel", "lo"]
    span = spans_by_name(exporter)["stream"]
    assert span.attributes["output.value"] == "Hello"


def test_generator_span_is_not_current_in_the_caller(tracer, exporter):
    from opentelemetry import trace

    @tracer.chain
    def numbers():
        yield trace.get_current_span().get_span_context().span_id

    generator = numbers()
    inside = next(generator)
    assert trace.get_current_span().get_span_context().span_id != inside
    generator.close()
    span = spans_by_name(exporter)["numbers"]
    assert span.context.span_id == inside
    assert span.end_time is not None


def test_async_generator_records_items(tracer, exporter):
    @tracer.chain
    async def numbers(limit: int):
        for index in range(limit):
            yield index

    async def main() -> list[int]:
        return [item async for item in numbers(3)]

    assert asyncio.run(main()) == [0, 1, 2]
    assert json.loads(spans_by_name(exporter)["numbers"].attributes["output.value"]) == [0, 1, 2]


def test_async_generator_error(tracer, exporter):
    @tracer.chain
    async def failing():
        yield 1
        raise RuntimeError("mid-stream")

    async def main() -> None:
        async for _ in failing():
            pass

    with pytest.raises(RuntimeError, match="mid-stream"):
        asyncio.run(main())
    assert spans_by_name(exporter)["failing"].status.status_code is StatusCode.ERROR


def test_start_as_current_span_with_kind(tracer, exporter):
    with (
        using_attributes(session_id="hand"),
        tracer.start_as_current_span("retrieve", span_kind=SpanKind.RETRIEVER) as span,
    ):
        span.set_attribute("custom", 1)
    recorded = spans_by_name(exporter)["retrieve"]
    assert recorded.attributes["openinference.span.kind"] == "RETRIEVER"
    assert recorded.attributes["session.id"] == "hand"


def test_suppress_tracing_records_nothing_but_calls_through(tracer, exporter):
    @tracer.chain
    def step() -> int:
        return 7

    with suppress_tracing():
        assert step() == 7
    assert exporter.get_finished_spans() == ()


def test_hide_inputs_and_outputs(provider, exporter):
    tracer = get_tracer(
        "t", tracer_provider=provider, config=TraceConfig(hide_inputs=True, hide_outputs=True)
    )

    @tracer.chain
    def secret(password: str) -> str:
        return "token"

    secret("hunter2")
    attributes = exporter.get_finished_spans()[0].attributes
    assert attributes["input.value"] == REDACTED_VALUE
    assert attributes["output.value"] == REDACTED_VALUE
    assert "input.mime_type" not in attributes


def test_redaction_keeps_email_user_ids(provider, exporter):
    tracer = get_tracer("t", tracer_provider=provider, config=TraceConfig(redact_patterns=["email"]))

    @tracer.chain
    def reply(text: str) -> str:
        return "write to bob@example.com"

    with using_attributes(user_id="alice@example.com", session_id="s"):
        reply("I am alice@example.com")
    attributes = exporter.get_finished_spans()[0].attributes
    assert attributes["user.id"] == "alice@example.com"
    assert attributes["input.value"] == f"I am {REDACTED_VALUE}"
    assert attributes["output.value"] == f"write to {REDACTED_VALUE}"


def test_unserializable_arguments_never_break_the_call(tracer, exporter):
    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        def __str__(self) -> str:
            raise RuntimeError("no str")

    @tracer.chain
    def accept(thing: object, other: int = 1) -> int:
        return 5

    assert accept(Opaque()) == 5


KIND_FORMS = [
    SpanKind.RETRIEVER,
    "retriever",
    "RETRIEVER",
    OpenInferenceSpanKindValues.RETRIEVER,
]


@pytest.mark.parametrize("keyword", ["span_kind", "openinference_span_kind", "fi_span_kind"])
@pytest.mark.parametrize("kind", KIND_FORMS, ids=repr)
def test_span_kind_under_every_name_and_form(tracer, exporter, keyword, kind):
    with using_attributes(session_id="hand"), tracer.start_as_current_span("current", **{keyword: kind}):
        pass
    tracer.start_span("started", **{keyword: kind}).end()
    for name in ("current", "started"):
        recorded = spans_by_name(exporter)[name]
        assert recorded.attributes["openinference.span.kind"] == "RETRIEVER", name
        assert recorded.attributes["gen_ai.span.kind"] == "RETRIEVER", name
    assert spans_by_name(exporter)["current"].attributes["session.id"] == "hand"


def test_start_as_current_span_takes_opentelemetrys_arguments_in_order(tracer, exporter):
    parent = tracer.start_span("parent")
    with tracer.start_as_current_span(
        "child", set_span_in_context(parent), OTelSpanKind.CLIENT, {"custom": 1}
    ) as span:
        assert get_current_span() is span
    parent.end()
    child = spans_by_name(exporter)["child"]
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.kind is OTelSpanKind.CLIENT
    assert child.attributes["custom"] == 1
    assert child.attributes["openinference.span.kind"] == "CHAIN"


def test_an_unknown_span_kind_warns_and_records_chain(tracer, exporter, monkeypatch):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    with pytest.warns(SpanloomWarning, match="span kind"):
        tracer.start_span("odd", openinference_span_kind="banana").end()
    assert spans_by_name(exporter)["odd"].attributes["openinference.span.kind"] == "CHAIN"
