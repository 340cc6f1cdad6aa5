"""Context attributes: session, user, metadata, tags and prompt template in the OpenTelemetry context.

The context keys are the span attribute names themselves (``"session.id"``, ``"user.id"``,
``"metadata"``, ``"tag.tags"``, ``"llm.prompt_template.*"``), not keys made by
``opentelemetry.context.create_key``. That is deliberate: OpenInference and traceAI use the same
plain keys, so their instrumentors read ids set with spanloom, and spanloom's processor and
instrumentors read ids set with theirs.

Each helper works as a context manager (``with`` / ``async with``) and as a decorator on plain
functions, coroutines, generators and async generators. The attach token never lives on the
instance between uses in a way that two users could confuse: a ``with`` block finds its own
token by the context object it attached, so one instance may be entered twice (nested, or from
two asyncio tasks at once) and each exit restores exactly what its enter replaced.
"""

from __future__ import annotations

import functools
import inspect
import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context, attach, detach, get_current

from spanloom import semconv
from spanloom.sdk._guard import strict_mode

_F = TypeVar("_F", bound=Callable[..., Any])

# Context keys. The public ones equal the attribute names (see the module docstring).
SESSION_ID_KEY = semconv.SESSION_ID
USER_ID_KEY = semconv.USER_ID
METADATA_KEY = semconv.METADATA  # JSON string, as OpenInference stores it
TAGS_KEY = semconv.TAG_TAGS  # tuple of str
PROMPT_TEMPLATE_KEY = semconv.LLM_PROMPT_TEMPLATE
PROMPT_TEMPLATE_VERSION_KEY = semconv.LLM_PROMPT_TEMPLATE_VERSION
PROMPT_TEMPLATE_VARIABLES_KEY = semconv.LLM_PROMPT_TEMPLATE_VARIABLES  # JSON string
# The merged metadata as a dict, so a nested using_metadata merges without parsing JSON.
_METADATA_DICT_KEY = "spanloom.metadata.dict"
# OpenTelemetry's instrumentation-suppression key, plus the plain spelling older
# instrumentations still check.
SUPPRESS_TRACING_KEY = _SUPPRESS_INSTRUMENTATION_KEY
_SUPPRESS_TRACING_PLAIN_KEY = "suppress_instrumentation"

# The keys get_attributes_from_context() reports, in order, with the span attribute each fills.
_SPAN_ATTRIBUTE_KEYS = (
    SESSION_ID_KEY,
    USER_ID_KEY,
    METADATA_KEY,
    TAGS_KEY,
    PROMPT_TEMPLATE_KEY,
    PROMPT_TEMPLATE_VERSION_KEY,
    PROMPT_TEMPLATE_VARIABLES_KEY,
)


class SpanloomWarning(UserWarning):
    """Bad input to the SDK: the call went through, the attribute was not set."""


def reject(message: str, error: type[Exception] = ValueError) -> None:
    """Report bad input: a warning, or `error` when SPANLOOM_STRICT=1."""
    if strict_mode():
        raise error(message)
    warnings.warn(f"spanloom: {message}; ignored", SpanloomWarning, stacklevel=4)


def _valid_id(value: object, what: str) -> bool:
    if type(value) is str and value.strip():
        return True
    if isinstance(value, str) and value.strip():
        return True
    if isinstance(value, str):
        reject(f"{what} must be a non-empty string, got {value!r}", ValueError)
    else:
        reject(f"{what} must be a non-empty string, got {type(value).__name__} {value!r:.80}", TypeError)
    return False


