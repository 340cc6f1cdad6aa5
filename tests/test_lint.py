"""The lint gate runs with the tests, so the README's one test command checks it too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def test_ruff_check():
    result = run(tool("ruff"), "check", "src", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = run(tool("ruff"), "format", "--check", "src", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts():
    # import-linter holds the layering of DESIGN.md: the SDK never imports the server or CLI.
    result = run(tool("lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    # The type checker over src/ ([tool.mypy] in pyproject.toml); each remaining ignore says why.
    result = run(tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.js
def test_js_lint_and_format():
    # Biome, as the package's `npm run lint` runs it: its recommended rules and its formatter.
    biome = ROOT / "js" / "node_modules" / ".bin" / "biome"
    if not biome.exists():
        pytest.fail(
            "js/node_modules is missing: run `(cd js && npm ci)`, or leave the JavaScript tests out"
            ' with -m "not js"',
            pytrace=False,
        )
    result = subprocess.run(
        [str(biome), "ci", "--colors=off", "."],
        cwd=ROOT / "js",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
