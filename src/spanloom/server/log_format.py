"""How `spanloom serve` logs: uvicorn's text lines (``text``, the default), or one JSON object per
line (``json``: ``--log-format json`` or SPANLOOM_LOG_FORMAT=json) for log shippers.

In JSON every line is an object with ``time`` (ISO 8601, UTC), ``level``, ``logger`` and
``message``; a failure adds ``exc_info`` (the traceback, escaped into the one line), and uvicorn's
access log adds ``client``, ``method``, ``path``, ``http_version`` and ``status``. spanloom's own
logs, uvicorn's, its access log and any other library's warnings all go through it: the access
log to standard output, the rest to standard error, as uvicorn does.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from uvicorn.config import LOGGING_CONFIG

from spanloom.server.settings import LOG_FORMATS

ACCESS_LOGGER = "uvicorn.access"


class JsonLogFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn adds a copy of some messages with terminal colours in them.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
            timestamp="time",
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        # uvicorn's access log passes its fields as the message's arguments.
        if record.name == ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, http_version, status = record.args
            log_data.update(client=client, method=method, path=path, http_version=http_version, status=status)


def log_config(log_format: str, level: str = "info") -> dict[str, Any]:
    """The `logging.config.dictConfig` dictionary for `log_format` ("text" or "json") at `level`."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    if log_format == "text":
        return LOGGING_CONFIG
    handler = {"class": "logging.StreamHandler", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLogFormatter}},
        "handlers": {
            "default": {**handler, "stream": "ext://sys.stderr"},
            "access": {**handler, "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            ACCESS_LOGGER: {"handlers": ["access"], "level": "INFO", "propagate": False},
            "spanloom": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
        # Everything else (a library's warning, py.warnings) as JSON too.
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def configure_logging(log_format: str, level: str = "info") -> None:
    """Apply `log_format` now, before uvicorn starts (which applies the same again): what the
    command says while it opens the store is logged the same way."""
    logging.config.dictConfig(log_config(log_format, level))
    # Python's warnings (deprecations...) as log records, so they are JSON lines too.
    logging.captureWarnings(log_format == "json")
