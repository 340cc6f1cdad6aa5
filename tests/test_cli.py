"""The `spanloom` command line: help text, the loopback guard, and the lazy server import."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from spanloom.cli import cli
from spanloom.cli.serve import is_loopback
from spanloom.server.evaluators.config import EvaluatorConfig, save_configs


def test_help_explains_each_serve_option():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for option in (
        *("--host", "--port", "--db", "--insecure", "SPANLOOM_DB", "SPANLOOM_API_KEY", "4318"),
        *("--forwarded-allow-ips", "--header-timeout", "--keep-alive-timeout", "--max-connections"),
        *("--log-format", "SPANLOOM_LOG_FORMAT", "/healthz", "/readyz", "/metrics", "genai-prices"),
        "SPANLOOM_PRICING_FILE",
        *("--grpc-port", "4317", "SPANLOOM_GRPC_PORT"),
    ):
        assert option in result.output
    assert "demo" in CliRunner().invoke(cli, ["--help"]).output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool):
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_host_without_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.delenv("SPANLOOM_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "SPANLOOM_API_KEY" in result.output and "--insecure" in result.output
    assert not (tmp_path / "x.db").exists()


def test_serve_rejects_bad_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.setenv("SPANLOOM_MAX_BODY_BYTES", "lots")
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "SPANLOOM_MAX_BODY_BYTES" in result.output


def test_serve_and_eval_run_refuse_a_file_that_is_not_a_database(tmp_path):
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("these are my notes, not a database")
    evaluators = tmp_path / "evaluators.json"
    save_configs(evaluators, [EvaluatorConfig("fast", "latency", "p", {"threshold_ms": 30})])
    for arguments in (
        ["serve", "--db", str(not_a_database)],
        [
            "eval",
            "run",
            "--project",
            "p",
            "--evaluator",
            "fast",
            "--file",
            str(evaluators),
            "--db",
            str(not_a_database),
        ],
    ):
        result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 1, (arguments, result.output)
        assert "cannot open" in result.output and "not a database" in result.output
        assert "Traceback" not in result.output
    assert not_a_database.read_text() == "these are my notes, not a database"


def test_demo_reports_a_missing_server():
    result = CliRunner().invoke(
        cli, ["demo", "--endpoint", "http://127.0.0.1:9/v1/traces", "--sessions", "1"]
    )
    assert result.exit_code == 1 and "spanloom serve" in result.output


def test_import_spanloom_and_the_cli_stay_light():
    code = (
        "import sys, spanloom, spanloom.cli;"
        "heavy = ('spanloom.server', 'fastapi', 'starlette', 'uvicorn', 'sqlite3');"
        "heavy = [m for m in heavy if m in sys.modules];"
        "print(heavy)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
    sdk_only = "import sys, spanloom; print('click' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", sdk_only], capture_output=True, text=True).stdout.strip()
        == "False"
    )


def test_serve_accepts_a_keys_file_for_a_public_host_and_refuses_a_bad_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path
):
    monkeypatch.delenv("SPANLOOM_API_KEY", raising=False)
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": [{"key": "short", "role": "read"}]}')
    monkeypatch.setenv("SPANLOOM_KEYS_FILE", str(bad))
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "keys file entry 1" in result.output
    assert not (tmp_path / "x.db").exists()
    # A valid keys file passes the loopback guard: serve goes on to run uvicorn (stubbed here).
    good = tmp_path / "keys.json"
    good.write_text('{"keys": [{"key": "0123456789abcdef-read", "role": "read", "projects": ["p"]}]}')
    monkeypatch.setenv("SPANLOOM_KEYS_FILE", str(good))
    import uvicorn

    ran: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets=None: ran.append(server.config))
    public = ["serve", "--host", "0.0.0.0", "--grpc-port", "0", "--db", str(tmp_path / "y.db")]
    result = CliRunner().invoke(cli, public)
    assert result.exit_code == 0, result.output
    assert [config.host for config in ran] == ["0.0.0.0"] and "keys required" in result.output
    # Served as configured: no forwarded header believed by default, the header deadline, limits.
    config = ran[0]
    assert not config.proxy_headers and config.limit_concurrency == 1000 and config.timeout_keep_alive == 5
    assert config.http.header_timeout_seconds == 10.0
    options = ["--forwarded-allow-ips", "10.0.0.2", "--header-timeout", "3", "--max-connections", "50"]
    result = CliRunner().invoke(cli, ["serve", "--grpc-port", "0", "--db", str(tmp_path / "z.db"), *options])
    assert result.exit_code == 0, result.output
    config = ran[1]
    assert config.proxy_headers and config.forwarded_allow_ips == "10.0.0.2"
    assert config.http.header_timeout_seconds == 3.0 and config.limit_concurrency == 50


def test_evaluators_add_refuses_a_catastrophic_pattern(tmp_path):
    file = tmp_path / "evaluators.json"
    common = [
        "evaluators",
        "add",
        "shape",
        "--kind",
        "regex",
        "--file",
        str(file),
        "--db",
        str(tmp_path / "x.db"),
    ]
    refused = CliRunner().invoke(cli, [*common, "--option", "pattern=(a+)+$"])
    assert refused.exit_code == 2 and "backtracks catastrophically" in refused.output
    assert not file.exists()
    added = CliRunner().invoke(cli, [*common, "--option", r"pattern=order #\d+"])
    assert added.exit_code == 0, added.output


def test_serve_listens_for_otlp_grpc_says_where_and_releases_the_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path
):
    import uvicorn

    monkeypatch.delenv("SPANLOOM_GRPC_PORT", raising=False)
    listening: list[bool] = []

    def run(server: uvicorn.Server, sockets: object = None) -> None:
        # While uvicorn would run, the gRPC port is taken (by the server, bound before it starts).
        with socket.socket() as probe:
            listening.append(probe.connect_ex(("127.0.0.1", port)) == 0)

    monkeypatch.setattr(uvicorn.Server, "run", run)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(cli, ["serve", "--grpc-port", str(port), "--db", str(tmp_path / "a.db")])
    assert result.exit_code == 0, result.output
    assert listening == [True]
    # The OTLP/HTTP and dashboard lines come once uvicorn has bound its port (run is faked here):
    # tests/server/test_serve_startup.py reads them from a real `serve`.
    assert f"OTLP/gRPC traces at 127.0.0.1:{port}" in result.output
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # released once serve returned

        # Taken by someone else: a clear error before anything serves, and how to get past it.
        probe.listen()
        taken = CliRunner().invoke(cli, ["serve", "--grpc-port", str(port), "--db", str(tmp_path / "b.db")])
    assert taken.exit_code == 1 and f"127.0.0.1:{port}" in taken.output and "--grpc-port" in taken.output
    assert "Traceback" not in taken.output

    # 0 (here from the environment) turns gRPC off.
    monkeypatch.setenv("SPANLOOM_GRPC_PORT", "0")
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 0 and "OTLP/gRPC" not in result.output
    monkeypatch.setenv("SPANLOOM_GRPC_PORT", "70000")
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 2 and "SPANLOOM_GRPC_PORT" in result.output
