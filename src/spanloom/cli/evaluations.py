"""``spanloom evaluators add/list/remove`` (the server evaluators file) and ``spanloom eval run``
(judging stored spans, or with ``--scope session`` stored sessions, on demand). The server is
imported inside the commands, like the other commands do."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import click

_DB_OPTION = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite database file. Default: $SPANLOOM_DB, else spanloom.db in your user data directory.",
)
_FILE_OPTION = click.option(
    "--file",
    "file_",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Evaluators file. Default: $SPANLOOM_EVALUATORS_FILE, else evaluators.json next to the database.",
)
_SCOPE_OPTION = click.option(
    "--scope",
    type=click.Choice(["span", "session"]),
    default="span",
    show_default=True,
    help="span: judges each new span; session: judges a whole conversation once ended or idle.",
)
_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def _settings(db: Path | None, file_: Path | None) -> Any:
    from spanloom.server.settings import Settings

    try:
        return Settings.from_env(db_path=db.expanduser() if db else None, evaluators_file=file_)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def _option_value(raw: str) -> Any:
    """KEY=VALUE values: JSON when they parse (numbers, true/false), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _since_ns(raw: str | None) -> int | None:
    if raw is None:
        return None
    relative = _RELATIVE.match(raw.strip())
    if relative:
        return time.time_ns() - int(relative.group(1)) * _UNITS[relative.group(2)] * 10**9
    from spanloom.server.list_params import BadParameterError, parse_time

    try:
        return parse_time("--since", raw)
    except BadParameterError as error:
        raise click.BadParameter(error.message, param_hint="--since") from None


@click.group()
def evaluators() -> None:
    """Configure the built-in evaluators the server runs on new spans and on finished sessions."""


@evaluators.command("add")
@click.argument("name")
@click.option(
    "--kind",
    required=True,
    help="Spans: error, latency, json_valid, regex, refusal, length, contains_pii. Sessions (--scope"
    " session): resolved, repeated_question, frustration, error_streak, turns_over, llm_judge.",
)
@click.option(
    "--project", default="*", show_default=True, help="The project whose spans it judges ('*': all)."
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option, e.g. threshold_ms=2000 (values parse as JSON when they can: n=3, phrases='[\"a\"]').",
)
@click.option(
    "--span-kind", "span_kinds", multiple=True, help="Span kinds to judge (default LLM; repeatable)."
)
@_SCOPE_OPTION
@_FILE_OPTION
@_DB_OPTION
def add_evaluator(
    name: str,
    kind: str,
    project: str,
    options: tuple[str, ...],
    span_kinds: tuple[str, ...],
    scope: str,
    file_: Path | None,
    db: Path | None,
) -> None:
    """Add (or replace) the evaluator NAME; a running server picks it up on its next spans (or,
    with --scope session, its next ended or idle sessions)."""
    from spanloom.server.evaluators.builtin import EvaluatorOptionError, check_pattern_speed
    from spanloom.server.evaluators.config import (
        DEFAULT_SPAN_KINDS,
        EvaluatorConfig,
        load_configs,
        save_configs,
    )

    path = _settings(db, file_).evaluators_path
    parsed: dict[str, Any] = {}
    for raw in options:
        key, separator, value = raw.partition("=")
        if not separator or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {raw!r}", param_hint="--option")
        parsed[key.strip()] = _option_value(value)
    if span_kinds and scope == "session":
        raise click.UsageError(
            "--span-kind is for span evaluators: a session evaluator judges whole sessions"
        )
    try:
        config = EvaluatorConfig(
            name=name,
            kind=kind,
            project=project,
            options=parsed,
            span_kinds=tuple(kind.upper() for kind in span_kinds) or DEFAULT_SPAN_KINDS,
            scope=scope,  # type: ignore[arg-type]  # click.Choice: "span" or "session"
        )
        if kind == "regex":
            # Here, not on every load: the server's time limit covers a file edited by hand.
            check_pattern_speed(config.options["pattern"])
        configs = [c for c in load_configs(path) if (c.project, c.name) != (project, name)]
        save_configs(path, [*configs, config])
    except EvaluatorOptionError as error:
        raise click.UsageError(str(error)) from None
    click.echo(f"spanloom: {scope} evaluator {name!r} ({kind}) on project {project!r} saved in {path}")


