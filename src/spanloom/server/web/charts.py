"""Charts as data for the SVG the templates draw (templates/_charts.html): bar and line charts
with axes, tick labels, a hover title per mark and the numbers as a table.

Everything is computed here in viewBox units; the template only writes the numbers and texts
down (autoescaped like everything else), so a page needs no script to show its charts. Labels
and titles are plain text: whatever a project or series is called, it is written as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

# The viewBox: the plot area sits inside the margins, which hold the tick labels.
WIDTH, HEIGHT = 640, 200
# The unit is written above the y axis' top label, in the top margin.
LEFT, RIGHT, TOP, BOTTOM = 60, 12, 26, 28
MAX_GROUP = 48  # the widest a position's bars get, however few positions
MAX_X_LABELS = 8
Y_TICKS = 4

Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Tick:
    position: float  # x or y in viewBox units
    label: str


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str  # the hover text: the bucket, the series and its value
    href: str = ""  # where a click on it goes (a turn of the session page), if anywhere
    css: str = ""  # a class of its own (a failed turn)


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    css: str  # the class that colours it (app.css: .series-0 ...)
    bars: tuple[Bar, ...] = ()
    points: tuple[Point, ...] = ()
    # A polyline per run of points without gaps (a bucket with no value breaks the line).
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chart:
    key: str  # unique on its page: the ids of its caption and table
    title: str
    unit: str  # what the y axis counts ("turns", "USD", "ms")
    kind: Literal["bars", "lines"]
    series: tuple[Series, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    columns: tuple[str, ...]  # the table: a heading per column, the first the x label's
    rows: tuple[tuple[str, ...], ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    empty: bool = False  # every value is missing or zero


@dataclass(slots=True)
class SeriesData:
    """One series' values, a value (or None: nothing to show) per x position."""

    name: str
    values: Sequence[float | None]
    css: str = ""
    marks: Sequence[str] | None = None  # a class per value ("failed"), for bars


def nice_step(span: float, ticks: int = Y_TICKS) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `ticks` steps over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _y_scale(values: Sequence[float], integer: bool, top: float | None) -> tuple[float, float]:
    """The axis maximum and its step, starting at zero."""
    highest = max([value for value in values if value is not None] + [0.0])
    if top is not None:
        highest = max(highest, top)
    step = nice_step(highest or 1.0)
    if integer:
        step = max(1.0, math.ceil(step))
    return step * max(1, math.ceil(highest / step)), step


def _x_labels(labels: Sequence[str], center: Callable[[int], float]) -> tuple[Tick, ...]:
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    return tuple(Tick(center(index), label) for index, label in enumerate(labels) if index % every == 0)


def chart(
    key: str,
    title: str,
    unit: str,
    x_labels: Sequence[str],
    series: Sequence[SeriesData],
    *,
    kind: Literal["bars", "lines"] = "bars",
    fmt: Format = lambda value: f"{value:,.0f}",
    integer: bool = True,
    y_top: float | None = None,
    x_heading: str = "Time",
    tick_labels: Sequence[str] | None = None,
    hrefs: Sequence[str] | None = None,
    notes: Sequence[tuple[str, Sequence[str]]] = (),
    width: int = WIDTH,
) -> Chart:
    """A chart of `series` over the x positions named by `x_labels` (the table's and titles' text;
    `tick_labels`, when given, the axis' shorter text). Bars stand side by side per position;
    lines join the positions that have a value. `y_top`: the least axis maximum (1.0 for rates).
    `hrefs`: a link per x position for its bars; `notes`: more columns of the table only, each
    (heading, a text per x position). `width`: of the viewBox, for a chart as wide as the page
    (its text is drawn at the size of a half-width chart's)."""
    count = max(1, len(x_labels))
    plot_width = (width - RIGHT) - LEFT
    plot_height = (HEIGHT - BOTTOM) - TOP
    slot = plot_width / count
    all_values = [value for data in series for value in data.values if value is not None]
    y_max, step = _y_scale(all_values, integer, y_top)

    def y_of(value: float) -> float:
        return round((HEIGHT - BOTTOM) - plot_height * value / y_max, 2)

    def center(index: int) -> float:
        return round(LEFT + slot * (index + 0.5), 2)

    drawn: list[Series] = []
    group = min(slot * 0.8, MAX_GROUP)
    bar_width = group / max(1, len(series))
    for number, data in enumerate(series):
        css = data.css or f"series-{number}"
        if kind == "bars":
            bars = tuple(
                Bar(
                    x=round(center(index) - group / 2 + bar_width * number, 2),
                    y=y_of(value),
                    width=round(max(bar_width - 0.5, 0.5), 2),
                    height=round((HEIGHT - BOTTOM) - y_of(value), 2),
                    title=f"{x_labels[index]}: {data.name} {fmt(value)}" + _noted(notes, index),
                    href=hrefs[index] if hrefs is not None else "",
                    css=data.marks[index] if data.marks is not None else "",
                )
                for index, value in enumerate(data.values)
                if value is not None
            )
            drawn.append(Series(data.name, css, bars=bars))
        else:
            points = tuple(
                Point(center(index), y_of(value), f"{x_labels[index]}: {data.name} {fmt(value)}")
                for index, value in enumerate(data.values)
                if value is not None
            )
            drawn.append(Series(data.name, css, points=points, lines=_runs(data.values, center, y_of)))
    y_ticks = tuple(
        Tick(y_of(step * number), fmt(step * number)) for number in range(round(y_max / step) + 1)
    )
    rows = tuple(
        (
            label,
            *(_cell(data.values[index], fmt) for data in series),
            *(texts[index] for _, texts in notes),
        )
        for index, label in enumerate(x_labels)
    )
    return Chart(
        key=key,
        title=title,
        unit=unit,
        kind=kind,
        series=tuple(drawn),
        x_ticks=_x_labels(tick_labels if tick_labels is not None else x_labels, center),
        y_ticks=y_ticks,
        columns=(x_heading, *(data.name for data in series), *(heading for heading, _ in notes)),
        rows=rows,
        width=width,
        right=width - RIGHT,
        empty=not any(all_values),
    )


def _cell(value: float | None, fmt: Format) -> str:
    return "—" if value is None else fmt(value)


def _noted(notes: Sequence[tuple[str, Sequence[str]]], index: int) -> str:
    """The notes of x position `index`, as a title's tail: ", tokens 340, status ok"."""
    return "".join(f", {heading.lower()} {texts[index]}" for heading, texts in notes if texts[index])


def _runs(
    values: Sequence[float | None], center: Callable[[int], float], y_of: Callable[[float], float]
) -> tuple[str, ...]:
    """SVG polyline points for each run of consecutive values."""
    runs: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{center(index)},{y_of(value)}")
    return tuple(" ".join(run) for run in runs if run)
