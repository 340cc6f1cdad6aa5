"""Load: 4 senders and 4 readers at once against a real server, for a fixed number of requests.

Senders post raw OTLP protobuf batches of LLM turns (a CHAIN root, one or two LLM calls with
tokens and prices, sometimes a tool call or an error) over many sessions and users shared by all
senders. Some spans come a batch late (a root after its children, an LLM call after its root),
some batches are sent again after their 200 (whole, or half of one with the next): the retries
an exporter makes. A 503 "busy" is retried. Readers list and open sessions, users and traces and
render the sessions pages meanwhile.

Then: every acknowledged span is stored exactly once, nothing unacknowledged is, no reader saw
anything but 200, and every trace, session and user rollup equals a recount from the raw spans
(tests/server/_recount.py). `-s` prints the figures; ``-m slow`` runs a longer load.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from _recount import assert_rollups_match_recount, stored_span_keys
from _server_kit import PROTOBUF, make_request, make_span, new_span_id, new_trace_id, run_server
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SENDERS = 4
READERS = 4
SESSIONS = [f"load-session-{index:03d}" for index in range(60)]
USERS = [f"load-user-{index:02d}" for index in range(14)]
MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "claude-3-5-haiku-20241022", "no-price-model"]
PROJECTS = ["support-bot", "search-bot"]


@dataclass(frozen=True)
class Load:
    batches_per_sender: int
    turns_per_batch: int
    reads_per_reader: int
    time_limit_s: float


@dataclass
class Figures:
    lock: threading.Lock = field(default_factory=threading.Lock)
    generated: set[tuple[str, str]] = field(default_factory=set)
    acknowledged: set[tuple[str, str]] = field(default_factory=set)
    span_copies_posted: int = 0  # every span in every request, retries and busy answers included
    requests_ok: int = 0
    resent_on_purpose: int = 0  # requests repeating spans already acknowledged
    busy: int = 0
    reads: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def _keys(spans: list[Span]) -> set[tuple[str, str]]:
    return {(span.trace_id.hex(), span.span_id.hex()) for span in spans}


def _turn(rng: random.Random, start_ms: float) -> list[Span]:
    """One conversation turn: root, LLM call(s), maybe a tool call."""
    trace_id, root_id = new_trace_id(), new_span_id()
    session = rng.choice(SESSIONS)
    ids = {"session.id": session, "user.id": USERS[SESSIONS.index(session) % len(USERS)]}
    question = f"Q{rng.randrange(10**6)}: " + "why is my order late? " * rng.randrange(1, 30)
    answer = f"A{rng.randrange(10**6)}: " + "it ships tomorrow. " * rng.randrange(1, 40)
    root_attributes = {"openinference.span.kind": "CHAIN", "input.value": question, "output.value": answer}
    ids_on_child_only = rng.random() < 0.1
    if not ids_on_child_only:
        root_attributes.update(ids)
    if rng.random() < 0.2:
        root_attributes["tag.tags"] = rng.sample(["vip", "refund", "beta", "mobile"], 2)
        root_attributes["metadata"] = f'{{"plan": "{rng.choice(["free", "pro"])}"}}'
    duration = rng.uniform(200, 3000)
    spans = [make_span(trace_id, root_id, b"", "turn", start_ms, duration, root_attributes)]
    offset = 1.0
    for call in range(rng.choice([1, 1, 2])):
        model = rng.choice(MODELS)
        prompt, completion = rng.randrange(20, 4000), rng.randrange(1, 800)
        llm_attributes = {
            "openinference.span.kind": "LLM",
            "llm.model_name": model,
            "llm.token_count.prompt": prompt,
            "llm.token_count.completion": completion,
            "llm.token_count.total": prompt + completion,
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": question,
            "output.value": answer,
            **ids,
        }
        error = rng.random() < 0.07
        call_ms = rng.uniform(50, duration / 2)
        spans.append(
            make_span(
                trace_id,
                new_span_id(),
                root_id,
                f"llm-{call}",
                start_ms + offset,
                call_ms,
                llm_attributes,
                error,
            )
        )
        offset += call_ms + 1
    if rng.random() < 0.3:
        tool_attributes = {
            "openinference.span.kind": "TOOL",
            "tool.name": "lookup_order",
            "input.value": "{}",
        }
        spans.append(
            make_span(trace_id, new_span_id(), root_id, "lookup_order", start_ms + offset, 5, tool_attributes)
        )
    return spans


def _post(client: httpx.Client, spans: list[Span], project: str, figures: Figures, deadline: float) -> None:
    """Post until 200: a 503 busy is retried at once, anything else is a failure."""
    body = make_request(spans, {"project.name": project, "service.name": "load"}).SerializeToString()
    while True:
        with figures.lock:
            figures.span_copies_posted += len(spans)
        response = client.post("/v1/traces", content=body, headers=PROTOBUF)
        if response.status_code == 200:
            with figures.lock:
                figures.acknowledged |= _keys(spans)
                figures.requests_ok += 1
            return
        if response.status_code == 503 and response.json()["error"]["code"] == "busy":
            assert response.headers.get("retry-after"), "a 503 without Retry-After"
            with figures.lock:
                figures.busy += 1
            if time.monotonic() > deadline:
                raise AssertionError("still busy at the deadline")
            time.sleep(0.005)  # a short backoff before the retry, not an ordering wait
            continue
        raise AssertionError(f"sender got {response.status_code}: {response.text[:300]}")


def _sender(number: int, url: str, load: Load, figures: Figures, deadline: float) -> None:
    rng = random.Random(1000 + number)
    late: list[Span] = []  # spans held back to arrive with the next batch
    resend_half: list[Span] = []  # half of an acknowledged batch, sent again with the next one
    project = PROJECTS[number % len(PROJECTS)]
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for batch_number in range(load.batches_per_sender):
                spans, late = late, []
                for index in range(load.turns_per_batch):
                    start_ms = (number * 10**6 + batch_number * load.turns_per_batch + index) * 5000.0
                    turn = _turn(rng, start_ms)
                    with figures.lock:
                        figures.generated |= _keys(turn)
                    if rng.random() < 0.15:
                        # The root (or an LLM call) comes late, in the next batch.
                        held = turn.pop(0 if rng.random() < 0.5 else 1)
                        late.append(held)
                    spans.extend(turn)
                if resend_half:
                    with figures.lock:
                        figures.resent_on_purpose += 1
                spans, resend_half = resend_half + spans, []
                _post(client, spans, project, figures, deadline)
                roll = rng.random()
                if roll < 0.1:
                    with figures.lock:
                        figures.resent_on_purpose += 1
                    _post(client, spans, project, figures, deadline)  # the same batch again
                elif roll < 0.2:
                    resend_half = spans[: len(spans) // 2]
            if late:
                _post(client, late, project, figures, deadline)
    except Exception as error:  # reported by the test, with the sender's number
        figures.error(f"sender {number}: {error!r}")


def _reader(number: int, url: str, load: Load, figures: Figures, deadline: float) -> None:
    rng = random.Random(2000 + number)
    sessions: list[tuple[str, str]] = []  # (project, id): ids are unique only inside a project
    users: list[tuple[str, str]] = []
    traces: list[str] = []
    sorts = ["start_time", "last_activity", "cost", "tokens", "errors", "turns"]
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for index in range(load.reads_per_reader):
                if time.monotonic() > deadline:
                    raise AssertionError(f"only {index} reads done by the deadline")
                step = (index + number) % 9
                if step == 1 and sessions:
                    project, session_id = rng.choice(sessions)
                    kind, path, params = "session", f"/api/sessions/{session_id}", {"project": project}
                elif step == 3 and users:
                    project, user_id = rng.choice(users)
                    kind, path, params = "user", f"/api/users/{user_id}", {"project": project}
                elif step == 5 and traces:
                    kind, path, params = "trace", f"/api/traces/{rng.choice(traces)}", {}
                elif step == 6:
                    kind, path, params = "sessions page", "/sessions", {"sort": rng.choice(sorts)}
                elif step == 7 and sessions:
                    project, session_id = rng.choice(sessions)
                    kind, path, params = "session page", f"/sessions/{session_id}", {"project": project}
                elif step in (2, 3):
                    kind, path, params = (
                        "users",
                        "/api/users",
                        {"limit": 20, "sort": rng.choice(["cost", "traces"])},
                    )
                elif step in (4, 5, 8):
                    kind, path, params = (
                        "traces",
                        "/api/traces",
                        {"limit": 20, "has_error": rng.choice(["true", "false"])},
                    )
                else:
                    kind, path, params = "sessions", "/api/sessions", {"limit": 20, "sort": rng.choice(sorts)}
                response = client.get(path, params=params)
                with figures.lock:
                    figures.reads[kind] += 1
                if response.status_code != 200:
                    figures.error(
                        f"reader {number}: GET {path} {params} -> {response.status_code} "
                        f"{response.text[:300]}"
                    )
                    continue
                if kind == "sessions":
                    items = response.json()["items"]
                    sessions = [(item["project"], item["session_id"]) for item in items] or sessions
                elif kind == "users":
                    items = response.json()["items"]
                    users = [(item["project"], item["user_id"]) for item in items] or users
                elif kind == "traces":
                    traces = [item["trace_id"] for item in response.json()["items"]] or traces
    except Exception as error:
        figures.error(f"reader {number}: {error!r}")


def run_load(db: Path, load: Load) -> Figures:
    figures = Figures()
    started = time.monotonic()
    deadline = started + load.time_limit_s
    # A write queue of one request, so that senders meet "busy" now and then and retry.
    with run_server(db, write_queue_size=1) as server:
        threads = [
            threading.Thread(
                target=_sender, args=(number, server.url, load, figures, deadline), name=f"sender{number}"
            )
            for number in range(SENDERS)
        ] + [
            threading.Thread(
                target=_reader, args=(number, server.url, load, figures, deadline), name=f"reader{number}"
            )
            for number in range(READERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic() + 10))
            assert not thread.is_alive(), f"{thread.name} still running past the time limit"
    elapsed = time.monotonic() - started
    assert not figures.errors, "\n".join(figures.errors[:10])

    stored = stored_span_keys(db)
    recount = assert_rollups_match_recount(db)
    print(
        f"\nload: {SENDERS} senders, {READERS} readers, {elapsed:.1f} s: "
        f"{len(figures.generated)} spans generated, {figures.span_copies_posted} span copies posted in "
        f"{figures.requests_ok} acknowledged requests ({figures.resent_on_purpose} resent on purpose, "
        f"{figures.busy} busy answers retried), {len(figures.acknowledged)} distinct spans acknowledged, "
        f"{len(stored)} stored; {sum(figures.reads.values())} reads ({dict(figures.reads)}), 0 errors; "
        f"rollups equal the recount for {recount.traces} traces, {recount.sessions} sessions, "
        f"{recount.users} users"
    )
    assert len(stored) == len(set(stored)), "a span is stored twice"
    assert set(stored) == figures.acknowledged, (
        f"{len(figures.acknowledged - set(stored))} acknowledged spans missing, "
        f"{len(set(stored) - figures.acknowledged)} stored spans never acknowledged"
    )
    assert figures.acknowledged == figures.generated  # every sender got through in the end
    assert recount.spans == len(stored)
    assert sum(figures.reads.values()) == READERS * load.reads_per_reader
    return figures


def test_concurrent_senders_and_readers(tmp_path: Path):
    run_load(
        tmp_path / "load.db",
        Load(batches_per_sender=30, turns_per_batch=15, reads_per_reader=150, time_limit_s=60),
    )


@pytest.mark.slow
def test_concurrent_senders_and_readers_long(tmp_path: Path):
    run_load(
        tmp_path / "load.db",
        Load(batches_per_sender=80, turns_per_batch=30, reads_per_reader=400, time_limit_s=600),
    )
