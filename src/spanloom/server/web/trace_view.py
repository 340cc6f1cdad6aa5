"""The trace page's view: spans in tree order with depth and waterfall geometry.

Geometry is computed here as plain numbers (0 to 1000 across the trace's duration) and drawn
as SVG rect attributes: the Content-Security-Policy forbids inline styles, and attributes of
an SVG element are not styles.

A trace can hold tens of thousands of spans: the tree order covers them all (iteratively, so
depth is no limit), but only one page of them (`?offset=`, `limit` spans) is rendered, with links
to the pages before and after.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spanloom.server.list_params import BadParameterError
from spanloom.server.store.base import SpanRecord, TraceDetail
from spanloom.server.store.evaluation_types import EvaluationRecord
from spanloom.server.web.messages import EXCEPTION_KEYS, Payload, payload, pretty

WATERFALL_WIDTH = 1000
MIN_BAR = 3  # a zero-length span stays visible
MAX_DEPTH_CLASS = 15  # deeper spans are indented like this one (CSS has a rule per depth)


@dataclass
class EventView:
    name: str
    time_ns: int | None
    attributes: list[tuple[str, str]]
    exception: dict[str, str] | None  # type, message, stacktrace of an "exception" event


@dataclass
class SpanView:
    span: SpanRecord
    depth: int
    offset: float  # waterfall x, 0..WATERFALL_WIDTH
    width: float
    input: Payload | None
    output: Payload | None
    attributes: list[tuple[str, str]]
    events: list[EventView] = field(default_factory=list)  # other than exceptions
    exceptions: list[dict[str, str]] = field(default_factory=list)  # type, message, stacktrace
    first_error: bool = False
    evaluations: list[EvaluationRecord] = field(default_factory=list)  # the results on this span

    @property
    def failed_evaluations(self) -> int:
        return sum(not result.passed for result in self.evaluations)

    @property
    def depth_class(self) -> int:
        return min(self.depth, MAX_DEPTH_CLASS)

    @property
    def failed(self) -> bool:
        return self.span.status_code == "ERROR"


@dataclass
class TraceView:
    detail: TraceDetail
    spans: list[SpanView]  # this page's
    start_ns: int
    duration_ms: float
    offset: int = 0  # of this page's first span, in tree order
    total: int = 0  # spans in the trace
    page_size: int = 0
    first_error_offset: int | None = None  # of the page holding the first failed span
    root: SpanView | None = None  # the root span whole (its input and output open the page)
    # The results on the whole trace: on its root span, or on the trace (feedback on a turn).
    trace_results: list[EvaluationRecord] = field(default_factory=list)
    selected: SpanView | None = None  # shown in the side panel on wide screens

    @property
    def next_offset(self) -> int | None:
        following = self.offset + self.page_size
        return following if following < self.total else None

    @property
    def previous_offset(self) -> int | None:
        return max(self.offset - self.page_size, 0) if self.offset > 0 else None

    @property
    def paged(self) -> bool:
        return self.total > self.page_size


def page_offset(raw: str | None) -> int:
    """The ``offset`` query parameter: a non-negative integer, 0 when absent."""
    if raw is None or not raw.strip():
        return 0
    if not raw.strip().isdecimal() or len(raw.strip()) > 12:
        raise BadParameterError("offset", f"expected a non-negative integer, got {raw!r}")
    return int(raw.strip())


def tree_order(spans: list[SpanRecord]) -> list[tuple[SpanRecord, int]]:
    """Depth-first, children by start time; spans whose parent is missing become roots.

    Iterative (a deep chain must not hit the recursion limit) and cycle-safe: parent links
    come from the client, so a span is placed once even if the links loop.
    """
    by_id = {span.span_id: span for span in spans}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in by_id else None
        children[parent].append(span)
    ordered: list[tuple[SpanRecord, int]] = []
    placed: set[str] = set()
    # Roots first; then anything a parent loop left unreachable.
    for root in [*children[None], *spans]:
        stack = [(root, 0)]
        while stack:
            span, depth = stack.pop()
            if span.span_id in placed:
                continue
            placed.add(span.span_id)
            ordered.append((span, depth))
            kids = sorted(children.get(span.span_id, ()), key=lambda s: (s.start_time_ns, s.span_id))
            stack.extend((kid, depth + 1) for kid in reversed(kids))
    return ordered


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _event(event: dict[str, Any]) -> EventView:
    attributes = event.get("attributes") or {}
    name = str(event.get("name") or "event")
    exception = None
    if name == "exception":
        # "exception.type" -> "type": the template reads type, message and stacktrace.
        present = [key for key in EXCEPTION_KEYS if key in attributes]
        exception = {key.removeprefix("exception."): _text(attributes[key]) for key in present}
    hidden = EXCEPTION_KEYS if exception is not None else ()
    shown = sorted((key, _text(value)) for key, value in attributes.items() if key not in hidden)
    return EventView(name, event.get("time_ns"), shown, exception)


def _span_view(
    span: SpanRecord, depth: int, start: int, total: int, results: dict[str, list[EvaluationRecord]]
) -> SpanView:
    x = min((span.start_time_ns - start) / total * WATERFALL_WIDTH, WATERFALL_WIDTH - MIN_BAR)
    width = (span.end_time_ns - span.start_time_ns) / total * WATERFALL_WIDTH
    view = SpanView(
        span=span,
        depth=depth,
        offset=round(x, 2),
        width=round(min(max(width, MIN_BAR), WATERFALL_WIDTH - x), 2),
        input=payload(span, "input"),
        output=payload(span, "output"),
        attributes=sorted((key, pretty(value)) for key, value in span.attributes.items()),
        evaluations=results.get(span.span_id, []),
    )
    for event in map(_event, span.events):
        if event.exception is None:
            view.events.append(event)
        else:
            view.exceptions.append(event.exception)
    return view


def trace_view(
    detail: TraceDetail,
    offset: int = 0,
    limit: int = 1_000_000,
    load: Callable[[list[str]], list[SpanRecord]] | None = None,
    selected_id: str | None = None,
) -> TraceView:
    """The view of spans `offset` to `offset + limit` in tree order (the waterfall keeps the whole
    trace's time scale, so pages line up).

    With `load`, `detail` may be an outline (`Store.get_trace_outline`: spans without texts,
    attributes or events) and only this page's spans are read whole, through `load(span ids)`.
    """
    spans = detail.spans
    start = min((span.start_time_ns for span in spans), default=detail.summary.start_time_ns)
    end = max((span.end_time_ns for span in spans), default=detail.summary.end_time_ns)
    total = max(end - start, 1)
    ordered = tree_order(spans)
    offset = min(offset, max(len(ordered) - 1, 0))
    first_error = next(
        (index for index, (span, _) in enumerate(ordered) if span.status_code == "ERROR"), None
    )
    page = ordered[offset : offset + limit]
    results: dict[str, list[EvaluationRecord]] = defaultdict(list)
    for result in detail.summary.evaluations:
        results[result.span_id].append(result)
    root_id = detail.summary.root_span_id
    known = {span.span_id for span in spans}
    # The page's spans, the root (the page opens with its input and output) and the span asked
    # for: only these are read whole.
    wanted = [span.span_id for span, _ in page]
    extra = [span_id for span_id in (root_id, selected_id) if span_id and span_id in known]
    whole: dict[str, SpanRecord] = {}
    if load is not None:
        whole = {span.span_id: span for span in load(list(dict.fromkeys([*wanted, *extra])))}
    else:
        whole = {span.span_id: span for span in spans}
    views = []
    for index, (outline, depth) in enumerate(page, start=offset):
        view = _span_view(whole.get(outline.span_id, outline), depth, start, total, results)
        view.first_error = index == first_error
        views.append(view)
    by_id = {view.span.span_id: view for view in views}

    def view_of(span_id: str | None) -> SpanView | None:
        if not span_id or span_id not in whole:
            return None
        return by_id.get(span_id) or _span_view(whole[span_id], 0, start, total, results)

    root = view_of(root_id)
    failed_here = next((view for view in views if view.first_error), None)
    return TraceView(
        detail,
        views,
        start,
        (end - start) / 1e6,
        offset=offset,
        total=len(ordered),
        page_size=limit,
        first_error_offset=None if first_error is None else first_error - first_error % limit,
        root=root,
        trace_results=[*results.get("", []), *(results.get(root_id, []) if root_id else [])],
        selected=view_of(selected_id) or failed_here or root or (views[0] if views else None),
    )
