"""How the lists page in ClickHouse: filters as SQL fragments with typed, bound parameters, sort
keys through allowlists, keyset cursors compared as tuples.

The only SQL text chosen at run time comes from the fixed fragments and sort tables of the
*_reads modules; every value is a bound parameter (``{p3:String}``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from spanloom.server.store.base import ListQuery, Page
from spanloom.server.store.cursor import InvalidCursorError, decode_cursor, encode_cursor
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX

_R = TypeVar("_R")
_ORDERS = {"asc": ("ASC", ">"), "desc": ("DESC", "<")}


def like(text: str) -> str:
    """An ILIKE pattern for a case-insensitive substring (backslash escapes % and _)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Params(dict[str, Any]):
    """Bound parameters, each named by the fragment that uses it."""

    def bind(self, value: Any, kind: str) -> str:
        name = f"p{len(self)}"
        self[name] = value
        return f"{{{name}:{kind}}}"


class Conditions:
    """The WHERE of a list: fragments whose values are bound in `params`."""

    def __init__(self, params: Params | None = None) -> None:
        self.sql: list[str] = []
        self.params = params if params is not None else Params()

    def add(self, fragment: str, *values: tuple[Any, str]) -> None:
        """`fragment` with ``?`` for each (value, ClickHouse type) of `values`."""
        parts = fragment.split("?")
        assert len(parts) == len(values) + 1
        text = parts[0]
        for (value, kind), rest in zip(values, parts[1:], strict=True):
            text += self.params.bind(value, kind) + rest
        self.sql.append(text)

    def add_set(self, filters: Sequence[tuple[str, Any, str]]) -> None:
        """Each (fragment, value, type) whose value is not None."""
        for fragment, value, kind in filters:
            if value is not None:
                self.add(fragment, (value, kind))

    def add_common(self, alias: str, query: ListQuery, labeled: bool = True) -> None:
        """has_error, tags and metadata (`alias` is a constant of the calling module)."""
        if query.has_error is not None:
            self.add(f"{alias}.error_count > 0" if query.has_error else f"{alias}.error_count = 0")
        if not labeled:
            return
        for tag in query.tags:
            self.add(f"has(JSONExtract({alias}.tags, 'Array(String)'), ?)", (tag, "String"))
        for key, value in query.metadata:
            # A JSON value as the text a client would type after '=': a string without quotes,
            # anything else as written (true, 7, 1.5).
            self.add(
                f"(JSONHas({alias}.metadata, ?) AND if(JSONType({alias}.metadata, ?) = 'String',"
                f" JSONExtractString({alias}.metadata, ?), JSONExtractRaw({alias}.metadata, ?)) = ?)",
                *[(key, "String")] * 4,
                (value, "String"),
            )

    def where(self) -> str:
        return f" WHERE {' AND '.join(self.sql)}" if self.sql else ""


@dataclass(frozen=True)
class Sort:
    """A sort key's SQL expression and type, and how to read its value off a record."""

    column: str
    kind: str  # the ClickHouse type a cursor's value is bound as
    value_of: str | Callable[[Any], Any]


@dataclass(frozen=True)
class ListShape(Generic[_R]):
    select: str  # SELECT ... FROM table AS alias FINAL
    sorts: dict[str, Sort]
    key_columns: tuple[str, ...]
    key_attributes: tuple[str, ...]
    make: Callable[[tuple[Any, ...]], _R]


def eval_sort(
    query: ListQuery, sorts: dict[str, Sort], rollup: str, id_column: str, alias: str, params: Params
) -> tuple[dict[str, Sort], str]:
    """For sort=eval:NAME: the sorts with that key, and a LEFT JOIN of NAME's aggregate rows.
    Rows without NAME sort last in either order (+inf ascending, -inf descending)."""
    if not (query.sort or "").startswith(EVAL_SORT_PREFIX):
        return sorts, ""
    sort = query.sort or ""
    name = sort[len(EVAL_SORT_PREFIX) :]
    missing = float("inf") if query.order == "asc" else float("-inf")

    def value_of(record: Any) -> float:
        aggregate = record.evaluations.get(name)
        return aggregate.mean_score if aggregate and aggregate.mean_score is not None else missing

    # `rollup`, `id_column` and `alias` are fixed names from the callers, never input.
    join = (
        f" LEFT JOIN (SELECT project, {id_column}, mean_score FROM {rollup} FINAL"
        f" WHERE name = {params.bind(name, 'String')}) AS ev"
        f" ON ev.project = {alias}.project AND ev.{id_column} = {alias}.{id_column}"
    )
    literal = "inf" if query.order == "asc" else "-inf"
    return {**sorts, sort: Sort(f"coalesce(ev.mean_score, {literal})", "Float64", value_of)}, join


def page(
    client: Any,
    shape: ListShape[_R],
    conditions: Conditions,
    query: ListQuery,
    sorts: dict[str, Sort] | None = None,
    join: str = "",
    enrich: Callable[[list[_R]], None] | None = None,
) -> Page[_R]:
    """One page of a list, after the cursor, in (sort column, key columns) order."""
    sorts = sorts or shape.sorts
    sort_key = query.sort or next(iter(sorts))
    if sort_key not in sorts:
        raise ValueError(f"unknown sort key {sort_key!r}; expected one of {', '.join(sorts)}")
    sort = sorts[sort_key]
    direction, after = _ORDERS[query.order]
    ordered = (sort.column, *shape.key_columns)
    if query.cursor:
        value, key = decode_cursor(query.cursor, sort_key, len(shape.key_columns))
        if isinstance(value, str) or (sort.kind == "Int64" and isinstance(value, float)):
            raise InvalidCursorError("not a cursor from this server")
        bound = [
            conditions.params.bind(value, sort.kind),
            *(conditions.params.bind(part, "String") for part in key),
        ]
        conditions.sql.append(f"({', '.join(ordered)}) {after} ({', '.join(bound)})")
    order_by = ", ".join(f"{column} {direction}" for column in ordered)
    limit = conditions.params.bind(query.limit + 1, "UInt32")
    text = f"{shape.select}{join}{conditions.where()} ORDER BY {order_by} LIMIT {limit}"
    rows = client.query(text, parameters=dict(conditions.params)).result_rows
    items = [shape.make(row) for row in rows[: query.limit]]
    if enrich is not None and items:
        enrich(items)
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        value = sort.value_of(last) if callable(sort.value_of) else getattr(last, sort.value_of)
        next_cursor = encode_cursor(
            sort_key, value, tuple(getattr(last, name) for name in shape.key_attributes)
        )
    return Page(items, next_cursor)
