"""The dashboard: server-rendered HTML pages over the store's query layer.

`router` holds every page and the static files; `server/app.py` includes it. Nothing here
imports `server.api` or `server.ingest`: pages read through the `Store` protocol and parse their
filters with `server.list_params`, like the JSON API does.
"""

from spanloom.server.web.login import router as login_router
from spanloom.server.web.routes import router

__all__ = ["login_router", "router"]
