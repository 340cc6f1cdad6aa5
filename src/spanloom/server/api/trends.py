"""`GET /api/projects/{project}/trends`: a project's figures per hour or day (Store.get_trends).

A project the caller's key may not read is answered exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from spanloom.server.api.json_body import json_response
from spanloom.server.api.serialize import iso_time
from spanloom.server.api.store_dependency import get_store
from spanloom.server.auth.scope import can_see
from spanloom.server.errors import HttpError
from spanloom.server.list_params import BadParameterError
from spanloom.server.store.base import Store
from spanloom.server.store.trend_types import TrendBucket, Trends
from spanloom.server.trend_params import trend_range

router = APIRouter(prefix="/api", tags=["api"])


def bucket_json(bucket: TrendBucket) -> dict[str, Any]:
    return {
        "start_time": iso_time(bucket.start_ns),
        "end_time": iso_time(bucket.end_ns),
        "sessions": bucket.sessions,
        "turns": bucket.turns,
        "errors": bucket.errors,
        "cost": bucket.cost,
        "latency_p50_ms": bucket.latency_p50_ms,
        "latency_p95_ms": bucket.latency_p95_ms,
        "feedback_positive": bucket.feedback_positive,
        "feedback_negative": bucket.feedback_negative,
        "evaluations": bucket.evaluations,
        "evaluations_passed": bucket.evaluations_passed,
        "evaluation_pass_rate": bucket.pass_rate,
    }


def trends_json(trends: Trends) -> dict[str, Any]:
    return {
        "project": trends.project,
        "user_id": trends.user_id,
        "bucket": trends.window.unit,
        "bucket_seconds": trends.window.width_ns // 10**9,
        "start_time": iso_time(trends.window.start_ns),
        "end_time": iso_time(trends.window.end_ns),
        "buckets": [bucket_json(bucket) for bucket in trends.buckets],
    }


@router.get(
    "/projects/{project}/trends",
    summary="A project's sessions, turns, errors, cost, latency, feedback and evaluations per hour or day",
    description=(
        "Buckets of an hour for ranges up to 72 hours, of a day beyond (or `bucket=hour|day`), at"
        " most 200 (a longer range takes several units a bucket). `start`/`end`: ISO 8601 or Unix"
        " seconds; by default the project's first span to now. `user_id`: one user's figures."
    ),
    response_model=dict[str, Any],
)
def get_trends(
    request: Request,
    project: str,
    start: Annotated[str | None, Query()] = None,
    end: Annotated[str | None, Query()] = None,
    bucket: Annotated[str | None, Query(description="hour or day")] = None,
    user_id: Annotated[str | None, Query()] = None,
    store: Store = Depends(get_store),
) -> Response:
    del start, end, bucket, user_id  # read from the query string by trend_range, as the page does
    summary = next((p for p in store.list_projects() if p.name == project), None)
    if summary is None or not can_see(request, project):
        raise HttpError(404, "not_found", f"no project {project!r}")
    try:
        window = trend_range(request.query_params, summary.first_span_time_ns)
    except BadParameterError as error:
        raise HttpError(400, "bad_parameter", str(error)) from None
    trends = store.get_trends(project, window.start_ns, window.end_ns, window.user_id, window.unit)
    return json_response(trends_json(trends))
