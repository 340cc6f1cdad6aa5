"""``/users/compare``: each user's mean score per evaluation, worst first.

A router of its own, included before the main pages so the path is not read as the user
"compare". It reads through the same store calls as the users list (sorted by ``eval:NAME``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from spanloom.server.auth.scope import ProjectNotVisibleError, restrict_query
from spanloom.server.query_params import BadParameterError, parse_list_query
from spanloom.server.store.base import USER_SORT_KEYS, Store
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX
from spanloom.server.web.forms import shared_params
from spanloom.server.web.render import Links, render
from spanloom.server.web.routes import _bad_request, _chrome, _not_found

router = APIRouter(include_in_schema=False)
COMPARE_LIMIT = 200


@router.get("/users/compare", name="web_users_compare")
def users_compare_page(request: Request) -> Response:
    store: Store = request.app.state.store
    chrome = _chrome(request, store, "users", Links(request).path("web_users_compare"))
    try:
        query = restrict_query(request, parse_list_query(shared_params(request.query_params), USER_SORT_KEYS))
    except BadParameterError as error:
        return _bad_request(request, store, "users", error)
    except ProjectNotVisibleError as error:
        return _not_found(request, store, "users", "project", error.args[0])
    names = store.list_evaluation_names(query.project)
    chosen = (request.query_params.get("name") or "").strip()
    if chosen not in names:
        chosen = names[0] if names else ""
    users = []
    if chosen:
        query.sort, query.order, query.limit, query.cursor = (
            EVAL_SORT_PREFIX + chosen,
            "asc",
            COMPARE_LIMIT,
            None,
        )
        users = store.list_users(query).items
    context = {**chrome, "names": names, "chosen": chosen, "users": users}
    return render(request, "users_compare.html", context)
