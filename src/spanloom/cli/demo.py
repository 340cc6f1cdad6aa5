"""``spanloom demo``: sample conversations sent to a running server through the SDK."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--endpoint",
    default=None,
    help="OTLP/HTTP traces URL. Default: $SPANLOOM_ENDPOINT, else http://127.0.0.1:4318/v1/traces.",
)
@click.option(
    "--sessions", default=12, show_default=True, type=click.IntRange(1, 10_000), help="Conversations."
)
@click.option("--users", default=5, show_default=True, type=click.IntRange(1, 10_000), help="Distinct users.")
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed (same seed, same data).")
def demo(endpoint: str | None, sessions: int, users: int, seed: int) -> None:
    """Send a believable day of sample conversations to a running `spanloom serve`.

    Conversations spread over the last 24 hours among several users (one in five struggling: slower
    answers, failing tools, thumbs down), model calls of seconds and tool calls of milliseconds,
    a 31-turn conversation, thumbs, an LLM judge's verdicts, ended conversations; traced with the
    spanloom SDK as an app would, under the project "demo". The same --seed sends the same data.
    """
    from spanloom.demo import build_conversations, send_with_sdk
    from spanloom.sdk.destination import resolve_endpoint, server_url

    conversations = build_conversations(sessions=sessions, users=users, seed=seed)
    try:
        sent = send_with_sdk(conversations, endpoint=endpoint, seed=seed)
    except ConnectionError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"spanloom: sent {sent} spans in {len(conversations)} sessions of {users} users (project 'demo')"
    )
    click.echo(f"spanloom: open {server_url(resolve_endpoint(endpoint))}/sessions?project=demo")
