"""HEAD on the pages: what GET answers, without the body.

FastAPI registers a `@router.get` route for GET alone, so ``HEAD /sessions`` (link checkers,
uptime monitors, ``curl -I``) was a 405. Starlette's own routes add HEAD to GET; this does the
same for the routes left out of the OpenAPI document (the pages, the docs page, the static
files), whose description then stays as it is. The ASGI server drops the body of a HEAD answer.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute


def answer_head(router: APIRouter) -> None:
    for route in router.routes:
        methods = route.methods if isinstance(route, APIRoute) and not route.include_in_schema else None
        if methods and "GET" in methods:
            methods.add("HEAD")
