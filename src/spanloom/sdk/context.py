"""Context attributes: session, user, metadata, tags and prompt template in the OpenTelemetry context.

The context keys are the span attribute names themselves (``"session.id"``, ``"user.id"``,
``"metadata"``, ``"tag.tags"``, ``"llm.prompt_template.*"``), not keys made by
``opentelemetry.context.create_key``. That is deliberate: OpenInference and traceAI use the same
plain keys, so their instrumentors read ids set with spanloom, and spanloom's processor and
instrumentors read ids set with theirs.

Each helper works as a context manager (``with`` / ``async with``) and as a decorator on plain
functions, coroutines, generators and async generators (`_decorate`). What an exit restores
never lives on the instance: a ``with`` block keeps the context it replaced inside the context
it attached, so one instance may be entered twice (nested, or from two asyncio tasks or threads
at once) and each exit restores exactly what its enter replaced. Validation of bad input lives
in `_validate`, the fast context-variable access in `_runtime`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context

from spanloom import semconv
from spanloom.sdk._decorate import decorate
from spanloom.sdk._guard import log_failure
from spanloom.sdk._runtime import attach_fast, get_current_fast, root_context
from spanloom.sdk._text import clean_text, dumps
from spanloom.sdk._validate import (
    reject,
    valid_id,
    valid_metadata,
    valid_optional_str,
    valid_tags,
)

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


# Where a `with` block keeps what its exit restores: the context it replaced, stored inside the
# context it attached (see ContextAttributes.__enter__).
_PARENT_KEY = "spanloom.parent_context"
# The context nobody has attached anything to yet; blocks entered there reuse a prebuilt one.
_ROOT_CONTEXT = root_context()


def _exit_to_parent(self: object, exc_type: object, exc: object, traceback: object) -> None:
    """Exit of a `with` block: attach again the context its enter replaced."""
    try:
        attach_fast(get_current_fast()[_PARENT_KEY])
    except Exception:
        # None stored: code inside the block replaced the context wholesale and never
        # restored it. Restore nothing rather than guess.
        log_failure("context exit")


class _Merge:
    """What a helper merges with the enclosing context at enter, instead of overwriting it."""

    __slots__ = ("baggage", "metadata", "tags")

    def __init__(self) -> None:
        self.metadata: dict[str, Any] | None = None
        self.tags: tuple[str, ...] | None = None
        self.baggage: dict[str, str] | None = None


class ContextAttributes:
    """Base of every using_* helper: a fixed set of context entries, plus merges done at enter.

    `_entries` are written as they are; `_merge` (when set) merges metadata with what the
    enclosing context holds (inner keys win), adds tags up, and writes ids into W3C baggage.

    An instance holds no state between enter and exit (what the exit restores lives in the
    context it attached), so one instance can be nested, entered from several tasks or
    threads at once, and shared: `using_session` and `using_user` hand out cached ones.
    """

    __slots__ = ("_entries", "_merge")

    def __init__(self) -> None:
        self._entries: dict[str, object] = {}
        self._merge: _Merge | None = None

    def _merging(self) -> _Merge:
        if self._merge is None:
            self._merge = _Merge()
        return self._merge

    def _set_metadata(self, metadata: dict[str, Any]) -> None:
        self._merging().metadata = metadata
        # the value when nothing encloses it, computed once
        self._entries[METADATA_KEY] = dumps(metadata)
        self._entries[_METADATA_DICT_KEY] = metadata

    def _set_tags(self, tags: tuple[str, ...]) -> None:
        self._merging().tags = tags
        self._entries[TAGS_KEY] = tags

    def _context(self, current: Context) -> Context:
        """The context to attach: `current` plus this helper's entries."""
        if self._merge is None:
            return Context({**current, **self._entries})
        return Context({**current, **self._merged_entries(current, self._merge)})

    def _merged_entries(self, current: Context, merge: _Merge) -> dict[str, object]:
        entries = dict(self._entries)
        if merge.metadata is not None:
            outer = current.get(_METADATA_DICT_KEY)
            if outer:
                merged = {**outer, **merge.metadata}  # type: ignore[dict-item]
                entries[METADATA_KEY] = dumps(merged)
                entries[_METADATA_DICT_KEY] = merged
        if merge.tags is not None:
            outer_tags = current.get(TAGS_KEY)
            if outer_tags:
                entries[TAGS_KEY] = tuple(dict.fromkeys((*outer_tags, *merge.tags)))  # type: ignore[misc]
        if merge.baggage is not None:
            outer_baggage = current.get(_BAGGAGE_KEY) or {}
            entries[_BAGGAGE_KEY] = {**outer_baggage, **merge.baggage}  # type: ignore[dict-item]
        return entries

    # --- context manager ---
    def __enter__(self) -> ContextAttributes:
        entries = self._entries
        if entries:
            current = get_current_fast()
            context = self._context(current)
            # What the exit restores goes into the attached context itself: nested or
            # concurrent uses of one instance each find their own, and the instance holds no
            # state. (The context is fresh and seen by nobody yet, so writing into it is safe.)
            dict.__setitem__(context, _PARENT_KEY, current)
            attach_fast(context)
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if self._entries:
            _exit_to_parent(self, exc_type, exc, traceback)

    async def __aenter__(self) -> ContextAttributes:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.__exit__(exc_type, exc, traceback)

    # --- decorator ---
    def __call__(self, fn: _F) -> _F:
        if not callable(fn):
            reject(f"{type(self).__name__} decorates a callable, got {type(fn).__name__}", TypeError)
            return fn
        if not self._entries:
            return fn
        return decorate(fn, self._context)


