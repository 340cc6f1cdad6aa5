"""SessionSpanProcessor: every span started in a session carries the session's ids.

It runs for spans from any instrumentation (httpx, FastAPI, a hand-written
``tracer.start_as_current_span``), not only spanloom's. It reads the context attributes set by
`using_session` and friends; where the context has no session or user id, it falls back to
W3C baggage (the JavaScript path, and calls that arrive from other services). A span that
already has an attribute keeps it.

This sits on every span start, so it is written for speed: plain dict lookups on the context
(an OpenTelemetry ``Context`` is a dict), one ``set_attributes`` call, nothing when there is
nothing to add.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spanloom import semconv
from spanloom.sdk._guard import log_failure
from spanloom.sdk._runtime import current_context
from spanloom.sdk.context import (
    METADATA_KEY,
    PROMPT_TEMPLATE_KEY,
    PROMPT_TEMPLATE_VARIABLES_KEY,
    PROMPT_TEMPLATE_VERSION_KEY,
    SESSION_ID_KEY,
    TAGS_KEY,
    USER_ID_KEY,
)

_SESSION_ID = semconv.SESSION_ID
_USER_ID = semconv.USER_ID
_CONVERSATION_ID = semconv.GEN_AI_CONVERSATION_ID
_TAGS = semconv.TAG_TAGS
# context key -> span attribute, for the attributes copied as they are
_COPIED = (
    (METADATA_KEY, semconv.METADATA),
    (TAGS_KEY, semconv.TAG_TAGS),
    (PROMPT_TEMPLATE_KEY, semconv.LLM_PROMPT_TEMPLATE),
    (PROMPT_TEMPLATE_VERSION_KEY, semconv.LLM_PROMPT_TEMPLATE_VERSION),
    (PROMPT_TEMPLATE_VARIABLES_KEY, semconv.LLM_PROMPT_TEMPLATE_VARIABLES),
)
# Baggage arrives from outside the process: ids longer than this are not ids.
MAX_BAGGAGE_ID_LENGTH = 256


def _baggage_id(baggage: Any, key: str) -> str | None:
    value = baggage.get(key)
    if isinstance(value, str) and value and len(value) <= MAX_BAGGAGE_ID_LENGTH:
        return value
    return None


def _add_missing_attributes(span: Span, new: dict[str, Any]) -> None:
    """Add the attributes `span` does not have yet: attributes given at span start win.

    The values are already clean (strings, tuples of strings), and a span in on_start is not
    yet visible to any other code (the tracer hands it out only after every on_start), so
    they go straight into the SDK's attribute dict: the public set_attributes would
    re-validate every value and take the lock, microseconds per span. Anything unusual
    (value length limits, a full attribute table, another SDK's span) takes the public path.
    """
    try:
        # The SDK span's BoundedAttributes, read through its private fields (see above).
        bounded: Any = span._attributes
        store = bounded._dict
        direct = (
            type(store) is dict
            and bounded.max_value_len is None
            and not bounded._immutable
            and (bounded.maxlen is None or len(store) + len(new) <= bounded.maxlen)
        )
    except AttributeError:
        direct = False
    if direct:
        for key, value in new.items():
            if key not in store:
                store[key] = value
        return
    existing = span.attributes or {}
    span.set_attributes({key: value for key, value in new.items() if key not in existing})


class SessionSpanProcessor(SpanProcessor):
    """Stamp ``session.id`` / ``user.id`` (plus metadata, tags and prompt template) from the
    context onto every span at start.

    `read_baggage=False` ignores W3C baggage: baggage from untrusted clients can name any
    session or user, so a public-facing service may prefer to set ids only from its own code.
    """

    def __init__(self, read_baggage: bool = True) -> None:
        self.read_baggage = read_baggage

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            context = current_context() if parent_context is None else parent_context
            get = context.get
            session_id = get(SESSION_ID_KEY)
            user_id = get(USER_ID_KEY)
            if parent_context is not None and (session_id is None or user_id is None):
                # An explicit parent context (say, extracted from a request) may lack what the
                # code around the span set with using_session.
                current = current_context()
                session_id = session_id or current.get(SESSION_ID_KEY)
                user_id = user_id or current.get(USER_ID_KEY)
            if (session_id is None or user_id is None) and self.read_baggage:
                baggage = get(_BAGGAGE_KEY)
                if baggage:
                    session_id = session_id or _baggage_id(baggage, SESSION_ID_KEY)
                    user_id = user_id or _baggage_id(baggage, USER_ID_KEY)
            new: dict[str, Any] = {}
            if session_id is not None:
                new[_SESSION_ID] = session_id
                new[_CONVERSATION_ID] = session_id
            if user_id is not None:
                new[_USER_ID] = user_id
            for context_key, attribute in _COPIED:
                value = get(context_key)
                if value is not None:
                    new[attribute] = value
            tags = new.get(_TAGS)
            if tags is not None and tags.__class__ is not tuple:
                # The context holds tags as a list (OpenInference's form); span attributes
                # must not share a mutable list with the context.
                new[_TAGS] = tuple(tags) if isinstance(tags, (list, tuple)) else tags
            if new:
                _add_missing_attributes(span, new)
        except Exception:
            log_failure("SessionSpanProcessor.on_start")

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
