"""A Gemini API fake at the transport level: a client of the HTTP library google-genai sends with
(`httpx2` from 3.0, `httpx` before) on a MockTransport."""

from __future__ import annotations

import importlib
import json
from importlib import metadata
from types import ModuleType
from typing import Any

from google import genai
from google.genai import types
from packaging.requirements import Requirement

from .fakes import Canned, FakeAPI


def _http_library() -> ModuleType:
    """The library google-genai requires outside any extra: the one its own clients are built on."""
    for line in metadata.requires("google-genai") or ():
        requirement = Requirement(line)
        if requirement.name in ("httpx", "httpx2") and requirement.marker is None:
            return importlib.import_module(requirement.name)
    raise LookupError("google-genai requires neither httpx nor httpx2")


GEMINI_HTTP = _http_library()


def gemini_client(api: FakeAPI) -> genai.Client:
    # The SDK's own clients with our transport: `client_args` exists from google-genai 1.11, the
    # floor pyproject.toml declares (`httpx_client`, a whole client, only from 1.46). A transport
    # also keeps the async client on httpx where aiohttp is installed.
    return genai.Client(
        api_key="x",
        http_options=types.HttpOptions(
            base_url="http://test",
            client_args={"transport": GEMINI_HTTP.MockTransport(api)},
            async_client_args={"transport": GEMINI_HTTP.MockTransport(api)},
        ),
    )


def gemini_response(
    parts: list[dict[str, Any]] | None = None, finish: str = "STOP", **usage: int
) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts or [{"text": "Leaves drift and fall"}]},
                "finishReason": finish,
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 8,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 3,
            "cachedContentTokenCount": 2,
            "totalTokenCount": 16,
            **usage,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }


def gemini_chunks(texts: list[str]) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
            "modelVersion": "gemini-2.5-flash",
            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": index + 1},
        }
        for index, text in enumerate(texts)
    ]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    chunks[-1]["usageMetadata"] = {"promptTokenCount": 8, "candidatesTokenCount": 9, "totalTokenCount": 17}
    return chunks


def gemini_sse(chunks: list[dict[str, Any]]) -> Canned:
    body = b"".join(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in chunks)
    return Canned(200, body, "text/event-stream")
