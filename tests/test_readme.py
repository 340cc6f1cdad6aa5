"""The README's quickstart runs as written and its spans arrive with session and user ids."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


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
