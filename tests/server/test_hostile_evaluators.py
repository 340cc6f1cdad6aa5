"""Outputs written to stall the server evaluators, judged on a real server while it answers other
requests: long runs of letters (quadratic for an unbounded e-mail pattern), an output joined from
ten 60,000-character parts, and a user pattern that backtracks catastrophically."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
from _server_kit import make_request, make_span, new_span_id, new_trace_id, run_server

from spanloom.server.evaluators.config import EvaluatorConfig, save_configs

LLM = {"openinference.span.kind": "LLM"}


def hostile_spans() -> list:
    spans = []
    for index in range(8):
        attributes = {**LLM, "session.id": "s-hostile", "output.value": "a" * 65_000 + "!"}
        spans.append(make_span(new_trace_id(), new_span_id(), name=f"letters-{index}", attributes=attributes))
    for index in range(2):
        parts = {
            f"llm.output_messages.0.message.contents.{part}.message_content.text": "b" * 60_000
            for part in range(10)
        }
        spans.append(
            make_span(new_trace_id(), new_span_id(), name=f"parts-{index}", attributes={**LLM, **parts})
        )
    return spans


def timed_get(client: httpx.Client) -> float:
    started = time.perf_counter()
    assert client.get("/api/sessions").status_code == 200
    return time.perf_counter() - started


def test_hostile_outputs_do_not_hold_up_other_requests(tmp_path: Path):
    evaluators = tmp_path / "evaluators.json"
    save_configs(
        evaluators,
        [
            EvaluatorConfig(name="pii", kind="contains_pii"),
            EvaluatorConfig(name="declines", kind="refusal"),
            # Written to the file directly: `evaluators add` would refuse this pattern.
            EvaluatorConfig(name="shape", kind="regex", options={"pattern": "(a|aa)+$"}),
        ],
    )
    with run_server(tmp_path / "hostile.db", evaluators_file=evaluators) as server:
        runner = server.app.state.evaluators
        with httpx.Client(base_url=server.url, timeout=10) as client:
            baseline = [timed_get(client) for _ in range(20)]
            response = server.post_spans(make_request(hostile_spans()))
            assert response.status_code == 200, response.text
            # pii and declines judge all ten; shape times out on the eight runs of "a" (no verdict)
            # and fails the two of "b".
            expected = 10 + 10 + 2
            during = []
            deadline = time.monotonic() + 60
            while runner.written < expected:
                assert time.monotonic() < deadline, f"judged {runner.written} of {expected}"
                during.append(timed_get(client))
        assert runner.written == expected
        assert len(during) >= 5, "judging ended before other requests could be measured"
        added = statistics.median(during) - statistics.median(baseline)
        assert added < 0.1, f"median latency +{added * 1000:.0f} ms while judging"
        assert max(during) < 1.0, f"a request waited {max(during) * 1000:.0f} ms"
        summary = server.get_json("/api/evaluations/summary", group_by="project")["items"]
        counts = {row["name"]: (row["count"], row["pass_rate"]) for row in summary}
        assert counts == {"pii": (10, 1.0), "declines": (10, 1.0), "shape": (2, 0.0)}
