"""Jinja filters: times, durations, counts and money as short, readable text.

They return plain strings; autoescape still applies to them like to any other value.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from spanloom.server.web.evaluation_view import EVALUATION_FILTERS
from spanloom.server.web.feedback_view import FEEDBACK_FILTERS

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def moment(nanoseconds: int | None) -> datetime | None:
    if nanoseconds is None:
        return None
    # Integer microseconds: a float of nanoseconds since 1970 loses the last digits.
    return _EPOCH + timedelta(microseconds=nanoseconds // 1000)


def when(nanoseconds: int | None) -> str:
    """``2025-06-15 14:03:07`` (UTC), the form every page uses."""
    value = moment(nanoseconds)
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def iso(nanoseconds: int | None) -> str:
    """The machine-readable form, for ``<time datetime=...>``."""
    value = moment(nanoseconds)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else ""


def form_time(nanoseconds: int | None) -> str:
    """What an ``<input type="datetime-local" step="1">`` accepts as its value."""
    value = moment(nanoseconds)
    return value.strftime("%Y-%m-%dT%H:%M:%S") if value else ""


def duration(milliseconds: float | None) -> str:
    if milliseconds is None:
        return "—"
    if milliseconds < 1:
        return f"{milliseconds:.2f} ms"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes:.0f} min {seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:.0f} h {minutes:.0f} min"


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}"


# Costs, one rule on every page: below a dollar up to three significant digits (at least cents,
# no zeros past them), so $0.0123 and $0.0094 read in the same precision; cents from a dollar up.
MONEY_SIGNIFICANT_DIGITS = 3
MONEY_FLOOR = 0.000001


def money(cost: float | None) -> str:
    if cost is not None and not math.isfinite(cost):
        return "—"
    if not cost or cost < 0:
        return "$0"
    if cost < MONEY_FLOOR:
        return f"<${MONEY_FLOOR:.6f}"
    # Rounded to its significant digits first, so 0.09996 reads $0.100, not $0.1000.
    rounded = float(f"{cost:.{MONEY_SIGNIFICANT_DIGITS}g}")
    if rounded >= 1:
        return f"${cost:,.2f}"
    decimals = max(2, MONEY_SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(rounded)))
    text = f"{rounded:.{decimals}f}"
    # Zeros after the cents say nothing: $0.0094, not $0.00940.
    whole, fraction = text.split(".")
    return f"${whole}.{fraction[:2]}{fraction[2:].rstrip('0')}"


def percent(rate: float | None) -> str:
    if not rate:
        return "0%"
    return f"{rate * 100:.1f}%" if rate < 0.1 else f"{rate * 100:.0f}%"


def clip(text: str | None, limit: int = 120) -> str:
    """The start of `text` on one line, with an ellipsis when cut."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


FILTERS = {
    "when": when,
    "iso": iso,
    "form_time": form_time,
    "duration": duration,
    "number": number,
    "money": money,
    "percent": percent,
    "clip": clip,
}


_ROLE_CLASSES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}
_KINDS = {"LLM", "CHAIN", "AGENT", "TOOL", "RETRIEVER", "EMBEDDING", "RERANKER", "GUARDRAIL", "EVALUATOR"}


def role_class(role: str | None) -> str:
    """A CSS class from a fixed set: the role itself is text from the span."""
    return "role-" + _ROLE_CLASSES.get(str(role or "").lower(), "other")


def kind_class(kind: str | None) -> str:
    return "k-" + (kind.lower() if kind in _KINDS else "other")


FILTERS.update(role_class=role_class, kind_class=kind_class)
FILTERS.update(EVALUATION_FILTERS)
FILTERS.update(FEEDBACK_FILTERS)
