"""The export formats, each an encoder fed rows a chunk at a time that hands back the bytes to
send: JSON Lines (one object per line), CSV (csv module; JSON values as JSON text) and Parquet
(pyarrow's ParquetWriter writing into a buffer that is emptied after each row group). None
keeps more than one row group of rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from spanloom.server.api.export.rows import Column
from spanloom.server.api.json_body import encode

ExportFormat = Literal["jsonl", "csv", "parquet"]
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
# Rows per Parquet row group: big enough for good compression and fast reads, small enough that a
# group of sessions with long texts stays a few megabytes.
ROW_GROUP_ROWS = 2_000
PARQUET_EXTRA = "parquet"


class ParquetUnavailableError(RuntimeError):
    """pyarrow is not installed."""


class Encoder(Protocol):
    def add(self, rows: Sequence[dict[str, Any]]) -> bytes: ...

    def finish(self) -> bytes: ...


class JsonLines:
    def __init__(self, columns: Sequence[Column]) -> None:
        del columns  # every member of a row, as the API shows it

    def add(self, rows: Sequence[dict[str, Any]]) -> bytes:
        return b"".join(encode(row) + b"\n" for row in rows)

    def finish(self) -> bytes:
        return b""


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class Csv:
    def __init__(self, columns: Sequence[Column]) -> None:
        self._columns = columns
        self._buffer = io.StringIO()
        # Every field quoted where needed (texts hold commas, quotes and newlines); "\n" ends rows.
        self._writer = csv.writer(self._buffer, lineterminator="\n")
        self._writer.writerow([column.name for column in columns])

    def _cell(self, column: Column, value: Any) -> Any:
        if value is None:
            return ""
        if column.type == "json":
            return _json_text(value)
        if column.type == "boolean":
            return "true" if value else "false"  # as JSON writes them, not Python's True
        return value

    def add(self, rows: Sequence[dict[str, Any]]) -> bytes:
        for row in rows:
            self._writer.writerow([self._cell(column, row.get(column.name)) for column in self._columns])
        return self._take()

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()

    def finish(self) -> bytes:
        return self._take()


class _Drain(io.RawIOBase):
    """Where ParquetWriter writes: bytes kept only until `take` hands them on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts = []
        return data


def _timestamp(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def require_pyarrow() -> None:
    """Raises ParquetUnavailableError, naming the extra to install, without pyarrow."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ParquetUnavailableError(
            f"Parquet export needs pyarrow: pip install 'spanloom[{PARQUET_EXTRA}]'"
        ) from None


class Parquet:
    def __init__(self, columns: Sequence[Column]) -> None:
        require_pyarrow()
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {
            "text": pa.string(),
            "integer": pa.int64(),
            "number": pa.float64(),
            "boolean": pa.bool_(),
            "time": pa.timestamp("us", tz="UTC"),
            "json": pa.string(),
        }
        self._pa = pa
        self._columns = columns
        self._schema = pa.schema([(column.name, types[column.type]) for column in columns])
        self._sink = _Drain()
        self._writer = pq.ParquetWriter(self._sink, self._schema, compression="zstd")
        self._pending: list[dict[str, Any]] = []

    def _column(self, column: Column) -> list[Any]:
        values = [row.get(column.name) for row in self._pending]
        if column.type == "json":
            return [None if value is None else _json_text(value) for value in values]
        if column.type == "time":
            return [_timestamp(value) for value in values]
        return values

    def _flush(self) -> None:
        if self._pending:
            table = self._pa.Table.from_arrays(
                [
                    self._pa.array(self._column(column), type=field.type)
                    for column, field in zip(self._columns, self._schema, strict=True)
                ],
                schema=self._schema,
            )
            self._pending = []
            self._writer.write_table(table)

    def add(self, rows: Sequence[dict[str, Any]]) -> bytes:
        self._pending.extend(rows)
        if len(self._pending) >= ROW_GROUP_ROWS:
            self._flush()
        return self._sink.take()

    def finish(self) -> bytes:
        self._flush()
        self._writer.close()
        return self._sink.take()


ENCODERS: dict[str, type[JsonLines] | type[Csv] | type[Parquet]] = {
    "jsonl": JsonLines,
    "csv": Csv,
    "parquet": Parquet,
}
