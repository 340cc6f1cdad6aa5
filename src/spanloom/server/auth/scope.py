"""A read key's projects, applied at the parameter level by the API and the pages.

Lists get ``project=`` forced to one the key may read; a detail (session, user, trace) of another
project is answered exactly like one that does not exist, so a per-project key cannot probe other
projects' ids. A session or user id is unique only inside its project: read without ``project=``,
it resolves to the one readable project holding it, or is ambiguous (`pick_project`). Without
keys configured, or with an all-projects key, nothing is restricted.
"""

from __future__ import annotations

from collections.abc import Callable

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


class AmbiguousIdError(LookupError):
    """An id named without a project exists in several projects the caller may read."""

    def __init__(self, projects: list[str]) -> None:
        super().__init__(", ".join(projects))
        self.projects = projects


def pick_project(
    connection: HTTPConnection, named: str | None, holders: Callable[[], list[str]]
) -> str | None:
    """The project a session or user id is read in. `named`: the request's ``project=``;
    `holders`: the projects that hold the id (asked only when none was named).

    None means "not found": a named project the caller may not read answers exactly like an
    unknown id, and only the projects the caller may read are ever counted, so a scoped key learns
    nothing of the others. Raises AmbiguousIdError when the id is in several readable projects.
    """
    if named is not None:
        return named if can_see(connection, named) else None
    visible = [project for project in holders() if can_see(connection, project)]
    if len(visible) > 1:
        raise AmbiguousIdError(visible)
    return visible[0] if visible else None
