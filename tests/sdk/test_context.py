"""Context attributes: context managers, decorators, nesting, reuse, validation."""

from __future__ import annotations

import asyncio
import contextvars
import json
import math

import pytest
from opentelemetry.context import Context, attach, get_current, set_value

import spanloom
from spanloom import (
    SpanloomWarning,
    get_attributes_from_context,
    using_attributes,
    using_metadata,
    using_prompt_template,
    using_session,
    using_tags,
    using_user,
)

from .warning_kit import spanloom_warning_files


def current_ids() -> tuple[object, object]:
    context = get_current()
    return context.get("session.id"), context.get("user.id")


def test_context_keys_are_the_attribute_names():
    # OpenInference and traceAI read these exact plain keys.
    with using_attributes(session_id="s", user_id="u"):
        assert get_current().get("session.id") == "s"
        assert get_current().get("user.id") == "u"


def test_with_block_sets_and_restores():
    assert current_ids() == (None, None)
    with using_session("s1"):
        assert current_ids() == ("s1", None)
        with using_user("u1"):
            assert current_ids() == ("s1", "u1")
        assert current_ids() == ("s1", None)
    assert current_ids() == (None, None)


def test_inner_value_wins_and_outer_comes_back():
    with using_session("outer"):
        with using_session("inner"):
            assert current_ids()[0] == "inner"
        assert current_ids()[0] == "outer"


def test_restored_after_exception():
    with pytest.raises(RuntimeError), using_session("s1"):
        raise RuntimeError("boom")
    assert current_ids() == (None, None)


def test_one_instance_nested_twice():
    helper = using_session("same")
    with helper:
        with using_session("other"):
            with helper:
                assert current_ids()[0] == "same"
            assert current_ids()[0] == "other"
        assert current_ids()[0] == "same"
    assert current_ids()[0] is None


def test_exit_at_the_root_restores_the_root_context_itself():
    root = get_current()
    with using_session("s1"):  # the prebuilt root-level context
        with using_session("s1"):  # the same helper again, now not at the root
            assert current_ids()[0] == "s1"
        assert current_ids()[0] == "s1"
    assert get_current() is root


def test_exit_undoes_a_context_attached_inside_and_never_detached():
    root = get_current()
    with using_session("s1"):
        attach(set_value("leaked", "yes"))  # no detach: the block's exit still restores
        assert current_ids()[0] == "s1"
    assert get_current() is root
    assert get_current().get("leaked") is None


def test_exit_after_the_context_was_replaced_wholesale_restores_what_the_block_replaced():
    def scenario() -> None:
        outer = get_current()
        with using_session("s1"):
            attach(Context({"replaced": True}))  # not derived from the block's context
        # The exit resets its own enter's token: back to exactly what the block replaced.
        assert get_current() is outer

    contextvars.copy_context().run(scenario)
    assert current_ids() == (None, None)


def test_exit_after_a_leak_inside_a_helper_entered_in_another_thread_restores_nothing(caplog):
    # A shared helper whose last enter was in another thread: its token cannot be reset here,
    # and guessing would hand this thread that thread's context. (Both enters are below some
    # other context: an enter at the root needs no token, what it replaced is the root.)
    import threading

    helper = using_user("shared-leak")

    def enter_elsewhere() -> None:
        attach(set_value("thread", "other"))
        helper.__enter__()

    def scenario() -> None:
        attach(set_value("request", "r1"))
        with helper:
            entered_elsewhere = threading.Thread(target=enter_elsewhere)
            entered_elsewhere.start()
            entered_elsewhere.join()
            attach(Context({"replaced": True}))
        assert get_current() == {"replaced": True}

    contextvars.copy_context().run(scenario)
    assert current_ids() == (None, None)
    assert "context exit failed" in caplog.text


def test_exit_after_a_leak_in_a_block_entered_at_the_root_restores_the_root():
    def scenario() -> None:
        root = get_current()
        helper = using_session("root-leak")
        with helper:
            with helper:  # the same helper again, below the first: this one keeps a token
                assert current_ids()[0] == "root-leak"
            attach(set_value("leaked", "yes"))
        assert get_current() is root

    contextvars.copy_context().run(scenario)


def test_one_instance_from_two_tasks_at_once():
    helper = using_user("shared")
    order: list[str] = []

    async def task(name: str, entered: asyncio.Event, other_entered: asyncio.Event) -> object:
        with using_session(name):
            async with helper:
                entered.set()
                await other_entered.wait()  # both tasks are inside the same instance now
                order.append(name)
                assert current_ids() == (name, "shared")
            return current_ids()

    async def main() -> list[object]:
        first, second = asyncio.Event(), asyncio.Event()
        results = await asyncio.gather(task("a", first, second), task("b", second, first))
        assert current_ids() == (None, None)
        return results

    assert asyncio.run(main()) == [("a", None), ("b", None)]
    assert sorted(order) == ["a", "b"]


