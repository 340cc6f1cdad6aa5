"""SessionSpanProcessor: ids on spans from any instrumentation, baggage in and out, threads."""

from __future__ import annotations

import httpx
from opentelemetry import baggage, propagate
from opentelemetry.context import attach, detach, set_value
from opentelemetry.instrumentation.httpx import SyncOpenTelemetryTransport

from spanloom import (
    SessionSpanProcessor,
    context_executor,
    suppress_tracing,
    using_attributes,
    using_metadata,
    using_session,
    using_tags,
    using_user,
    wrap,
)
from spanloom.sdk.register import SuppressionAwareSampler


def only_span(exporter):
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def test_plain_start_as_current_span_carries_ids(provider, exporter):
    tracer = provider.get_tracer("test")
    with using_attributes(session_id="conv-42", user_id="alice"), tracer.start_as_current_span("work"):
        pass
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "conv-42"
    assert attributes["gen_ai.conversation.id"] == "conv-42"
    assert attributes["user.id"] == "alice"


def test_tags_from_the_context_are_copied_not_shared(provider, exporter):
    # The context holds tags as a list (OpenInference's form); a span must not share it.
    tags = ["first"]
    token = attach(set_value("tag.tags", tags))
    try:
        provider.get_tracer("test").start_span("work").end()
    finally:
        detach(token)
    tags.append("added later")
    assert only_span(exporter).attributes["tag.tags"] == ("first",)


def test_no_ids_outside_the_block(provider, exporter):
    tracer = provider.get_tracer("test")
    with using_session("s"):
        pass
    with tracer.start_as_current_span("after"):
        pass
    assert "session.id" not in only_span(exporter).attributes


def test_metadata_tags_and_template_are_stamped(provider, exporter):
    tracer = provider.get_tracer("test")
    with (
        using_metadata({"tier": "gold"}),
        using_tags(["beta"]),
        using_attributes(prompt_template="Q: {q}", prompt_template_version="3"),
        tracer.start_as_current_span("work"),
    ):
        pass
    attributes = only_span(exporter).attributes
    assert attributes["metadata"] == '{"tier": "gold"}'
    assert tuple(attributes["tag.tags"]) == ("beta",)
    assert attributes["llm.prompt_template.template"] == "Q: {q}"
    assert attributes["llm.prompt_template.version"] == "3"


def test_span_that_already_has_the_attribute_keeps_it(provider, exporter):
    tracer = provider.get_tracer("test")
    with (
        using_session("from-context"),
        tracer.start_as_current_span("x", attributes={"session.id": "explicit"}),
    ):
        pass
    attributes = only_span(exporter).attributes
    assert attributes["session.id"] == "explicit"
    assert attributes["gen_ai.conversation.id"] == "from-context"


def test_ids_from_baggage_when_context_has_none(provider, exporter):
    tracer = provider.get_tracer("test")
    context = baggage.set_baggage("session.id", "js-session")
    context = baggage.set_baggage("user.id", "js-user", context)
    token = attach(context)
    try:
        with tracer.start_as_current_span("from-js"):
            pass
    finally:
        detach(token)
    attributes = only_span(exporter).attributes
    assert (attributes["session.id"], attributes["user.id"]) == ("js-session", "js-user")


def test_context_beats_baggage(provider, exporter):
    tracer = provider.get_tracer("test")
    token = attach(baggage.set_baggage("session.id", "from-baggage"))
    try:
        with using_session("from-code"), tracer.start_as_current_span("x"):
            pass
    finally:
        detach(token)
    assert only_span(exporter).attributes["session.id"] == "from-code"


def test_read_baggage_false_ignores_baggage(exporter):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SessionSpanProcessor(read_baggage=False))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    token = attach(baggage.set_baggage("user.id", "anyone-at-all"))
    try:
        with tracer_provider.get_tracer("t").start_as_current_span("x"):
            pass
    finally:
        detach(token)
    assert "user.id" not in only_span(exporter).attributes


def test_oversized_baggage_id_is_ignored(provider, exporter):
    token = attach(baggage.set_baggage("session.id", "x" * 10_000))
    try:
        with provider.get_tracer("t").start_as_current_span("x"):
            pass
    finally:
        detach(token)
    assert "session.id" not in only_span(exporter).attributes


