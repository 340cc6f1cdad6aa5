"""List results as pandas or polars DataFrames, one column per record field, typed by the field:
times as UTC datetimes, counts as nullable integers, amounts as floats.

pandas and polars are optional (extras ``spanloom[pandas]``, ``spanloom[polars]``). Nested values
(metadata, evaluation aggregates, a span's attributes) stay Python objects in pandas; polars gets
them as JSON text, as it has no column type for objects of varying shape, and tags as a list of
strings.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from spanloom.client.records import field_types


def _missing(library: str) -> ImportError:
    return ImportError(f"to_{library}() needs {library}: pip install 'spanloom[{library}]'")


def _kind(hint: Any) -> str:
    if hint is datetime:
        return "time"
    if hint in (bool, int, float, str):
        return hint.__name__
    if typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
        return "strings"
    return "object"


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, list):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]  # type: ignore[arg-type]
    return json.dumps(value, default=str, ensure_ascii=False)


def to_pandas(record: type, rows: Sequence[Any]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise _missing("pandas") from None
    dtypes = {"int": "Int64", "float": "float64", "bool": "boolean", "str": "string"}
    columns = {}
    for name, hint in field_types(record).items():
        values = [getattr(row, name) for row in rows]
        kind = _kind(hint)
        if kind == "time":
            columns[name] = pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[ns, UTC]")
        elif kind in dtypes:
            columns[name] = pd.Series(values, dtype=dtypes[kind])
        else:
            columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def to_polars(record: type, rows: Sequence[Any]) -> Any:
    try:
        import polars as pl
    except ImportError:
        raise _missing("polars") from None
    dtypes: dict[str, Any] = {
        "time": pl.Datetime("us", "UTC"),
        "int": pl.Int64,
        "float": pl.Float64,
        "bool": pl.Boolean,
        "str": pl.String,
        "strings": pl.List(pl.String),
    }
    columns = []
    for name, hint in field_types(record).items():
        values = [getattr(row, name) for row in rows]
        kind = _kind(hint)
        if kind == "object":
            columns.append(pl.Series(name, [_json_text(value) for value in values], dtype=pl.String))
        else:
            columns.append(pl.Series(name, values, dtype=dtypes[kind]))
    return pl.DataFrame(columns)
