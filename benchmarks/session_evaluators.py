"""Session evaluators benchmark: how fast the built-in heuristics judge finished sessions, and what
they cost ingest while they run.

1. 10,000 finished sessions of 5 turns (the demo's questions and answers, distinct ids, a tenth of
   the turns failing, some with a tool call) stored in a SQLite store, then judged by all five
   built-in heuristics (resolved, repeated_question, frustration, error_streak, turns_over) the way
   the server's runner judges them: find the due sessions, read each transcript, judge, write the
   results, mark the session judged. Printed beside its parts, each on the same sessions: reading
   the transcripts alone, and judging transcripts already in memory.
2. Ingest (OTLP/HTTP protobuf into `spanloom serve`, ingest.py's payloads and senders) with the
   session evaluators on versus off, in interleaved rounds on fresh databases. The payloads' turns
   are a day old, so every session is idle as soon as it arrives and the runner judges (and, as
   turns keep arriving, judges again) all through the "on" rounds: its worst case. The issue's bar:
   ingest at most 10% slower with them on.

Run: ``python benchmarks/session_evaluators.py [--sessions 10000] [--rounds 3] [--spans 60000]``.
Prints markdown tables with min and median, the ratios (of the arms' medians and minimums, and
of each round's pair), and the load average.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from ingest import build_payloads, cpu_seconds, free_port, send_all

from spanloom.demo import build_conversations
from spanloom.server.evaluators.config import EvaluatorConfig, save_configs
from spanloom.server.evaluators.session_builtin import SESSION_BUILTINS
from spanloom.server.evaluators.session_runner import SessionEvaluatorRunner
from spanloom.server.evaluators.transcript import read_transcript
from spanloom.server.store.base import SpanRecord, Store
from spanloom.server.store.url import open_store

TURNS = 5
PROJECT = "bench"
HEURISTICS = ("resolved", "repeated_question", "frustration", "error_streak", "turns_over")
FRUSTRATED = ("This is useless, I already told you that.", "Can I talk to a human please?")


def session_configs() -> list[EvaluatorConfig]:
    return [EvaluatorConfig(kind, kind, "*", scope="session") for kind in HEURISTICS]


QUESTIONS = (
    "How do I {action} my {thing}?",
    "Why was I charged {amount} for the {thing} on {day}?",
    "Can you {verb} the {thing} I ordered from {place}?",
    "What is the {attribute} of the {product}?",
    "My {thing} shows error {code} when I try to {action} it, what does that mean?",
    "Is the {product} available in {place} before {day}?",
    "Could you compare the {product} with the one I bought in {place}?",
    "What happens to my {thing} if I {action} it after {day}?",
)
SLOTS = {
    "action": (
        "cancel",
        "renew",
        "transfer",
        "export",
        "reset",
        "upgrade",
        "share",
        "pause",
        "delete",
        "rename",
    ),
    "thing": (
        "subscription",
        "invoice",
        "account",
        "order",
        "password",
        "profile",
        "report",
        "booking",
        "plan",
    ),
    "amount": ("$12.99", "$49", "$120.00", "€35", "£8.50", "$310", "$5", "€99.90"),
    "day": ("Monday", "the 3rd", "March 14", "next week", "the weekend", "Friday", "the end of the month"),
    "verb": ("track", "refund", "replace", "expedite", "split", "reroute", "hold"),
    "place": ("Lisbon", "Berlin", "Austin", "the web shop", "the app", "Osaka", "the Porto store"),
    "attribute": ("battery life", "warranty", "weight", "price in euros", "delivery time", "return window"),
    "code": ("E102", "403", "TIMEOUT_7", "0x80070005", "PAY-22", "429"),
    "product": (
        "X200 headphones",
        "Pro plan",
        "travel adapter",
        "standing desk",
        "family bundle",
        "e-reader",
    ),
}


def question(rng: random.Random, template: str) -> str:
    return template.format(**{key: rng.choice(values) for key, values in SLOTS.items()})


def finished_sessions(count: int, seed: int = 3) -> list[SpanRecord]:
    """`count` sessions of TURNS turns a minute apart, all over a day before now: a root CHAIN span
    with the question (mostly new ones; now and then the same question again, or a frustrated
    one) and the demo's answers, an LLM child (a tenth of them failing), and for some turns a TOOL
    span."""
    rng = random.Random(seed)
    conversations = build_conversations(
        sessions=count, users=max(1, count // 10), seed=seed, answer_sentences=(3, 12)
    )
    start = time.time_ns() - 2 * 86_400 * 10**9  # every session over a day before now
    spans = []
    for number, conversation in enumerate(conversations):
        asked: list[str] = []
        templates = rng.sample(QUESTIONS, TURNS)  # a conversation moves on from topic to topic
        for index in range(TURNS):
            turn = conversation.turns[index % len(conversation.turns)]
            draw = rng.random()
            if asked and draw < 0.04:
                text = rng.choice(asked).lower().rstrip("?") + "??"  # asked again
            elif draw < 0.07:
                text = rng.choice(FRUSTRATED)
            else:
                text = question(rng, templates[index])
            asked.append(text)
            trace_id = f"{rng.getrandbits(128):032x}"
            root, llm = f"{rng.getrandbits(64):016x}", f"{rng.getrandbits(64):016x}"
            begin = start + number * 5 * 10**9 + index * 60 * 10**9
            failed = rng.random() < 0.1
            ids = {"session_id": conversation.session_id, "user_id": conversation.user_id, "project": PROJECT}
            spans.append(
                SpanRecord(
                    trace_id, root, None, "assistant", start_time_ns=begin, end_time_ns=begin + 900_000_000,
                    span_kind="CHAIN", input=text, output=turn.answer, **ids,
                )
            )  # fmt: skip
            spans.append(
                SpanRecord(
                    trace_id, llm, root, "ChatCompletion", start_time_ns=begin + 10**8,
                    end_time_ns=begin + 800_000_000, span_kind="LLM", model=turn.model,
                    status_code="ERROR" if failed else "OK", output=turn.answer, **ids,
                )
            )  # fmt: skip
            if turn.tool:
                tool = f"{rng.getrandbits(64):016x}"
                spans.append(
                    SpanRecord(
                        trace_id, tool, root, turn.tool, start_time_ns=begin + 2 * 10**7,
                        end_time_ns=begin + 9 * 10**7, span_kind="TOOL", attributes={"tool.name": turn.tool},
                        **ids,
                    )
                )  # fmt: skip
    return spans


def fill(store: Store, spans: list[SpanRecord]) -> None:
    for first in range(0, len(spans), 4096):
        store.insert_spans(spans[first : first + 4096]).result(timeout=300)


def judge_stored(directory: Path, sessions: int) -> dict[str, float]:
    """Sessions per second: the runner's whole pass, reading alone, judging alone."""
    db = directory / "judge.db"
    store = open_store(f"sqlite:///{db}")
    try:
        fill(store, finished_sessions(sessions))
        due = store.sessions_to_judge(time.time_ns(), sessions + 1)
        assert len(due) == sessions, len(due)
        started = time.perf_counter()
        transcripts = [read_transcript(store, project, session_id) for project, session_id, _ in due]
        read = time.perf_counter() - started
        assert all(t is not None and len(t.turns) == TURNS for t in transcripts)
        started = time.perf_counter()
        verdicts = [SESSION_BUILTINS[kind].judge(t, {}) for t in transcripts for kind in HEURISTICS]  # type: ignore[arg-type]
        judged = time.perf_counter() - started
        flagged = {kind: 0 for kind in HEURISTICS}
        for number, verdict in enumerate(verdicts):
            flagged[HEURISTICS[number % len(HEURISTICS)]] += verdict.label == "fail"
        config = directory / "evaluators.json"
        save_configs(config, session_configs())
        runner = SessionEvaluatorRunner(store, config, idle_seconds=1800)
        started = time.perf_counter()
        marked = runner.run_once()
        whole = time.perf_counter() - started
        assert marked == sessions and runner.written == sessions * len(HEURISTICS), (marked, runner.written)
        polls = []
        for _ in range(5):  # what the runner's poll costs once everything is judged
            started = time.perf_counter()
            assert not store.sessions_to_judge(time.time_ns(), 50)
            polls.append(time.perf_counter() - started)
    finally:
        store.close()
    return {
        "whole": sessions / whole,
        "read": sessions / read,
        "judge": sessions / judged,
        "poll_ms": statistics.median(polls) * 1000,
        **{f"flagged {kind}": count / sessions for kind, count in flagged.items()},
    }


