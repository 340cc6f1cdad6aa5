"""Ingest limits with clear errors, and traces too big to render whole (50,000 spans; depth 5,000)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from _server_kit import (
    BASE_TIME_NS,
    RunningServer,
    length_delimited,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
    run_server,
    wait_for,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# A page of 500 spans is a few hundred KB of HTML; the whole 50,000-span trace would be 100x that.
PAGE_BOUND_BYTES = 2_000_000


def partial(response: object) -> ExportTraceServiceResponse:
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(response.content)  # type: ignore[attr-defined]
    return parsed


def test_spans_per_request_over_the_limit_is_413_with_a_message(tmp_path: Path):
    with run_server(tmp_path / "limit.db", max_spans_per_request=10) as server:
        trace_id = new_trace_id()
        spans = [make_span(trace_id, new_span_id()) for _ in range(11)]
        response = server.post_spans(make_request(spans))
        assert response.status_code == 413
        error = response.json()["error"]
        assert error["code"] == "too_many_spans"
        assert "11 spans" in error["message"] and "10" in error["message"]
        assert server.post_spans(make_request(spans[:10])).status_code == 200


def test_long_values_are_truncated_and_marked(tmp_path: Path):
    with run_server(tmp_path / "cut.db", max_attribute_value_bytes=100, max_attributes_per_span=5) as server:
        trace_id = new_trace_id()
        long_text = "é" * 1000  # 2,000 bytes of UTF-8: the cut must fall between characters
        attributes = {"input.value": long_text, **{f"extra.{index}": index for index in range(9)}}
        span = make_span(trace_id, new_span_id(), name="n" * 500, attributes=attributes)
        assert server.post_spans(make_request([span])).status_code == 200
        stored = server.get_json(f"/api/traces/{trace_id.hex()}")["spans"][0]
        value = stored["attributes"]["input.value"]
        assert value == "é" * 50 + "…[truncated 1900 bytes]"
        assert stored["input"] == value
        assert stored["name"] == "n" * 100 + "…[truncated 400 bytes]"
        assert stored["attributes"]["spanloom.truncated"] is True
        # The first five attributes are kept; the other five counted.
        assert [key for key in stored["attributes"] if key.startswith(("input", "extra"))] == [
            "input.value",
            "extra.0",
            "extra.1",
            "extra.2",
            "extra.3",
        ]
        assert stored["attributes"]["spanloom.dropped_attributes_count"] == 5


def test_spans_past_the_trace_limit_are_rejected_through_partial_success(tmp_path: Path):
    with run_server(tmp_path / "trace.db", max_spans_per_trace=100) as server:
        big, small = new_trace_id(), new_trace_id()
        first = [make_span(big, new_span_id(), start_ms=index) for index in range(80)]
        assert partial(server.post_spans(make_request(first))).partial_success.rejected_spans == 0
        second = [make_span(big, new_span_id(), start_ms=100 + index) for index in range(40)]
        second.append(make_span(small, new_span_id()))
        answer = partial(server.post_spans(make_request(second)))
        assert answer.partial_success.rejected_spans == 20
        assert big.hex() in answer.partial_success.error_message
        assert "SPANLOOM_MAX_SPANS_PER_TRACE" in answer.partial_success.error_message
        traces = {item["trace_id"]: item for item in server.get_json("/api/traces", project="test")["items"]}
        assert traces[big.hex()]["span_count"] == 100
        assert traces[small.hex()]["span_count"] == 1


def _send_in_batches(server: RunningServer, spans: list[Span], batch: int = 10_000) -> None:
    for start in range(0, len(spans), batch):
        response = server.post_spans(make_request(spans[start : start + batch], {"project.name": "big"}))
        assert response.status_code == 200, response.text
        assert partial(response).partial_success.rejected_spans == 0


def _bounded_page(server: RunningServer, path: str) -> str:
    """The page's HTML, checked to be a page's worth (what the server built), not the trace's."""
    response = server.client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert len(response.content) < PAGE_BOUND_BYTES, len(response.content)
    return response.text


def _rendered_spans(html: str) -> int:
    return len(re.findall(r'<li id="span-', html))


