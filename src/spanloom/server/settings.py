"""Server settings: the only module that reads SPANLOOM_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` and `spanloom serve` need to know.

    db_path: the SQLite file (SPANLOOM_DB; default in the user's data directory).
    api_key: when set (SPANLOOM_API_KEY), every request must carry it as ``Authorization: Bearer``.
    max_body_bytes: the largest OTLP body accepted, before and after decompression
        (SPANLOOM_MAX_BODY_BYTES, default 16 MiB).
    write_queue_size: requests that may wait for the writer before ingest answers 503
        (SPANLOOM_WRITE_QUEUE_SIZE, default 16).
    max_batch_spans: spans the writer commits together at most (SPANLOOM_MAX_BATCH_SPANS).
    pricing_file: a JSON price table overriding the built-in one (SPANLOOM_PRICING_FILE).
    retry_after_seconds: the Retry-After sent with 503.
    """

    db_path: Path = field(default_factory=default_db_path)
    api_key: str | None = None
    max_body_bytes: int = 16 * MIB
    write_queue_size: int = 16
    max_batch_spans: int = 8192
    pricing_file: Path | None = None
    retry_after_seconds: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from SPANLOOM_* variables; keyword arguments (say, from CLI options) win."""
        env = os.environ if environ is None else environ
        db = env.get("SPANLOOM_DB", "").strip()
        pricing = env.get("SPANLOOM_PRICING_FILE", "").strip()
        settings = cls(
            db_path=Path(db).expanduser() if db else default_db_path(),
            api_key=env.get("SPANLOOM_API_KEY", "").strip() or None,
            max_body_bytes=_int(env, "SPANLOOM_MAX_BODY_BYTES", cls.max_body_bytes),
            write_queue_size=_int(env, "SPANLOOM_WRITE_QUEUE_SIZE", cls.write_queue_size),
            max_batch_spans=_int(env, "SPANLOOM_MAX_BATCH_SPANS", cls.max_batch_spans),
            pricing_file=Path(pricing).expanduser() if pricing else None,
        )
        return replace(settings, **{key: value for key, value in overrides.items() if value is not None})
