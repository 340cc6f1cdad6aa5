"""Which evaluators run on which project: a small JSON file the CLI edits and the server reads.

```json
{"evaluators": [
  {"name": "fast_enough", "kind": "latency", "project": "support-bot",
   "options": {"threshold_ms": 2000}, "span_kinds": ["LLM"]}
]}
```

`project` "*" applies to every project; `span_kinds` defaults to LLM spans. `scope` is "span" (the
default: judges each new span) or "session" (judges a whole conversation once it is ended or idle:
a kind of session_builtin.py or llm_judge, without span_kinds):

```json
{"name": "resolved", "kind": "resolved", "scope": "session", "project": "support-bot"}
```
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from spanloom.server.evaluators import llm_judge
from spanloom.server.evaluators.builtin import BUILTIN_EVALUATORS, EvaluatorOptionError, Verdict
from spanloom.server.evaluators.session_builtin import SESSION_BUILTINS
from spanloom.server.store.base import SpanRecord

ALL_PROJECTS = "*"
DEFAULT_SPAN_KINDS = ("LLM",)
Scope = Literal["span", "session"]
SCOPES = ("span", "session")
# kind -> its option names, for each scope
SESSION_KINDS: dict[str, tuple[str, ...]] = {
    **{kind: builtin.options for kind, builtin in SESSION_BUILTINS.items()},
    llm_judge.KIND: llm_judge.OPTIONS,
}
SPAN_KINDS: dict[str, tuple[str, ...]] = {
    kind: builtin.options for kind, builtin in BUILTIN_EVALUATORS.items()
}


def _check_kind(scope: str, kind: str, options: Mapping[str, Any]) -> None:
    kinds, other = (SPAN_KINDS, SESSION_KINDS) if scope == "span" else (SESSION_KINDS, SPAN_KINDS)
    if kind not in kinds:
        if kind in other:
            other_scope = "session" if scope == "span" else "span"
            raise EvaluatorOptionError(f"{kind} is a {other_scope} evaluator: give it scope {other_scope}")
        raise EvaluatorOptionError(
            f"unknown evaluator kind {kind!r} for scope {scope} (known: {', '.join(sorted(kinds))})"
        )
    unknown = set(options) - set(kinds[kind])
    if unknown:
        raise EvaluatorOptionError(
            f"{kind} takes no option(s) {', '.join(sorted(unknown))}"
            + (f" (it takes: {', '.join(kinds[kind])})" if kinds[kind] else "")
        )
    if scope == "span":
        BUILTIN_EVALUATORS[kind].check(options)
    elif kind == llm_judge.KIND:
        llm_judge.check_options(options)
    else:
        SESSION_BUILTINS[kind].check(options)


@dataclass(frozen=True)
class EvaluatorConfig:
    """One configured evaluator: a built-in `kind` with its options, under a result `name`; of
    spans (`span_kinds` of them) or of whole sessions (`scope` "session")."""

    name: str
    kind: str
    project: str = ALL_PROJECTS
    options: Mapping[str, Any] = field(default_factory=dict)
    span_kinds: tuple[str, ...] = DEFAULT_SPAN_KINDS
    scope: Scope = "span"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise EvaluatorOptionError("an evaluator needs a non-empty name")
        if not isinstance(self.project, str) or not self.project.strip():
            raise EvaluatorOptionError("an evaluator needs a project ('*': every project)")
        if self.scope not in SCOPES:
            raise EvaluatorOptionError(f"scope is 'span' or 'session', not {self.scope!r}")
        if not isinstance(self.options, Mapping):
            raise EvaluatorOptionError("options must be an object")
        _check_kind(self.scope, self.kind, self.options)

    def applies_to(self, span: SpanRecord) -> bool:
        return (
            self.scope == "span"
            and (self.project in (ALL_PROJECTS, span.project))
            and (not self.span_kinds or span.span_kind in self.span_kinds)
        )

    def judge(self, span: SpanRecord) -> Verdict | None:
        return BUILTIN_EVALUATORS[self.kind].judge(span, self.options)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"] = dict(self.options)
        if self.scope == "span":
            data["span_kinds"] = list(self.span_kinds)
            del data["scope"]  # the default: files written before scopes existed read the same
        else:
            del data["span_kinds"]
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
                    scope=item.get("scope", "span"),
                )
            )
        except (EvaluatorOptionError, TypeError, ValueError) as error:
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


def session_configs_for(configs: Iterable[EvaluatorConfig], project: str) -> list[EvaluatorConfig]:
    """The session evaluators that judge `project`'s sessions: a project's own configuration of a
    name wins over one for every project."""
    scoped = [config for config in configs if config.scope == "session"]
    own = {config.name for config in scoped if config.project == project}
    return [
        config
        for config in scoped
        if config.project == project or (config.project == ALL_PROJECTS and config.name not in own)
    ]


def evaluate(configs: Iterable[EvaluatorConfig], span: SpanRecord) -> list[tuple[str, Verdict]]:
    """(result name, verdict) for every configured evaluator that applies to `span`."""
    results = []
    for config in configs:
        if config.applies_to(span):
            verdict = config.judge(span)
            if verdict is not None:
                results.append((config.name, verdict))
    return results