def test_two_tasks_with_different_sessions_see_their_own():
    async def turn(session_id: str, gate: asyncio.Event, release: asyncio.Event) -> str:
        with using_session(session_id):
            gate.set()
            await release.wait()
            return get_current().get("session.id")  # type: ignore[return-value]

    async def main() -> list[str]:
        gate_a, gate_b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(turn("A", gate_a, gate_b), turn("B", gate_b, gate_a))

    assert asyncio.run(main()) == ["A", "B"]


def test_asyncio_tasks_inherit_the_session():
    async def child() -> object:
        await asyncio.sleep(0)
        return current_ids()

    async def main() -> object:
        with using_attributes(session_id="s", user_id="u"):
            return await asyncio.create_task(child())

    assert asyncio.run(main()) == ("s", "u")


def test_decorates_plain_function():
    @using_attributes(session_id="s", user_id="u")
    def call() -> object:
        return current_ids()

    assert call() == ("s", "u")
    assert current_ids() == (None, None)
    assert call.__name__ == "call"


def test_decorates_coroutine():
    @using_session("s")
    async def call() -> object:
        await asyncio.sleep(0)
        return current_ids()

    assert asyncio.run(call()) == ("s", None)


def test_decorated_generator_holds_ids_across_yields_without_leaking():
    seen_inside: list[object] = []

    @using_session("gen-session")
    def generate():
        for index in range(3):
            seen_inside.append(current_ids()[0])
            received = yield index
            seen_inside.append(("received", received))
        return "done"

    generator = generate()
    assert next(generator) == 0
    assert current_ids()[0] is None  # the caller between items has no session
    with using_session("caller"):
        assert generator.send("x") == 1
        assert current_ids()[0] == "caller"
    assert generator.send("y") == 2
    with pytest.raises(StopIteration) as stop:
        next(generator)
    assert stop.value.value == "done"
    assert seen_inside == [
        "gen-session",
        ("received", "x"),
        "gen-session",
        ("received", "y"),
        "gen-session",
        ("received", None),
    ]


def test_decorated_generator_throw_and_close_run_inside():
    log: list[object] = []

    @using_user("u")
    def generate():
        try:
            yield 1
            yield 2
        except ValueError:
            log.append(("caught", current_ids()[1]))
            yield 3
        finally:
            log.append(("finally", current_ids()[1]))

    generator = generate()
    assert next(generator) == 1
    assert generator.throw(ValueError("x")) == 3
    generator.close()
    assert log == [("caught", "u"), ("finally", "u")]
    assert current_ids() == (None, None)


def test_decorated_async_generator():
    @using_attributes(session_id="ag", user_id="au")
    async def generate():
        for index in range(2):
            await asyncio.sleep(0)
            yield index, current_ids()

    async def main() -> list[object]:
        items = []
        async for item in generate():
            items.append(item)
            assert current_ids() == (None, None)
        return items

    assert asyncio.run(main()) == [(0, ("ag", "au")), (1, ("ag", "au"))]


def test_async_generator_asend_and_aclose():
    log: list[object] = []

    @using_session("s")
    async def echo():
        try:
            received = yield "ready"
            while True:
                received = yield f"got {received}"
        finally:
            log.append(current_ids()[0])

    async def main() -> list[str]:
        generator = echo()
        answers = [await generator.asend(None), await generator.asend("a")]
        await generator.aclose()
        return answers

    assert asyncio.run(main()) == ["ready", "got a"]
    assert log == ["s"]


def test_nested_metadata_merges_inner_keys_win():
    with using_metadata({"a": 1, "b": 1}), using_metadata({"b": 2, "c": 3}):
        assert json.loads(get_current()["metadata"]) == {"a": 1, "b": 2, "c": 3}  # type: ignore[arg-type]
    with using_metadata({"a": 1}):
        assert json.loads(get_current()["metadata"]) == {"a": 1}  # type: ignore[arg-type]


def test_nested_tags_add_up():
    with using_tags(["a", "b"]), using_attributes(tags=["b", "c"]):
        assert dict(get_attributes_from_context())["tag.tags"] == ["a", "b", "c"]
    with using_tags(["a"]):
        assert dict(get_attributes_from_context())["tag.tags"] == ["a"]


def test_metadata_with_unserializable_values_does_not_fail():
    with using_metadata({"when": object(), "n": 1}):
        metadata = json.loads(get_current()["metadata"])  # type: ignore[arg-type]
    assert metadata["n"] == 1
    assert metadata["when"].startswith("<object")


def test_metadata_with_nan_and_infinity_is_still_json():
    # NaN and Infinity are not JSON: a backend parsing the attribute strictly would drop it.
    with using_metadata({"score": math.nan, "limits": [math.inf, -math.inf, 1.5]}):
        text = get_current()["metadata"]
    metadata = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))  # type: ignore[arg-type]
    assert metadata == {"score": "NaN", "limits": ["Infinity", "-Infinity", 1.5]}


