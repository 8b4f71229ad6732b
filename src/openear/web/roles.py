"""Roles and permissions, deny by default: every route names the one permission it needs.

A route declares it with ``dependencies=[Depends(requires("posts.read"))]``; the dependency answers 401 without a
user and 403 for a role the permission does not list. The roles-matrix test walks every route, reads the
permission off this dependency and checks each role against :data:`PERMISSIONS`. Object-level checks (a case of
another team) go through :func:`may_access_team_object`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import HTTPException, Request
from starlette.routing import Mount

from openear.triage import ALL_TEAMS_ROLES, TEAM_ROLE
from openear.web.auth import ROLES, User

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "Requires",
    "can",
    "iter_routes",
    "may_access_team_object",
    "require",
    "requires",
    "roles_for",
    "route_permission",
]

_ALL = frozenset(ROLES)
_READERS = frozenset({"analyst", "admin"})
_CASE_WORKERS = frozenset({"analyst", "owner", "admin"})
_ADMIN = frozenset({"admin"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "signed_in": _ALL,  # sign out, who am I
    "aggregates.read": _ALL,  # overview, aggregates, clusters (excerpts, no post links for non-readers)
    "reports.read": _ALL,
    "posts.read": _READERS,  # posts, search, one post
    "posts.export": _READERS,
    "labels.write": _READERS,  # analyst label override
    "searches.use": _READERS,  # saved searches (each user's own)
    "cases.read": _CASE_WORKERS,  # owners: only their teams' cases (see may_access_team_object)
    "cases.write": _CASE_WORKERS,  # owners: only their teams' cases
    "alerts.read": _CASE_WORKERS,  # owners: only alerts whose category routes to one of their teams
    "teams.read": _CASE_WORKERS,  # teams, their categories and members, routing rules
    "sources.read": _ADMIN,
    "sources.write": _ADMIN,
    "users.manage": _ADMIN,
    "settings.manage": _ADMIN,
    "audit.read": _ADMIN,
}


def roles_for(permission: str) -> frozenset[str]:
    """The roles a permission lists; a ``KeyError`` for an unknown one (no silent allow)."""
    return PERMISSIONS[permission]


def can(user: User | None, permission: str) -> bool:
    """Whether ``user`` holds ``permission`` (never for anonymous users or unknown roles)."""
    return user is not None and user.role in roles_for(permission)


def require(request: Request, permission: str) -> User:
    """The signed-in user when they hold ``permission``; else 401 (nobody signed in) or 403."""
    user: User | None = getattr(request.state, "user", None)
    if user is None:
        raise HTTPException(401)
    if user.role not in roles_for(permission):
        if request.url.path.startswith("/api/"):  # an integrator's request: say what it lacks (GET /me lists them)
            raise HTTPException(403, f"The {user.role} role may not make this request: it needs {permission}.")
        raise HTTPException(403)  # a page: the error page's own wording (app.ERROR_TEXT)
    return user


class Requires:
    """A FastAPI dependency that enforces one permission and returns the user; ``permission`` is public."""

    def __init__(self, permission: str) -> None:
        roles_for(permission)  # fail at import time for a typo
        self.permission = permission

    def __call__(self, request: Request) -> User:
        return require(request, self.permission)

    def __repr__(self) -> str:
        return f"Requires({self.permission!r})"


def requires(permission: str) -> Requires:
    """``Depends(requires("posts.read"))``: the route's permission."""
    return Requires(permission)


def route_permission(route: Any) -> str | None:
    """The permission a route declares through :class:`Requires`, or ``None`` (then it is public or a bug)."""
    dependant = getattr(route, "dependant", None)
    stack = list(getattr(dependant, "dependencies", []) or [])
    while stack:
        dep = stack.pop(0)
        if isinstance(dep.call, Requires):
            return dep.call.permission
        stack.extend(dep.dependencies or [])
    return None


def may_access_team_object(user: User | None, team: str | None, user_teams: Iterable[str] | None = None) -> bool:
    """Object-level check for team-owned objects (cases, alerts): admins and analysts see all; an owner only the
    objects of a team they belong to (``user.teams``, loaded with the session, unless ``user_teams`` is given);
    viewers and anonymous users none. Callers answer 404 for a hidden object, never 403: no existence leaks."""
    if user is None:
        return False
    if user.role in ALL_TEAMS_ROLES:
        return True
    if user.role == TEAM_ROLE:
        teams = user.teams if user_teams is None else frozenset(user_teams)
        return team is not None and team in teams
    return False


def iter_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(method, path, route)`` for every route of an app (``app.routes``), through included routers (FastAPI
    keeps them nested), without mounts (static files) and without HEAD/OPTIONS."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            ctx = getattr(route, "include_context", None)
            yield from iter_routes(inner.routes, prefix + (getattr(ctx, "prefix", "") or ""))
            continue
        if isinstance(route, Mount):
            continue
        for method in sorted(set(getattr(route, "methods", ()) or ()) - {"HEAD", "OPTIONS"}):
            yield method, prefix + route.path, route
