"""The README's claim: any OpenInference instrumentor works with spanloom, its spans carrying the
ids of ``using_session`` / ``using_user``, because the context keys are the same."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from langchain_core.runnables import RunnableLambda
from openinference.instrumentation.langchain import LangChainInstrumentor

from spanloom import using_session, using_user

from .fakes import only_span

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "#### Any OpenInference or OpenLLMetry instrumentor works too"


def test_openinference_reads_the_ids_spanloom_set(bare_provider, exporter):
    # No SessionSpanProcessor on this provider: the ids come from OpenInference's own reading
    # of the context.
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=bare_provider)
    try:
        with using_session("conv-42"), using_user("alice"):
            RunnableLambda(lambda text: text.upper(), name="shout").invoke("hi")
    finally:
        instrumentor.uninstrument()
    attributes = only_span(exporter).attributes
    assert (attributes["session.id"], attributes["user.id"]) == ("conv-42", "alice")


def test_the_readme_example_runs_and_its_span_has_the_session(collector, tmp_path):
    text = README.read_text()
    section = text[text.index(HEADING) :]
    snippet = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    script = tmp_path / "other.py"
    script.write_text(snippet)
    environment = {**os.environ, "SPANLOOM_ENDPOINT": collector.base + "/v1/traces", "SPANLOOM_STRICT": "1"}
    subprocess.run([sys.executable, str(script)], env=environment, check=True, timeout=120)
    (span,) = collector.spans()
    attributes = {kv.key: kv.value.string_value for kv in span.attributes}
    assert span.name == "shout"
    assert attributes["session.id"] == "conv-42"