def dumps(value: Any) -> str:
    """JSON for attribute values: anything unserializable becomes its str(), never an error."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        # circular references, keys that are not str/int/float/bool/None
        return json.dumps(str(value), ensure_ascii=False)


def _valid_metadata(metadata: object) -> dict[str, Any] | None:
    if not isinstance(metadata, Mapping):
        reject(f"metadata must be a dict, got {type(metadata).__name__}", TypeError)
        return None
    return {str(key): value for key, value in metadata.items()}


def _valid_tags(tags: object) -> tuple[str, ...] | None:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        reject(f"tags must be a list of strings, got {type(tags).__name__}", TypeError)
        return None
    tags = tuple(tags)
    if not all(isinstance(tag, str) for tag in tags):
        reject(f"tags must be a list of strings, got {tags!r:.80}", TypeError)
        return None
    return tuple(dict.fromkeys(tags))


def _valid_optional_str(value: object, what: str) -> bool:
    if isinstance(value, str):
        return True
    reject(f"{what} must be a string, got {type(value).__name__}", TypeError)
    return False


class _ContextAttributes:
    """Base of every using_* helper: a fixed set of context entries, plus merges done at enter.

    `_entries` are written as they are; `_metadata` and `_tags` merge with what the enclosing
    context already holds (inner metadata keys win, tags add up); `_baggage` entries are also
    written into W3C baggage for outgoing propagation.
    """

    __slots__ = ("_baggage", "_entries", "_live", "_metadata", "_tags")

    def __init__(self) -> None:
        self._entries: dict[str, object] = {}
        self._metadata: dict[str, Any] | None = None
        self._tags: tuple[str, ...] | None = None
        self._baggage: dict[str, str] | None = None
        # (context attached, token) of each enter still open; usually one entry.
        self._live: list[tuple[Context, object]] = []

    def _set_metadata(self, metadata: dict[str, Any]) -> None:
        self._metadata = metadata
        # the value when nothing encloses it, computed once
        self._entries[METADATA_KEY] = dumps(metadata)
        self._entries[_METADATA_DICT_KEY] = metadata

    def _set_tags(self, tags: tuple[str, ...]) -> None:
        self._tags = tags
        self._entries[TAGS_KEY] = tags

    def _context(self, current: Context) -> Context:
        """The context to attach: `current` plus this helper's entries."""
        entries = self._entries
        if self._metadata is not None or self._tags is not None or self._baggage is not None:
            entries = self._merged_entries(current)
        context = Context(current)
        # Context forbids item assignment; dict.update fills the fresh copy in one pass.
        dict.update(context, entries)
        return context

    def _merged_entries(self, current: Context) -> dict[str, object]:
        entries = dict(self._entries)
        if self._metadata is not None:
            outer = current.get(_METADATA_DICT_KEY)
            if outer:
                merged = {**outer, **self._metadata}  # type: ignore[dict-item]
                entries[METADATA_KEY] = dumps(merged)
                entries[_METADATA_DICT_KEY] = merged
        if self._tags is not None:
            outer_tags = current.get(TAGS_KEY)
            if outer_tags:
                entries[TAGS_KEY] = tuple(dict.fromkeys((*outer_tags, *self._tags)))  # type: ignore[misc]
        if self._baggage is not None:
            outer_baggage = current.get(_BAGGAGE_KEY) or {}
            entries[_BAGGAGE_KEY] = {**outer_baggage, **self._baggage}  # type: ignore[dict-item]
        return entries

    # --- context manager ---
    def __enter__(self) -> _ContextAttributes:
        if self._entries:
            context = self._context(get_current())
            self._live.append((context, attach(context)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        live = self._live
        if not live:
            return
        current = get_current()
        # The enter that belongs to this exit is the one whose context is current (nested or
        # concurrent uses of one instance each see their own); fall back to the newest when
        # code inside the block attached a context and never detached it.
        for index in range(len(live) - 1, -1, -1):
            if live[index][0] is current:
                break
        else:
            index = len(live) - 1
        _, token = live.pop(index)
        detach(token)  # type: ignore[arg-type]

    async def __aenter__(self) -> _ContextAttributes:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    # --- decorator ---
    def __call__(self, fn: _F) -> _F:
        if not callable(fn):
            reject(f"{type(self).__name__} decorates a callable, got {type(fn).__name__}", TypeError)
            return fn
        if not self._entries:
            return fn
        if inspect.isasyncgenfunction(fn):
            return self._wrap_async_generator(fn)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):
            return self._wrap_coroutine(fn)  # type: ignore[return-value]
        return self._wrap_function(fn)  # type: ignore[return-value]

    def _wrap_function(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = attach(self._context(get_current()))
            try:
                return fn(*args, **kwargs)
            finally:
                detach(token)

        return wrapper

    def _wrap_coroutine(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            # A coroutine runs in its task's context; attach/detach stay in that one task.
            token = attach(self._context(get_current()))
            try:
                return await fn(*args, **kwargs)
            finally:
                detach(token)

        return wrapper

    def _wrap_generator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The ids hold while the generator body runs, and only then: each resume attaches
            # on top of the caller's context of that moment and detaches before yielding.
            generator = fn(*args, **kwargs)
            step: Callable[[], Any] = generator.__next__
            while True:
                token = attach(self._context(get_current()))
                try:
                    item = step()
                except StopIteration as stop:
                    return stop.value
                finally:
                    detach(token)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = attach(self._context(get_current()))
                    try:
                        generator.close()
                    finally:
                        detach(token)
                    raise
                except BaseException as error:
                    step = functools.partial(generator.throw, error)
                else:
                    step = functools.partial(generator.send, sent)

        return wrapper

    def _wrap_async_generator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            generator = fn(*args, **kwargs)
            step: Callable[[], Any] = generator.__anext__
            while True:
                token = attach(self._context(get_current()))
                try:
                    item = await step()
                except StopAsyncIteration:
                    return
                finally:
                    detach(token)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = attach(self._context(get_current()))
                    try:
                        await generator.aclose()
                    finally:
                        detach(token)
                    raise
                except BaseException as error:
                    step = functools.partial(generator.athrow, error)
                else:
                    step = functools.partial(generator.asend, sent)

        return wrapper


class using_session(_ContextAttributes):  # noqa: N801  (public name, as in OpenInference/traceAI)
    """Put a session id (the conversation a span belongs to) into the context.

    Every span started inside carries ``session.id`` (and ``gen_ai.conversation.id``).
    `propagate=True` also writes it into W3C baggage for outgoing requests.
    """

    __slots__ = ()

    def __init__(self, session_id: str, *, propagate: bool = False) -> None:
        super().__init__()
        if _valid_id(session_id, "session_id"):
            self._entries[SESSION_ID_KEY] = session_id
            if propagate:
                self._baggage = {SESSION_ID_KEY: session_id}


class using_user(_ContextAttributes):  # noqa: N801
    """Put a user id into the context; every span started inside carries ``user.id``."""

    __slots__ = ()

    def __init__(self, user_id: str, *, propagate: bool = False) -> None:
        super().__init__()
        if _valid_id(user_id, "user_id"):
            self._entries[USER_ID_KEY] = user_id
            if propagate:
                self._baggage = {USER_ID_KEY: user_id}


class using_metadata(_ContextAttributes):  # noqa: N801
    """Put metadata (a dict, stored as a JSON string) into the context; nested blocks merge."""

    __slots__ = ()

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        super().__init__()
        valid = _valid_metadata(metadata)
        if valid is not None:
            self._set_metadata(valid)


class using_tags(_ContextAttributes):  # noqa: N801
    """Put tags (a list of strings) into the context; nested blocks add up."""

    __slots__ = ()

    def __init__(self, tags: list[str]) -> None:
        super().__init__()
        valid = _valid_tags(tags)
        if valid is not None:
            self._set_tags(valid)


class using_prompt_template(_ContextAttributes):  # noqa: N801
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
    if template and _valid_optional_str(template, "prompt_template"):
        entries[PROMPT_TEMPLATE_KEY] = template
    if version and _valid_optional_str(version, "prompt_template_version"):
        entries[PROMPT_TEMPLATE_VERSION_KEY] = version
    if variables is not None:
        if isinstance(variables, Mapping):
            entries[PROMPT_TEMPLATE_VARIABLES_KEY] = dumps(dict(variables))
        else:
            reject(f"prompt_template_variables must be a dict, got {type(variables).__name__}", TypeError)


class using_attributes(_ContextAttributes):  # noqa: N801
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
        super().__init__()
        entries = self._entries
        if session_id is not None and _valid_id(session_id, "session_id"):
            entries[SESSION_ID_KEY] = session_id
        if user_id is not None and _valid_id(user_id, "user_id"):
            entries[USER_ID_KEY] = user_id
        if metadata is not None:
            valid_metadata = _valid_metadata(metadata)
            if valid_metadata is not None:
                self._set_metadata(valid_metadata)
        if tags is not None:
            valid_tags = _valid_tags(tags)
            if valid_tags is not None:
                self._set_tags(valid_tags)
        _add_prompt_template(entries, prompt_template, prompt_template_version, prompt_template_variables)
        if propagate:
            baggage = {key: entries[key] for key in (SESSION_ID_KEY, USER_ID_KEY) if key in entries}
            if baggage:
                self._baggage = baggage  # type: ignore[assignment]


class suppress_tracing(_ContextAttributes):  # noqa: N801
    """No spans inside: spanloom's tracer and instrumentors record nothing, and providers built
    by `register()` drop every span started here (the sampler honors the suppression key)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self._entries[SUPPRESS_TRACING_KEY] = True
        self._entries[_SUPPRESS_TRACING_PLAIN_KEY] = True


def is_tracing_suppressed(context: Context | None = None) -> bool:
    """True inside `suppress_tracing()` (or OpenTelemetry's own suppression)."""
    context = get_current() if context is None else context
    return bool(context.get(SUPPRESS_TRACING_KEY) or context.get(_SUPPRESS_TRACING_PLAIN_KEY))


def get_attributes_from_context(context: Context | None = None) -> Iterator[tuple[str, Any]]:
    """The span attributes the current context holds, as ``(key, value)`` pairs.

    ``session.id`` comes with its GenAI mirror ``gen_ai.conversation.id``.
    """
    context = get_current() if context is None else context
    for key in _SPAN_ATTRIBUTE_KEYS:
        value = context.get(key)
        if value is None:
            continue
        if key == TAGS_KEY:
            value = list(value)  # type: ignore[call-overload]
        yield key, value
        if key == SESSION_ID_KEY:
            yield semconv.GEN_AI_CONVERSATION_ID, value