@evaluators.command("list")
@click.option("--project", default=None, help="Only evaluators that apply to this project.")
@_FILE_OPTION
@_DB_OPTION
def list_evaluators(project: str | None, file_: Path | None, db: Path | None) -> None:
    """Show the configured evaluators."""
    from spanloom.server.evaluators.builtin import EvaluatorOptionError
    from spanloom.server.evaluators.config import ALL_PROJECTS, load_configs

    path = _settings(db, file_).evaluators_path
    try:
        configs = load_configs(path)
    except EvaluatorOptionError as error:
        raise click.ClickException(str(error)) from None
    shown = [c for c in configs if project is None or c.project in (ALL_PROJECTS, project)]
    if not shown:
        click.echo(f"spanloom: no evaluators in {path}")
        return
    for config in shown:
        options = " ".join(f"{key}={json.dumps(value)}" for key, value in config.options.items())
        kinds = ",".join(config.span_kinds) if config.scope == "span" else "-"
        click.echo(
            f"{config.project}\t{config.name}\t{config.scope}\t{config.kind}\t{kinds}\t{options}".rstrip()
        )


@evaluators.command("remove")
@click.argument("name")
@click.option("--project", default="*", show_default=True, help="The project it was added for.")
@_FILE_OPTION
@_DB_OPTION
def remove_evaluator(name: str, project: str, file_: Path | None, db: Path | None) -> None:
    """Remove the evaluator NAME (its stored results stay)."""
    from spanloom.server.evaluators.config import load_configs, save_configs

    path = _settings(db, file_).evaluators_path
    configs = load_configs(path)
    kept = [c for c in configs if (c.project, c.name) != (project, name)]
    if len(kept) == len(configs):
        raise click.ClickException(f"no evaluator {name!r} for project {project!r} in {path}")
    save_configs(path, kept)
    click.echo(f"spanloom: evaluator {name!r} removed from project {project!r}")


@click.group("eval")
def eval_group() -> None:
    """Run evaluators over stored spans or sessions."""


@eval_group.command("run")
@click.option(
    "--project",
    default=None,
    help="The project whose stored spans to judge (required for spans; sessions: default all).",
)
@click.option(
    "--evaluator",
    "evaluator_name",
    default=None,
    help="A configured evaluator's name (required for spans; sessions: default every session evaluator).",
)
@click.option(
    "--since",
    default=None,
    help="Only spans started (sessions active) since: ISO 8601, Unix seconds, or 30m/24h/7d.",
)
@_SCOPE_OPTION
@_FILE_OPTION
@_DB_OPTION
def run_evaluator(
    project: str | None,
    evaluator_name: str | None,
    since: str | None,
    scope: str,
    file_: Path | None,
    db: Path | None,
) -> None:
    """Judge the project's stored spans with one evaluator, or with --scope session the stored
    sessions that are ended or idle (active ones are left out: they are judged once done) with the
    session evaluators. Results replace earlier server ones."""
    if scope == "session":
        _run_session_evaluators(project, evaluator_name, since, file_, db)
        return
    if project is None or evaluator_name is None:
        raise click.UsageError("--project and --evaluator are required to judge spans")
    from dataclasses import replace

    from spanloom.server.evaluators.builtin import EvaluatorOptionError
    from spanloom.server.evaluators.config import ALL_PROJECTS, EvaluatorConfig, load_configs
    from spanloom.server.evaluators.runner import run_on_stored
    from spanloom.server.store.base import ListQuery, StoreOpenError
    from spanloom.server.store.url import open_store

    settings = _settings(db, file_)
    configs = [
        c
        for c in load_configs(settings.evaluators_path)
        if c.name == evaluator_name and c.project in (ALL_PROJECTS, project)
    ]
    if configs and all(c.scope == "session" for c in configs):
        raise click.UsageError(f"{evaluator_name!r} is a session evaluator: run it with --scope session")
    configs = [c for c in configs if c.scope == "span"]
    # A project's own configuration wins over one for every project.
    configs.sort(key=lambda c: c.project == ALL_PROJECTS)
    if configs:
        config = replace(configs[0], project=project)
    else:
        try:  # a built-in that needs no options can run by its kind's name
            config = EvaluatorConfig(name=evaluator_name, kind=evaluator_name, project=project)
        except (EvaluatorOptionError, KeyError) as error:
            raise click.UsageError(
                f"no evaluator {evaluator_name!r} for project {project!r} in {settings.evaluators_path} "
                f"({error}); add one with `spanloom evaluators add`"
            ) from None
    if settings.store_url is None and not settings.db_path.exists():
        raise click.ClickException(f"no database at {settings.db_path}")
    kind = config.span_kinds[0] if len(config.span_kinds) == 1 else None
    query = ListQuery(project=project, span_kind=kind, start_ns=_since_ns(since))
    try:
        store = open_store(settings.store, progress=lambda line: click.echo(f"spanloom: {line}", err=True))
    except StoreOpenError as error:
        raise click.ClickException(str(error)) from None
    try:
        total = store.count_spans(query)
        with click.progressbar(length=total, label=f"Evaluating {evaluator_name}", show_pos=True) as bar:
            seen, written = run_on_stored(store, [config], query, on_progress=bar.update)
    finally:
        store.close()
    click.echo(
        f"spanloom: judged {seen} spans of project {project!r}, wrote {written} {evaluator_name!r} results"
    )


