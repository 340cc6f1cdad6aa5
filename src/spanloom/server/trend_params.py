"""The range of a trends request (the JSON API's and the overview page's), read the same way
for both: ``start``/``end`` (ISO 8601 or Unix seconds, as the lists take them), ``bucket=hour|day``
to force the width (else picked from the range), ``user_id`` to follow one user.

Without ``start``, the range opens at the project's first span, so the charts show its whole
history (bounded by trend_types.MAX_BUCKETS); without ``end`` it closes now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from spanloom.server.list_params import BadParameterError, QueryParams, parse_time
from spanloom.server.store.trend_types import DAY_NS, TrendUnit

UNITS = ("hour", "day")


@dataclass(frozen=True, slots=True)
class TrendRange:
    start_ns: int
    end_ns: int
    unit: TrendUnit | None
    user_id: str | None


def trend_range(params: QueryParams, first_span_ns: int | None, now_ns: int | None = None) -> TrendRange:
    """Raises BadParameterError for a malformed time or bucket, or an end before the start."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    raw_end = (params.get("end") or "").strip()
    end_ns = parse_time("end", raw_end) if raw_end else now_ns
    raw_start = (params.get("start") or "").strip()
    if raw_start:
        start_ns = parse_time("start", raw_start)
    else:
        start_ns = min(first_span_ns, end_ns - 1) if first_span_ns is not None else end_ns - DAY_NS
    if end_ns <= start_ns:
        raise BadParameterError("end", "must be after start")
    unit = (params.get("bucket") or "").strip() or None
    if unit is not None and unit not in UNITS:
        raise BadParameterError("bucket", f"expected hour or day, got {unit!r:.40}")
    user_id = (params.get("user_id") or "").strip() or None
    return TrendRange(start_ns, end_ns, cast("TrendUnit | None", unit), user_id)
