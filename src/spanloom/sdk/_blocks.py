"""What a `using_*` block attaches, and how its exit puts back what its enter replaced.

The attached context holds the attributes as its entries and nothing else: iterating it, as
OpenInference's tests do, shows the attribute keys only. The bookkeeping lives in slots of the
attached object, a `BlockContext`: the helper that attached it (`owner`) and the context it
replaced (`parent`). Keeping that per enter, in the attached object rather than on the helper,
is what lets one helper be entered twice at once (nested, or from two threads or tasks).

An id helper (`IdAttributes`, what `using_session` / `using_user` return) is itself the
context it attaches at the root context (a script, a worker loop, a request with no server
span), whose only entry is its id: entering it there allocates nothing.

An exit finds its own block current in the normal case and attaches that block's parent.
When code inside attached a context and never detached it, the current context is not the
block: the exit then resets the token of the helper's last enter, which restores exactly what
that enter replaced, or, when that token was made in another thread or task (a helper shared
between them), restores nothing and logs, rather than hand this thread another's context. An
id helper entered at the root keeps no token: what it replaced was the root.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from opentelemetry.context import Context

from spanloom.sdk._decorate import decorate
from spanloom.sdk._guard import log_failure
from spanloom.sdk._runtime import attach_fast, get_current_fast, reset_fast, root_context
from spanloom.sdk._validate import reject

_F = TypeVar("_F", bound=Callable[..., Any])

# The context nobody has attached anything to yet.
ROOT_CONTEXT = root_context()


class BlockContext(Context):
    """The context a `with` block attaches: attribute entries, plus what the exit needs."""

    __slots__ = ("owner", "parent")
    owner: object  # the helper whose enter attached this block
    parent: Context  # the context it replaced


def restore_after_leak(helper: Any, entered_at_root: Context | None = None) -> None:
    """Exit of a block whose context is no longer current: undo `helper`'s last enter.

    `entered_at_root`: the root context, for a helper whose enters at the root keep no token
    (an id helper): no token pending then means the block was entered there.
    """
    token = getattr(helper, "_token", None)
    if token is None and entered_at_root is not None:
        attach_fast(entered_at_root)
        return
    try:
        reset_fast(token)
    except Exception:
        # Never entered, already reset, or made in another thread or task: what to restore
        # cannot be known, so restore nothing rather than guess.
        log_failure("context exit")
    helper._token = None


class ContextAttributes:
    """Base of every using_* helper: context entries attached for the length of a block or call.

    Works as a context manager (``with``, ``async with``) and as a decorator. A helper keeps
    nothing between its enter and its exit but the token of its last enter (see the module
    docstring), so one instance can be nested, shared and entered from several tasks or
    threads at once.
    """

    __slots__ = ()
    _entries: dict[str, object]

    def _values(self, current: Context) -> dict[str, object]:
        """The entries of the context to attach over `current`."""
        raise NotImplementedError

    def _context(self, current: Context) -> Context:
        """The context a decorated call runs in: `current` plus this helper's entries."""
        return Context(self._values(current))

    async def __aenter__(self) -> ContextAttributes:
        return self.__enter__()  # type: ignore[attr-defined]  # each subclass defines __enter__

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.__exit__(exc_type, exc, traceback)  # type: ignore[attr-defined]  # each subclass defines __exit__

    def __call__(self, fn: _F) -> _F:
        if not callable(fn):
            reject(f"{type(self).__name__} decorates a callable, got {type(fn).__name__}", TypeError)
            return fn
        if not self._entries:
            return fn
        return decorate(fn, self._context)


class EntriesAttributes(ContextAttributes):
    """A helper with a dict of entries, merged over the context current at enter."""

    __slots__ = ("_entries", "_token")

    def __init__(self) -> None:
        self._entries = {}
        self._token: object = None

    def _values(self, current: Context) -> dict[str, object]:
        values = current.copy()
        values.update(self._entries)
        return values

    def __enter__(self) -> ContextAttributes:
        if self._entries:
            current = get_current_fast()
            block = BlockContext(self._values(current))
            block.owner = self
            block.parent = current
            self._token = attach_fast(block)
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if self._entries:
            current = get_current_fast()
            # __class__ identity, not isinstance: the cheaper test on every exit (mypy narrows
            # on it from 2.0, the floor pyproject.toml declares).
            if current.__class__ is BlockContext and current.owner is self:
                attach_fast(current.parent)
                self._token = None  # a token holds its thread's context: let that go
            else:
                restore_after_leak(self)


class IdAttributes(Context, ContextAttributes):
    """One id under one key, and the context to attach at the root: ``{key: id}``.

    A Context, so that entering it at the root attaches the helper itself. It is never
    changed after `make` (a Context refuses item assignment). Subclasses come from
    `id_helper_class`, with the key built into enter and exit.
    """

    __slots__ = ("_token", "_value")
    key: ClassVar[str]
    _value: str
    _token: Any  # the token of the last enter away from the root, or None

    @classmethod
    def make(cls, value: str) -> IdAttributes:
        """The helper of `value`, already validated."""
        helper = cls({cls.key: value})
        helper._value = value
        return helper

    @property
    def _entries(self) -> dict[str, object]:  # type: ignore[override]  # computed here, a slot elsewhere
        return dict(self)

    def _values(self, current: Context) -> dict[str, object]:
        values = current.copy()
        values[self.key] = self._value
        return values

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._value!r})"


def id_helper_class(key: str, name: str) -> type[IdAttributes]:
    """The `IdAttributes` class for one context key, with the key built into enter and exit.

    A block of these is entered once per request of the host application, so enter and exit
    are written out for one key: at the root context they attach the helper itself; elsewhere
    one copy of the current context plus the id.
    """

    def enter(self: IdAttributes) -> IdAttributes:
        current = get_current_fast()
        if current is ROOT_CONTEXT:
            # No token kept: an exit that finds something leaked knows what a root enter
            # replaced (the root), and the request path saves two stores.
            attach_fast(self)
        else:
            values = current.copy()
            values[key] = self._value
            block = BlockContext(values)
            block.owner = self
            block.parent = current
            self._token = attach_fast(block)
        return self

    def exit(self: IdAttributes, exc_type: object, exc: object, traceback: object) -> None:
        current = get_current_fast()
        if current is self:
            # Only entered at the root when there is one (ROOT_CONTEXT is not None).
            attach_fast(ROOT_CONTEXT)  # type: ignore[arg-type]  # not None where a helper was entered at the root
        elif current.__class__ is BlockContext and current.owner is self:
            attach_fast(current.parent)
            self._token = None  # a token holds its thread's context: let that go
        else:
            restore_after_leak(self, entered_at_root=ROOT_CONTEXT)

    namespace = {
        "__slots__": (),
        "__doc__": f"The helper of one {name} id (see IdAttributes).",
        "key": key,
        "__enter__": enter,
        "__exit__": exit,
    }
    return type(f"{name.title()}Attributes", (IdAttributes,), namespace)


NOTHING = EntriesAttributes()  # what rejected input gets: enter, exit and decorate do nothing
