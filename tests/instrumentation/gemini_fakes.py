"""A Gemini API fake at the transport level: google-genai's own httpx2 client on a MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx2
from google import genai
from google.genai import types

from .fakes import FakeAPI


def gemini_client(api: FakeAPI) -> genai.Client:
    return genai.Client(
        api_key="x",
        http_options=types.HttpOptions(
            base_url="http://test",
            httpx_client=httpx2.Client(transport=httpx2.MockTransport(api)),
            httpx_async_client=httpx2.AsyncClient(transport=httpx2.MockTransport(api)),
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


def gemini_sse(chunks: list[dict[str, Any]]) -> httpx2.Response:
    body = b"".join(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in chunks)
    return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})
