"""``/users/compare``: each user's mean score per evaluation, worst first.

A router of its own, included before the main pages so the path is not read as the user
"compare". It reads through the same store calls as the users list (sorted by ``eval:NAME``).
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from starlette.responses import Response

from spanloom.server.auth.scope import ProjectNotVisibleError, restrict_query
from spanloom.server.list_params import BadParameterError, UserListParams, validate_list
from spanloom.server.store.base import Store
from spanloom.server.store.evaluation_types import EVAL_SORT_PREFIX, FEEDBACK
from spanloom.server.web.chrome import bad_request, chrome, not_found
from spanloom.server.web.forms import shared_params
from spanloom.server.web.render import Links, render

router = APIRouter(include_in_schema=False)
COMPARE_LIMIT = 200


@router.get("/users/compare", name="web_users_compare")
def users_compare_page(request: Request) -> Response:
    store: Store = request.app.state.store
    navigation = chrome(request, store, "users", Links(request).path("web_users_compare"))
    try:
        query = restrict_query(request, validate_list(UserListParams, shared_params(request.query_params)))
    except BadParameterError as error:
        return bad_request(request, store, "users", error)
    except ProjectNotVisibleError as error:
        return not_found(request, store, "users", "project", error.args[0])
    names = store.list_evaluation_names(query.project)
    chosen = (request.query_params.get("name") or "").strip()
    if chosen not in names:
        # End users' thumbs have their own column everywhere; the comparison opens on an evaluator.
        judged = [name for name in names if name != FEEDBACK]
        chosen = (judged or names or [""])[0]
    users = []
    if chosen:
        ranked = replace(query, sort=EVAL_SORT_PREFIX + chosen, order="asc", limit=COMPARE_LIMIT, cursor=None)
        users = store.list_users(ranked).items
    context = {**navigation, "names": names, "chosen": chosen, "users": users}
    return render(request, "users_compare.html", context)
