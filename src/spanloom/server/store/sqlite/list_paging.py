"""How the lists page: filters as SQL conditions, sort keys through allowlists, keyset cursors.

The only SQL text chosen at run time comes from the fixed fragments and sort tables of the
*_reads modules; every value is a bound parameter.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from spanloom.server.store.base import ListQuery, Page
from spanloom.server.store.cursor import decode_cursor, encode_cursor
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX

_R = TypeVar("_R")

# order -> (SQL direction, row-value comparison for "after the cursor")
_ORDERS = {"asc": ("ASC", ">"), "desc": ("DESC", "<")}
# A JSON value as the text a client would type after '=' (true/false rather than 1/0).
_JSON_VALUE_TEXT = (
    "(CASE type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(value AS TEXT) END)"
)


@dataclass(frozen=True)
class Sort:
    """A sort key's SQL expression, and how to read the same value off a record for the cursor
    (an attribute name, or a function of the record)."""

    column: str
    value_of: str | Callable[[Any], Any]


@dataclass(frozen=True)
class ListShape(Generic[_R]):
    """What one list is: its SELECT (with its table alias), its sorts (the first is the default),
    the columns that identify a row (the keyset's tie-break) and the record attributes holding
    them, and how a row becomes a record."""

    select: str
    sorts: dict[str, Sort]
    key_columns: tuple[str, ...]
    key_attributes: tuple[str, ...]
    make: Callable[[tuple[Any, ...]], _R]


def like(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') for a case-insensitive substring."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Conditions:
    """The WHERE of a list: SQL fragments with one ``?`` per value, and their values in order."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self.params: list[Any] = []

    def add(self, fragment: str, *values: Any) -> None:
        self.sql.append(fragment)
        self.params.extend(values)

    def add_set(self, filters: Sequence[tuple[str, Any]]) -> None:
        """Each (fragment, value) whose value is not None."""
        for fragment, value in filters:
            if value is not None:
                self.add(fragment, value)

    def add_common(self, alias: str, query: ListQuery, labeled: bool = True) -> None:
        """has_error, and the tag and metadata filters (on tables with tags and metadata). `alias`
        is a constant of the calling module, never input."""
        if query.has_error is not None:
            self.add(f"{alias}.error_count > 0" if query.has_error else f"{alias}.error_count = 0")
        if not labeled:
            return
        for tag in query.tags:
            self.add(f"EXISTS (SELECT 1 FROM json_each({alias}.tags) WHERE value = ?)", tag)
        for key, value in query.metadata:
            self.add(
                f"EXISTS (SELECT 1 FROM json_each({alias}.metadata)"
                f" WHERE key = ? AND {_JSON_VALUE_TEXT} = ?)",
                key,
                value,
            )


def eval_sort(
    query: ListQuery,
    sorts: dict[str, Sort],
    rollup: str,
    key_columns: tuple[str, str],
    row_columns: tuple[str, ...],
) -> tuple[dict[str, Sort], str, list[Any]]:
    """For sort=eval:NAME: the sorts with that key added, a LEFT JOIN of the aggregate row for NAME
    (bound as a parameter), and its parameters. Rows without NAME sort last in either order:
    their sort value is +inf ascending and -inf descending."""
    if not (query.sort or "").startswith(EVAL_SORT_PREFIX):
        return sorts, "", []
    sort = query.sort or ""
    name = sort[len(EVAL_SORT_PREFIX) :]
    missing = float("inf") if query.order == "asc" else float("-inf")
    literal = "9e999" if query.order == "asc" else "-9e999"  # SQLite reads these as +/-inf

    def value_of(record: Any) -> float:
        aggregate = record.evaluations.get(name)
        return aggregate.mean_score if aggregate and aggregate.mean_score is not None else missing

    # `rollup` and the columns are fixed names from the callers, never input.
    join = (
        f" LEFT JOIN {rollup} ev ON ev.{key_columns[0]} = {row_columns[0]}"
        f" AND ev.{key_columns[1]} = {row_columns[1]} AND ev.name = ?"
    )
    return {**sorts, sort: Sort(f"COALESCE(ev.mean_score, {literal})", value_of)}, join, [name]


def page(
    connection: sqlite3.Connection,
    shape: ListShape[_R],
    conditions: Conditions,
    query: ListQuery,
    sorts: dict[str, Sort] | None = None,
    join: str = "",
    join_params: Sequence[Any] = (),
    enrich: Callable[[list[_R]], None] | None = None,
) -> Page[_R]:
    """One page of a list, after the cursor, in (sort column, key columns) order. `enrich` fills
    in what the rows do not hold (aggregates) before the cursor reads a sort value off a record."""
    sorts = sorts or shape.sorts
    sort_key = query.sort or next(iter(sorts))
    if sort_key not in sorts:
        raise ValueError(f"unknown sort key {sort_key!r}; expected one of {', '.join(sorts)}")
    sort = sorts[sort_key]
    direction, after = _ORDERS[query.order]
    where_sql, params = list(conditions.sql), list(conditions.params)
    ordered = (sort.column, *shape.key_columns)
    if query.cursor:
        value, key = decode_cursor(query.cursor, sort_key, len(shape.key_columns))
        where_sql.append(f"({', '.join(ordered)}) {after} ({', '.join('?' * len(ordered))})")
        params.extend((value, *key))
    where = f" WHERE {' AND '.join(where_sql)}" if where_sql else ""
    order_by = ", ".join(f"{column} {direction}" for column in ordered)
    text = f"{shape.select}{join}{where} ORDER BY {order_by} LIMIT ?"
    rows = connection.execute(text, (*join_params, *params, query.limit + 1)).fetchall()
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
