"""``spanloom migrate FROM TO``: a whole store copied into another, counts compared."""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("source", metavar="FROM")
@click.argument("destination", metavar="TO")
@click.option(
    "--cluster", default=None, metavar="NAME", help="TO is a ClickHouse cluster: see serve --cluster."
)
def migrate(source: str, destination: str, cluster: str | None) -> None:
    """Copy a whole store into another, e.g. sqlite:///spans.db to chdb:///data.

    Spans (with the results they carry) and evaluation results go over through the store
    protocol; TO computes every rollup itself. At the end the span, trace, session and user counts
    of every project are compared, and the command fails if any differs. Safe to run again: what
    TO holds already is left as it is. Stop `spanloom serve` on FROM first.
    """
    from spanloom.server.store.base import ListQuery, StoreOpenError
    from spanloom.server.store.copy import check_projects, copy_evaluations, copy_spans
    from spanloom.server.store.url import open_store

    try:
        from_store = open_store(source)
    except StoreOpenError as error:
        raise click.ClickException(str(error)) from None
    try:
        try:
            to_store = open_store(destination, cluster=cluster)
        except StoreOpenError as error:
            raise click.ClickException(str(error)) from None
        try:
            total = from_store.count_spans(ListQuery())
            with click.progressbar(
                length=total, label=f"spanloom: copying {total:,} spans", file=sys.stderr
            ) as bar:
                copy_spans(from_store, to_store, bar.update)
            results = copy_evaluations(from_store, to_store)
            click.echo(f"spanloom: copied {results:,} evaluation results")
            checks = check_projects(from_store, to_store)
        finally:
            to_store.close()
    finally:
        from_store.close()
    click.echo("project: spans, traces, sessions, users in FROM -> TO")
    for check in checks:
        figures = " ".join(f"{a:,}->{b:,}" for a, b in zip(check.source, check.copied, strict=True))
        click.echo(f"  {check.project}: {figures} {'ok' if check.matches else 'DIFFERENT'}")
    if not all(check.matches for check in checks):
        raise click.ClickException("the counts differ: see the projects marked DIFFERENT")
    click.echo(f"spanloom: every count matches in {len(checks)} project(s)")
