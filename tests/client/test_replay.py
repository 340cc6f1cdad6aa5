"""Replaying recorded conversations against a target, into new sessions on a real server: from
Python (sync, async, a failing turn) and through `spanloom replay` in a process of its own
(one session, a filter, a dataset file)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _client_kit import PROJECT, READ, keys_file, say, traced_provider
from _server_kit import RunningServer, run_server, wait_for
from opentelemetry.sdk.trace import TracerProvider

import spanloom
from spanloom.client import SessionDetail, SpanloomClientError
from spanloom.replay import dataset_conversations, replay_session

ADMIN = "admin-key-0123456789"
QUESTIONS = ["Hello", "Where is order 7?", "It was due Friday", "Can you refund it?", "Thanks, bye"]


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, store_backend: str
) -> Iterator[tuple[RunningServer, TracerProvider]]:
    """A server holding one 5-turn session ("orig", user carol) and a 1-turn one (dana's)."""
    directory = tmp_path_factory.mktemp("replay")
    keys = keys_file(directory)
    entries = json.loads(keys.read_text())
    entries["keys"].append({"key": ADMIN, "role": "admin", "projects": "*"})
    keys.write_text(json.dumps(entries))
    with run_server(directory / "replay.db", keys_file=keys, backend=store_backend) as server:
        provider = traced_provider(server)
        for question in QUESTIONS:
            say(provider, "orig", "carol", question)
        say(provider, "short", "dana", "Just one question")
        replayed(server, "orig", 5)
        yield server, provider
        provider.shutdown()


def client_of(server: RunningServer) -> spanloom.Client:
    return spanloom.Client(server.url, api_key=READ)


def session(server: RunningServer, session_id: str) -> SessionDetail | None:
    try:
        return client_of(server).session(session_id, PROJECT)
    except SpanloomClientError as error:
        assert error.status == 404
        return None  # not there yet


def replayed(server: RunningServer, session_id: str, turns: int) -> SessionDetail:
    def complete() -> SessionDetail | None:
        detail = session(server, session_id)
        return detail if detail is not None and len(detail.turns) == turns else None

    return wait_for(complete, what=f"replay {session_id} with {turns} turns")


def test_replay_of_a_five_turn_session(recorded: tuple[RunningServer, TracerProvider]):
    server, provider = recorded
    seen: list[tuple[str, list[dict[str, str]]]] = []

    def answer(message: str, history: list[dict[str, str]]) -> str:
        seen.append((message, history))
        return f"v2: {message.upper()}"

    client = client_of(server)
    result = replay_session(client, "orig", PROJECT, answer, tracer_provider=provider)
    assert [turn.message for turn in result.turns] == QUESTIONS and result.failed_turns == []
    assert result.replay_of == "orig" and result.session_id.startswith("orig-replay-")
    # The history is the new run's own conversation so far.
    assert seen[0] == ("Hello", [])
    assert seen[2][1] == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "v2: HELLO"},
        {"role": "user", "content": "Where is order 7?"},
        {"role": "assistant", "content": "v2: WHERE IS ORDER 7?"},
    ]
    new = replayed(server, result.session_id, 5)
    assert new.project == PROJECT and new.metadata == {"replay_of": "orig"} and new.tags == ["replay"]
    assert [turn.input for turn in new.turns] == QUESTIONS
    assert [turn.output for turn in new.turns] == [f"v2: {q.upper()}" for q in QUESTIONS]
    assert new.error_count == 0
    found = client.sessions(PROJECT, metadata={"replay_of": "orig"}).to_list()
    # Other tests replay "orig" too (in any order): this replay is among those found, and only
    # replays of "orig" are.
    assert result.session_id in {row.session_id for row in found}
    assert {row.metadata["replay_of"] for row in found} == {"orig"}


def test_async_target(recorded: tuple[RunningServer, TracerProvider]):
    server, provider = recorded

    async def answer(message: str, history: list[dict[str, str]]) -> str:
        await asyncio.sleep(0)
        return f"turn {len(history) // 2 + 1}"

    result = replay_session(client_of(server), "orig", PROJECT, answer, tracer_provider=provider)
    new = replayed(server, result.session_id, 5)
    assert [turn.output for turn in new.turns] == [f"turn {n}" for n in range(1, 6)]


def test_replay_from_a_running_event_loop(recorded: tuple[RunningServer, TracerProvider]):
    server, provider = recorded

    async def notebook_cell() -> str:  # a notebook runs cells inside an event loop
        result = replay_session(
            client_of(server), "short", PROJECT, lambda m, h: "ok", tracer_provider=provider
        )
        return result.session_id

    new = replayed(server, asyncio.run(notebook_cell()), 1)
    assert new.turns[0].output == "ok"


