"""Replay recorded conversations against a new version of an app.

A conversation's user messages (the turns' inputs of a recorded session, or the user messages of
a dataset example in the OpenAI chat format) are sent again, in order, to a target:
``answer(message, history) -> str``, sync or async, where `history` is the new run's
conversation so far as ``[{"role": "user"|"assistant", "content": ...}]``. The replay is a new
session, traced like any other: each turn is a span named ``replay turn`` (input, output, and
the target's own spans below it) inside ``using_attributes(session_id=NEW_ID,
metadata={"replay_of": ORIGINAL_ID}, tags=["replay"])``.

A turn whose target raises is recorded as an error on its span and in the result, and the replay
goes on with the next message (the failed turn adds no assistant message to the history): a
regression run shows every turn, and the caller's process never sees the exception.

    from spanloom.client import Client
    from spanloom.replay import replay_session

    result = replay_session(Client(), "s-42", "support", "my_app.chat:answer")
    print(result.session_id, result.failed_turns)
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode, TracerProvider

from spanloom import semconv
from spanloom.client import Client
from spanloom.sdk.context import using_attributes

T = TypeVar("T")
Message = dict[str, str]
Target = Callable[[str, list[Message]], str | Awaitable[str]]
REPLAY_TAG = "replay"
TURN_SPAN = "replay turn"
_MAX_ID_PREFIX = 200  # characters of the original id kept in the new one


@dataclass(slots=True)
class ReplayedTurn:
    message: str
    answer: str | None = None
    error: str | None = None  # "ValueError: ..." when the target raised


@dataclass(slots=True)
class ReplayResult:
    """One replayed conversation: the new session's id and what each turn answered."""

    replay_of: str
    session_id: str
    turns: list[ReplayedTurn] = field(default_factory=list)

    @property
    def failed_turns(self) -> list[int]:
        """0-based indexes of the turns whose target raised."""
        return [index for index, turn in enumerate(self.turns) if turn.error is not None]


def load_target(spec: str | Target) -> Target:
    """A target from ``module.path:callable`` (the working directory importable, as with
    ``python -m``); a callable is returned as it is."""
    if callable(spec):
        return spec
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"target must look like module.path:callable, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec} is not callable")
    return target


def new_session_id(replay_of: str) -> str:
    return f"{replay_of[:_MAX_ID_PREFIX]}-replay-{uuid.uuid4().hex[:12]}"


def user_messages(client: Client, session_id: str, project: str | None) -> list[str]:
    """The user's message of each turn of a recorded session, in order (each turn's input, as the
    API gives it: the last user message of the turn's input); turns without input are skipped."""
    detail = client.session(session_id, project)
    return [turn.input for turn in detail.turns if turn.input]


def dataset_conversations(path: str | Path) -> Iterator[tuple[str, list[str]]]:
    """(label, user messages) of each example of a JSONL dataset in the OpenAI chat format
    (``{"messages": [{"role": "user", "content": ...}, ...]}`` per line). The label is the
    example's ``metadata.session_id`` (or ``session_id``) when it has one, else ``FILE:LINE``."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                example = json.loads(line)
                messages = example["messages"]
                if not isinstance(messages, list):
                    raise TypeError("messages is not a list")
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a chat example ({error})") from None
            metadata = example.get("metadata") if isinstance(example.get("metadata"), dict) else {}
            label = metadata.get("session_id") or example.get("session_id") or f"{Path(path).name}:{number}"
            texts = [_text(message.get("content")) for message in messages if _is_user(message)]
            yield str(label), [text for text in texts if text]


def _is_user(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("role") == "user"


def _text(content: Any) -> str:
    """A message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


async def areplay_messages(
    messages: Sequence[str],
    target: str | Target,
    replay_of: str,
    *,
    session_id: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> ReplayResult:
    """Send `messages` in order to `target` as a new traced session (see the module's notes). A
    sync target runs in a worker thread (with this context), so replays run side by side."""
    answer = load_target(target)
    provider = tracer_provider or trace_api.get_tracer_provider()
    tracer = provider.get_tracer("spanloom.replay")
    result = ReplayResult(replay_of, session_id or new_session_id(replay_of))
    history: list[Message] = []
    metadata = {"replay_of": replay_of}
    with using_attributes(session_id=result.session_id, metadata=metadata, tags=[REPLAY_TAG]):
        for message in messages:
            turn = ReplayedTurn(message)
            with tracer.start_as_current_span(TURN_SPAN, record_exception=False) as span:
                span.set_attribute(semconv.OPENINFERENCE_SPAN_KIND, semconv.SpanKind.CHAIN.value)
                span.set_attribute(semconv.INPUT_VALUE, message)
                try:
                    turn.answer = await _call(answer, message, [dict(item) for item in history])
                except Exception as error:  # the target's failure is the turn's, not the replay's
                    turn.error = f"{type(error).__name__}: {error}"
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, turn.error))
                else:
                    span.set_attribute(semconv.OUTPUT_VALUE, turn.answer)
            history.append({"role": "user", "content": message})
            if turn.answer is not None:
                history.append({"role": "assistant", "content": turn.answer})
            result.turns.append(turn)
    return result


async def _call(answer: Target, message: str, history: list[Message]) -> str:
    if inspect.iscoroutinefunction(answer):
        value: Any = await answer(message, history)
    else:
        value = await asyncio.to_thread(answer, message, history)
        if inspect.isawaitable(value):
            value = await value
    return value if isinstance(value, str) else str(value)


async def areplay_session(
    client: Client,
    session_id: str,
    project: str | None,
    target: str | Target,
    *,
    new_session_id: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> ReplayResult:
    messages = await asyncio.to_thread(user_messages, client, session_id, project)
    return await areplay_messages(
        messages, target, session_id, session_id=new_session_id, tracer_provider=tracer_provider
    )


def replay_session(
    client: Client,
    session_id: str,
    project: str | None,
    target: str | Target,
    *,
    new_session_id: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> ReplayResult:
    """Replay one recorded session (its project's, read through `client`) against `target`;
    the new session is traced through `tracer_provider` (default: the global one, as
    `spanloom.register()` sets it). Works from a notebook's running event loop too."""
    return run_sync(
        areplay_session(
            client,
            session_id,
            project,
            target,
            new_session_id=new_session_id,
            tracer_provider=tracer_provider,
        )
    )


async def areplay_many(
    jobs: Sequence[Callable[[], Awaitable[ReplayResult]]],
    concurrency: int = 4,
    on_done: Callable[[ReplayResult | BaseException], None] | None = None,
) -> list[ReplayResult | BaseException]:
    """Run replay jobs, at most `concurrency` at once; each job's result (or the exception that
    stopped it, e.g. a session that could not be read) in order, and to `on_done` as it ends."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Callable[[], Awaitable[ReplayResult]]) -> ReplayResult | BaseException:
        async with gate:
            try:
                outcome: ReplayResult | BaseException = await job()
            except Exception as error:
                outcome = error
        if on_done is not None:
            on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(run(job) for job in jobs)))


def run_sync(coroutine: Awaitable[T]) -> T:
    """Run `coroutine` to its end: here, or in a thread of its own when this thread already runs
    an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()  # type: ignore[arg-type]
