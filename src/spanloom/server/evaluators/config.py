"""Which evaluators run on which project: a small JSON file the CLI edits and the server reads.

```json
{"evaluators": [
  {"name": "fast_enough", "kind": "latency", "project": "support-bot",
   "options": {"threshold_ms": 2000}, "span_kinds": ["LLM"]}
]}
```

`project` "*" applies to every project; `span_kinds` defaults to LLM spans.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spanloom.server.evaluators.builtin import BUILTIN_EVALUATORS, EvaluatorOptionError, Verdict
from spanloom.server.store.base import SpanRecord

ALL_PROJECTS = "*"
DEFAULT_SPAN_KINDS = ("LLM",)


@dataclass(frozen=True)
class EvaluatorConfig:
    """One configured evaluator: a built-in `kind` with its options, under a result `name`."""

    name: str
    kind: str
    project: str = ALL_PROJECTS
    options: Mapping[str, Any] = field(default_factory=dict)
    span_kinds: tuple[str, ...] = DEFAULT_SPAN_KINDS

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise EvaluatorOptionError("an evaluator needs a non-empty name")
        builtin = BUILTIN_EVALUATORS.get(self.kind)
        if builtin is None:
            known = ", ".join(sorted(BUILTIN_EVALUATORS))
            raise EvaluatorOptionError(f"unknown evaluator kind {self.kind!r} (known: {known})")
        unknown = set(self.options) - set(builtin.options)
        if unknown:
            raise EvaluatorOptionError(f"{self.kind} takes no option(s) {', '.join(sorted(unknown))}")
        builtin.check(self.options)

    def applies_to(self, span: SpanRecord) -> bool:
        return (self.project in (ALL_PROJECTS, span.project)) and (
            not self.span_kinds or span.span_kind in self.span_kinds
        )

    def judge(self, span: SpanRecord) -> Verdict | None:
        return BUILTIN_EVALUATORS[self.kind].judge(span, self.options)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = dict(self.options)
        data["span_kinds"] = list(self.span_kinds)
        return data


def parse_configs(data: object) -> list[EvaluatorConfig]:
    """Evaluator configs from the file's JSON; raises EvaluatorOptionError saying what is wrong."""
    if not isinstance(data, Mapping) or not isinstance(data.get("evaluators", []), list):
        raise EvaluatorOptionError('the evaluators file holds {"evaluators": [...]}')
    configs = []
    for index, item in enumerate(data.get("evaluators", [])):
        if not isinstance(item, Mapping):
            raise EvaluatorOptionError(f"evaluator #{index + 1} is not an object")
        try:
            configs.append(
                EvaluatorConfig(
                    name=item.get("name", ""),
                    kind=item.get("kind", ""),
                    project=item.get("project", ALL_PROJECTS),
                    options=dict(item.get("options") or {}),
                    span_kinds=tuple(item.get("span_kinds") or DEFAULT_SPAN_KINDS),
                )
            )
        except EvaluatorOptionError as error:
            raise EvaluatorOptionError(f"evaluator #{index + 1}: {error}") from None
    names = [(config.project, config.name) for config in configs]
    if len(set(names)) != len(names):
        raise EvaluatorOptionError("two evaluators share a name in one project")
    return configs


def load_configs(path: Path) -> list[EvaluatorConfig]:
    """The evaluators in `path`; none when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        data = json.loads(text)
    except ValueError as error:
        raise EvaluatorOptionError(f"{path} is not JSON: {error}") from None
    return parse_configs(data)


def save_configs(path: Path, configs: Sequence[EvaluatorConfig]) -> None:
    """Write atomically, so a server reading the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"evaluators": [config.to_json() for config in configs]}, indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".evaluators-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)


def evaluate(configs: Iterable[EvaluatorConfig], span: SpanRecord) -> list[tuple[str, Verdict]]:
    """(result name, verdict) for every configured evaluator that applies to `span`."""
    results = []
    for config in configs:
        if config.applies_to(span):
            verdict = config.judge(span)
            if verdict is not None:
                results.append((config.name, verdict))
    return results
