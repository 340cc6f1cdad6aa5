"""What every page shares: the navigation's context, and the pages that answer a bad filter, an
unknown id, or an id that exists in several projects."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spanloom.server.auth.scope import allowed_projects, can_see
from spanloom.server.list_params import BadParameterError
from spanloom.server.store.base import Store
from spanloom.server.web.projects import cached_projects
from spanloom.server.web.render import Links, page_path, render


def chrome(request: Request, store: Store, section: str, picker_action: str) -> dict[str, Any]:
    """What the common navigation needs: the projects the caller may read (cached, see projects.py),
    where the picker goes, and the logout form when the caller logged in with the form."""
    allowed = allowed_projects(request)
    login_session = getattr(request.state, "login_session", None)
    return {
        "projects": [project for project in cached_projects(store) if can_see(request, project.name)],
        "all_projects_allowed": allowed is None,
        "current_project": Links(request).project or (min(allowed) if allowed else ""),
        "section": section,
        "picker_action": picker_action,
        "logout_csrf": login_session.csrf_token if login_session is not None else None,
    }


def bad_request(request: Request, store: Store, section: str, error: BadParameterError) -> Response:
    context = {**chrome(request, store, section, page_path(request)), "error": error}
    return render(request, "bad_request.html", context, status_code=400)


def not_found(request: Request, store: Store, section: str, kind: str, identifier: str) -> Response:
    list_path = Links(request).path(f"web_{section}")
    context = {**chrome(request, store, section, list_path), "kind": kind, "identifier": identifier}
    return render(request, "not_found.html", context, status_code=404)


def ambiguous(
    request: Request, store: Store, section: str, kind: str, identifier: str, projects: list[str]
) -> Response:
    """409: the id is in several projects; the page links the id in each."""
    list_path = Links(request).path(f"web_{section}")
    context = {
        **chrome(request, store, section, list_path),
        "kind": kind,
        "identifier": identifier,
        "holders": projects,
    }
    return render(request, "ambiguous.html", context, status_code=409)
