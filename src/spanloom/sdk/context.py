"""Context attributes: session, user, metadata, tags and prompt template in the OpenTelemetry context.

The context keys are the span attribute names themselves (``"session.id"``, ``"user.id"``,
``"metadata"``, ``"tag.tags"``, ``"llm.prompt_template.*"``), not keys made by
``opentelemetry.context.create_key``. That is deliberate: OpenInference and traceAI use the same
plain keys, so their instrumentors read ids set with spanloom, and spanloom's processor and
instrumentors read ids set with theirs. The values are theirs too: metadata as a JSON string,
tags as a list of strings; and the context a block attaches holds these entries and nothing
else (`_blocks`), so code written against OpenInference sees the same context.

Each helper works as a context manager (``with`` / ``async with``) and as a decorator on plain
functions, coroutines, generators and async generators (`_decorate`). Validation of bad input
lives in `_validate`, the attach/exit mechanism in `_blocks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context

from spanloom import semconv
from spanloom.sdk._blocks import (
    NOTHING,
    BlockContext,
    ContextAttributes,
    EntriesAttributes,
    IdAttributes,
    id_helper_class,
)
from spanloom.sdk._runtime import attach_fast, get_current_fast
from spanloom.sdk._text import clean_text, dumps
from spanloom.sdk._validate import (
    reject,
    valid_id,
    valid_metadata,
    valid_optional_str,
    valid_tags,
)

__all__ = ["ContextAttributes"]

# Context keys. They equal the attribute names (see the module docstring).
SESSION_ID_KEY = semconv.SESSION_ID
USER_ID_KEY = semconv.USER_ID
METADATA_KEY = semconv.METADATA  # JSON string, as OpenInference stores it
TAGS_KEY = semconv.TAG_TAGS  # list of str, as OpenInference stores it
PROMPT_TEMPLATE_KEY = semconv.LLM_PROMPT_TEMPLATE
PROMPT_TEMPLATE_VERSION_KEY = semconv.LLM_PROMPT_TEMPLATE_VERSION
PROMPT_TEMPLATE_VARIABLES_KEY = semconv.LLM_PROMPT_TEMPLATE_VARIABLES  # JSON string
# OpenTelemetry's instrumentation-suppression key, plus the plain spelling older
# instrumentations still check.
SUPPRESS_TRACING_KEY = _SUPPRESS_INSTRUMENTATION_KEY
_SUPPRESS_TRACING_PLAIN_KEY = "suppress_instrumentation"

# The keys get_attributes_from_context() reports, in OpenInference's order.
_SPAN_ATTRIBUTE_KEYS = (
    SESSION_ID_KEY,
    USER_ID_KEY,
    METADATA_KEY,
    TAGS_KEY,
    PROMPT_TEMPLATE_KEY,
    PROMPT_TEMPLATE_VERSION_KEY,
    PROMPT_TEMPLATE_VARIABLES_KEY,
)


class _Merge:
    """What a helper merges with the enclosing context at enter, instead of replacing it."""

    __slots__ = ("baggage", "metadata", "tags")

    def __init__(self) -> None:
        self.metadata: dict[str, Any] | None = None
        self.tags: list[str] | None = None
        self.baggage: dict[str, str] | None = None


class _MergingAttributes(EntriesAttributes):
    """A helper whose entries may merge with the enclosing context's: metadata merges (inner
    keys win), tags add up, ids join the enclosing W3C baggage. Without any of these (`_merge`
    None) it enters like any helper."""

    __slots__ = ("_merge",)

    def __init__(self) -> None:
        super().__init__()
        self._merge: _Merge | None = None

    def _merging(self) -> _Merge:
        if self._merge is None:
            self._merge = _Merge()
        return self._merge

    def _set_metadata(self, metadata: dict[str, Any]) -> None:
        if metadata:  # OpenInference sets nothing for empty metadata
            self._merging().metadata = metadata
            self._entries[METADATA_KEY] = dumps(metadata)  # the value when nothing encloses it

    def _set_tags(self, tags: list[str]) -> None:
        if tags:
            self._merging().tags = tags
            self._entries[TAGS_KEY] = tags

    def _values(self, current: Context) -> dict[str, object]:
        values = current.copy()
        values.update(self._entries)
        merge = self._merge
        if merge is None:
            return values
        if merge.metadata is not None:
            outer = _metadata_dict(current.get(METADATA_KEY))
            if outer:
                values[METADATA_KEY] = dumps({**outer, **merge.metadata})
        if merge.tags is not None:
            outer_tags = current.get(TAGS_KEY)
            if outer_tags and isinstance(outer_tags, (list, tuple)):
                values[TAGS_KEY] = list(dict.fromkeys((*outer_tags, *merge.tags)))
            else:
                values[TAGS_KEY] = list(merge.tags)  # each block its own list: lists are mutable
        if merge.baggage is not None:
            outer_baggage = current.get(_BAGGAGE_KEY) or {}
            values[_BAGGAGE_KEY] = {**outer_baggage, **merge.baggage}  # type: ignore[dict-item]  # context values are untyped
        return values

    def __enter__(self) -> ContextAttributes:
        # EntriesAttributes.__enter__, with `_values` written in for the plain case: entering
        # using_attributes(session_id=..., user_id=...) is once per request.
        entries = self._entries
        if entries:
            current = get_current_fast()
            if self._merge is None:
                values = current.copy()
                values.update(entries)
            else:
                values = self._values(current)
            block = BlockContext(values)
            block.owner = self
            block.parent = current
            self._token = attach_fast(block)
        return self


def _metadata_dict(text: object) -> dict[str, Any] | None:
    """The enclosing block's metadata (a JSON string, ours or OpenInference's) as a dict."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _PropagatedId(_MergingAttributes):
    """One id that also goes into W3C baggage (`propagate=True`)."""

    __slots__ = ()

    def __init__(self, key: str, value: str) -> None:
        super().__init__()
        self._entries[key] = value
        self._merging().baggage = {key: value}


