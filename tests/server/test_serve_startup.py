"""What `spanloom serve` says at start-up (the dashboard's URL, with the port it bound when asked
for port 0, in both log formats), and the modes of the database file and folder it creates."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import uvicorn
from _server_kit import wait_for
from click.testing import CliRunner

from spanloom.cli import cli

DASHBOARD = re.compile(r"dashboard at (http://127\.0\.0\.1:(\d+)/)")


def _serve(tmp_path: Path, *arguments: str, environment: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    output = tmp_path / "serve.log"
    command = [sys.executable, "-m", "spanloom.cli", "serve", "--port", "0", "--grpc-port", "0", *arguments]
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    return process, output


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    process.wait(timeout=30)


def _clean_environment(**extra: str) -> dict[str, str]:
    dropped = {"SPANLOOM_DB", "SPANLOOM_STORE", "SPANLOOM_LOG_FORMAT", "SPANLOOM_GRPC_PORT"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **extra}


def _dashboard_url(process: subprocess.Popen, output: Path, lines: list[str]) -> str:
    def said() -> str | None:
        assert process.poll() is None, output.read_text()
        lines[:] = output.read_text().splitlines()
        found = [DASHBOARD.search(line) for line in lines]
        return next((match[1] for match in found if match), None)

    url = wait_for(said, timeout=30, what="serve to print the dashboard's URL")
    assert not url.endswith(":0/")
    return url


def test_serve_prints_the_bound_dashboard_url_and_makes_a_private_database(tmp_path: Path):
    home = tmp_path / "home"
    environment = _clean_environment(HOME=str(home), XDG_DATA_HOME=str(home / "data"))
    process, output = _serve(tmp_path, environment=environment)
    lines: list[str] = []
    try:
        url = _dashboard_url(process, output, lines)
        # The printed URL is the server's: it answers there, with the dashboard.
        page = httpx.get(url, follow_redirects=True, timeout=10)
        assert page.status_code == 200 and "<nav" in page.text
        announced = [line for line in lines if line.startswith("spanloom: ")]
        assert f"spanloom: dashboard at {url}" in announced
        assert f"spanloom: OTLP/HTTP traces at {url}v1/traces, API docs at /docs" in "\n".join(announced)
    finally:
        _stop(process)
    folder = home / "data" / "spanloom"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for file in folder.iterdir():  # the database and its -wal / -shm files
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert (folder / "spanloom.db").exists()
    assert not any("other users can read" in line for line in lines)


def test_serve_prints_the_dashboard_url_as_a_json_log_line(tmp_path: Path):
    environment = _clean_environment()
    process, output = _serve(
        tmp_path, "--db", str(tmp_path / "j.db"), "--log-format", "json", environment=environment
    )
    lines: list[str] = []
    try:
        url = _dashboard_url(process, output, lines)
        assert httpx.get(url + "healthz", timeout=10).status_code == 200
    finally:
        _stop(process)
    records = [json.loads(line) for line in lines if line.strip()]
    messages = [record["message"] for record in records if record["logger"].startswith("spanloom")]
    assert f"dashboard at {url}" in messages


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_serve_warns_about_an_existing_database_others_can_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: int
):
    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets=None: None)
    database = tmp_path / "shared.db"
    database.touch()
    database.chmod(mode)
    result = CliRunner().invoke(cli, ["serve", "--grpc-port", "0", "--db", str(database)])
    assert result.exit_code == 0, result.output
    assert f"other users can read {database} (mode {mode:04o})" in result.output
    assert f"chmod 600 {database}" in result.output
    # Left as it was: a shared file may be meant so.
    assert stat.S_IMODE(database.stat().st_mode) == mode


def test_serve_says_nothing_about_a_private_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets=None: None)
    database = tmp_path / "folder" / "new.db"
    result = CliRunner().invoke(cli, ["serve", "--grpc-port", "0", "--db", str(database)])
    assert result.exit_code == 0, result.output
    assert "other users can read" not in result.output
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
