"""``/sessions/compare``: two conversations side by side, turn by turn, differences marked.

A router of its own, included before the main pages so the path is not read as the session
"compare". Without both ids it shows the form that picks them. The ids resolve as on the session
page (`project=`, else the one readable project holding `a`); `b` is read in the same project.
The rows come from session_compare.py, the same comparison the JSON API serializes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from spanloom.server.compare_params import MAX_COMPARE_TURNS, validate_compare
from spanloom.server.list_params import BadParameterError
from spanloom.server.session_compare import Missing, load_comparison
from spanloom.server.store.base import Store
from spanloom.server.web.chrome import bad_request, chrome, not_found
from spanloom.server.web.render import Links, render
from spanloom.server.web.routes import project_of

router = APIRouter(include_in_schema=False)


@router.get("/sessions/compare", name="web_sessions_compare")
def sessions_compare_page(request: Request) -> Response:
    store: Store = request.app.state.store
    links = Links(request)
    navigation = chrome(request, store, "sessions", links.path("web_sessions"))
    try:
        params = validate_compare(request.query_params)
    except BadParameterError as error:
        return bad_request(request, store, "sessions", error)
    context = {**navigation, "params": params, "max_turns": MAX_COMPARE_TURNS}
    if params.a is None or params.b is None:
        return render(request, "compare_pick.html", context)
    first = params.a
    project = project_of(
        request, store, "sessions", "session", first, lambda: store.find_session_projects(first)
    )
    if isinstance(project, Response):
        return project
    found = load_comparison(store, project, params)
    if isinstance(found, Missing):
        return not_found(request, store, "sessions", "session", found.session_id)
    return render(request, "compare.html", {**context, "project": project, "cmp": found})
