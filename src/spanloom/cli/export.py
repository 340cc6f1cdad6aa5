"""``spanloom export sessions``: GET /api/sessions/export streamed into a file, with a running count.

The server is the one `register()` sends to (sdk/destination.py: SPANLOOM_ENDPOINT or the OTLP
variables, else http://127.0.0.1:4318), with SPANLOOM_API_KEY; ``--server`` and ``--api-key``
override them. The body goes to a temporary file beside FILE, renamed to FILE once the server has
sent all of it: an export cut short leaves no file that looks whole.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click

# How often the running count on stderr is redrawn.
_REDRAW_SECONDS = 0.25
_CHUNK_BYTES = 64 * 1024


@click.group("export")
def export_group() -> None:
    """Export data from a spanloom server to a file."""


def _params(options: dict[str, Any]) -> list[tuple[str, str | int | float | bool | None]]:
    params: list[tuple[str, str | int | float | bool | None]] = []
    for name in ("project", "user_id", "start", "end", "q", "status", "sort", "order", "limit"):
        if options[name] is not None:
            params.append((name, str(options[name])))
    if options["has_error"] is not None:
        params.append(("has_error", "true" if options["has_error"] else "false"))
    params += [("tag", tag) for tag in options["tag"]]
    for pair in options["metadata"]:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--metadata")
        params.append((f"metadata.{key}", value))
    params += [("format", options["export_format"]), ("per", options["per"]), ("as", options["as_"])]
    return params


def _error_message(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500]


class _Counter:
    """Rows (JSON Lines: one per line) and bytes written so far, redrawn on stderr."""

    def __init__(self, unit: str, lines_are_rows: bool) -> None:
        self.unit = unit
        self.lines_are_rows = lines_are_rows
        self.rows = 0
        self.bytes = 0
        self._drawn = 0.0

    def add(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        if self.lines_are_rows:
            self.rows += chunk.count(b"\n")
        now = time.monotonic()
        if now - self._drawn >= _REDRAW_SECONDS:
            self._drawn = now
            self.draw(end="")

    def describe(self) -> str:
        size = f"{self.bytes / 1e6:,.1f} MB"
        return f"{self.rows:,} {self.unit}, {size}" if self.lines_are_rows else size

    def draw(self, end: str) -> None:
        click.echo(f"\rspanloom: exported {self.describe()}", nl=False, err=True)
        if end:
            click.echo(end, nl=False, err=True)


@export_group.command("sessions")
@click.option("--project", default=None, help="Project to export (default: register()'s, else the key's).")
@click.option("--user-id", default=None, help="Only this user's sessions.")
@click.option("--start", default=None, help="ISO 8601 or Unix seconds: sessions active at or after.")
@click.option("--end", default=None, help="ISO 8601 or Unix seconds: sessions active at or before.")
@click.option("--has-error/--no-error", default=None, help="Only sessions with (or without) a failed turn.")
@click.option("--tag", multiple=True, help="Only sessions carrying this tag (repeatable).")
@click.option(
    "--metadata", multiple=True, metavar="KEY=VALUE", help="Only sessions with this metadata (repeatable)."
)
@click.option("--q", default=None, help="Case-insensitive text search over ids, inputs and outputs.")
@click.option("--status", type=click.Choice(["active", "idle", "ended"]), default=None)
@click.option("--sort", default=None, help="As in the sessions list: start_time (default), turns, cost, ...")
@click.option("--order", type=click.Choice(["asc", "desc"]), default=None)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many sessions.")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["jsonl", "csv", "parquet"]),
    default="jsonl",
    show_default=True,
)
@click.option(
    "--per",
    type=click.Choice(["session", "turn"]),
    default="session",
    show_default=True,
    help="One row per session, or one per turn.",
)
@click.option(
    "--as",
    "as_",
    type=click.Choice(["rows", "dataset"]),
    default="rows",
    show_default=True,
    help='dataset: each session as {"messages": [...], "metadata": {...}} in the OpenAI chat format.',
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The file to write."
)
@click.option(
    "--server",
    default=None,
    help="The spanloom server (default: where register() sends spans: SPANLOOM_ENDPOINT, the OTLP"
    " variables, else http://127.0.0.1:4318).",
)
@click.option("--api-key", default=None, help="A read key (default: $SPANLOOM_API_KEY).")
def export_sessions(out: Path, server: str | None, api_key: str | None, **options: Any) -> None:
    """Sessions that match the filters, to FILE: rows of sessions or turns, or a chat dataset."""
    import httpx

    from spanloom.sdk.destination import api_destination, server_url

    destination = api_destination()
    base = server_url(server) if server else destination.url
    headers = dict(destination.headers)
    if api_key:
        headers = {name: value for name, value in headers.items() if name.lower() != "authorization"}
        headers["authorization"] = f"Bearer {api_key}"
    if options["project"] is None:
        options["project"] = destination.project
    params = _params(options)
    unit = "examples" if options["as_"] == "dataset" else f"{options['per']}s"
    counter = _Counter(unit, lines_are_rows=options["export_format"] == "jsonl")
    out = out.expanduser()
    handle, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent or ".")
    try:
        with os.fdopen(handle, "wb") as file:
            try:
                with httpx.stream(
                    "GET",
                    f"{base}/api/sessions/export",
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(30, read=600),
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        raise click.ClickException(
                            f"the server answered {response.status_code}: {_error_message(response)}"
                        )
                    for chunk in response.iter_bytes(_CHUNK_BYTES):
                        file.write(chunk)
                        counter.add(chunk)
            except httpx.HTTPError as error:
                raise click.ClickException(f"the export from {base} failed: {error}") from None
        os.replace(partial, out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    counter.draw(end="\n")
    click.echo(f"spanloom: wrote {out}", err=True)
