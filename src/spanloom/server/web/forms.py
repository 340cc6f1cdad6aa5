"""The filter forms: what a page's URL holds, turned into the JSON API's parameters.

HTML forms cannot name a parameter after what the user types, and "last 24 hours" is a choice,
not a timestamp; so the pages add two parameters of their own, translated here before the
shared models (`list_params`) read the rest exactly as the API does:

- ``range=1h|24h|7d|30d`` becomes ``start`` (now minus that long); ``range=custom`` or none
  keeps the ``start``/``end`` inputs;
- ``meta=KEY=VALUE`` (repeatable) becomes ``metadata.KEY=VALUE``.

An API query string pasted after a page's path therefore shows the same rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.datastructures import MultiDict

from spanloom.server.list_params import METADATA_PREFIX, BadParameterError, QueryParams, parse_time
from spanloom.server.store.base import ListQuery
from spanloom.server.web.format import form_time

RANGE_PRESETS = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
RANGE_LABELS = (
    ("", "Any time"),
    ("1h", "Last hour"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("custom", "Custom (below)"),
)
SPAN_KINDS = ("LLM", "CHAIN", "AGENT", "TOOL", "RETRIEVER", "EMBEDDING", "RERANKER", "GUARDRAIL", "EVALUATOR")
STATUSES = ("OK", "ERROR", "UNSET")
# Page-only parameters; the shared parser never sees them.
_PAGE_KEYS = ("range", "meta")


def shared_params(params: QueryParams, now: float | None = None) -> MultiDict:
    """The page's query string as the JSON API would receive it."""
    items = [(key, value) for key, value in params.multi_items() if key not in _PAGE_KEYS]
    preset = (params.get("range") or "").strip()
    if preset in RANGE_PRESETS:
        start = (time.time() if now is None else now) - RANGE_PRESETS[preset]
        items = [(key, value) for key, value in items if key not in ("start", "end")]
        items.append(("start", f"{start:.3f}"))
    elif preset not in ("", "custom"):
        expected = ", ".join((*RANGE_PRESETS, "custom"))
        raise BadParameterError("range", f"expected one of {expected}, got {preset!r}")
    for raw in params.getlist("meta"):
        if not raw.strip():
            continue
        key, separator, value = raw.partition("=")
        if not separator or not key.strip():
            raise BadParameterError("meta", f"expected KEY=VALUE, got {raw!r}")
        items.append((METADATA_PREFIX + key.strip(), value.strip()))
    return MultiDict(items)


@dataclass
class FilterForm:
    """What the form controls show: the values the URL holds, as the user typed them."""

    values: dict[str, str]
    tags: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)  # "KEY=VALUE"
    start: str = ""  # datetime-local values (UTC)
    end: str = ""
    active: bool = False  # any filter set, so "nothing found" means "nothing matches"

    def get(self, name: str) -> str:
        return self.values.get(name, "")


def filter_form(params: QueryParams, query: ListQuery, filter_names: Sequence[str]) -> FilterForm:
    """The form state of a list page; `query` was parsed from the same parameters."""
    values = {name: (params.get(name) or "").strip() for name in (*filter_names, "range", "sort", "order")}
    metadata = [raw for raw in params.getlist("meta") if raw.strip()]
    metadata += [
        f"{key[len(METADATA_PREFIX) :]}={value}"
        for key, value in params.multi_items()
        if key.startswith(METADATA_PREFIX)
    ]
    # The sort the list is in, as the form's choices name it (sort=feedback reads eval:feedback).
    values["sort"] = query.sort or values["sort"]
    form = FilterForm(values=values, tags=list(query.tags), metadata=metadata)
    if values["range"] not in RANGE_PRESETS:
        # Shown as the input expects it, whatever form the URL used (ISO, Unix seconds).
        for name in ("start", "end"):
            raw = (params.get(name) or "").strip()
            if raw:
                setattr(form, name, form_time(parse_time(name, raw)))
        if form.start or form.end:
            values["range"] = "custom"
    form.active = bool(
        any(values.get(name) for name in filter_names if name != "project")
        or form.tags
        or form.metadata
        or values["range"]
    )
    return form