def test_a_trace_of_50000_spans_is_stored_and_its_page_renders_in_pages(tmp_path: Path):
    with run_server(tmp_path / "wide.db", trace_page_spans=500) as server:
        trace_id, root = new_trace_id(), new_span_id()
        # A root, 500 agent steps under it, 99 tool calls under each step (less the last): 50,000 spans.
        spans = [make_span(trace_id, root, name="root", duration_ms=60_000)]
        for step in range(500):
            step_id = new_span_id()
            spans.append(make_span(trace_id, step_id, root, f"step-{step}", step * 100, 90))
            spans.extend(
                make_span(trace_id, new_span_id(), step_id, "tool", step * 100 + call * 0.5, 0.4)
                for call in range(99)
            )
        del spans[50_000:]
        assert len(spans) == 50_000
        _send_in_batches(server, spans)
        summary = wait_for(lambda: server.get_json("/api/traces", project="big")["items"], what="the trace")
        assert summary[0]["span_count"] == 50_000
        html = _bounded_page(server, f"/traces/{trace_id.hex()}")
        assert _rendered_spans(html) == 500
        assert "Spans 1\u2013500 of 50,000" in html and "offset=500" in html
        html = _bounded_page(server, f"/traces/{trace_id.hex()}?offset=49500")
        assert _rendered_spans(html) == 500
        assert "Spans 49,501\u201350,000 of 50,000" in html and "Show more" not in html
        assert server.client.get(f"/traces/{trace_id.hex()}?offset=-1").status_code == 400
        # The API hands the trace out a page at a time: together the pages hold every span once.
        seen, cursor, pages = set(), None, 0
        while True:
            detail = server.get_json(
                f"/api/traces/{trace_id.hex()}", limit=5_000, **({"cursor": cursor} if cursor else {})
            )
            ids = [span["span_id"] for span in detail["spans"]]
            starts = [span["start_time"] for span in detail["spans"]]
            assert starts == sorted(starts) and not seen.intersection(ids)
            seen.update(ids)
            pages += 1
            cursor = detail["next_cursor"]
            if cursor is None:
                break
        assert pages == 10 and len(seen) == 50_000


def test_a_chain_5000_deep_is_stored_and_its_page_renders(tmp_path: Path):
    with run_server(tmp_path / "deep.db", trace_page_spans=500) as server:
        trace_id = new_trace_id()
        spans, parent = [], b""
        for depth in range(5_000):
            span_id = new_span_id()
            spans.append(
                make_span(trace_id, span_id, parent, f"level-{depth}", depth * 0.01, 50 - depth * 0.01)
            )
            parent = span_id
        # Children before parents: the server must not depend on order.
        _send_in_batches(server, list(reversed(spans)), batch=2_500)
        summary = wait_for(lambda: server.get_json("/api/traces", project="big")["items"], what="the trace")
        assert summary[0]["span_count"] == 5_000
        html = _bounded_page(server, f"/traces/{trace_id.hex()}?offset=4500")
        assert _rendered_spans(html) == 500
        assert "level-4999" in html and 'class="span d15' in html  # indentation stops at depth 15
        detail = server.get_json(f"/api/traces/{trace_id.hex()}", limit=10_000)
        assert len(detail["spans"]) == 5_000 and detail["next_cursor"] is None
        assert min(span["start_time"] for span in detail["spans"]).startswith(
            time.strftime("%Y-%m-%d", time.gmtime(BASE_TIME_NS / 1e9))
        )


def test_values_over_the_budget_are_refused_before_decoding(tmp_path: Path):
    with run_server(tmp_path / "values.db", max_values_per_request=1000) as server:
        trace_id = new_trace_id()
        wide = make_span(trace_id, new_span_id(), attributes={"vector": list(range(2000))})
        response = server.post_spans(make_request([wide]))
        assert response.status_code == 413
        error = response.json()["error"]
        assert error["code"] == "too_many_values" and "1,000 values" in error["message"]
        as_json = {
            "resourceSpans": [
                {"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x"}] * 600}]}
            ]
        }
        response = server.client.post("/v1/traces", json=as_json)
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_values"
        narrow = make_span(trace_id, new_span_id(), attributes={"vector": list(range(900))})
        assert server.post_spans(make_request([narrow])).status_code == 200


def test_one_value_keeps_at_most_its_element_limit(tmp_path: Path):
    with run_server(tmp_path / "elements.db") as server:
        trace_id = new_trace_id()
        span = make_span(trace_id, new_span_id(), attributes={"vector": list(range(12_000)), "small": [1, 2]})
        assert server.post_spans(make_request([span])).status_code == 200
        stored = server.store.get_trace(trace_id.hex())
        attributes = stored.spans[0].attributes
        assert attributes["vector"] == list(range(10_000)) and attributes["small"] == [1, 2]
        assert attributes["spanloom.truncated"] is True


def test_nesting_past_protobufs_limit_is_a_400(tmp_path: Path):
    value = length_delimited(1, b"leaf")  # AnyValue.string_value
    for _ in range(120):  # AnyValue.array_value(5) > ArrayValue.values(1) > ...
        value = length_delimited(5, length_delimited(1, value))
    attribute = length_delimited(1, b"deep") + length_delimited(2, value)
    span = (
        length_delimited(1, new_trace_id())
        + length_delimited(2, new_span_id())
        + length_delimited(9, attribute)
    )
    body = length_delimited(1, length_delimited(2, length_delimited(2, span)))
    # A small budget: the body is walked rather than decoded at once, and its depth refused.
    with run_server(tmp_path / "deep.db", max_values_per_request=100) as server:
        response = server.client.post(
            "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
        )
        assert response.status_code == 400 and "nested too deeply" in response.json()["error"]["message"]
