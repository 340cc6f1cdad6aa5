"""Server settings: the only module that reads SPANLOOM_* environment variables."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from spanloom.server.cors import parse_origins

MIB = 1024 * 1024


def default_db_path() -> Path:
    # Imported here: platformdirs is a server dependency, not something `import spanloom` needs.
    import platformdirs

    return Path(platformdirs.user_data_dir("spanloom")) / "spanloom.db"


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _count(environ: Mapping[str, str], name: str) -> int | None:
    """A number of things, 0 allowed; None when unset."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdecimal():
        raise ValueError(f"{name} must be 0 or a positive integer, got {raw!r}")
    return int(raw)


def default_decode_processes() -> int:
    """One less than the CPUs this process may use, at most 2: the server's own process keeps a
    CPU for its writer and event loop, and two decoders keep one writer busy (on 2 CPUs a second
    one gained nothing)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(cpus - 1, 2))


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdecimal() or int(raw) > 65535:
        raise ValueError(f"{name} must be a port number from 0 to 65535, got {raw!r}")
    return int(raw)


def _path(environ: Mapping[str, str], name: str) -> Path | None:
    raw = environ.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


LOG_FORMATS = ("text", "json")


def _log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"SPANLOOM_LOG_FORMAT must be text or json, got {value!r}")
    return value


def parse_retention(raw: str | list[str] | tuple[str, ...]) -> dict[str, int]:
    """ "shop=7,support=30" (or a list of "shop=7") as {project: days}; ValueError saying what
    is wrong."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    days: dict[str, int] = {}
    for item in items:
        if not item.strip():
            continue
        project, separator, count = item.partition("=")
        if not separator or not project.strip() or not count.strip().isdecimal() or int(count) <= 0:
            raise ValueError(f"retention: expected PROJECT=DAYS (a positive number of days), got {item!r}")
        days[project.strip()] = int(count)
    return days


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` and `spanloom serve` need to know.

    db_path: the SQLite file (SPANLOOM_DB; default in the user's data directory).
    store_url: where spans are stored, as a URL (SPANLOOM_STORE): ``sqlite:///path.db``; when
        unset, the SQLite file `db_path`.
    api_key: when set (SPANLOOM_API_KEY), one admin key for everything: ingest, the API, the pages.
    max_body_bytes: the largest OTLP body accepted, before and after decompression
        (SPANLOOM_MAX_BODY_BYTES, default 16 MiB).
    write_queue_size: requests that may wait for the writer before ingest answers 503
        (SPANLOOM_WRITE_QUEUE_SIZE, default 16).
    max_batch_spans: spans the writer commits together at most (SPANLOOM_MAX_BATCH_SPANS).
    pricing_file: a JSON file of model prices that win over genai-prices' table
        (SPANLOOM_PRICING_FILE; format in server/pricing/overrides.py).
    retry_after_seconds: the Retry-After sent with 503.
    keys_file: a JSON file of ingest/read/admin keys, optionally per project (SPANLOOM_KEYS_FILE;
        see server/auth/keys.py). With `api_key`, both apply.
    max_spans_per_request: more spans than this in one export answers 413
        (SPANLOOM_MAX_SPANS_PER_REQUEST, default 25,000).
    max_attribute_value_bytes: longer string values are cut and the span marked
        ``spanloom.truncated=true`` (SPANLOOM_MAX_ATTRIBUTE_VALUE_BYTES, default 64 KiB).
    max_attributes_per_span: attributes past this many are dropped and the span marked
        (SPANLOOM_MAX_ATTRIBUTES_PER_SPAN, default 1,024).
    max_spans_per_trace: spans that would take a trace past this many are rejected through
        partial_success (SPANLOOM_MAX_SPANS_PER_TRACE, default 100,000).
    trace_page_spans: spans the trace page renders at once; the rest come a page at a time
        (SPANLOOM_TRACE_PAGE_SPANS, default 500).
    evaluators_file: which built-in evaluators run on which project's new spans
        (SPANLOOM_EVALUATORS_FILE, default evaluators.json next to the database; edited with
        ``spanloom evaluators add/list/remove``, re-read when it changes).
    max_db_pages: a size limit for the database file, in SQLite pages (SPANLOOM_MAX_DB_PAGES,
        default none). Past it ingest answers 503 "storage is full", as on a full disk; meant
        for tests and for capping a disk shared with the app.
    max_key_failures_per_minute: wrong keys one address may present in a minute, by header or on
        the login form, before it is answered 429 for the rest of that minute
        (SPANLOOM_MAX_KEY_FAILURES_PER_MINUTE, default 30).
    session_idle_seconds: a session with no new turn for this long is idle: its session evaluators
        may run (SPANLOOM_SESSION_IDLE_SECONDS, default 30 minutes).
    session_eval_interval_seconds: how often the server looks for ended or idle sessions to judge
        with the session evaluators (SPANLOOM_SESSION_EVAL_INTERVAL, default 10).
    retention_days: delete sessions whose last turn, and traces without a session, ended more
        than this many days ago (SPANLOOM_RETENTION_DAYS; default: keep everything).
    retention_by_project: the same per project, winning over retention_days
        (SPANLOOM_RETENTION="shop=7,support=30").
    retention_interval_seconds: how often retention runs (SPANLOOM_RETENTION_INTERVAL, 600).
    cors_origins: browser origins allowed to send feedback and end sessions cross-origin
        (SPANLOOM_CORS_ORIGINS="https://app.example,http://localhost:3000"; default none). Only
        POST /api/feedback and POST /api/sessions/{id}/end answer them; see cors.py.
    log_format: "text" (uvicorn's lines) or "json" (one JSON object per line, for log shippers)
        (SPANLOOM_LOG_FORMAT; see server/log_format.py).
    grpc_port: where `spanloom serve` takes OTLP/gRPC, on the same host as HTTP
        (SPANLOOM_GRPC_PORT, default 4317, the standard OTLP/gRPC port; 0 turns it off).
    max_values_per_request: protobuf messages other than spans (attributes, values, array and
        map elements, events, links), or JSON values, one OTLP body may hold; counted before it is
        decoded, past it 413 (SPANLOOM_MAX_VALUES_PER_REQUEST, default 1,000,000).
    decode_processes: processes that decode, normalize and build the rows of OTLP requests beside
        the server's own (ingest/decode_processes.py); 0 does it in the server's process; None
        (`from_env` without SPANLOOM_DECODE_PROCESSES) leaves it to `decode_process_count`. This
        class's default is 0, for apps built in tests.
    """

    db_path: Path = field(default_factory=default_db_path)
    store_url: str | None = None
    api_key: str | None = None
    max_body_bytes: int = 16 * MIB
    write_queue_size: int = 16
    max_batch_spans: int = 8192
    pricing_file: Path | None = None
    retry_after_seconds: int = 1
    keys_file: Path | None = None
    max_spans_per_request: int = 25_000
    max_attribute_value_bytes: int = 64 * 1024
    max_attributes_per_span: int = 1024
    max_spans_per_trace: int = 100_000
    trace_page_spans: int = 500
    evaluators_file: Path | None = None
    max_db_pages: int | None = None
    max_key_failures_per_minute: int = 30
    session_idle_seconds: int = 1800
    session_eval_interval_seconds: float = 10.0
    retention_days: int | None = None
    retention_by_project: dict[str, int] = field(default_factory=dict)
    retention_interval_seconds: int = 600
    cors_origins: tuple[str, ...] = ()
    log_format: str = "text"
    grpc_port: int = 4317
    max_values_per_request: int = 1_000_000
    decode_processes: int | None = 0

    def idle_before_ns(self, now_ns: int | None = None) -> int:
        """Sessions whose last turn ended before this are idle (SPANLOOM_SESSION_IDLE_SECONDS)."""
        return (time.time_ns() if now_ns is None else now_ns) - self.session_idle_seconds * 1_000_000_000

    @property
    def store(self) -> str:
        """The store's URL: `store_url`, else the SQLite file `db_path`."""
        return self.store_url or f"sqlite:///{self.db_path}"

    def decode_process_count(self) -> int:
        """`decode_processes`, or when it is None: none beside an embedded chDB, whose engine runs
        in the server's process and takes the CPUs ingest leaves (a process beside it gained
        nothing at 200,000 spans), else `default_decode_processes()`."""
        if self.decode_processes is not None:
            return self.decode_processes
        if self.store.startswith("chdb:"):
            return 0
        return default_decode_processes()

    @property
    def evaluators_path(self) -> Path:
        """The evaluators file (SPANLOOM_EVALUATORS_FILE; default evaluators.json next to the DB)."""
        return self.evaluators_file or self.db_path.with_name("evaluators.json")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from SPANLOOM_* variables; keyword arguments (say, from CLI options) win."""
        env = os.environ if environ is None else environ
        db = env.get("SPANLOOM_DB", "").strip()
        pricing = env.get("SPANLOOM_PRICING_FILE", "").strip()
        keys_file = env.get("SPANLOOM_KEYS_FILE", "").strip()
        settings = cls(
            db_path=Path(db).expanduser() if db else default_db_path(),
            store_url=env.get("SPANLOOM_STORE", "").strip() or None,
            api_key=env.get("SPANLOOM_API_KEY", "").strip() or None,
            max_body_bytes=_int(env, "SPANLOOM_MAX_BODY_BYTES", cls.max_body_bytes),
            write_queue_size=_int(env, "SPANLOOM_WRITE_QUEUE_SIZE", cls.write_queue_size),
            max_batch_spans=_int(env, "SPANLOOM_MAX_BATCH_SPANS", cls.max_batch_spans),
            pricing_file=Path(pricing).expanduser() if pricing else None,
            keys_file=Path(keys_file).expanduser() if keys_file else None,
            max_spans_per_request=_int(env, "SPANLOOM_MAX_SPANS_PER_REQUEST", cls.max_spans_per_request),
            max_attribute_value_bytes=_int(
                env, "SPANLOOM_MAX_ATTRIBUTE_VALUE_BYTES", cls.max_attribute_value_bytes
            ),
            max_attributes_per_span=_int(
                env, "SPANLOOM_MAX_ATTRIBUTES_PER_SPAN", cls.max_attributes_per_span
            ),
            max_spans_per_trace=_int(env, "SPANLOOM_MAX_SPANS_PER_TRACE", cls.max_spans_per_trace),
            trace_page_spans=_int(env, "SPANLOOM_TRACE_PAGE_SPANS", cls.trace_page_spans),
            evaluators_file=_path(env, "SPANLOOM_EVALUATORS_FILE"),
            max_db_pages=_int(env, "SPANLOOM_MAX_DB_PAGES", 0) or None,
            max_key_failures_per_minute=_int(
                env, "SPANLOOM_MAX_KEY_FAILURES_PER_MINUTE", cls.max_key_failures_per_minute
            ),
            session_idle_seconds=_int(env, "SPANLOOM_SESSION_IDLE_SECONDS", cls.session_idle_seconds),
            session_eval_interval_seconds=_int(
                env, "SPANLOOM_SESSION_EVAL_INTERVAL", int(cls.session_eval_interval_seconds)
            ),
            retention_days=_int(env, "SPANLOOM_RETENTION_DAYS", 0) or None,
            retention_by_project=parse_retention(env.get("SPANLOOM_RETENTION", "")),
            retention_interval_seconds=_int(
                env, "SPANLOOM_RETENTION_INTERVAL", cls.retention_interval_seconds
            ),
            max_values_per_request=_int(env, "SPANLOOM_MAX_VALUES_PER_REQUEST", cls.max_values_per_request),
            cors_origins=parse_origins(env.get("SPANLOOM_CORS_ORIGINS", "")),
            log_format=_log_format(env.get("SPANLOOM_LOG_FORMAT", "").strip().lower() or cls.log_format),
            grpc_port=_port(env, "SPANLOOM_GRPC_PORT", cls.grpc_port),
            decode_processes=_count(env, "SPANLOOM_DECODE_PROCESSES"),
        )
        return replace(settings, **{key: value for key, value in overrides.items() if value is not None})