_SessionAttributes = id_helper_class(SESSION_ID_KEY, "session")
_UserAttributes = id_helper_class(USER_ID_KEY, "user")


class _Unset:
    """The id of no helper: equal to no string."""


# The helper handed out last, per key: code that enters the same id again and again (a loop
# over one conversation's turns, nested layers each setting the session they were given) gets
# it back, prebuilt, for one comparison. There is no cache per id: looking up a new id in one
# costs more than building its helper (hashing it is most of that).
_LAST_SESSION = [_SessionAttributes.make(_Unset())]  # type: ignore[arg-type]  # a sentinel no id equals
_LAST_USER = [_UserAttributes.make(_Unset())]  # type: ignore[arg-type]  # a sentinel no id equals


def _id_helper(cls: type[IdAttributes], value: object, propagate: bool, what: str) -> ContextAttributes:
    """Everything but a plain ASCII id: validation with warnings, baggage."""
    if not valid_id(value, what, stacklevel=5):
        return NOTHING
    if propagate:
        return _PropagatedId(cls.key, value)  # type: ignore[arg-type]  # valid_id checked it is a str
    return cls.make(value)  # type: ignore[arg-type]  # valid_id checked it is a str


def using_session(session_id: str, *, propagate: bool = False) -> ContextAttributes:
    """Put a session id (the conversation a span belongs to) into the context.

    Every span started inside carries ``session.id`` (and ``gen_ai.conversation.id``). Use it
    as ``with using_session("conv-42"):``, ``async with``, or ``@using_session("conv-42")``.
    `propagate=True` also writes it into W3C baggage for outgoing requests.
    """
    # Written out (this runs once per request): the last helper again, else a new one for a
    # plain ASCII id; anything else takes the validating path.
    helper = _LAST_SESSION[0]
    if helper._value is session_id and propagate is False:  # the very same string again
        return helper
    if session_id.__class__ is str and propagate is False:
        if helper._value == session_id:
            return helper
        if session_id.isascii() and session_id and not session_id.isspace():
            helper = _SessionAttributes({SESSION_ID_KEY: session_id})  # IdAttributes.make, one call less
            helper._value = session_id
            _LAST_SESSION[0] = helper
            return helper
    return _id_helper(_SessionAttributes, session_id, propagate, "session_id")


def using_user(user_id: str, *, propagate: bool = False) -> ContextAttributes:
    """Put a user id into the context; every span started inside carries ``user.id``.

    Same forms as `using_session`.
    """
    helper = _LAST_USER[0]
    if helper._value is user_id and propagate is False:  # the very same string again
        return helper
    if user_id.__class__ is str and propagate is False:
        if helper._value == user_id:
            return helper
        if user_id.isascii() and user_id and not user_id.isspace():
            helper = _UserAttributes({USER_ID_KEY: user_id})
            helper._value = user_id
            _LAST_USER[0] = helper
            return helper
    return _id_helper(_UserAttributes, user_id, propagate, "user_id")


class using_metadata(_MergingAttributes):
    """Put metadata (a dict, stored as a JSON string) into the context; nested blocks merge."""

    __slots__ = ()

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        super().__init__()
        valid = valid_metadata(metadata)
        if valid is not None:
            self._set_metadata(valid)


class using_tags(_MergingAttributes):
    """Put tags (a list of strings) into the context; nested blocks add up."""

    __slots__ = ()

    def __init__(self, tags: list[str]) -> None:
        super().__init__()
        valid = valid_tags(tags)
        if valid is not None:
            self._set_tags(valid)


