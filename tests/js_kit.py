"""What the tests that run the JavaScript package share: the node executable, a fresh build of
js/dist, the server kit from tests/server, and an environment free of export settings."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

JS_DIR = Path(__file__).resolve().parent.parent / "js"
BUILT_ENTRY = JS_DIR / "dist" / "esm" / "index.js"


def load_server_kit() -> ModuleType:
    """tests/server/_server_kit.py, the module the server tests import as `_server_kit`."""
    if "_server_kit" in sys.modules:
        return sys.modules["_server_kit"]
    spec = importlib.util.spec_from_file_location(
        "_server_kit", Path(__file__).parent / "server" / "_server_kit.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_server_kit"] = module
    spec.loader.exec_module(module)
    return module


def node() -> str:
    """The node executable (SPANLOOM_TEST_NODE, else the one on PATH); fails when it or the JS
    install is missing."""
    executable = os.environ.get("SPANLOOM_TEST_NODE") or shutil.which("node")
    if executable is None:
        pytest.fail(
            'node is not on PATH: run .ci/prerequisites, or leave the JavaScript tests out with -m "not js"',
            pytrace=False,
        )
    if not (JS_DIR / "node_modules").is_dir():
        pytest.fail(
            "js/node_modules is missing: run `(cd js && npm ci && npm run build)`, or leave the"
            ' JavaScript tests out with -m "not js"',
            pytrace=False,
        )
    return executable


def ensure_built() -> None:
    """Build js/dist when it is missing or older than a source or config file."""
    sources = [*(JS_DIR / "src").rglob("*.ts"), *JS_DIR.glob("tsconfig*.json"), JS_DIR / "package.json"]
    newest_source = max(path.stat().st_mtime for path in sources)
    if BUILT_ENTRY.exists() and BUILT_ENTRY.stat().st_mtime >= newest_source:
        return
    npm = shutil.which("npm")
    assert npm is not None, "js/dist is missing or stale and npm is not on PATH to build it"
    build = subprocess.run(
        [npm, "run", "build"], cwd=JS_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    assert build.returncode == 0, f"npm run build failed:\n{build.stdout}\n{build.stderr}"


def node_env() -> dict[str, str]:
    """The environment without OTEL_* / SPANLOOM_* settings that would redirect or alter the export."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "SPANLOOM_")) and name != "NODE_OPTIONS"
    }


def app_with_package(app: Path) -> Path:
    """A folder for an app whose node_modules holds the package and its dependencies (linked
    from js/), as `npm install /path/to/spanloom/js` would leave it."""
    modules = app / "node_modules"
    modules.mkdir(parents=True)
    (modules / "spanloom").symlink_to(JS_DIR, target_is_directory=True)
    dependencies = JS_DIR / "node_modules" / "@opentelemetry"
    (modules / "@opentelemetry").symlink_to(dependencies, target_is_directory=True)
    return app