def start_server(db: Path, environment: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "spanloom.cli", "serve", "--port", str(port), "--db", str(db)]
    server = subprocess.Popen(
        [*command, "--log-level", "warning"], stdout=subprocess.DEVNULL, env=environment
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/api/projects").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError("spanloom serve did not start")
        time.sleep(0.05)


def ingest_round(
    directory: Path, payloads: list[bytes], spans: int, on: bool, number: int
) -> dict[str, float]:
    db = directory / f"ingest-{number}-{'on' if on else 'off'}.db"
    config = directory / f"evaluators-{number}.json"
    save_configs(config, session_configs() if on else [])
    environment = {
        **os.environ,
        "SPANLOOM_EVALUATORS_FILE": str(config),
        "SPANLOOM_SESSION_EVAL_INTERVAL": "1",
    }
    server, base = start_server(db, environment)
    try:
        started, cpu_before = time.perf_counter(), cpu_seconds(server.pid)
        send_all(f"{base}/v1/traces", payloads)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=120)
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
        judged = connection.execute(
            "SELECT COUNT(*) FROM session_marks WHERE judged_end_ns IS NOT NULL"
        ).fetchone()[0]
    assert stored == spans, (stored, spans)
    for path in directory.glob(db.name + "*"):
        path.unlink()
    return {"rate": spans / elapsed, "cpu_us": cpu / spans * 1e6, "judged": judged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=10_000, help="finished sessions to judge")
    parser.add_argument("--rounds", type=int, default=3, help="ingest rounds of each arm, interleaved")
    parser.add_argument("--spans", type=int, default=60_000, help="spans per ingest round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        judging = judge_stored(directory, args.sessions)
        payloads, *_ = build_payloads(args.spans, sessions=1000, users=100)
        arms: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        ingest_round(directory, payloads[:20], min(args.spans, 20 * 512), False, -1)  # warm the caches
        for number in range(args.rounds):
            # ABBA: neither arm always runs first, or always right after the other.
            for on in (False, True) if number % 2 == 0 else (True, False):
                arms[on].append(ingest_round(directory, payloads, args.spans, on, number))
    load = os.getloadavg()
    print(
        f"{args.sessions:,} finished sessions of {TURNS} turns; ingest rounds of {args.spans:,} spans"
        f" (ingest.py's payloads, 2 senders), {args.rounds} per arm, interleaved; {os.cpu_count()} CPUs,"
        f" load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)\n"
    )
    print("| judging finished sessions (the five heuristics) | sessions/s |")
    print("|---|---:|")
    print(f"| the runner's pass: find due, read, judge, write 5 results, mark | {judging['whole']:,.0f} |")
    print(f"| reading the transcripts alone | {judging['read']:,.0f} |")
    print(f"| judging transcripts in memory alone | {judging['judge']:,.0f} |")
    print(
        f"\na poll for due sessions, all {args.sessions:,} judged: {judging['poll_ms']:.1f} ms (median of 5)"
    )
    flagged = ", ".join(f"{kind} {judging[f'flagged {kind}']:.0%}" for kind in HEURISTICS)
    print(f"flagged: {flagged}\n")
    print("| ingest | spans/s min | spans/s median | server CPU per span, median | sessions judged |")
    print("|---|---:|---:|---:|---:|")
    for on in (False, True):
        rates = [r["rate"] for r in arms[on]]
        cpu = statistics.median(r["cpu_us"] for r in arms[on])
        judged = ", ".join(str(int(r["judged"])) for r in arms[on])
        label = "session evaluators on (5 heuristics)" if on else "session evaluators off"
        print(f"| {label} | {min(rates):,.0f} | {statistics.median(rates):,.0f} | {cpu:.0f} µs | {judged} |")
    median_ratio = statistics.median(r["rate"] for r in arms[True]) / statistics.median(
        r["rate"] for r in arms[False]
    )
    min_ratio = min(r["rate"] for r in arms[True]) / min(r["rate"] for r in arms[False])
    # Each round's two arms ran back to back, so their ratio sees the same load on the machine.
    paired = [on["rate"] / off["rate"] for on, off in zip(arms[True], arms[False], strict=True)]
    cpu_paired = [on["cpu_us"] / off["cpu_us"] for on, off in zip(arms[True], arms[False], strict=True)]
    print(f"\non / off: {median_ratio:.2f}x (medians), {min_ratio:.2f}x (minimums); the bar: >= 0.90x")
    print(
        f"per round, on / off: rate {min(paired):.2f}x min, {statistics.median(paired):.2f}x median;"
        f" server CPU per span {statistics.median(cpu_paired):.2f}x median"
        f" ({', '.join(f'{r:.2f}' for r in cpu_paired)})"
    )


if __name__ == "__main__":
    main()