class using_prompt_template(EntriesAttributes):
    """Put a prompt template, its version and its variables into the context."""

    __slots__ = ()

    def __init__(
        self,
        *,
        template: str = "",
        version: str = "",
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _add_prompt_template(self._entries, template, version, variables)


def _add_prompt_template(
    entries: dict[str, object], template: object, version: object, variables: object
) -> None:
    if template and valid_optional_str(template, "prompt_template"):
        entries[PROMPT_TEMPLATE_KEY] = clean_text(template)  # type: ignore[arg-type]  # checked to be a str above
    if version and valid_optional_str(version, "prompt_template_version"):
        entries[PROMPT_TEMPLATE_VERSION_KEY] = clean_text(version)  # type: ignore[arg-type]  # checked to be a str above
    if variables is not None:
        if isinstance(variables, Mapping):
            if variables:  # OpenInference sets nothing for empty variables
                entries[PROMPT_TEMPLATE_VARIABLES_KEY] = dumps(dict(variables))
        else:
            reject(f"prompt_template_variables must be a dict, got {type(variables).__name__}", TypeError)


class using_attributes(_MergingAttributes):
    """Set several context attributes in one block: session, user, metadata, tags, prompt template.

    `propagate=True` also writes ``session.id`` and ``user.id`` into W3C baggage, so an
    instrumented HTTP client carries them to the next service.
    """

    __slots__ = ()

    def __init__(
        self,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: list[str] | None = None,
        prompt_template: str | None = None,
        prompt_template_version: str | None = None,
        prompt_template_variables: Mapping[str, Any] | None = None,
        propagate: bool = False,
    ) -> None:
        # Written out, not through super().__init__(): entering a session and a user per
        # request is the common use, and every step saved there counts.
        entries: dict[str, object] = {}
        self._entries = entries
        self._merge = None
        # the common id (plain ASCII) checked here; anything else by the validating path
        if (
            session_id.__class__ is str and session_id.isascii() and not session_id.isspace() and session_id
        ) or (session_id is not None and valid_id(session_id, "session_id")):
            entries[SESSION_ID_KEY] = session_id
        if (user_id.__class__ is str and user_id.isascii() and not user_id.isspace() and user_id) or (
            user_id is not None and valid_id(user_id, "user_id")
        ):
            entries[USER_ID_KEY] = user_id
        if metadata is not None:
            checked_metadata = valid_metadata(metadata)
            if checked_metadata is not None:
                self._set_metadata(checked_metadata)
        if tags is not None:
            checked_tags = valid_tags(tags)
            if checked_tags is not None:
                self._set_tags(checked_tags)
        if prompt_template or prompt_template_version or prompt_template_variables is not None:
            _add_prompt_template(entries, prompt_template, prompt_template_version, prompt_template_variables)
        if propagate:
            baggage = {key: entries[key] for key in (SESSION_ID_KEY, USER_ID_KEY) if key in entries}
            if baggage:
                self._merging().baggage = baggage  # type: ignore[assignment]  # ids, checked to be str


class suppress_tracing(EntriesAttributes):
    """No spans inside: spanloom's tracer and instrumentors record nothing, and providers built
    by `register()` drop every span started here (the sampler honors the suppression key)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self._entries[SUPPRESS_TRACING_KEY] = True
        self._entries[_SUPPRESS_TRACING_PLAIN_KEY] = True


def is_tracing_suppressed(context: Context | None = None) -> bool:
    """True inside `suppress_tracing()` (or OpenTelemetry's own suppression)."""
    context = get_current_fast() if context is None else context
    return bool(context.get(SUPPRESS_TRACING_KEY) or context.get(_SUPPRESS_TRACING_PLAIN_KEY))


def get_attributes_from_context(context: Context | None = None) -> Iterator[tuple[str, Any]]:
    """The context attributes the current context holds, as ``(key, value)`` pairs.

    What OpenInference's function of the same name yields for the same blocks: the keys
    themselves, metadata as its JSON string, tags as a list in the order given.
    """
    context = get_current_fast() if context is None else context
    for key in _SPAN_ATTRIBUTE_KEYS:
        value = context.get(key)
        if value is not None:
            # a copy of the tags: the list in the context is shared by every span started there
            yield key, (list(value) if key == TAGS_KEY and isinstance(value, (list, tuple)) else value)


def span_attributes_from_context(context: Context | None = None) -> dict[str, Any]:
    """The span attributes spanloom records from the context: `get_attributes_from_context`
    plus the GenAI mirror of the session id, ``gen_ai.conversation.id``; tags as a tuple."""
    attributes = dict(get_attributes_from_context(context))
    session_id = attributes.get(SESSION_ID_KEY)
    if session_id is not None:
        attributes[semconv.GEN_AI_CONVERSATION_ID] = session_id
    tags = attributes.get(TAGS_KEY)
    if isinstance(tags, list):
        attributes[TAGS_KEY] = tuple(tags)
    return attributes
