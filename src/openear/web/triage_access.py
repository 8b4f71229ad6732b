"""Who sees and changes which triage object (cases, spike alerts), shared by the triage pages and the REST API.

Every object access goes through :func:`openear.web.roles.may_access_team_object`: analysts and admins reach every
team's cases and alerts, an owner those of the teams they belong to, a viewer none. A hidden object is reported as
missing (:class:`Hidden`, answered 404), so its existence does not leak. An alert belongs to the team its
category routes to (the team notified of it); source and language spikes, and categories no team owns, belong
to the management group. The changes themselves are :mod:`openear.triage`'s: nothing here re-implements the
lifecycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from sqlalchemy import Connection, select

from openear import alerts as alerts_mod
from openear import triage
from openear.store.schema import case_clusters, cases
from openear.triage.config import TriageConfig
from openear.web.auth import User
from openear.web.roles import can, may_access_team_object

__all__ = [
    "UNSET",
    "Forbidden",
    "Hidden",
    "TransitionRefused",
    "alert_team",
    "cases_of_cluster",
    "change_case",
    "open_case_as",
    "triage_config",
    "visible_alert",
    "visible_alerts",
    "visible_case",
    "visible_cases",
]

UNSET: Any = object()  # "leave as it is" for change_case's optional fields (None clears the assignee)
ALERTS_MAX = 100_000


class Hidden(LookupError):
    """No such object, or one of another team: answered 404 either way."""


class TransitionRefused(triage.CaseError):
    """A status change the case lifecycle does not allow (answered 409 by the API)."""


class Forbidden(PermissionError):
    """The role may change cases, but not this way (the message says why): answered 403."""


def triage_config(request: Request) -> TriageConfig:
    """The workspace's triage config, read once per app."""
    cfg = getattr(request.app.state, "triage_config", None)
    if cfg is None:
        cfg = triage.load_triage(request.app.state.settings)
        request.app.state.triage_config = cfg
    return cfg  # type: ignore[no-any-return]


# -- cases -------------------------------------------------------------------------------------------------------


def visible_cases(
    conn: Connection,
    user: User,
    *,
    status: str | Sequence[str] | None = None,
    team: str | None = None,
    priority: str | None = None,
) -> list[dict[str, Any]]:
    """The cases ``user`` may see (newest first), optionally of one status, team and priority."""
    rows = triage.list_cases(conn, status=status or None, team=team or None)
    return [r for r in rows if may_access_team_object(user, r["team"]) and (not priority or r["priority"] == priority)]


def visible_case(conn: Connection, user: User, case_id: int, *, post_limit: int = 200) -> dict[str, Any]:
    """A case with its history, clusters and (up to ``post_limit``) linked posts; :class:`Hidden` when there is no
    such case or ``user`` may not see it."""
    case = triage.get_case(conn, case_id, post_limit=post_limit)
    if case is None or not may_access_team_object(user, case["team"]):
        raise Hidden(f"case {case_id}")
    return case


def open_case_as(
    conn: Connection,
    cfg: TriageConfig,
    user: User,
    *,
    post_id: int | None = None,
    cluster_id: int | None = None,
    title: str | None = None,
    priority: str = "normal",
    team: str | None = None,
) -> int:
    """Flag a post or a cluster (:func:`openear.triage.open_case_for`) as ``user``.

    A named ``team`` must be one of the config's. Flagging a single post needs a role that reads posts. The new
    case must be one ``user`` may see: an owner opens cases for their own teams only (:class:`Forbidden`, and the
    caller's transaction is rolled back). Raises :class:`~openear.triage.CaseError` for an unknown post or
    cluster or a bad priority.
    """
    if team is not None and cfg.team(team) is None:
        raise triage.CaseError(f"team: {team!r} is not a team ({', '.join(t.name for t in cfg.teams)})")
    if post_id is not None and not can(user, "posts.read"):
        raise Forbidden("Flagging a single post needs a role that reads posts; flag its cluster instead.")
    case_id = triage.open_case_for(
        conn,
        cfg,
        actor=user.username,
        post_id=post_id,
        cluster_id=cluster_id,
        title=title,
        priority=priority,
        team=team,
    )
    routed = triage.get_case(conn, case_id, post_limit=0)
    if routed is None or not may_access_team_object(user, routed["team"]):
        owner = routed["team"] if routed else "?"
        raise Forbidden(f"This would open a case for {owner}; owners open cases for their own teams only.")
    return case_id


