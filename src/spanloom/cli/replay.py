"""``spanloom replay``: re-run recorded conversations (one session, sessions matching a filter, or
the examples of a dataset file) against a Python callable, as new traced sessions (replay.py).
The exit status is 1 when a turn's target raised or a session could not be read."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote

import click

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def session_filters(text: str) -> dict[str, Any]:
    """``user_id=alice&has_error=true&tag=a&metadata.plan=pro`` as `Client.sessions()` keywords."""
    filters: dict[str, Any] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=False, strict_parsing=bool(text.strip()))
    except ValueError as error:
        raise click.BadParameter(f"expected KEY=VALUE&KEY=VALUE ({error})", param_hint="--sessions") from None
    for key, value in pairs:
        if key.startswith("metadata."):
            filters.setdefault("metadata", {})[key.removeprefix("metadata.")] = value
        elif key == "tag":
            filters.setdefault("tag", []).append(value)
        elif key == "has_error":
            if value.lower() not in _BOOLEANS:
                raise click.BadParameter(
                    f"has_error: expected true or false, got {value!r}", param_hint="--sessions"
                )
            filters[key] = _BOOLEANS[value.lower()]
        elif key in ("user_id", "start", "end", "q", "status", "sort", "order"):
            filters[key] = value
        else:
            raise click.BadParameter(f"unknown filter {key!r}", param_hint="--sessions")
    return filters


@click.command("replay")
@click.argument("session_id", required=False)
@click.option("--project", "-p", default=None, help="The project of the sessions read and of the replays.")
@click.option("--target", "-t", required=True, help="The callable to replay against: module.path:callable.")
@click.option(
    "--server",
    default=None,
    help="The spanloom server. Default: the one register() sends to (SPANLOOM_ENDPOINT, the OTLP"
    " variables), else http://127.0.0.1:4318.",
)
@click.option(
    "--api-key",
    envvar="SPANLOOM_API_KEY",
    default=None,
    help="A key that may read and ingest (default: $SPANLOOM_API_KEY).",
)
@click.option(
    "--sessions",
    "filters",
    default=None,
    metavar="FILTER",
    help='Replay every session matching FILTER, e.g. "user_id=alice&has_error=true&metadata.plan=pro"'
    " (also start, end, tag, q, status, sort, order).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many sessions.")
@click.option(
    "--dataset",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help='A JSONL dataset in the OpenAI chat format ({"messages": [...]} per line): replay each example.',
)
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True)
def replay(
    session_id: str | None,
    project: str | None,
    target: str,
    server: str | None,
    api_key: str | None,
    filters: str | None,
    limit: int | None,
    dataset: str | None,
    concurrency: int,
) -> None:
    """Re-run the user turns of recorded sessions against a new version of your app.

    SESSION_ID, --sessions or --dataset names what to replay. Each replay is a new session in the
    same project, with metadata replay_of set to the original; its id and dashboard link are
    printed. A target that raises fails that turn only (recorded as an error, exit status 1).
    """
    import spanloom
    from spanloom import replay as replaying
    from spanloom.client import Client, SpanloomClientError

    if sum(value is not None for value in (session_id, filters, dataset)) != 1:
        raise click.UsageError("give one of SESSION_ID, --sessions or --dataset")
    client = Client(server, api_key)
    if project is None and session_id is not None:
        try:  # the replay goes where the original is
            project = client.session(session_id).project
        except SpanloomClientError as error:
            raise click.ClickException(str(error)) from None
    elif project is None and filters is not None:
        raise click.UsageError("--sessions needs --project")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    provider = spanloom.register(
        project_name=project, endpoint=f"{client.base_url}/v1/traces", headers=headers
    )
    try:
        answer = replaying.load_target(target)
    except (ImportError, AttributeError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="--target") from None
    jobs: list[Callable[[], Awaitable[replaying.ReplayResult]]] = []
    if dataset is not None:
        try:
            examples = list(replaying.dataset_conversations(dataset))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--dataset") from None
        for label, messages in examples[:limit]:
            jobs.append(_messages_job(messages, answer, label, provider))
    else:
        try:
            ids = (
                [session_id]
                if session_id is not None
                else [
                    row.session_id
                    for row in client.sessions(project, limit=limit, **session_filters(filters or ""))
                ]
            )
        except SpanloomClientError as error:
            raise click.ClickException(str(error)) from None
        for one in ids:
            jobs.append(_session_job(client, one, project, answer, provider))
    failures = 0
    try:
        with click.progressbar(length=len(jobs), label="replaying", file=sys.stderr) as bar:

            def done(outcome: replaying.ReplayResult | BaseException) -> None:
                bar.update(1)

            outcomes = replaying.run_sync(replaying.areplay_many(jobs, concurrency, done))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                failures += 1
                click.echo(f"spanloom: could not replay: {outcome}", err=True)
                continue
            failures += bool(outcome.failed_turns)
            link = f"{client.base_url}/sessions/{quote(outcome.session_id, safe='')}"
            if project:
                link += f"?project={quote(project, safe='')}"
            failed = f", {len(outcome.failed_turns)} failed" if outcome.failed_turns else ""
            click.echo(
                f"{outcome.replay_of} -> {outcome.session_id} ({len(outcome.turns)} turns{failed})  {link}"
            )
    finally:
        provider.shutdown()  # sends what is still queued
        client.close()
    if failures:
        sys.exit(1)


def _messages_job(
    messages: list[str], answer: Any, label: str, provider: Any
) -> Callable[[], Awaitable[Any]]:
    from spanloom import replay as replaying

    return lambda: replaying.areplay_messages(messages, answer, label, tracer_provider=provider)


def _session_job(
    client: Any, session_id: str, project: str | None, answer: Any, provider: Any
) -> Callable[[], Awaitable[Any]]:
    from spanloom import replay as replaying

    return lambda: replaying.areplay_session(client, session_id, project, answer, tracer_provider=provider)