def test_prompt_template():
    with using_prompt_template(template="Hi {name}", version="v2", variables={"name": "Ann"}):
        attributes = dict(get_attributes_from_context())
    assert attributes == {
        "llm.prompt_template.template": "Hi {name}",
        "llm.prompt_template.version": "v2",
        "llm.prompt_template.variables": '{"name": "Ann"}',
    }


def test_using_attributes_everything():
    with using_attributes(
        session_id="s",
        user_id="u",
        metadata={"k": "v"},
        tags=["t"],
        prompt_template="T",
        prompt_template_version="1",
        prompt_template_variables={"x": 1},
    ):
        attributes = dict(get_attributes_from_context())
    assert attributes == {
        "session.id": "s",
        "user.id": "u",
        "metadata": '{"k": "v"}',
        "tag.tags": ["t"],
        "llm.prompt_template.template": "T",
        "llm.prompt_template.version": "1",
        "llm.prompt_template.variables": '{"x": 1}',
    }


@pytest.mark.parametrize("bad", ["", "   ", None, 42, b"bytes", ["s"]])
def test_bad_session_id_warns_and_sets_nothing(bad, monkeypatch):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    with pytest.warns(SpanloomWarning, match="session_id must be a non-empty string"), using_session(bad):
        assert current_ids() == (None, None)


def test_bad_user_id_in_using_attributes_keeps_the_good_session(monkeypatch):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    with pytest.warns(SpanloomWarning, match="user_id"), using_attributes(session_id="s", user_id=""):
        assert current_ids() == ("s", None)


def test_bad_inputs_warn_once_each(monkeypatch):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    with pytest.warns(SpanloomWarning) as record:
        using_metadata("not a dict")  # type: ignore[arg-type]
    assert len(record) == 1
    with pytest.warns(SpanloomWarning, match="tags"):
        using_tags("a-string-not-a-list")  # type: ignore[arg-type]
    with pytest.warns(SpanloomWarning, match="tags"):
        using_tags([1, 2])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: using_session(""), ValueError),
        (lambda: using_session(None), TypeError),  # type: ignore[arg-type]
        (lambda: using_user(7), TypeError),  # type: ignore[arg-type]
        (lambda: using_attributes(session_id="  "), ValueError),
        (lambda: using_metadata([1]), TypeError),  # type: ignore[arg-type]
        (lambda: using_tags("x"), TypeError),  # type: ignore[arg-type]
    ],
)
def test_strict_mode_raises(make, error, monkeypatch):
    monkeypatch.setenv("SPANLOOM_STRICT", "1")
    with pytest.raises(error):
        make()


def test_public_api_is_pinned():
    assert sorted(spanloom.__all__) == sorted(
        [
            "REDACTED_VALUE",
            "AsyncClient",
            "Client",
            "ContextThreadPoolExecutor",
            "SessionSpanProcessor",
            "SpanKind",
            "SpanloomTracer",
            "SpanloomWarning",
            "TraceConfig",
            "__version__",
            "context_executor",
            "current_trace_id",
            "end_session",
            "flush_feedback",
            "get_attributes_from_context",
            "get_tracer",
            "log_evaluation",
            "log_feedback",
            "register",
            "suppress_tracing",
            "using_attributes",
            "using_metadata",
            "using_prompt_template",
            "using_session",
            "using_tags",
            "using_user",
            "wrap",
        ]
    )
    for name in spanloom.__all__:
        assert hasattr(spanloom, name), name


@pytest.mark.parametrize(
    "make",
    [
        lambda: using_session(""),
        lambda: using_user(None),  # type: ignore[arg-type]
        lambda: using_attributes(session_id=""),
        lambda: using_metadata(1),  # type: ignore[arg-type]
        lambda: using_tags(1),  # type: ignore[arg-type]
    ],
)
def test_warning_points_at_the_callers_line(make, monkeypatch):
    monkeypatch.delenv("SPANLOOM_STRICT", raising=False)
    with pytest.warns(SpanloomWarning) as record:
        make()
    assert spanloom_warning_files(record) == {__file__}


def test_helpers_are_shared_safely_across_threads(provider, exporter):
    from concurrent.futures import ThreadPoolExecutor

    tracer = provider.get_tracer("t")
    assert using_session("shared-id") is using_session("shared-id")  # cached, stateless

    def turn(index: int) -> tuple[object, object]:
        with using_session("shared-id"), using_user(f"user-{index % 3}"):
            with tracer.start_as_current_span("turn"):
                pass
            return current_ids()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(turn, range(200)))
    assert results == [("shared-id", f"user-{index % 3}") for index in range(200)]
    users = sorted(span.attributes["user.id"] for span in exporter.get_finished_spans())
    assert users == sorted(f"user-{index % 3}" for index in range(200))
    assert current_ids() == (None, None)
