"""`spanloom serve --log-format json`: every line it writes, on standard output and standard error,
is one JSON object (spanloom's lines, uvicorn's, its access log), as log shippers read them."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from _server_kit import free_port, make_request, make_turn, wait_for

from spanloom.server.log_format import JsonLogFormatter
from spanloom.server.settings import Settings


def _json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        record = json.loads(line)  # fails the test on any line that is not one JSON object
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        parsed.append(record)
    return parsed


def test_serve_logs_one_json_object_per_line(tmp_path: Path):
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    command = [
        sys.executable,
        "-m",
        "spanloom.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        str(tmp_path / "j.db"),
    ]
    environment = {key: value for key, value in os.environ.items() if key != "SPANLOOM_LOG_FORMAT"}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*command, "--log-format", "json"], stdout=out, stderr=err, env=environment
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

                def answers() -> bool:
                    assert process.poll() is None, stderr.read_text()
                    try:
                        return client.get("/healthz").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_for(answers, timeout=30, what="spanloom serve to answer")
                body = make_request(make_turn("s1", "u1")[1]).SerializeToString()
                headers = {"Content-Type": "application/x-protobuf"}
                assert client.post("/v1/traces", content=body, headers=headers).status_code == 200
                assert client.get("/api/sessions/no-such-session").status_code == 404
        finally:
            process.send_signal(signal.SIGINT)  # a clean stop: uvicorn logs its shutdown too
            process.wait(timeout=30)
    records = _json_lines(stdout.read_text()) + _json_lines(stderr.read_text())

    access = [record for record in records if record["logger"] == "uvicorn.access"]
    assert {(record["method"], record["path"], record["status"]) for record in access} >= {
        ("POST", "/v1/traces", 200),
        ("GET", "/api/sessions/no-such-session", 404),
    }
    assert all(record["client"].startswith("127.0.0.1:") for record in access)
    spanloom = [record["message"] for record in records if record["logger"].startswith("spanloom")]
    assert any(message.startswith("database ") for message in spanloom), spanloom
    assert any("/healthz and /readyz" in message for message in spanloom), spanloom
    uvicorn = [record for record in records if record["logger"] == "uvicorn.error"]
    assert any("Application startup complete" in record["message"] for record in uvicorn), uvicorn
    assert any("Shutting down" in record["message"] for record in uvicorn), uvicorn
    assert not any("color_message" in record for record in records)


def test_a_failure_with_its_traceback_is_still_one_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("spanloom.test_log_format")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("a bad\nvalue")
        except ValueError:
            logger.exception("writing %d records failed", 3)
    finally:
        logger.removeHandler(handler)
    (record,) = _json_lines(stream.getvalue())
    assert record["level"] == "ERROR" and record["logger"] == "spanloom.test_log_format"
    assert record["message"] == "writing 3 records failed"
    assert "ValueError: a bad\nvalue" in record["exc_info"]


def test_the_format_comes_from_the_environment_too():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"SPANLOOM_LOG_FORMAT": "JSON"}).log_format == "json"
    assert Settings.from_env({"SPANLOOM_LOG_FORMAT": "json"}, log_format="text").log_format == "text"
    with pytest.raises(ValueError, match="SPANLOOM_LOG_FORMAT"):
        Settings.from_env({"SPANLOOM_LOG_FORMAT": "xml"})
