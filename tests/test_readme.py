"""The README's quickstart runs as written and its spans arrive with session and user ids; its
test command is the one CI runs, and the versions it states are the ones CI tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_quickstart_runs_and_exports_ids(collector, tmp_path):
    quickstart = python_blocks()[0]
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart)
    environment = {**os.environ, "SPANLOOM_ENDPOINT": collector.base + "/v1/traces", "SPANLOOM_STRICT": "1"}
    subprocess.run([sys.executable, str(script)], env=environment, check=True, timeout=60)
    spans = collector.spans()
    assert {span.name for span in spans} == {"answer", "lookup_order"}
    for span in spans:
        attributes = {kv.key: kv.value.string_value for kv in span.attributes}
        assert attributes["session.id"] == "conv-42"
        assert attributes["user.id"] == "alice"


def test_ci_runs_the_readme_test_command():
    section = README.read_text().split("Run the tests", 1)[1]
    [command] = re.findall(r"```sh\n(.*?)\n```", section, flags=re.DOTALL)[:1]
    assert "python -m pytest" in command and "\n" not in command
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert any(line == command or line.startswith(command + " ||") for line in ci_lines), command


def test_readme_states_the_versions_ci_tests():
    """.ci/run takes the oldest and newest Python from the classifiers and the oldest Node from
    js/package.json's engines; the README's table says the same."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    pythons = sorted(
        re.findall(r'"Programming Language :: Python :: (3\.\d+)"', pyproject),
        key=lambda version: int(version.split(".")[1]),
    )
    assert f'requires-python = ">={pythons[0]}"' in pyproject
    engines = json.loads((ROOT / "js" / "package.json").read_text())["engines"]["node"]
    oldest_node = min(re.findall(r"\d+\.\d+\.\d+", engines), key=lambda v: tuple(map(int, v.split("."))))
    table = README.read_text().split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    assert f"| Python | {pythons[0]} | {pythons[-1]} " in table
    assert f"| Node.js (the `js/` package) | {oldest_node.rsplit('.', 1)[0]} |" in table
    for name in ("opentelemetry-api", "openai", "anthropic", "fastapi"):
        minimum = re.search(rf'"{name}>=([\d.]+)"', pyproject)[1]
        row = next(line for line in table.splitlines() if line.startswith("| " + name))
        assert f"| {minimum}" in row, (name, minimum, row)