def change_case(
    conn: Connection,
    user: User,
    case_id: int,
    *,
    status: str | None = None,
    note: str | None = None,
    assignee: Any = UNSET,
    priority: str | None = None,
) -> dict[str, Any]:
    """Apply the given changes, each through :mod:`openear.triage` (history and audit): a status transition
    (with an optional note on it), the assignee (``None`` clears it) and the priority. Fields equal to the case's
    current value change nothing. :class:`Hidden` for a case ``user`` may not see; ``CaseError`` for a move the
    lifecycle does not allow (:class:`TransitionRefused`). Returns the case as it is afterwards (without posts)."""
    case = visible_case(conn, user, case_id, post_limit=0)
    actor = user.username
    if status is not None and status != case["status"]:
        try:
            triage.transition(conn, case_id, status, actor=actor, note=(note or "").strip() or None)
        except triage.CaseError as exc:
            if status not in triage.STATUSES:
                raise
            allowed = ", ".join(sorted(triage.TRANSITIONS.get(case["status"], ()))) or "none"
            raise TransitionRefused(f"{exc} (from {case['status']}: {allowed})") from None
    elif note is not None and note.strip():
        triage.add_note(conn, case_id, note, actor=actor)
    if assignee is not UNSET:
        who = (assignee or "").strip()[:100] or None
        if who != case["assignee"]:
            triage.assign(conn, case_id, who, actor=actor)
    if priority is not None and priority != case["priority"]:
        triage.set_priority(conn, case_id, priority, actor=actor)
    return visible_case(conn, user, case_id, post_limit=0)


def cases_of_cluster(conn: Connection, user: User, cluster_id: int) -> list[dict[str, Any]]:
    """The cases that link a cluster and ``user`` may see: ``id, title, team, status, priority``."""
    rows = conn.execute(
        select(cases.c.id, cases.c.title, cases.c.team, cases.c.status, cases.c.priority)
        .join(case_clusters, case_clusters.c.case_id == cases.c.id)
        .where(case_clusters.c.cluster_id == cluster_id)
        .order_by(cases.c.id.desc())
    ).mappings()
    return [dict(r) for r in rows if may_access_team_object(user, r["team"])]


# -- alerts ------------------------------------------------------------------------------------------------------


def alert_team(cfg: TriageConfig, alert: dict[str, Any]) -> str:
    """The team an alert belongs to: the one its category routes to, else the management group (as notified)."""
    owner = cfg.owner_of(alert["value"]) if alert["dimension"] == "category" else None
    return owner or cfg.management


def visible_alerts(
    conn: Connection, cfg: TriageConfig, user: User, *, status: str | None = None
) -> list[dict[str, Any]]:
    """The spike alerts ``user`` may see, newest bucket first, each with its ``team``."""
    out = []
    for a in alerts_mod.list_alerts(conn, status=status or None, limit=ALERTS_MAX):
        team = alert_team(cfg, a)
        if may_access_team_object(user, team):
            out.append({**a, "team": team})
    return out


def visible_alert(conn: Connection, cfg: TriageConfig, user: User, alert_id: int) -> dict[str, Any]:
    """One alert ``user`` may see; :class:`Hidden` otherwise."""
    a = alerts_mod.get_alert(conn, alert_id)
    if a is None:
        raise Hidden(f"alert {alert_id}")
    team = alert_team(cfg, a)
    if not may_access_team_object(user, team):
        raise Hidden(f"alert {alert_id}")
    return {**a, "team": team}
