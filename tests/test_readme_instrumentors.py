"""The README's "Instrumentors" blocks run as written, each in a process of its own, against a
real server: only the provider client's construction gets a MockTransport (the one line each
block builds its client on), so no test touches the network. Their spans arrive with the
session and user of their block, the model's answer and, for streams, the streamed text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))

from _server_kit import run_server, wait_for

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Answers every request with "Answer to: <the last user message>", as JSON or as a stream.
PREAMBLE = """
import json
import sys

sys.path.insert(0, {root!r})
import anthropic
import openai

from tests.instrumentation.fakes import (
    FakeAPI, anthropic_events, anthropic_message, anthropic_sse, chat_chunks, chat_completion,
    http_library, json_response, openai_sse,
)


def answer(request):
    body = json.loads(request.content or b"{{}}")
    reply = "Answer to: " + body["messages"][-1]["content"]
    pieces = [reply[:12], reply[12:]]
    if request.url.path.endswith("/messages"):
        if body.get("stream"):
            return anthropic_sse(anthropic_events(pieces))
        return json_response(anthropic_message(reply))
    if body.get("stream"):
        return openai_sse(chat_chunks(pieces))
    return json_response(chat_completion(reply))


class Replies(FakeAPI):
    def __call__(self, request):
        self.queue.append(answer)
        return super().__call__(request)


FAKE = Replies()
OPENAI_HTTP, ANTHROPIC_HTTP = http_library(openai), http_library(anthropic)
"""


def _faked(sdk_class: str, library: str, http_client: str) -> str:
    transport = f"{library}.MockTransport(FAKE)"
    return f"{sdk_class}(api_key='x', http_client={library}.{http_client}(transport={transport}))"


# Each block's one client construction, and what it becomes on the fake.
CLIENTS = {
    "openai.OpenAI()": _faked("openai.OpenAI", "OPENAI_HTTP", "Client"),
    "openai.AsyncOpenAI()": _faked("openai.AsyncOpenAI", "OPENAI_HTTP", "AsyncClient"),
    "anthropic.Anthropic()": _faked("anthropic.Anthropic", "ANTHROPIC_HTTP", "Client"),
    "anthropic.AsyncAnthropic()": _faked("anthropic.AsyncAnthropic", "ANTHROPIC_HTTP", "AsyncClient"),
}


def instrumentor_blocks() -> list[str]:
    section = README.read_text().split("### Instrumentors:", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_section_shows_openai_and_anthropic_sync_async_and_streams():
    blocks = instrumentor_blocks()
    assert len(blocks) == 4
    joined = "\n".join(blocks)
    for needed in (
        "from spanloom.instrumentation.openai import OpenAIInstrumentor",
        "from spanloom.instrumentation.anthropic import AnthropicInstrumentor",
        "openai.AsyncOpenAI()",
        "anthropic.AsyncAnthropic()",
        "stream=True",
        "client.messages.stream(",
    ):
        assert needed in joined, needed
    section = README.read_text().split("### Instrumentors:", 1)[1].split("\n### ", 1)[0]
    # The other two, with their real import paths.
    import spanloom.instrumentation.google_genai as gemini
    import spanloom.instrumentation.langchain as langchain

    assert "from spanloom.instrumentation.google_genai import\nGoogleGenAIInstrumentor" in section
    assert "from spanloom.instrumentation.langchain import LangChainInstrumentor" in section
    assert gemini.GoogleGenAIInstrumentor and langchain.LangChainInstrumentor


@pytest.mark.parametrize("index", range(4))
def test_each_block_runs_and_its_spans_arrive(tmp_path: Path, index: int):
    block = instrumentor_blocks()[index]
    [client] = [call for call in CLIENTS if call in block]
    script = tmp_path / "block.py"
    script.write_text(PREAMBLE.format(root=str(ROOT)) + block.replace(client, CLIENTS[client], 1))
    with run_server(tmp_path / "spanloom.db") as server:
        environment = {**os.environ, "SPANLOOM_ENDPOINT": server.traces_endpoint, "SPANLOOM_STRICT": "1"}
        run = subprocess.run(
            [sys.executable, str(script)], env=environment, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        session_id = re.search(r'(?:session_id=|using_session\()"([^"]+)"', block)[1]
        user = re.search(r'user_id="([^"]+)"', block)
        questions = re.findall(r'"content": "([^"]+)"', block)
        assert len(questions) == 2
        # Both calls were answered, the stream's text included, as the block printed them.
        for question in questions:
            assert f"Answer to: {question}" in run.stdout
        traces = wait_for(
            lambda: (
                items
                if len(items := server.get_json("/api/traces", session_id=session_id)["items"]) == 2
                else None
            ),
            what=f"the two traces of {session_id}",
        )
        for trace in traces:
            assert trace["project"] == "support-bot"
            assert trace["span_kind"] == "LLM" and trace["total_tokens"] > 0
            assert trace["user_id"] == (user[1] if user else None)
        outputs = " ".join(str(trace["output"]) for trace in traces)
        for question in questions:
            assert f"Answer to: {question}" in outputs
