"""Raw responses: ``with_raw_response`` and ``with_streaming_response`` calls, recorded like plain ones.

Both SDKs return an API response object from these calls (openai's ``LegacyAPIResponse``,
``APIResponse`` / ``AsyncAPIResponse``): the HTTP response plus a ``parse()`` that builds
what the plain call returns and caches it on the response, so that every later ``parse()``
returns that same object. LangChain calls the SDKs this way, so most of its users meet it.

- When parsing needs no I/O (``with_raw_response`` has read the body already; a streamed call
  parses to the SDK's lazy stream), the span parses at once, as the plain call would have: the
  caller's own ``parse()`` gets that very object from the cache, a stream hooked like any
  other, and nothing the caller can see is different.
- ``with_streaming_response`` on a call that is not streamed leaves the body unread until the
  caller reads it, so the span does not read it: the response's ``parse`` and ``close`` are
  hooked on that one instance. The span ends with what the caller's ``parse()`` returns, or at
  ``close`` (the ``with`` block's end) with the body parsed if the caller read it some other
  way (``json()``, ``text()``), or when the response is dropped unread: the request side only.

Errors from the caller's ``parse()`` (a structured-output parser refusing the answer) fail the
span with that error, as they fail a plain ``parse`` call.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

# The header the SDKs' raw-response wrappers add to the call's ``extra_headers``: "stream" for
# with_streaming_response (the body is left unread), "true" or "raw" for with_raw_response.
_RAW_HEADER = "X-Stainless-Raw-Response"

# What a raw response's parsed value is handed to: the operation's usual end of a call.
Settle = Callable[[Any], None]
Fail = Callable[[BaseException], None]
End = Callable[[], None]

_async_parse: dict[type, bool] = {}


def is_raw(result: Any) -> bool:
    """Whether `result` is an SDK's raw response (checked only for results of no known type)."""
    return getattr(result, "http_response", None) is not None and callable(getattr(result, "parse", None))


def has_async_parse(result: Any) -> bool:
    cls = type(result)
    flag = _async_parse.get(cls)
    if flag is None:
        flag = _async_parse[cls] = inspect.iscoroutinefunction(cls.parse)
    return flag


def parses_now(request: dict[str, Any]) -> bool:
    """Whether the raw response of this request can be parsed with no I/O: the body was read,
    or the call was streamed (parsing builds the SDK's stream over the unread body)."""
    if request.get("stream") is True:
        return True
    headers = request.get("extra_headers")
    return not (isinstance(headers, dict) and headers.get(_RAW_HEADER) == "stream")


class _Recorder:
    """Ends the span of one unread raw response once: parsed, failed, or with the request only."""

    __slots__ = ("end", "fail", "settle")

    def __init__(self, settle: Settle, fail: Fail, end: End) -> None:
        self.settle: Settle | None = settle
        self.fail = fail
        self.end = end

    def parsed(self, value: Any) -> None:
        settle, self.settle = self.settle, None
        if settle is not None:
            settle(value)

    def failed(self, error: BaseException) -> None:
        if self.settle is not None:
            self.settle = None
            self.fail(error)

    def unread(self) -> None:
        if self.settle is not None:
            self.settle = None
            self.end()

    def __del__(self) -> None:
        try:
            self.unread()
        except Exception:  # at interpreter exit the modules `end` needs may be gone
            pass


def _body_read(response: Any) -> bool:
    try:
        response.http_response.content  # noqa: B018 - raises while the body is unread
    except Exception:
        return False
    return True


class _Parse:
    """Installed as one response's ``parse``: the SDK's parse, then the span's end with its value.

    Refers to the response weakly: the response's ``__dict__`` holds the only reference to this,
    so the recorder is freed (and the span ended) with the response.
    """

    __slots__ = ("parse", "recorder", "response")

    def __init__(self, parse: Any, response: Any, recorder: _Recorder) -> None:
        self.parse = parse
        self.response = weakref.ref(response)
        self.recorder = recorder

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        own = not args and kwargs.get("to") is None  # the type the plain call returns
        try:
            value = self.parse(self.response(), *args, **kwargs)
        except Exception as error:
            if own:
                self.recorder.failed(error)
            raise
        if own:
            self.recorder.parsed(value)
        return value


class _AsyncParse(_Parse):
    __slots__ = ()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        own = not args and kwargs.get("to") is None
        try:
            value = await self.parse(self.response(), *args, **kwargs)
        except Exception as error:
            if own:
                self.recorder.failed(error)
            raise
        if own:
            self.recorder.parsed(value)
        return value


class _Close:
    """Installed as one response's ``close``: the span ends with the body if the caller read
    it (parsed from memory, which fills the cache the caller's own ``parse()`` reads), else
    with the request side; then the SDK's close. A body the SDK cannot parse costs the span
    its output, not an error: the caller never asked for it to be parsed."""

    __slots__ = ("close", "parse", "recorder", "response")

    def __init__(self, close: Any, parse: Any, response: Any, recorder: _Recorder) -> None:
        self.close = close
        self.parse = parse
        self.response = weakref.ref(response)
        self.recorder = recorder

    def __call__(self) -> Any:
        response = self.response()
        if response is None:
            return None
        recorder = self.recorder
        if recorder.settle is not None and _body_read(response):
            try:
                recorder.parsed(self.parse(response))
            except Exception:
                pass
        recorder.unread()
        return self.close(response)


class _AsyncClose(_Close):
    __slots__ = ()

    async def __call__(self) -> Any:
        response = self.response()
        if response is None:
            return None
        recorder = self.recorder
        if recorder.settle is not None and _body_read(response):
            try:
                recorder.parsed(await self.parse(response))
            except Exception:
                pass
        recorder.unread()
        return await self.close(response)


def hook_unread(response: Any, settle: Settle, fail: Fail, end: End) -> bool:
    """Hook an unread raw response's ``parse`` and ``close`` so that they end its span.

    Returns False, with the response untouched, when it lacks the shape this relies on.
    """
    cls = type(response)
    parse = getattr(cls, "parse", None)
    close = getattr(cls, "close", None)
    state = getattr(response, "__dict__", None)
    if parse is None or close is None or state is None:
        return False
    recorder = _Recorder(settle, fail, end)
    if has_async_parse(response):
        state["parse"] = _AsyncParse(parse, response, recorder)
        state["close"] = _AsyncClose(close, parse, response, recorder)
    else:
        state["parse"] = _Parse(parse, response, recorder)
        state["close"] = _Close(close, parse, response, recorder)
    return True
