"""/healthz, /readyz and /metrics on a real server: the probes answer without keys; the metrics
count exactly what a test sent, stored and refused, per app; /metrics is behind an admin key when
keys are configured and open when none are."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from _server_kit import (
    PROTOBUF,
    RunningServer,
    make_request,
    make_span,
    make_turn,
    new_span_id,
    new_trace_id,
    run_server,
    wait_for,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client.parser import text_string_to_metric_families

ADMIN = "operations-admin-key-0123456789"
READER = "operations-read-key-0123456789"
SHOP_ADMIN = "operations-shop-admin-0123456789"
SHOP_INGEST = "operations-shop-ingest-012345678"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def scrape(server: RunningServer, headers: dict[str, str] | None = None) -> dict:
    response = server.client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def rejected_in(response: httpx.Response) -> int:
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    return answer.partial_success.rejected_spans


def test_probes_answer(tmp_path: Path):
    with run_server(tmp_path / "probes.db") as server:
        assert server.get_json("/healthz") == {"status": "ok"}
        assert server.get_json("/readyz") == {"status": "ready"}


def test_metrics_count_exactly_what_was_sent_stored_and_refused(tmp_path: Path):
    with run_server(tmp_path / "counted.db", max_spans_per_trace=10) as server:
        before = scrape(server)
        assert value(before, "spanloom_ingest_spans_received_total") == 0
        assert value(before, "spanloom_ingest_spans_rejected_total", reason="invalid_id") == 0

        # 2 turns of 2 spans, 2 spans with bad ids, and 1 span sent twice in the request.
        spans = [span for index in range(2) for span in make_turn(f"s{index}", "u1", index * 1000)[1]]
        bad = [
            make_span(bytes(16), new_span_id()),  # an all-zero trace id
            make_span(new_trace_id(), b"\x01\x02"),  # a span id of 2 bytes
        ]
        first = server.post_spans(make_request([*spans, *bad, spans[0]]))
        assert first.status_code == 200 and rejected_in(first) == 3
        # The 4 good spans again: stored again (nothing duplicates), and counted again.
        assert server.post_spans(make_request(spans)).status_code == 200
        # One trace of 12 spans, 2 past the per-trace limit of 10.
        trace = new_trace_id()
        root = make_span(trace, new_span_id(), name="root")
        long_trace = [root, *(make_span(trace, new_span_id(), root.span_id) for _ in range(11))]
        over = server.post_spans(make_request(long_trace))
        assert over.status_code == 200 and rejected_in(over) == 2
        # Refused whole: a body that does not decode, and a content type that is not OTLP.
        assert (
            server.client.post("/v1/traces", content=b"\xff\x00garbage", headers=PROTOBUF).status_code == 400
        )
        assert (
            server.client.post(
                "/v1/traces", content=b"{}", headers={"Content-Type": "text/plain"}
            ).status_code
            == 415
        )
        session = server.get_json("/api/sessions")["items"][0]["session_id"]
        assert server.get(f"/api/sessions/{session}").status_code == 200
        assert server.get("/api/sessions/no-such-session").status_code == 404
        assert server.get("/no/such/page").status_code == 404

        # The background checkpointer may copy the last commit into the database file at any
        # moment (the size grows, never shrinks, without a write): the gauge lies between these.
        size_before = server.store.stats().size_bytes
        found = scrape(server)
        size_after = server.store.stats().size_bytes
        assert value(found, "spanloom_ingest_spans_received_total") == 7 + 4 + 12
        assert value(found, "spanloom_ingest_spans_stored_total") == 4 + 4 + 10
        assert value(found, "spanloom_ingest_spans_rejected_total", reason="invalid_id") == 2
        assert value(found, "spanloom_ingest_spans_rejected_total", reason="duplicate_span") == 1
        assert value(found, "spanloom_ingest_spans_rejected_total", reason="trace_span_limit") == 2
        assert value(found, "spanloom_ingest_spans_rejected_total", reason="storage_full") == 0
        assert value(found, "spanloom_ingest_requests_refused_total", reason="undecodable") == 1
        assert value(found, "spanloom_ingest_requests_refused_total", reason="unsupported_media_type") == 1
        assert value(found, "spanloom_ingest_requests_refused_total", reason="busy") == 0

        ingest = {"method": "POST", "route": "/v1/traces"}
        assert value(found, "spanloom_http_requests_total", **ingest, status="200") == 3
        assert value(found, "spanloom_http_requests_total", **ingest, status="400") == 1
        assert value(found, "spanloom_http_requests_total", **ingest, status="415") == 1
        assert value(found, "spanloom_http_request_duration_seconds_count", **ingest) == 5
        assert value(found, "spanloom_http_request_duration_seconds_sum", **ingest) > 0
        # Routes by template, never by path: one series for every session id.
        detail = {"method": "GET", "route": "/api/sessions/{session_id}"}
        assert value(found, "spanloom_http_requests_total", **detail, status="200") == 1
        assert value(found, "spanloom_http_requests_total", **detail, status="404") == 1
        assert (
            value(found, "spanloom_http_requests_total", method="GET", route="unmatched", status="404") == 1
        )
        assert value(found, "spanloom_http_requests_total", method="GET", route="/metrics", status="200") == 1
        assert not any(
            "no-such" in dict(labels).get("route", "") or session in dict(labels).get("route", "")
            for _, labels in found
        )

        # Every committed write was heard: its spans add up to those stored.
        assert value(found, "spanloom_store_write_batch_records_sum") == 4 + 4 + 10
        assert 1 <= value(found, "spanloom_store_write_batch_records_count") <= 3
        assert value(found, "spanloom_store_queued_writes") == 0
        assert 0 < size_before <= value(found, "spanloom_store_size_bytes") <= size_after
        assert value(found, "spanloom_evaluator_backlog_spans") == 0
        assert value(found, "spanloom_evaluator_dropped_spans_total") == 0
        # The text indexer works behind ingest: its backlog shows, and drains.
        deadline = time.monotonic() + 30
        while value(scrape(server), "spanloom_store_unindexed_traces") != 0:
            assert time.monotonic() < deadline, "the text indexer's backlog did not drain"
            time.sleep(0.01)


def test_retention_deletions_are_counted(tmp_path: Path):
    with run_server(tmp_path / "retention.db", retention_days=1) as server:
        # The server's own first pass, at start, would delete what it finds of the (old) turns
        # below, however many have been written by then: let it finish on the empty store first.
        wait_for(lambda: server.app.state.retention.passes >= 1, what="the retention pass at start")
        for index in range(3):
            assert (
                server.post_spans(make_request(make_turn(f"s{index}", "u", index * 1000)[1])).status_code
                == 200
            )
        # The whole store is older than a day a year from now.
        deleted = server.app.state.retention.run_once(now_ns=2_000_000_000 * 10**9)
        assert (deleted.sessions, deleted.traces, deleted.spans) == (3, 3, 6)
        found = scrape(server)
        assert value(found, "spanloom_retention_deleted_total", kind="sessions") == 3
        assert value(found, "spanloom_retention_deleted_total", kind="traces") == 3
        assert value(found, "spanloom_retention_deleted_total", kind="spans") == 6
        assert value(found, "spanloom_retention_passes_total") >= 1


def test_each_app_counts_its_own_requests(tmp_path: Path):
    with run_server(tmp_path / "one.db") as one, run_server(tmp_path / "two.db") as two:
        assert one.post_spans(make_request(make_turn("s", "u")[1])).status_code == 200
        assert value(scrape(one), "spanloom_ingest_spans_stored_total") == 2
        assert value(scrape(two), "spanloom_ingest_spans_stored_total") == 0


def _keys_file(directory: Path) -> Path:
    path = directory / "keys.json"
    path.write_text(
        json.dumps(
            {
                "keys": [
                    {"key": ADMIN, "role": "admin", "projects": "*"},
                    {"key": READER, "role": "read", "projects": "*"},
                    {"key": SHOP_ADMIN, "role": "admin", "projects": ["shop"]},
                    {"key": SHOP_INGEST, "role": "ingest", "projects": ["shop"]},
                ]
            }
        )
    )
    return path


def test_with_keys_metrics_need_an_admin_key_and_the_probes_none(tmp_path: Path):
    with run_server(tmp_path / "keyed.db", keys_file=_keys_file(tmp_path)) as server:
        assert server.get_json("/healthz") == {"status": "ok"}
        assert server.get_json("/readyz") == {"status": "ready"}
        anonymous = server.get("/metrics")
        assert anonymous.status_code == 401  # not a redirect to the login page: scrapers are no browsers
        assert anonymous.json()["error"]["code"] == "unauthorized"
        for key in (READER, SHOP_ADMIN, SHOP_INGEST):
            refused = server.client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert refused.status_code == 403, key
        assert server.client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401

        # A shop key sending spans of another project: rejected under key_scope.
        spans = make_turn("s", "u")[1]
        response = server.post_spans(
            make_request(spans, {"project.name": "other"}), {"Authorization": f"Bearer {SHOP_INGEST}"}
        )
        assert response.status_code == 200 and rejected_in(response) == 2

        found = scrape(server, {"Authorization": f"Bearer {ADMIN}"})
        assert value(found, "spanloom_ingest_spans_rejected_total", reason="key_scope") == 2
        assert value(found, "spanloom_ingest_spans_received_total") == 2
        assert value(found, "spanloom_ingest_spans_stored_total") == 0
        # The key check's answers are counted under the route they were meant for.
        metrics_route = {"method": "GET", "route": "/metrics"}
        assert value(found, "spanloom_http_requests_total", **metrics_route, status="401") == 2
        assert value(found, "spanloom_http_requests_total", **metrics_route, status="403") == 3
        assert value(found, "spanloom_http_requests_total", method="GET", route="/readyz", status="200") == 1
