"""List results: iterables that fetch the next page of the API's cursor when iteration reaches
it (`limit` records at most; None for all), and turn into DataFrames. A page once fetched is kept,
so iterating again or building a DataFrame afterwards asks the server for nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from spanloom.client import frames
from spanloom.client.records import from_json
from spanloom.client.transport import Request

R = TypeVar("R")
DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 1000  # the API's bound


@dataclass(frozen=True)
class ListSpec(Generic[R]):
    """One list of the API: where it is, its filters, its records, how many to read."""

    path: str
    params: tuple[tuple[str, str], ...]
    record: type[R]
    limit: int | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    paged: bool = True  # False: one answer holds the whole list (projects, evaluation aggregates)
    extra: tuple[tuple[str, Any], ...] = ()  # members added to each item before it is read

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must be None or at least 0")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")

    def request(self, cursor: str | None, fetched: int) -> Request:
        size = self.page_size if self.limit is None else min(self.page_size, self.limit - fetched)
        params = (*self.params, ("limit", str(max(size, 1))))
        return Request("GET", self.path, (*params, ("cursor", cursor)) if cursor else params)

    def read(self, body: dict[str, Any], fetched: int) -> tuple[list[R], str | None]:
        """A page's records (cut at `limit`) and the cursor of the next, None at the end."""
        extra = dict(self.extra)
        items = [from_json(self.record, {**item, **extra}) for item in body.get("items", [])]
        if self.limit is not None:
            items = items[: self.limit - fetched]
        cursor = body.get("next_cursor") if self.paged else None
        if not items or (self.limit is not None and fetched + len(items) >= self.limit):
            cursor = None
        return items, cursor


class _Fetched(Generic[R]):
    def __init__(self, spec: ListSpec[R]) -> None:
        self.spec = spec
        self._items: list[R] = []
        self._cursor: str | None = None
        self._done = spec.limit == 0

    def _take(self, body: Any) -> list[R]:
        items, self._cursor = self.spec.read(body, len(self._items))
        self._items.extend(items)
        self._done = self._cursor is None
        return items

    def _next_request(self) -> Request:
        return self.spec.request(self._cursor, len(self._items))

    def __repr__(self) -> str:
        more = "" if self._done else ", more to fetch"
        return f"<{type(self).__name__} of {self.spec.record.__name__}: {len(self._items)} fetched{more}>"


class Pages(_Fetched[R]):
    """A list result of the sync Client: iterate it, or `to_list()`, `to_pandas()`, `to_polars()`."""

    def __init__(self, spec: ListSpec[R], fetch: Callable[[Request], Any]) -> None:
        super().__init__(spec)
        self._fetch = fetch

    def __iter__(self) -> Iterator[R]:
        position = 0
        while True:
            while position < len(self._items):
                yield self._items[position]
                position += 1
            if self._done:
                return
            self._take(self._fetch(self._next_request()))

    def to_list(self) -> list[R]:
        return list(self)

    def to_pandas(self) -> Any:
        """A pandas DataFrame of every record (needs ``spanloom[pandas]``)."""
        return frames.to_pandas(self.spec.record, self.to_list())

    def to_polars(self) -> Any:
        """A polars DataFrame of every record (needs ``spanloom[polars]``)."""
        return frames.to_polars(self.spec.record, self.to_list())


class AsyncPages(_Fetched[R]):
    """A list result of the AsyncClient: ``async for`` over it, or await `to_list()`,
    `to_pandas()`, `to_polars()`."""

    def __init__(self, spec: ListSpec[R], fetch: Callable[[Request], Awaitable[Any]]) -> None:
        super().__init__(spec)
        self._fetch = fetch

    async def __aiter__(self) -> AsyncIterator[R]:
        position = 0
        while True:
            while position < len(self._items):
                yield self._items[position]
                position += 1
            if self._done:
                return
            self._take(await self._fetch(self._next_request()))

    async def to_list(self) -> list[R]:
        return [item async for item in self]

    async def to_pandas(self) -> Any:
        return frames.to_pandas(self.spec.record, await self.to_list())

    async def to_polars(self) -> Any:
        return frames.to_polars(self.spec.record, await self.to_list())
