"""Who sees and changes which triage object (cases, spike alerts), shared by the triage pages and the REST API.

Every object access goes through :func:`openear.web.roles.may_access_team_object`: analysts and admins reach every
team's cases and alerts, an owner those of the teams they belong to, a viewer none. A hidden object is reported as
missing (:class:`Hidden`, answered 404), so its existence does not leak. An alert belongs to the team its
category routes to (the team notified of it); source and language spikes, and categories no team owns, belong
to the management group. The changes themselves are :mod:`openear.triage`'s: nothing here re-implements the
lifecycle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Request
from sqlalchemy import Connection, func, select

from openear import alerts as alerts_mod
from openear import triage
from openear.store.queries import UNCATEGORISED, UNKNOWN
from openear.store.schema import case_clusters, cases, clusters, posts
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
    "cases_of_clusters",
    "change_case",
    "cluster_summaries",
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
    cluster or a bad priority, and :class:`~openear.triage.DuplicateCase` when an open case links it already (its
    id only when ``user`` may see that case).
    """
    if team is not None and cfg.team(team) is None:
        raise triage.CaseError(f"team: {team!r} is not a team ({', '.join(t.name for t in cfg.teams)})")
    if post_id is not None and not can(user, "posts.read"):
        raise Forbidden("Flagging a single post needs a role that reads posts; flag its cluster instead.")
    try:
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
    except triage.DuplicateCase as exc:
        if exc.case_id is not None and not may_access_team_object(user, exc.team):  # no existence leak
            raise triage.DuplicateCase(exc.what, None, exc.team) from None
        raise
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
        if (who or "").casefold() != (case["assignee"] or "").casefold():
            triage.assign(conn, case_id, who, actor=actor)
    if priority is not None and priority != case["priority"]:
        triage.set_priority(conn, case_id, priority, actor=actor)
    return visible_case(conn, user, case_id, post_limit=0)


def cases_of_clusters(
    conn: Connection, user: User, cluster_ids: Iterable[int], *, status: str | Sequence[str] | None = None
) -> dict[int, list[dict[str, Any]]]:
    """The cases linking each cluster that ``user`` may see, newest first, optionally of one status (or several):
    ``{cluster id: [{id, title, team, status, priority}]}``, with every id asked for a key. One query however many
    clusters (the overview's top clusters, a case page's clusters)."""
    ids = sorted({int(i) for i in cluster_ids})
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    stmt = (
        select(case_clusters.c.cluster_id, cases.c.id, cases.c.title, cases.c.team, cases.c.status, cases.c.priority)
        .join(case_clusters, case_clusters.c.case_id == cases.c.id)
        .where(case_clusters.c.cluster_id.in_(ids))
        .order_by(cases.c.id.desc())
    )
    if status:
        stmt = stmt.where(cases.c.status.in_([status] if isinstance(status, str) else list(status)))
    for row in conn.execute(stmt).mappings():
        if may_access_team_object(user, row["team"]):
            out[row["cluster_id"]].append({k: v for k, v in row.items() if k != "cluster_id"})
    return out


def cases_of_cluster(conn: Connection, user: User, cluster_id: int) -> list[dict[str, Any]]:
    """The cases that link a cluster and ``user`` may see: ``id, title, team, status, priority``."""
    return cases_of_clusters(conn, user, [cluster_id])[cluster_id]


def cluster_summaries(conn: Connection, user: User, cluster_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """What ``user`` may see of each cluster (a case page's), as the overview shows a cluster to every role: ``text``
    and ``title`` of its representative post (the excerpt), ``category`` (most of its posts'; ties alphabetical),
    ``sentiment`` and ``lang`` (``{value: posts}``, most first) and ``cases`` (:func:`cases_of_clusters`);
    ``post_id``, the representative post's id, only for a role that reads posts (else ``None``). Three queries
    however many clusters; counts by label only, never by author (guardrail 5)."""
    ids = sorted({int(i) for i in cluster_ids})
    if not ids:
        return {}
    readers = can(user, "posts.read")
    reps = conn.execute(
        select(clusters.c.id, posts.c.id.label("post_id"), posts.c.text, posts.c.title)
        .select_from(clusters.outerjoin(posts, posts.c.id == clusters.c.representative_post_id))
        .where(clusters.c.id.in_(ids))
    ).mappings()
    out: dict[int, dict[str, Any]] = {
        r["id"]: {
            "post_id": r["post_id"] if readers else None,
            "text": r["text"],
            "title": r["title"],
            "category": None,
            "sentiment": {},
            "lang": {},
        }
        for r in reps
    }
    category = func.coalesce(posts.c.category, UNCATEGORISED)
    sentiment = func.coalesce(posts.c.sentiment, UNKNOWN)
    counts: dict[int, dict[str, Counter[str]]] = {}
    for cid, cat, sent, lang, n in conn.execute(
        select(posts.c.cluster_id, category, sentiment, posts.c.lang, func.count())
        .where(posts.c.cluster_id.in_(list(out)))
        .group_by(posts.c.cluster_id, category, sentiment, posts.c.lang)
    ):
        split = counts.setdefault(cid, {"category": Counter(), "sentiment": Counter(), "lang": Counter()})
        for name, value in (("category", cat), ("sentiment", sent), ("lang", lang or UNKNOWN)):
            split[name][str(value)] += int(n)
    for cid, split in counts.items():
        out[cid]["category"] = min(split["category"].items(), key=lambda kv: (-kv[1], kv[0]))[0]
        for name in ("sentiment", "lang"):
            out[cid][name] = dict(sorted(split[name].items(), key=lambda kv: (-kv[1], kv[0])))
    for cid, linked in cases_of_clusters(conn, user, out).items():
        out[cid]["cases"] = linked
    return out


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
