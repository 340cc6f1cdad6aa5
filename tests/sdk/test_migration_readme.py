"""The README's "Coming from OpenInference / traceAI" snippet: one import line is the whole change.

The snippet runs as written (importing from spanloom) and again with its commented
OpenInference import line in place of spanloom's; both print the same.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## Coming from OpenInference / traceAI"


def migration_snippet() -> str:
    text = README.read_text()
    section = text[text.index(HEADING) :]
    return re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)


def run(source: str, tmp_path: Path, name: str) -> str:
    script = tmp_path / f"{name}.py"
    script.write_text(source)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_snippet_prints_the_same_with_openinferences_import_line(tmp_path):
    snippet = migration_snippet()
    ours = next(line for line in snippet.splitlines() if line.startswith("from spanloom import"))
    theirs = next(
        line[2:] for line in snippet.splitlines() if line.startswith("# from openinference.instrumentation")
    )
    assert theirs.split(" import ")[1] == ours.split(" import ")[1]  # the same names, one line apart

    with_spanloom = run(snippet, tmp_path, "with_spanloom")
    with_openinference = run(snippet.replace(ours, theirs), tmp_path, "with_openinference")

    assert with_spanloom == with_openinference
    first, second = (ast.literal_eval(line) for line in with_spanloom.splitlines())
    assert first == {"session.id": "my-session-id"}
    assert second == {
        "session.id": "my-session-id",
        "user.id": "my-user-id",
        "metadata": '{"plan": "pro"}',
        "tag.tags": ["beta", "eu"],
    }


def test_the_snippet_names_traceais_import_line_with_the_same_names():
    snippet = migration_snippet()
    names = {line.split(" import ")[1] for line in snippet.splitlines() if " import " in line}
    assert len(names) == 1, names
    assert any(line.startswith("# from fi_instrumentation import") for line in snippet.splitlines())