class _IdAttributes(ContextAttributes):
    """What using_session / using_user return: one id, never changed after construction.

    Its enter and exit are the base class's, specialized for one key: this is the block an
    application enters on every request.
    """

    __slots__ = ("_key", "_root_context", "_value")

    def __init__(self, key: str, value: str) -> None:
        super().__init__()
        self._entries[key] = value
        self._key = key
        self._value = value
        # Entered at the root (a script, a worker loop, a request handler with no server span)
        # the context to attach is always the same: build it once. It holds only the root.
        self._root_context = Context({key: value, _PARENT_KEY: _ROOT_CONTEXT})

    def __enter__(self) -> ContextAttributes:
        current = get_current_fast()
        if current is _ROOT_CONTEXT:
            attach_fast(self._root_context)
        else:
            attach_fast(Context({**current, self._key: self._value, _PARENT_KEY: current}))
        return self

    __exit__ = _exit_to_parent  # the function itself, not a call to it: one frame less


class _PropagatedIdAttributes(ContextAttributes):
    """One id that also goes into W3C baggage (`propagate=True`)."""

    __slots__ = ()

    def __init__(self, key: str, value: str) -> None:
        super().__init__()
        self._entries[key] = value
        self._merging().baggage = {key: value}


_NOTHING = ContextAttributes()  # what a rejected id gets: enter, exit and decorate do nothing
# Helpers per id, reused: most applications enter the same few sessions and users over and
# over, and building the helper is a third of the cost of a `with` block. Bounded: the cache
# starts over once it holds this many ids.
_MAX_CACHED_IDS = 4096
_SESSION_HELPERS: dict[str, _IdAttributes] = {}
_USER_HELPERS: dict[str, _IdAttributes] = {}


def _id_helper(
    cache: dict[str, _IdAttributes], key: str, value: object, propagate: bool, what: str
) -> ContextAttributes:
    if not valid_id(value, what, stacklevel=5):
        return _NOTHING
    if propagate:
        return _PropagatedIdAttributes(key, value)  # type: ignore[arg-type]
    helper = _IdAttributes(key, value)  # type: ignore[arg-type]
    if len(cache) >= _MAX_CACHED_IDS:
        cache.clear()
    cache[value] = helper  # type: ignore[index]
    return helper


def using_session(session_id: str, *, propagate: bool = False) -> ContextAttributes:
    """Put a session id (the conversation a span belongs to) into the context.

    Every span started inside carries ``session.id`` (and ``gen_ai.conversation.id``). Use it
    as ``with using_session("conv-42"):``, ``async with``, or ``@using_session("conv-42")``.
    `propagate=True` also writes it into W3C baggage for outgoing requests.
    """
    if propagate is False:
        try:
            return _SESSION_HELPERS[session_id]
        except Exception:  # not cached yet, or not even hashable: validated below
            pass
    return _id_helper(_SESSION_HELPERS, SESSION_ID_KEY, session_id, propagate, "session_id")


def using_user(user_id: str, *, propagate: bool = False) -> ContextAttributes:
    """Put a user id into the context; every span started inside carries ``user.id``.

    Same forms as `using_session`.
    """
    if propagate is False:
        try:
            return _USER_HELPERS[user_id]
        except Exception:  # not cached yet, or not even hashable: validated below
            pass
    return _id_helper(_USER_HELPERS, USER_ID_KEY, user_id, propagate, "user_id")


class using_metadata(ContextAttributes):
    """Put metadata (a dict, stored as a JSON string) into the context; nested blocks merge."""

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        super().__init__()
        valid = valid_metadata(metadata)
        if valid is not None:
            self._set_metadata(valid)


class using_tags(ContextAttributes):
    """Put tags (a list of strings) into the context; nested blocks add up."""

    __slots__ = ()

    def __init__(self, tags: list[str]) -> None:
        super().__init__()
        valid = valid_tags(tags)
        if valid is not None:
            self._set_tags(valid)


class using_prompt_template(ContextAttributes):
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
        entries[PROMPT_TEMPLATE_KEY] = clean_text(template)  # type: ignore[arg-type]
    if version and valid_optional_str(version, "prompt_template_version"):
        entries[PROMPT_TEMPLATE_VERSION_KEY] = clean_text(version)  # type: ignore[arg-type]
    if variables is not None:
        if isinstance(variables, Mapping):
            entries[PROMPT_TEMPLATE_VARIABLES_KEY] = dumps(dict(variables))
        else:
            reject(f"prompt_template_variables must be a dict, got {type(variables).__name__}", TypeError)


class using_attributes(ContextAttributes):
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
        if session_id is not None and valid_id(session_id, "session_id"):
            entries[SESSION_ID_KEY] = session_id
        if user_id is not None and valid_id(user_id, "user_id"):
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
                self._merging().baggage = baggage  # type: ignore[assignment]


class suppress_tracing(ContextAttributes):
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
    """The span attributes the current context holds, as ``(key, value)`` pairs.

    ``session.id`` comes with its GenAI mirror ``gen_ai.conversation.id``.
    """
    context = get_current_fast() if context is None else context
    for key in _SPAN_ATTRIBUTE_KEYS:
        value = context.get(key)
        if value is None:
            continue
        if key == TAGS_KEY:
            value = list(value)  # type: ignore[call-overload]
        yield key, value
        if key == SESSION_ID_KEY:
            yield semconv.GEN_AI_CONVERSATION_ID, value
