"""The project overview page (`/projects/{project}`), the project list that leads to it, and the
trend strip the sessions and users lists show above their rows.

Each reads `Store.get_trends` once and draws its charts on the server (trend_view.py, charts.py):
the pages stay readable without scripts, and the numbers of every chart are also a table.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from spanloom.server.auth.scope import can_see
from spanloom.server.list_params import BadParameterError
from spanloom.server.store.base import ListQuery, ProjectSummary, Store
from spanloom.server.trend_params import trend_range
from spanloom.server.web.chrome import bad_request, chrome, not_found
from spanloom.server.web.forms import RANGE_LABELS, shared_params
from spanloom.server.web.projects import cached_projects
from spanloom.server.web.render import Links, render
from spanloom.server.web.trend_view import trend_charts

router = APIRouter(include_in_schema=False)

BUCKET_LABELS = (("", "Automatic"), ("hour", "Hourly"), ("day", "Daily"))


def _visible(request: Request, store: Store) -> list[ProjectSummary]:
    return [project for project in cached_projects(store) if can_see(request, project.name)]


@router.get("/projects", name="web_projects")
def projects_page(request: Request) -> Response:
    """The projects the caller may read, each linked to its overview; the navigation's project
    picker lands here and goes on to the project chosen."""
    store: Store = request.app.state.store
    links = Links(request)
    if links.project:
        return RedirectResponse(links.path("web_overview", project=links.project), status_code=302)
    context = {
        **chrome(request, store, "projects", links.path("web_projects")),
        "visible": _visible(request, store),
    }
    return render(request, "projects.html", context)


@router.get("/projects/{project:path}", name="web_overview")
def overview_page(request: Request, project: str) -> Response:
    store: Store = request.app.state.store
    links = Links(request)
    summary = next((item for item in _visible(request, store) if item.name == project), None)
    if summary is None:
        return not_found(request, store, "projects", "project", project)
    try:
        params = shared_params(request.query_params)
        window = trend_range(params, summary.first_span_time_ns)
    except BadParameterError as error:
        return bad_request(request, store, "projects", error)
    trends = store.get_trends(project, window.start_ns, window.end_ns, window.user_id, window.unit)
    context = {
        **chrome(request, store, "projects", links.path("web_projects")),
        "current_project": project,
        "summary": summary,
        "trends": trends,
        "charts": trend_charts(trends),
        "range_labels": RANGE_LABELS,
        "bucket_labels": BUCKET_LABELS,
        "values": {
            name: (request.query_params.get(name) or "").strip() for name in ("range", "bucket", "user_id")
        },
    }
    return render(request, "overview.html", context)


def trend_strip(request: Request, store: Store, query: ListQuery) -> dict[str, Any] | None:
    """The charts above a list, over the list's range and project (and user, when the list is
    filtered by one); None when the list spans several projects."""
    visible = _visible(request, store)
    if query.project is not None:
        summary = next((item for item in visible if item.name == query.project), None)
    else:
        summary = visible[0] if len(visible) == 1 else None
    if summary is None:
        return None
    start_ns = query.start_ns if query.start_ns is not None else summary.first_span_time_ns
    end_ns = query.end_ns if query.end_ns is not None else max(summary.last_span_time_ns + 1, start_ns + 1)
    trends = store.get_trends(summary.name, start_ns, max(end_ns, start_ns + 1), query.user_id, latency=False)
    return {
        "project": summary.name,
        "trends": trends,
        "charts": trend_charts(trends, compact=True),
        "overview": Links(request).path("web_overview", project=summary.name),
    }
