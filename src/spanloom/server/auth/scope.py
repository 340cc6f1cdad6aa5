"""A read key's projects, applied at the parameter level by the API and the pages.

Lists get ``project=`` forced to one the key may read; a detail (session, user, trace) of another
project is answered exactly like one that does not exist, so a per-project key cannot probe other
projects' ids. Without keys configured, or with an all-projects key, nothing is restricted.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from spanloom.server.auth.keys import Principal
from spanloom.server.store.base import ListQuery


class ProjectNotVisibleError(LookupError):
    """The request names a project the key may not read (answered as "not found")."""


def principal_of(connection: HTTPConnection) -> Principal | None:
    return getattr(connection.state, "principal", None)


def allowed_projects(connection: HTTPConnection) -> frozenset[str] | None:
    """The projects this request may read; None for all."""
    principal = principal_of(connection)
    return None if principal is None else principal.projects


def can_see(connection: HTTPConnection, project: str) -> bool:
    allowed = allowed_projects(connection)
    return allowed is None or project in allowed


def restrict_query(connection: HTTPConnection, query: ListQuery) -> ListQuery:
    """Force `query.project` into the key's projects (the first, by name, when none was named).

    Raises ProjectNotVisibleError for a project outside them, whether it exists or not.
    """
    allowed = allowed_projects(connection)
    if allowed is None:
        return query
    if query.project is None:
        query.project = min(allowed)
    elif query.project not in allowed:
        raise ProjectNotVisibleError(query.project)
    return query