def _run_session_evaluators(
    project: str | None, evaluator_name: str | None, since: str | None, file_: Path | None, db: Path | None
) -> None:
    from spanloom.server.evaluators.builtin import EvaluatorOptionError
    from spanloom.server.evaluators.config import ALL_PROJECTS, load_configs
    from spanloom.server.evaluators.session_runner import StoredRun, judge_stored
    from spanloom.server.store.base import ListQuery, StoreOpenError
    from spanloom.server.store.url import open_store

    settings = _settings(db, file_)
    try:
        configs = [c for c in load_configs(settings.evaluators_path) if c.scope == "session"]
    except EvaluatorOptionError as error:
        raise click.ClickException(str(error)) from None
    if evaluator_name is not None:
        configs = [c for c in configs if c.name == evaluator_name]
    if project is not None:
        configs = [c for c in configs if c.project in (ALL_PROJECTS, project)]
    if not configs:
        which = f"session evaluator {evaluator_name!r}" if evaluator_name else "session evaluators"
        where = f" for project {project!r}" if project else ""
        raise click.UsageError(
            f"no {which}{where} in {settings.evaluators_path}; add one with"
            " `spanloom evaluators add NAME --scope session --kind resolved`"
        )
    if settings.store_url is None and not settings.db_path.exists():
        raise click.ClickException(f"no database at {settings.db_path}")
    try:
        store = open_store(settings.store, progress=lambda line: click.echo(f"spanloom: {line}", err=True))
    except StoreOpenError as error:
        raise click.ClickException(str(error)) from None
    shown = [0]

    def progress(run: StoredRun) -> None:
        if run.seen >= shown[0] + 1000:
            shown[0] = run.seen
            click.echo(f"spanloom: {run.seen} sessions read, {run.judged} judged", err=True)

    try:
        run = judge_stored(
            store,
            configs,
            ListQuery(project=project, start_ns=_since_ns(since)),
            settings.idle_before_ns(),
            on_progress=progress,
            # One evaluator by name: the others still have to run, so nothing is marked judged.
            mark=evaluator_name is None,
        )
    finally:
        store.close()
    where = f" of project {project!r}" if project else ""
    click.echo(
        f"spanloom: judged {run.judged} sessions{where}, wrote {run.results} results;"
        f" left out {run.active} active sessions"
    )
    if run.failed:
        click.echo(
            f"spanloom: an llm_judge failed on {run.failed} sessions (their results say judge_error): run"
            " again later",
            err=True,
        )