def test_a_failing_turn_is_recorded_and_the_replay_goes_on(recorded: tuple[RunningServer, TracerProvider]):
    server, provider = recorded
    histories: list[list[dict[str, str]]] = []

    def answer(message: str, history: list[dict[str, str]]) -> str:
        histories.append(history)
        if "refund" in message:
            raise RuntimeError("refunds are broken")
        return "fine"

    result = replay_session(client_of(server), "orig", PROJECT, answer, tracer_provider=provider)
    assert result.failed_turns == [3] and result.turns[3].error == "RuntimeError: refunds are broken"
    assert histories[4][-1] == {"role": "user", "content": "Can you refund it?"}  # no answer to it
    new = replayed(server, result.session_id, 5)
    assert [turn.error_count for turn in new.turns] == [0, 0, 0, 1, 0]
    assert new.turns[3].status == "ERROR" and new.turns[3].output is None
    assert new.error_count == 1 and new.turns[4].output == "fine"


def write_target(directory: Path) -> None:
    (directory / "app_v2.py").write_text(
        "def answer(message, history):\n"
        "    if message == 'explode':\n"
        "        raise ValueError('boom')\n"
        "    return f'v2 says: {message} ({len(history)})'\n"
    )


def run_cli(directory: Path, server: RunningServer, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "spanloom.cli", "replay", *arguments, "--target", "app_v2:answer"]
    command += ["--server", server.url, "--api-key", ADMIN]
    return subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=120)


def new_ids(output: str) -> dict[str, str]:
    """original -> new session id, from the lines the command prints."""
    pairs = [
        line.split("  ")[0].split(" (")[0].split(" -> ") for line in output.splitlines() if " -> " in line
    ]
    return {original: new for original, new in pairs}


def test_cli_replays_one_session_and_prints_its_link(recorded, tmp_path: Path):
    server, _ = recorded
    write_target(tmp_path)
    finished = run_cli(tmp_path, server, "orig")  # the project is found from the session
    assert finished.returncode == 0, finished.stderr
    (new,) = new_ids(finished.stdout).values()
    assert f"{server.url}/sessions/{new}?project={PROJECT}" in finished.stdout
    detail = replayed(server, new, 5)  # sent before the command exited
    assert [turn.input for turn in detail.turns] == QUESTIONS and detail.metadata["replay_of"] == "orig"
    assert detail.turns[1].output == "v2 says: Where is order 7? (2)"


def test_cli_replays_a_filter_with_a_progress_bar(recorded, tmp_path: Path):
    server, _ = recorded
    write_target(tmp_path)
    finished = run_cli(
        tmp_path, server, "--project", PROJECT, "--sessions", "user_id=dana", "--concurrency", "2"
    )
    assert finished.returncode == 0, finished.stderr
    assert "replaying" in finished.stderr
    assert set(new_ids(finished.stdout)) == {"short"}
    bad = run_cli(tmp_path, server, "--project", PROJECT, "--sessions", "colour=blue")
    assert bad.returncode == 2 and "unknown filter 'colour'" in bad.stderr
    garbled = run_cli(tmp_path, server, "--project", PROJECT, "--sessions", "user_id")
    assert garbled.returncode == 2 and "KEY=VALUE" in garbled.stderr


def test_concurrent_replays_keep_their_sessions_apart(recorded, tmp_path: Path):
    server, _ = recorded
    write_target(tmp_path)
    # The originals carry the tag "support"; replays carry "replay" only.
    finished = run_cli(
        tmp_path, server, "--project", PROJECT, "--sessions", "tag=support", "--concurrency", "2"
    )
    assert finished.returncode == 0, finished.stderr
    ids = new_ids(finished.stdout)
    assert set(ids) == {"orig", "short"}
    assert [turn.input for turn in replayed(server, ids["orig"], 5).turns] == QUESTIONS
    assert [turn.input for turn in replayed(server, ids["short"], 1).turns] == ["Just one question"]


def test_cli_replays_a_dataset_file(recorded, tmp_path: Path):
    server, _ = recorded
    write_target(tmp_path)
    dataset = tmp_path / "regressions.jsonl"
    examples = [
        {
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "Hi there"},
                {"role": "assistant", "content": "Hello!", "tool_calls": []},
                {"role": "user", "content": [{"type": "text", "text": "explode"}]},
                {"role": "assistant", "content": "old answer"},
                {"role": "user", "content": "Still there?"},
            ],
            "metadata": {"session_id": "from-export"},
        },
        {"messages": [{"role": "user", "content": "Second example"}]},
    ]
    dataset.write_text("\n".join(json.dumps(example) for example in examples) + "\n")
    assert list(dataset_conversations(dataset)) == [
        ("from-export", ["Hi there", "explode", "Still there?"]),
        ("regressions.jsonl:2", ["Second example"]),
    ]
    finished = run_cli(tmp_path, server, "--project", PROJECT, "--dataset", str(dataset))
    assert finished.returncode == 1  # the "explode" turn failed, and the run says so
    ids = new_ids(finished.stdout)
    assert set(ids) == {"from-export", "regressions.jsonl:2"} and "1 failed" in finished.stdout
    first = replayed(server, ids["from-export"], 3)
    assert [turn.input for turn in first.turns] == ["Hi there", "explode", "Still there?"]
    assert first.error_count == 1 and first.metadata == {"replay_of": "from-export"}
    assert replayed(server, ids["regressions.jsonl:2"], 1).turns[0].output == "v2 says: Second example (0)"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": "nope"}\n')
    refused = run_cli(tmp_path, server, "--dataset", str(broken))
    assert refused.returncode == 2 and "broken.jsonl:1" in refused.stderr
