"""Gemini (``google-genai``): ``models.generate_content`` and ``generate_content_stream``, sync and
async, over a client of google-genai's own HTTP library on a MockTransport."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from google.genai import errors, types
from google.genai.models import Models
from opentelemetry.trace import StatusCode

from spanloom import TraceConfig, using_attributes, using_session
from spanloom.instrumentation.google_genai import GoogleGenAIInstrumentor

from .fakes import json_response, only_span
from .gemini_fakes import gemini_chunks, gemini_client, gemini_response, gemini_sse

WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Weather for a city",
            parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}),
        )
    ]
)


@pytest.fixture
def instrumented(provider):
    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def client(api):
    return gemini_client(api)


def _generate(client, is_async, **kwargs):
    if not is_async:
        return client.models.generate_content(**kwargs)
    return asyncio.run(client.aio.models.generate_content(**kwargs))


def _stream(client, is_async, **kwargs):
    if not is_async:
        return [chunk.text for chunk in client.models.generate_content_stream(**kwargs)]

    async def main():
        return [chunk.text async for chunk in await client.aio.models.generate_content_stream(**kwargs)]

    return asyncio.run(main())


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_generate_content(api, client, exporter, is_async):
    api.reply(json_response(gemini_response()))
    with using_attributes(session_id="s-gemini", user_id="u-gemini"):
        response = _generate(
            client,
            is_async,
            model="gemini-2.5-flash",
            contents="Write a haiku",
            config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.4),
        )
    assert response.text == "Leaves drift and fall"
    span = only_span(exporter)
    attributes = span.attributes
    assert span.name == "GenerateContent"
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["openinference.span.kind"] == "LLM"
    assert attributes["llm.provider"] == "google"
    assert attributes["gen_ai.system"] == "gcp.gemini"
    assert (attributes["session.id"], attributes["user.id"]) == ("s-gemini", "u-gemini")
    assert attributes["llm.input_messages.0.message.role"] == "system"
    assert attributes["llm.input_messages.0.message.content"] == "Be brief."
    assert attributes["llm.input_messages.1.message.role"] == "user"
    assert attributes["llm.input_messages.1.message.content"] == "Write a haiku"
    assert json.loads(attributes["llm.invocation_parameters"]) == {
        "model": "gemini-2.5-flash",
        "temperature": 0.4,
    }
    assert attributes["gen_ai.request.model"] == "gemini-2.5-flash"
    assert attributes["llm.model_name"] == "gemini-2.5-flash"
    assert attributes["llm.output_messages.0.message.role"] == "assistant"
    assert attributes["output.value"] == "Leaves drift and fall"
    assert attributes["llm.finish_reason"] == "STOP"
    assert attributes["llm.token_count.prompt"] == 8
    assert attributes["llm.token_count.completion"] == 8  # 5 of answer, 3 of thinking (billed as output)
    assert attributes["llm.token_count.completion_details.reasoning"] == 3
    assert attributes["llm.token_count.prompt_details.cache_read"] == 2
    assert attributes["llm.token_count.total"] == 16
    assert api.requests[0]["contents"] == [{"parts": [{"text": "Write a haiku"}], "role": "user"}]


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_generate_content_stream(api, client, exporter, is_async):
    api.reply(gemini_sse(gemini_chunks(["Leaves ", "drift ", "and fall"])))
    with using_session("s-gemini-stream"):
        texts = _stream(client, is_async, model="models/gemini-2.5-flash", contents="Write a haiku")
    assert texts == ["Leaves ", "drift ", "and fall"]
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "s-gemini-stream"
    assert attributes["output.value"] == "Leaves drift and fall"
    assert attributes["llm.output_messages.0.message.content"] == "Leaves drift and fall"
    assert attributes["llm.finish_reason"] == "STOP"
    assert attributes["llm.model_name"] == "gemini-2.5-flash"
    assert (attributes["llm.token_count.prompt"], attributes["llm.token_count.completion"]) == (8, 9)
    assert attributes["llm.token_count.total"] == 17


@pytest.mark.usefixtures("instrumented")
def test_a_stream_left_early_ends_its_span_with_the_text_so_far(api, client, exporter):
    api.reply(gemini_sse(gemini_chunks(["Leaves ", "drift ", "and fall"])))
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents="Write a haiku")
    assert next(stream).text == "Leaves "
    assert not exporter.get_finished_spans()
    stream.close()
    assert only_span(exporter).attributes["output.value"] == "Leaves "


@pytest.mark.usefixtures("instrumented")
def test_a_stream_never_iterated_still_ends_its_span(client, exporter):
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents="Write a haiku")
    del stream  # nothing was sent
    assert only_span(exporter).attributes["llm.input_messages.0.message.content"] == "Write a haiku"


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_function_calls_and_results(api, client, exporter, is_async):
    call = {"functionCall": {"id": "call-1", "name": "get_weather", "args": {"city": "Oslo"}}}
    api.reply(json_response(gemini_response([call])))
    contents = [
        types.Content(role="user", parts=[types.Part(text="Weather in Oslo?")]),
        types.Content(
            role="model",
            parts=[
                types.Part(
                    function_call=types.FunctionCall(id="call-0", name="get_weather", args={"city": "Bergen"})
                )
            ],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id="call-0", name="get_weather", response={"result": "rain"}
                    )
                )
            ],
        ),
    ]
    response = _generate(
        client,
        is_async,
        model="gemini-2.5-flash",
        contents=contents,
        config=types.GenerateContentConfig(tools=[WEATHER]),
    )
    assert response.function_calls[0].args == {"city": "Oslo"}
    attributes = only_span(exporter).attributes
    schema = json.loads(attributes["llm.tools.0.tool.json_schema"])
    assert schema["function_declarations"][0]["name"] == "get_weather"
    earlier = "llm.input_messages.1.message.tool_calls.0.tool_call"
    assert attributes["llm.input_messages.1.message.role"] == "assistant"
    assert attributes[f"{earlier}.function.name"] == "get_weather"
    assert json.loads(attributes[f"{earlier}.function.arguments"]) == {"city": "Bergen"}
    assert attributes["llm.input_messages.2.message.role"] == "tool"
    assert attributes["llm.input_messages.2.message.tool_call_id"] == "call-0"
    assert json.loads(attributes["llm.input_messages.2.message.content"]) == {"result": "rain"}
    out = "llm.output_messages.0.message.tool_calls.0.tool_call"
    assert attributes[f"{out}.id"] == "call-1"
    assert json.loads(attributes[f"{out}.function.arguments"]) == {"city": "Oslo"}
    assert json.loads(attributes["output.value"])[0]["tool_calls"][0]["name"] == "get_weather"
    assert "tools" not in json.loads(attributes["llm.invocation_parameters"])


@pytest.mark.usefixtures("instrumented")
def test_contents_in_each_shape_the_sdk_takes(api, client, exporter):
    api.reply(json_response(gemini_response()))
    image = types.Part.from_bytes(data=b"\x89PNG-bytes", mime_type="image/png")
    client.models.generate_content(
        model="gemini-2.5-flash", contents=["Describe this image", image, {"text": "briefly"}]
    )
    attributes = only_span(exporter).attributes
    prefix = "llm.input_messages.0.message"
    assert attributes[f"{prefix}.role"] == "user"  # consecutive parts are one user turn
    assert attributes[f"{prefix}.contents.0.message_content.text"] == "Describe this image"
    assert attributes[f"{prefix}.contents.1.message_content.type"] == "image"
    encoded = base64.b64encode(b"\x89PNG-bytes").decode()
    assert (
        attributes[f"{prefix}.contents.1.message_content.image.image.url"]
        == f"data:image/png;base64,{encoded}"
    )
    assert attributes[f"{prefix}.contents.2.message_content.text"] == "briefly"
    assert "llm.input_messages.1.message.role" not in attributes


def test_masking_applies(provider, api, client, exporter):
    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, config=TraceConfig(hide_inputs=True, hide_outputs=True))
    try:
        api.reply(json_response(gemini_response()))
        client.models.generate_content(model="gemini-2.5-flash", contents="my secret")
    finally:
        instrumentor.uninstrument()
    attributes = only_span(exporter).attributes
    assert "my secret" not in json.dumps(dict(attributes))
    assert "Leaves drift" not in json.dumps(dict(attributes))
    assert attributes["llm.token_count.total"] == 16


@pytest.mark.usefixtures("instrumented")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_an_api_error_fails_the_span_and_reaches_the_caller(api, client, exporter, is_async):
    api.reply(json_response({"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}, status=500))
    with pytest.raises(errors.ServerError):
        _generate(client, is_async, model="gemini-2.5-flash", contents="Write a haiku")
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["llm.input_messages.0.message.content"] == "Write a haiku"


def test_uninstrument_restores_the_sdk(provider, api, client, exporter):
    original = Models.__dict__["generate_content"]
    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    assert Models.__dict__["generate_content"] is not original
    instrumentor.uninstrument()
    assert Models.__dict__["generate_content"] is original
    api.reply(json_response(gemini_response()))
    client.models.generate_content(model="gemini-2.5-flash", contents="Write a haiku")
    assert not exporter.get_finished_spans()
