"""The ``spanloom`` command; each subcommand lives in a module of this package named for it.

The server (FastAPI, uvicorn, sqlite3) is imported inside the commands, so ``spanloom --help``
stays fast and nothing here loads when an app does ``import spanloom``.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spanloom")
def cli() -> None:
    """spanloom: OpenTelemetry tracing for LLM apps, grouped by session and user."""


# Each module holds one command (or group), built on click alone; bound here under other names,
# so that `spanloom.cli.serve` and the rest stay the modules.
from spanloom.cli.demo import demo as demo_command  # noqa: E402
from spanloom.cli.evaluations import eval_group, evaluators  # noqa: E402
from spanloom.cli.export import export_group  # noqa: E402
from spanloom.cli.migrate import migrate as migrate_command  # noqa: E402
from spanloom.cli.replay import replay as replay_command  # noqa: E402
from spanloom.cli.serve import serve as serve_command  # noqa: E402

for command in (
    serve_command,
    demo_command,
    migrate_command,
    evaluators,
    eval_group,
    export_group,
    replay_command,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="spanloom")


if __name__ == "__main__":
    main()
