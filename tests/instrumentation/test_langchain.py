"""LangChainInstrumentor: LangChain and LangGraph runs as spans, with their parents, under the
current OpenTelemetry context; with a provider instrumentor on too, each model call once.

The models are the real ``langchain-openai`` / ``langchain-anthropic`` chat models over the
MockTransport fakes; one test sends the spans to a real ``spanloom serve`` and reads back what
it computed (cost included).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import operator
import warnings
from typing import Annotated, TypedDict

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from opentelemetry.trace import StatusCode

from spanloom import register, using_attributes, using_session, using_user
from spanloom.instrumentation.anthropic import AnthropicInstrumentor
from spanloom.instrumentation.langchain import LangChainInstrumentor
from spanloom.instrumentation.openai import OpenAIInstrumentor

from ..server._server_kit import run_server, wait_for
from .fakes import (
    anthropic_events,
    anthropic_message,
    anthropic_sse,
    chat_chunks,
    chat_completion,
    json_response,
    only_span,
    openai_sse,
)
from .langchain_kit import chat_anthropic, chat_openai, get_weather

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}


@pytest.fixture
def langchain_instrumented(provider):
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def all_instrumented(provider, langchain_instrumented):
    openai_instrumentor, anthropic_instrumentor = OpenAIInstrumentor(), AnthropicInstrumentor()
    openai_instrumentor.instrument(tracer_provider=provider)
    anthropic_instrumentor.instrument(tracer_provider=provider)
    yield
    openai_instrumentor.uninstrument()
    anthropic_instrumentor.uninstrument()


def spans_by_name(exporter):
    spans = exporter.get_finished_spans()
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [span.name for span in spans]
    return named


def children_of(exporter, parent):
    return [
        span.name
        for span in sorted(exporter.get_finished_spans(), key=lambda span: span.start_time)
        if span.parent is not None and span.parent.span_id == parent.context.span_id
    ]


# --- the model call ---


def test_chain_through_spanloom_serve_has_model_tokens_cost_output_and_the_session(tmp_path, api):
    api.reply(json_response(chat_completion("Leaves drift and fall")))
    with run_server(tmp_path / "spans.db") as server:
        provider = register(
            project_name="lc", endpoint=server.traces_endpoint, batch=False, set_global_tracer_provider=False
        )
        instrumentors = (LangChainInstrumentor(), OpenAIInstrumentor())
        for instrumentor in instrumentors:
            instrumentor.instrument(tracer_provider=provider)
        try:
            chain = ChatPromptTemplate.from_messages([("user", "Write a haiku about {topic}")])
            chain = chain | chat_openai(api) | StrOutputParser()
            with using_session("conv-lc"), using_user("alice"):
                assert chain.invoke({"topic": "autumn"}) == "Leaves drift and fall"
        finally:
            for instrumentor in instrumentors:
                instrumentor.uninstrument()
            provider.shutdown()

        listed = wait_for(lambda: server.get_json("/api/traces", project="lc", session_id="conv-lc")["items"])
        (trace,) = listed
        spans = server.get_json(f"/api/traces/{trace['trace_id']}", project="lc")["spans"]

    assert sorted(span["name"] for span in spans) == [
        "ChatOpenAI",
        "ChatPromptTemplate",
        "RunnableSequence",
        "StrOutputParser",
    ]
    assert {(span["session_id"], span["user_id"]) for span in spans} == {("conv-lc", "alice")}
    (llm,) = [span for span in spans if span["span_kind"] == "LLM"]  # the model call, once
    assert llm["model"] == "gpt-4o-mini-2024-07-18"
    assert (llm["prompt_tokens"], llm["completion_tokens"], llm["total_tokens"]) == (12, 7, 19)
    # gpt-4o-mini's list price; 4 of the 12 prompt tokens were cache reads, at half price.
    assert llm["cost"] == pytest.approx((8 * 0.15 + 4 * 0.075 + 7 * 0.6) / 1e6)
    assert llm["output"] == "Leaves drift and fall"
    assert trace["cost"] == pytest.approx(llm["cost"])  # counted once in the trace too
    root = next(span for span in spans if span["parent_span_id"] is None)
    assert root["name"] == "RunnableSequence"
    assert {span["parent_span_id"] for span in spans if span is not root} == {root["span_id"]}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_chat_model_alone_records_the_call_from_langchain(langchain_instrumented, api, exporter, is_async):
    api.reply(json_response(chat_completion()))
    model = chat_openai(api)
    with using_session("s-lc"):
        if is_async:
            asyncio.run(model.ainvoke("Write a haiku"))
        else:
            model.invoke("Write a haiku")
    span = only_span(exporter)
    attributes = span.attributes
    assert span.name == "ChatOpenAI"
    assert attributes["openinference.span.kind"] == "LLM"
    assert attributes["session.id"] == "s-lc"
    assert attributes["llm.model_name"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["llm.provider"] == "openai"
    assert attributes["llm.input_messages.0.message.role"] == "user"
    assert attributes["llm.input_messages.0.message.content"] == "Write a haiku"
    assert attributes["llm.output_messages.0.message.content"] == "Leaves drift and fall"
    assert attributes["output.value"] == "Leaves drift and fall"
    assert attributes["llm.finish_reason"] == "stop"
    assert (attributes["llm.token_count.prompt"], attributes["llm.token_count.completion"]) == (12, 7)
    assert attributes["llm.token_count.total"] == 19
    assert attributes["llm.token_count.prompt_details.cache_read"] == 4
    # under the GenAI convention too, as the provider instrumentors record them
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 4
    assert attributes["llm.token_count.completion_details.reasoning"] == 2
    assert json.loads(attributes["llm.invocation_parameters"])["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_with_the_provider_instrumentor_the_call_is_one_span(all_instrumented, api, exporter, is_async):
    api.reply(json_response(chat_completion()))
    model = chat_openai(api)
    with using_session("s-once"):
        if is_async:
            asyncio.run(model.ainvoke("Write a haiku"))
        else:
            model.invoke("Write a haiku")
    span = only_span(exporter)  # not a ChatCompletion span beside it
    attributes = span.attributes
    assert span.name == "ChatOpenAI"
    assert attributes["session.id"] == "s-once"
    # The provider's view of the call: the exact request it sent, its usage details.
    assert json.loads(attributes["input.value"])["messages"] == [{"content": "Write a haiku", "role": "user"}]
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 4
    assert attributes["llm.model_name"] == "gpt-4o-mini-2024-07-18"
    assert attributes["llm.token_count.total"] == 19
    assert attributes["output.value"] == "Leaves drift and fall"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_streams_are_one_span_each(all_instrumented, api, exporter, is_async):
    api.reply(
        openai_sse(chat_chunks(["Leaves ", "drift"])), anthropic_sse(anthropic_events(["Quiet ", "pond"]))
    )
    models = (chat_openai(api, stream_usage=True), chat_anthropic(api))

    async def consume_async():
        texts = []
        for model in models:
            texts.append("".join([chunk.content async for chunk in model.astream("Write a haiku")]))
        return texts

    with using_session("s-stream"):
        if is_async:
            texts = asyncio.run(consume_async())
        else:
            texts = ["".join(chunk.content for chunk in model.stream("Write a haiku")) for model in models]
    assert texts == ["Leaves drift", "Quiet pond"]
    spans = spans_by_name(exporter)
    assert set(spans) == {"ChatOpenAI", "ChatAnthropic"}
    assert spans["ChatOpenAI"].attributes["output.value"] == "Leaves drift"
    assert spans["ChatOpenAI"].attributes["llm.token_count.completion"] == 50
    assert spans["ChatAnthropic"].attributes["output.value"] == "Quiet pond"
    assert spans["ChatAnthropic"].attributes["llm.token_count.completion"] == 42
    assert {span.attributes["session.id"] for span in spans.values()} == {"s-stream"}


def test_anthropic_chat_model_alone(langchain_instrumented, api, exporter):
    api.reply(json_response(anthropic_message("Quiet pond")))
    chat_anthropic(api).invoke([("system", "Be brief."), ("user", "Write a haiku")])
    attributes = only_span(exporter).attributes
    assert attributes["llm.input_messages.0.message.role"] == "system"
    assert attributes["llm.input_messages.1.message.role"] == "user"
    assert attributes["llm.model_name"] == "claude-sonnet-4-5-20250929"
    assert attributes["llm.finish_reason"] == "end_turn"
    assert attributes["llm.token_count.prompt"] == 15  # LangChain counts the cache in
    assert attributes["llm.token_count.prompt_details.cache_write"] == 2
    assert attributes["output.value"] == "Quiet pond"


def test_tool_calls_on_the_model_span(langchain_instrumented, api, exporter):
    api.reply(
        json_response(chat_completion(None, message={"tool_calls": [CALL]}, finish_reason="tool_calls"))
    )
    chat_openai(api).bind_tools([get_weather]).invoke("Weather in Oslo?")
    attributes = only_span(exporter).attributes
    assert json.loads(attributes["llm.tools.0.tool.json_schema"])["function"]["name"] == "get_weather"
    call = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{call}.id"] == "call_1"
    assert attributes[f"{call}.function.name"] == "get_weather"
    assert json.loads(attributes[f"{call}.function.arguments"]) == {"city": "Oslo"}
    assert attributes["llm.finish_reason"] == "tool_calls"
    assert "tools" not in json.loads(attributes["llm.invocation_parameters"])


# --- chains, tools, retrievers, agents ---


class _Shelf(BaseRetriever):
    def _get_relevant_documents(self, query, *, run_manager):
        return [Document(page_content=f"About {query}", metadata={"source": "shelf"}, id="doc-1")]


def test_tool_retriever_and_chain_spans(langchain_instrumented, exporter):
    with using_session("s-parts"):
        assert get_weather.invoke({"city": "Oslo"}) == "sunny in Oslo"
        _Shelf().invoke("frogs")
        RunnableLambda(lambda text: text.upper(), name="shout").invoke("hi")
    spans = spans_by_name(exporter)
    tool = spans["get_weather"].attributes
    assert tool["openinference.span.kind"] == "TOOL"
    assert tool["tool.name"] == "get_weather"
    assert tool["tool.description"] == "Weather for a city."
    assert json.loads(tool["input.value"]) == {"city": "Oslo"}
    assert tool["output.value"] == "sunny in Oslo"
    retriever = spans["_Shelf"].attributes
    assert retriever["openinference.span.kind"] == "RETRIEVER"
    assert retriever["input.value"] == "frogs"
    assert retriever["retrieval.documents.0.document.content"] == "About frogs"
    assert retriever["retrieval.documents.0.document.id"] == "doc-1"
    assert json.loads(retriever["retrieval.documents.0.document.metadata"]) == {"source": "shelf"}
    chain = spans["shout"].attributes
    assert chain["openinference.span.kind"] == "CHAIN"
    assert (chain["input.value"], chain["output.value"]) == ("hi", "HI")
    assert {span.attributes["session.id"] for span in spans.values()} == {"s-parts"}


def test_a_failing_run_is_an_error_span_and_still_raises(langchain_instrumented, exporter):
    def boom(_):
        raise ValueError("no frogs today")

    with pytest.raises(ValueError, match="no frogs"):
        (RunnableLambda(lambda text: text, name="first") | RunnableLambda(boom, name="boom")).invoke("x")
    spans = spans_by_name(exporter)
    assert spans["boom"].status.status_code is StatusCode.ERROR
    assert spans["boom"].events[0].name == "exception"
    assert spans["RunnableSequence"].status.status_code is StatusCode.ERROR
    assert spans["first"].status.status_code is StatusCode.UNSET


def test_runs_nest_under_the_apps_span_and_the_apps_spans_under_runs(
    langchain_instrumented, provider, exporter
):
    tracer = provider.get_tracer("app")

    def step(text):
        with tracer.start_as_current_span("app.inside"):
            return text

    with tracer.start_as_current_span("app.request"):
        (RunnableLambda(step, name="step") | RunnableLambda(str.upper, name="upper")).invoke("hi")
    spans = spans_by_name(exporter)
    assert children_of(exporter, spans["app.request"]) == ["RunnableSequence"]
    assert children_of(exporter, spans["RunnableSequence"]) == ["step", "upper"]
    assert children_of(exporter, spans["step"]) == ["app.inside"]
    assert len({span.context.trace_id for span in spans.values()}) == 1


def test_agent_runs_are_agent_spans(langchain_instrumented, exporter):
    RunnableLambda(lambda text: text, name="SupportAgent").invoke("hi")
    assert only_span(exporter).attributes["openinference.span.kind"] == "AGENT"


# --- LangGraph ---


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def _graph():
    graph = StateGraph(State)
    for name in ("plan", "search", "answer"):
        graph.add_node(name, lambda state, name=name: {"steps": [name]})
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "search")
    graph.add_edge("search", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_graph_invoked_once_is_one_trace_with_a_span_per_node(langchain_instrumented, exporter, is_async):
    graph = _graph()
    with using_attributes(session_id="s-graph", user_id="u-graph"):
        result = asyncio.run(graph.ainvoke({"steps": []})) if is_async else graph.invoke({"steps": []})
    assert result == {"steps": ["plan", "search", "answer"]}
    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == ["LangGraph", "answer", "plan", "search"]
    assert len({span.context.trace_id for span in spans}) == 1
    root = spans_by_name(exporter)["LangGraph"]
    assert root.parent is None
    assert children_of(exporter, root) == ["plan", "search", "answer"]
    assert {(span.attributes["session.id"], span.attributes["user.id"]) for span in spans} == {
        ("s-graph", "u-graph")
    }
    assert json.loads(root.attributes["output.value"]) == result


def test_a_graph_node_calling_the_model_nests_the_model_call(all_instrumented, api, exporter):
    api.reply(json_response(chat_completion("Leaves drift and fall")))
    model = chat_openai(api)
    graph = StateGraph(State)
    graph.add_node("write", lambda state: {"steps": [model.invoke("Write a haiku").content]})
    graph.add_edge(START, "write")
    graph.add_edge("write", END)
    with using_session("s-graph-model"):
        graph.compile().invoke({"steps": []})
    spans = spans_by_name(exporter)
    assert set(spans) == {"LangGraph", "write", "ChatOpenAI"}
    assert children_of(exporter, spans["write"]) == ["ChatOpenAI"]
    assert spans["ChatOpenAI"].attributes["llm.token_count.total"] == 19
    assert {span.attributes["session.id"] for span in spans.values()} == {"s-graph-model"}


def test_a_react_agent_is_one_trace_of_agent_model_and_tool_spans(all_instrumented, api, exporter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it moved to the langchain package, which is not needed here
        from langgraph.prebuilt import create_react_agent

        agent = create_react_agent(chat_openai(api), [get_weather])
    api.reply(
        json_response(chat_completion(None, message={"tool_calls": [CALL]}, finish_reason="tool_calls")),
        json_response(chat_completion("It is sunny in Oslo")),
    )
    with using_session("s-agent"):
        result = agent.invoke({"messages": [("user", "Weather in Oslo?")]})
    assert result["messages"][-1].content == "It is sunny in Oslo"
    spans = exporter.get_finished_spans()
    assert len({span.context.trace_id for span in spans}) == 1
    by_id = {span.context.span_id: span for span in spans}

    def kinds(kind):
        return [span for span in spans if span.attributes["openinference.span.kind"] == kind]

    assert [span.name for span in kinds("AGENT")] == ["agent", "agent"]
    (tool,) = kinds("TOOL")
    assert (tool.name, tool.attributes["output.value"]) == ("get_weather", "sunny in Oslo")
    assert by_id[tool.parent.span_id].name == "tools"
    models = kinds("LLM")
    assert [span.name for span in models] == ["ChatOpenAI", "ChatOpenAI"]  # two calls, once each
    assert models[0].attributes["llm.finish_reason"] == "tool_calls"
    assert models[1].attributes["output.value"] == "It is sunny in Oslo"
    assert {span.attributes["session.id"] for span in spans} == {"s-agent"}


def test_a_model_run_ended_in_another_context_is_not_claimed_later(
    all_instrumented, api, openai_client, exporter
):
    # Where LangChain ends a run in another task than it started in, the run's context stays
    # current in the first; a provider call made there afterwards gets its own span, not the
    # ended run's (whose span would drop what it wrote).
    from langchain_core.callbacks import CallbackManager
    from langchain_core.messages import HumanMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    def scenario():
        (run,) = CallbackManager.configure().on_chat_model_start({}, [[HumanMessage("hi")]], name="Model")
        result = LLMResult(generations=[[ChatGeneration(message=AIMessage("hello"))]])
        contextvars.copy_context().run(run.on_llm_end, result)
        api.reply(json_response(chat_completion()))
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )

    contextvars.copy_context().run(scenario)  # the run's context stays behind in that copy only
    spans = spans_by_name(exporter)
    assert set(spans) == {"Model", "ChatCompletion"}
    assert spans["ChatCompletion"].attributes["output.value"] == "Leaves drift and fall"
    assert spans["Model"].attributes["output.value"] == "hello"


# --- the instrumentor itself ---


def test_uninstrument_stops_the_spans_and_instrumenting_twice_does_not_double(provider, exporter):
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    instrumentor.instrument(tracer_provider=provider)
    try:
        RunnableLambda(str.upper, name="upper").invoke("hi")
        assert len(exporter.get_finished_spans()) == 1
    finally:
        instrumentor.uninstrument()
    RunnableLambda(str.upper, name="upper").invoke("hi")
    assert len(exporter.get_finished_spans()) == 1


def test_a_broken_span_costs_the_telemetry_not_the_run(langchain_instrumented, exporter, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("tracer broke")

    monkeypatch.setattr(langchain_instrumented._tracing.tracer, "start_span", broken)
    assert RunnableLambda(str.upper, name="upper").invoke("hi") == "HI"
    assert not exporter.get_finished_spans()