def test_explicit_parent_context_still_gets_ids_from_the_code_around(provider, exporter):
    tracer = provider.get_tracer("t")
    extracted = propagate.extract({})
    with using_user("u"), tracer.start_as_current_span("x", context=extracted):
        pass
    assert only_span(exporter).attributes["user.id"] == "u"


def test_processor_failure_never_breaks_the_span(provider, exporter, caplog):
    class Exploding:
        def get(self, key):
            raise RuntimeError("bad baggage")

        def __bool__(self):
            return True

    from opentelemetry.baggage import _BAGGAGE_KEY
    from opentelemetry.context import get_current, set_value

    token = attach(set_value(_BAGGAGE_KEY, Exploding(), get_current()))
    try:
        with provider.get_tracer("t").start_as_current_span("survives"):
            pass
    finally:
        detach(token)
    assert only_span(exporter).name == "survives"


def instrumented_client(provider, handler) -> httpx.Client:
    """An httpx client whose requests go through OpenTelemetry's httpx instrumentation."""
    return httpx.Client(transport=SyncOpenTelemetryTransport(httpx.MockTransport(handler), provider))


def test_httpx_instrumentation_span_carries_ids(provider, exporter):
    client = instrumented_client(provider, lambda request: httpx.Response(200, text="ok"))
    with using_attributes(session_id="s-http", user_id="u-http"):
        client.get("http://service.test/ping")
    span = only_span(exporter)
    assert span.attributes["session.id"] == "s-http"
    assert span.attributes["user.id"] == "u-http"


def test_propagate_carries_ids_to_the_next_service(provider, exporter):
    """A second in-process "service" reads the ids from the baggage header it receives."""
    received: dict[str, str] = {}

    def downstream(request: httpx.Request) -> httpx.Response:
        received["baggage"] = request.headers.get("baggage", "")
        incoming = propagate.extract(dict(request.headers))
        with provider.get_tracer("downstream").start_as_current_span("handle", context=incoming):
            pass
        return httpx.Response(200)

    client = instrumented_client(provider, downstream)
    with using_attributes(session_id="conv-7", user_id="bob", propagate=True):
        client.get("http://downstream.test/answer")
    assert "session.id=conv-7" in received["baggage"]
    assert "user.id=bob" in received["baggage"]
    handle = next(span for span in exporter.get_finished_spans() if span.name == "handle")
    assert (handle.attributes["session.id"], handle.attributes["user.id"]) == ("conv-7", "bob")


def test_without_propagate_no_baggage_leaves(provider):
    headers: dict[str, str] = {}

    def downstream(request: httpx.Request) -> httpx.Response:
        headers.update(request.headers)
        return httpx.Response(200)

    client = instrumented_client(provider, downstream)
    with using_session("private"):
        client.get("http://downstream.test/")
    assert "private" not in headers.get("baggage", "")


def test_thread_pool_with_context_executor(provider, exporter):
    tracer = provider.get_tracer("t")

    def work(index: int) -> None:
        with tracer.start_as_current_span(f"item-{index}"):
            pass

    with using_attributes(session_id="pool", user_id="worker"), context_executor(max_workers=2) as pool:
        list(pool.map(work, range(4)))
    spans = exporter.get_finished_spans()
    assert len(spans) == 4
    assert {(span.attributes["session.id"], span.attributes["user.id"]) for span in spans} == {
        ("pool", "worker")
    }


def test_wrap_with_a_plain_thread_pool(provider, exporter):
    from concurrent.futures import ThreadPoolExecutor

    tracer = provider.get_tracer("t")

    def work() -> None:
        with tracer.start_as_current_span("wrapped"):
            pass

    with ThreadPoolExecutor(max_workers=1) as pool:
        with using_session("wrapped-session"):
            job = wrap(work)
        pool.submit(job).result()
        pool.submit(work).result()  # not wrapped: no session
    sessions = sorted(str(span.attributes.get("session.id")) for span in exporter.get_finished_spans())
    assert sessions == ["None", "wrapped-session"]


def test_suppress_tracing_drops_spans_with_the_register_sampler(exporter):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tracer_provider = TracerProvider(sampler=SuppressionAwareSampler())
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("t")
    with suppress_tracing(), tracer.start_as_current_span("hidden"):
        pass
    with tracer.start_as_current_span("shown"):
        pass
    assert [span.name for span in exporter.get_finished_spans()] == ["shown"]
