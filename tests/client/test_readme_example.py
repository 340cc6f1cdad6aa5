"""The README's notebook example runs as written against a real server filled through the SDK,
finding the server and key where the README says (SPANLOOM_ENDPOINT, SPANLOOM_API_KEY)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from _client_kit import READ, Filled

README = Path(__file__).resolve().parents[2] / "README.md"


def notebook_example() -> str:
    section = README.read_text().split("### In a notebook: `spanloom.Client`", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return block


def test_the_notebook_example_runs(filled: Filled, tmp_path: Path):
    script = tmp_path / "notebook.py"
    script.write_text(notebook_example())
    environment = {
        **os.environ,
        "SPANLOOM_ENDPOINT": f"{filled.server.url}/v1/traces",
        "SPANLOOM_API_KEY": READ,
    }
    finished = subprocess.run(
        [sys.executable, str(script)], env=environment, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    # The groupby by user: both users, bob's 4 turns and 1 error, alice's 4 turns.
    assert any(re.match(r"^alice\s+3\s+4\s+0$", line) for line in lines), finished.stdout
    assert any(re.match(r"^bob\s+2\s+4\s+1$", line) for line in lines), finished.stdout
    assert "gpt-4o-mini" in finished.stdout and "->" in finished.stdout
