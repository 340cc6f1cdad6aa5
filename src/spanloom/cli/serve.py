"""``spanloom serve``: the trace server (OTLP over HTTP and gRPC, the JSON API, the dashboard) on
the embedded SQLite store by default.

The server (FastAPI, uvicorn, sqlite3) is imported inside the command, so ``spanloom --help``
stays fast.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume it is reachable from outside


def _announcer(log_format: str) -> Callable[..., None]:
    """How `serve` says what it is doing: "spanloom: ..." lines, or log records (JSON lines)."""
    if log_format == "json":
        logger = logging.getLogger("spanloom.serve")
        return lambda line, err=False: logger.info(line)
    return lambda line, err=False: click.echo(f"spanloom: {line}", err=err)


# The server process's GIL switch interval (see `serve`).
SERVER_SWITCH_INTERVAL_SECONDS = 0.001


class _Terminated(Exception):
    """SIGTERM, raised again by uvicorn once its graceful shutdown is done (see `serve`)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback needs keys: SPANLOOM_API_KEY or SPANLOOM_KEYS_FILE "
    "(or --insecure).",
)
@click.option(
    "--port",
    default=4318,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port for OTLP/HTTP ingest (/v1/traces), the JSON API (/api) and the docs (/docs). "
    "4318 is the standard OTLP/HTTP port, so OpenTelemetry SDKs send here by default.",
)
@click.option(
    "--grpc-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Port for OTLP/gRPC ingest (TraceService/Export), on the same --host. Default: "
    "$SPANLOOM_GRPC_PORT, else 4317, the standard OTLP/gRPC port (where opentelemetry-instrument "
    "and the .NET SDK send by default); 0 turns gRPC off.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite database file. Default: $SPANLOOM_DB, else spanloom.db in your user data directory.",
)
@click.option(
    "--store",
    "store_url",
    default=None,
    metavar="URL",
    help="Where spans are stored, as a URL: sqlite:///path.db (relative) or sqlite:////abs/path.db; "
    "chdb:///abs/dir (ClickHouse embedded, needs spanloom[clickhouse]); "
    "clickhouse://user:password@host:8123/database (a ClickHouse server or cluster). "
    "Default: $SPANLOOM_STORE, else the --db file.",
)
@click.option(
    "--cluster",
    default=None,
    metavar="NAME",
    help="With a clickhouse:// store: create the tables ON CLUSTER NAME, replicated, with "
    "Distributed tables over them (see docs/clickhouse.md).",
)
@click.option(
    "--retention-days",
    type=click.IntRange(1, None),
    default=None,
    help="Delete sessions whose last turn, and traces without a session, ended more than this many "
    "days ago (checked every 10 minutes). Default: $SPANLOOM_RETENTION_DAYS, else keep everything.",
)
@click.option(
    "--retention",
    "retention_by_project",
    multiple=True,
    metavar="PROJECT=DAYS",
    help="The same for one project, winning over --retention-days (repeatable). $SPANLOOM_RETENTION "
    'takes "shop=7,support=30".',
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback --host without SPANLOOM_API_KEY or SPANLOOM_KEYS_FILE: anyone who can "
    "reach the port can then send and read traces.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="text: uvicorn's lines. json: one JSON object per line (time, level, logger, message; the "
    "access log adds client, method, path, status) for spanloom's and uvicorn's logs, access log "
    "included, for log shippers. Default: $SPANLOOM_LOG_FORMAT, else text.",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="ADDRESSES",
    help="Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: comma-separated "
    "addresses or networks (e.g. 127.0.0.1 for a proxy on this host), or '*'. Default: none, so the "
    "client address (which the wrong-key throttle counts) is the connection's own.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Close a connection whose request headers have not all arrived this long after it opened "
    "(or after the first byte of its next request); 408 if part of a request had arrived.",
)
@click.option(
    "--keep-alive-timeout",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="Close a keep-alive connection idle for this long.",
)
@click.option(
    "--max-connections",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Connections served at once; a request past it is answered 503 (OTLP exporters retry).",
)
@click.option(
    "--decode-processes",
    type=click.IntRange(min=0),
    default=None,
    help="Processes that decode OTLP requests beside the server's own, 0 for none "
    "[default: one less than the CPUs, at most 2; none with chdb://; env SPANLOOM_DECODE_PROCESSES].",
)
def serve(
    host: str,
    port: int,
    grpc_port: int | None,
    db: Path | None,
    store_url: str | None,
    cluster: str | None,
    retention_days: int | None,
    retention_by_project: tuple[str, ...],
    insecure: bool,
    log_level: str,
    log_format: str | None,
    forwarded_allow_ips: str | None,
    header_timeout: float,
    keep_alive_timeout: int,
    max_connections: int,
    decode_processes: int | None,
) -> None:
    """Run the trace server: OTLP ingest, an embedded SQLite store and the JSON API.

    Endpoints: POST /v1/traces (OTLP/HTTP), OTLP/gRPC on --grpc-port, /api/... (JSON API, docs
    at /docs), the dashboard at /, GET /healthz (the process answers), GET /readyz (the store
    accepts a write now; 503 with the reason while the disk or SPANLOOM_MAX_DB_PAGES is full or
    the writer is stuck), GET /metrics (Prometheus text format; needs an admin key for every
    project when keys are configured).
    Both probes are open.

    Costs are priced with the genai-prices table (cached and reasoning tokens as each provider
    prices them); SPANLOOM_PRICING_FILE overrides it.

    Environment: SPANLOOM_DB (database file), SPANLOOM_STORE (store URL), SPANLOOM_GRPC_PORT
    (OTLP/gRPC port, default 4317, 0 for none), SPANLOOM_API_KEY (one key
    required on every request when set), SPANLOOM_KEYS_FILE (JSON ingest/read/admin keys, optionally
    per project; see SECURITY.md), SPANLOOM_MAX_BODY_BYTES (largest OTLP body, default 16 MiB),
    SPANLOOM_MAX_SPANS_PER_REQUEST, SPANLOOM_MAX_SPANS_PER_TRACE, SPANLOOM_MAX_ATTRIBUTE_VALUE_BYTES,
    SPANLOOM_MAX_ATTRIBUTES_PER_SPAN, SPANLOOM_WRITE_QUEUE_SIZE, SPANLOOM_MAX_BATCH_SPANS,
    SPANLOOM_PRICING_FILE (model prices in USD per million tokens, winning over the genai-prices
    table: {"models": {"NAME": {"input": 2.5, "output": 10, "cache_read": 1.25}}}),
    SPANLOOM_LOG_FORMAT (text or json),
    SPANLOOM_MAX_KEY_FAILURES_PER_MINUTE (wrong keys per address before 429, default 30),
    SPANLOOM_MAX_VALUES_PER_REQUEST (attributes, array elements, events... in one OTLP body before 413,
    default 1,000,000), SPANLOOM_TRACE_PAGE_SPANS, SPANLOOM_EVALUATORS_FILE, SPANLOOM_MAX_DB_PAGES,
    SPANLOOM_RETENTION_DAYS, SPANLOOM_RETENTION (PROJECT=DAYS,...), SPANLOOM_RETENTION_INTERVAL,
    SPANLOOM_CORS_ORIGINS (browser origins that may send feedback and end sessions, comma-separated).
    """
    from spanloom.server.auth.keys import KeyRing
    from spanloom.server.settings import Settings, parse_retention

    try:
        settings = Settings.from_env(
            db_path=db.expanduser() if db else None,
            store_url=store_url,
            grpc_port=grpc_port,
            retention_days=retention_days,
            retention_by_project=parse_retention(retention_by_project) or None,
            log_format=log_format,
            decode_processes=decode_processes,
        )
        # Read now: a malformed keys file stops the command before anything listens.
        keys = KeyRing.from_settings(settings.api_key, settings.keys_file)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if not is_loopback(host) and keys is None and not insecure:
        raise click.UsageError(
            f"refusing to listen on {host} without keys: set SPANLOOM_API_KEY (clients send it as "
            "'Authorization: Bearer KEY') or SPANLOOM_KEYS_FILE, or pass --insecure"
        )

    from spanloom.server.log_format import configure_logging

    if settings.log_format == "json":
        # From the first line on: what is said while the store opens is a JSON line too.
        configure_logging(settings.log_format, log_level)
    say = _announcer(settings.log_format)

    from spanloom.server.app import create_app
    from spanloom.server.collector import tune_collector
    from spanloom.server.grpc_serving import GrpcListenError
    from spanloom.server.memory import return_big_buffers_to_the_system
    from spanloom.server.serving import AnnouncingServer, ServeLimits, uvicorn_config
    from spanloom.server.store.base import StoreOpenError
    from spanloom.server.store.sqlite.file_mode import readable_by_others
    from spanloom.server.store.url import open_store, sqlite_path

    shown_host = f"[{host}]" if ":" in host else host
    try:
        path = sqlite_path(settings.store)
        say(f"database {path}" if path is not None else f"store {settings.store}")
        loose = readable_by_others(path) if path is not None else None
        if loose is not None:
            say(
                f"warning: other users can read {path} (mode {loose:04o}), which holds every traced "
                f"prompt and answer; `chmod 600 {path}` unless that is meant (a new file is made 0600)",
                err=True,
            )
        store = open_store(
            settings.store,
            queue_size=settings.write_queue_size,
            max_batch_spans=settings.max_batch_spans,
            max_db_pages=settings.max_db_pages,
            progress=lambda line: say(line, err=True),
            cluster=cluster,
        )
    except StoreOpenError as error:
        raise click.ClickException(str(error)) from None
    # The writer thread gives up the GIL around each SQLite call and must win it back from the
    # thread normalizing the next request: at Python's default 5 ms switch interval each such
    # handover could wait up to 5 ms, a fifth of ingest's throughput under two senders.
    sys.setswitchinterval(SERVER_SWITCH_INTERVAL_SECONDS)
    return_big_buffers_to_the_system()
    app = None
    try:
        try:
            limits = ServeLimits(
                header_timeout_seconds=header_timeout,
                keep_alive_seconds=keep_alive_timeout,
                max_connections=max_connections,
                forwarded_allow_ips=forwarded_allow_ips,
            )
            grpc_listen = (host, settings.grpc_port) if settings.grpc_port else None
            try:
                app = create_app(settings, store, grpc_listen)
            except GrpcListenError as error:
                raise click.ClickException(
                    f"{error}; choose another with --grpc-port, or 0 for none"
                ) from None
            except ValueError as error:  # a malformed price file
                raise click.ClickException(str(error)) from None

            def listening(bound_port: int) -> None:
                # Once bound, so that --port 0 shows the port the system gave.
                base = f"http://{shown_host}:{bound_port}"
                say(f"dashboard at {base}/")
                say(
                    f"OTLP/HTTP traces at {base}/v1/traces, API docs at /docs, "
                    "probes at /healthz and /readyz, metrics at /metrics"
                )

            if app.state.grpc is not None:
                say(f"OTLP/gRPC traces at {app.state.grpc.address} (TraceService/Export)")
            if keys is not None:
                say("keys required (Authorization: Bearer ...); the dashboard signs in at /login")
            # uvicorn turns SIGTERM into a graceful shutdown (the lifespan stops gRPC, then the
            # evaluators), then raises it again under the handler it found: the default one would
            # end the process right there, before the store is closed below. This one lets it close.
            previous = signal.signal(signal.SIGTERM, _terminated)
            tune_collector()
            try:
                config = uvicorn_config(app, host, port, limits, log_level, settings.log_format)
                AnnouncingServer(config, listening).run()
            finally:
                signal.signal(signal.SIGTERM, previous)
        except KeyboardInterrupt:
            # uvicorn stopped cleanly on Ctrl-C and raised it again: a normal stop, not click's
            # "Aborted!" (which would be the one line of a JSON log that is not JSON).
            pass
        finally:
            # The lifespan stopped gRPC already; not if uvicorn never ran it. Then queued writes
            # finish before exit: every export already acknowledged stays committed anyway.
            if app is not None and app.state.grpc is not None:
                app.state.grpc.stop()
            store.close()
    except _Terminated:
        # The store is closed: end as SIGTERM ends a process, the status process managers expect.
        signal.raise_signal(signal.SIGTERM)
