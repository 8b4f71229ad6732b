"""Roles and permissions, deny by default: every route names the one permission it needs.

A route declares it with ``dependencies=[Depends(requires("posts.read"))]``; the dependency answers 401 without a
user and 403 for a role the permission does not list. The roles-matrix test walks every route, reads the
permission off this dependency and checks each role against :data:`PERMISSIONS`. Object-level checks (a case of
another team) go through :func:`may_access_team_object`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import HTTPException, Request

from openear.web.auth import ROLES, User

__all__ = ["PERMISSIONS", "ROLES", "Requires", "can", "may_access_team_object", "require", "requires", "roles_for"]

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
    "cases.read": _CASE_WORKERS,  # owners: only their team's cases (see may_access_team_object)
    "cases.write": _CASE_WORKERS,
    "alerts.read": _CASE_WORKERS,
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
        raise HTTPException(403)
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


def may_access_team_object(user: User, team: str | None, user_teams: Iterable[str] = ()) -> bool:
    """Object-level check for team-owned objects (cases): admins and analysts see all; an owner only the objects
    of a team they belong to. ``user_teams`` comes from the teams model (triage); until it lands an owner belongs
    to no team and so sees no team's objects."""
    if user.role in ("admin", "analyst"):
        return True
    if user.role == "owner":
        return team is not None and team in set(user_teams)
    return False
