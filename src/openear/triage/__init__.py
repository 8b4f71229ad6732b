"""Triage: routing posts to owner teams, cases and their lifecycle, escalation to the management group.

A case links posts and near-duplicate clusters, never an author (guardrail 5): no function here reads
``posts.author_pseudonym``, and a rule that tries to group by it is refused when the config is read. Every change
is a row in ``case_events`` (the case's history) and an audit event. Every function takes ``now`` (naive or aware
UTC) so tests drive the clock.

Lifecycle::

    new ──> investigating ──> resolved
     │  \\        │    ^  \\
     │   \\       v    │   └──> dismissed
     │    └──> escalated ──> resolved | dismissed
    resolved ──> investigating (reopened);  dismissed ──> new (reopened)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from openear import audit
from openear.errors import OpenearError
from openear.store.schema import case_clusters, case_events, case_posts, cases, clusters, posts, user_teams, users
from openear.triage.config import PRIORITIES, TriageConfig, load_triage, parse_triage

__all__ = [
    "OPEN_STATUSES",
    "PRIORITIES",
    "STATUSES",
    "TRANSITIONS",
    "CaseError",
    "DuplicateCase",
    "Escalation",
    "add_note",
    "apply_case_rules",
    "assign",
    "assignable",
    "attach_new_posts",
    "check_escalations",
    "escalate",
    "get_case",
    "link",
    "list_cases",
    "load_triage",
    "open_case",
    "open_case_for",
    "parse_triage",
    "route_post",
    "run",
    "set_priority",
    "transition",
]

STATUSES: tuple[str, ...] = ("new", "investigating", "escalated", "resolved", "dismissed")
OPEN_STATUSES: tuple[str, ...] = ("new", "investigating", "escalated")
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"investigating", "escalated", "resolved", "dismissed"}),
    "investigating": frozenset({"escalated", "resolved", "dismissed"}),
    "escalated": frozenset({"investigating", "resolved", "dismissed"}),
    "resolved": frozenset({"investigating"}),
    "dismissed": frozenset({"new"}),
}
# Who works which teams' cases and alerts (the web's object-level check, openear.web.roles, and assignees): these
# roles every team's, owners the teams they belong to (user_teams), other roles none.
ALL_TEAMS_ROLES: tuple[str, ...] = ("admin", "analyst")
TEAM_ROLE = "owner"
EXCLUDED_FROM_RULES = ("media_coverage", "other")
TITLE_CHARS = 120


class CaseError(OpenearError):
    """A case operation that is not allowed: unknown case, bad transition, unknown priority."""


class DuplicateCase(CaseError):
    """Flagging a post or cluster that an open case already links: one open case per post or cluster."""

    def __init__(self, what: str, case_id: int | None, team: str) -> None:
        where = f"open case {case_id}" if case_id is not None else "an open case of a team you do not work for"
        super().__init__(f"{what} is already in {where}; work on that case rather than open another")
        self.what, self.case_id, self.team = what, case_id, team


@dataclass(frozen=True)
class Escalation:
    """One case sent to the management group, and why."""

    case_id: int
    rule: str  # priority, volume, sla
    reason: str
    title: str
    team: str
    priority: str


@dataclass
class SyncResult:
    """What one triage pass did."""

    opened: list[int] = field(default_factory=list)
    attached: int = 0
    escalations: list[Escalation] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    refreshed: list[dict[str, Any]] = field(default_factory=list)  # alerts recounted as their bucket grew
    deliveries: list[Any] = field(default_factory=list)


def _naive(now: datetime | None) -> datetime:
    value = now or datetime.now(UTC)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


_FREE_TEXT = ("title", "text", "note")  # a case's title is often a post's opening words; notes may quote posts


def _event(conn: Connection, case_id: int, now: datetime, actor: str, kind: str, detail: dict[str, Any]) -> None:
    """A step in the case's history, and its audit record. The audit log is kept for good and the history goes
    with the case (the retention purge), so the audit record keeps the free text's length, never its words."""
    conn.execute(
        insert(case_events).values(
            case_id=case_id, at=now, actor=actor[:100], kind=kind, detail=json.dumps(detail, ensure_ascii=False)
        )
    )
    audited: dict[str, Any] = {}
    for key, value in detail.items():
        if key in _FREE_TEXT and isinstance(value, str):
            audited[f"{key}_chars"] = len(value)
        else:
            audited[key] = value
    audit.record(conn, actor, f"case.{kind}", f"case:{case_id}", audited)


def _case_row(conn: Connection, case_id: int) -> dict[str, Any]:
    row = conn.execute(select(cases).where(cases.c.id == case_id)).mappings().first()
    if row is None:
        raise CaseError(f"case {case_id}: no such case")
    return dict(row)


def title_from(text: str | None) -> str:
    """A case's default title: the opening words of its post (or its cluster's representative post)."""
    clean = " ".join((text or "").split())
    return clean if len(clean) <= TITLE_CHARS else clean[: TITLE_CHARS - 1].rstrip() + "…"


# -- routing -----------------------------------------------------------------------------------------------------
def route_post(cfg: TriageConfig, post: dict[str, Any]) -> str:
    """The team that owns a post: the first rule whose category and query both match, else management."""
    for rule in cfg.routing:
        if rule.category is not None and rule.category != post.get("category"):
            continue
        if rule.query is not None:
            from openear.query import Document, parse

            if not parse(rule.query).matches(Document.from_row(post)):
                continue
        return rule.team
    return cfg.management


# -- cases -------------------------------------------------------------------------------------------------------
def open_case(
    conn: Connection,
    *,
    title: str,
    team: str,
    actor: str,
    now: datetime | None = None,
    category: str | None = None,
    priority: str = "normal",
    post_ids: Iterable[int] = (),
    cluster_ids: Iterable[int] = (),
    origin: str | None = None,
    assignee: str | None = None,
) -> int:
    """Open a case on posts and/or clusters; returns its id."""
    if priority not in PRIORITIES:
        raise CaseError(f"priority: must be one of {', '.join(PRIORITIES)}, not {priority!r}")
    if not title.strip():
        raise CaseError("title: required")
    t = _naive(now)
    case_id = int(
        conn.execute(
            insert(cases).values(
                title=title.strip()[:300],
                category=category,
                team=team,
                assignee=assignee,
                status="new",
                priority=priority,
                origin=(origin or f"user:{actor}")[:100],
                created_at=t,
                updated_at=t,
                progress_at=t,
            )
        ).inserted_primary_key[0]
    )
    _event(conn, case_id, t, actor, "created", {"title": title, "team": team, "priority": priority})
    link(conn, case_id, actor=actor, now=t, post_ids=post_ids, cluster_ids=cluster_ids)
    return case_id


def open_case_for(
    conn: Connection,
    cfg: TriageConfig,
    *,
    actor: str,
    now: datetime | None = None,
    post_id: int | None = None,
    cluster_id: int | None = None,
    title: str | None = None,
    priority: str = "normal",
    team: str | None = None,
) -> int:
    """Flag one post or one cluster: the title, category and owner team come from it unless given."""
    if (post_id is None) == (cluster_id is None):
        raise CaseError("flag either a post or a cluster")
    if cluster_id is not None:
        c = conn.execute(select(clusters).where(clusters.c.id == cluster_id)).mappings().first()
        if c is None:
            raise CaseError(f"cluster {cluster_id}: no such cluster")
        rep_id = c["representative_post_id"]
    else:
        rep_id = post_id
    rep = conn.execute(select(posts).where(posts.c.id == rep_id)).mappings().first() if rep_id else None
    if rep is None:
        raise CaseError(f"post {rep_id}: no such post")
    if cluster_id is not None:
        what = f"cluster {cluster_id}"
        linked = select(case_clusters.c.case_id).where(case_clusters.c.cluster_id == cluster_id)
    else:
        what = f"post {post_id}"
        linked = select(case_posts.c.case_id).where(case_posts.c.post_id == post_id)
    existing = conn.execute(
        select(cases.c.id, cases.c.team)
        .where(cases.c.id.in_(linked), cases.c.status.in_(OPEN_STATUSES))
        .order_by(cases.c.id.desc())
        .limit(1)
    ).first()
    if existing is not None:
        raise DuplicateCase(what, existing.id, existing.team)
    return open_case(
        conn,
        title=title or title_from(rep["title"] or rep["text"]),
        team=team or route_post(cfg, dict(rep)),
        actor=actor,
        now=now,
        category=rep["category"],
        priority=priority,
        post_ids=[post_id] if post_id is not None else (),
        cluster_ids=[cluster_id] if cluster_id is not None else (),
    )


def link(
    conn: Connection,
    case_id: int,
    *,
    actor: str,
    now: datetime | None = None,
    post_ids: Iterable[int] = (),
    cluster_ids: Iterable[int] = (),
) -> int:
    """Link posts and clusters (and every post of those clusters); returns how many posts were newly linked."""
    t = _naive(now)
    _case_row(conn, case_id)
    new_clusters = set(cluster_ids) - set(
        conn.execute(select(case_clusters.c.cluster_id).where(case_clusters.c.case_id == case_id)).scalars()
    )
    if new_clusters:
        found = set(conn.execute(select(clusters.c.id).where(clusters.c.id.in_(new_clusters))).scalars())
        if found != new_clusters:
            raise CaseError(f"cluster {min(new_clusters - found)}: no such cluster")
        conn.execute(insert(case_clusters), [{"case_id": case_id, "cluster_id": c, "added_at": t} for c in found])
    wanted = set(post_ids)
    if new_clusters:
        wanted |= set(conn.execute(select(posts.c.id).where(posts.c.cluster_id.in_(new_clusters))).scalars())
    n = _add_posts(conn, case_id, wanted, t)
    if n or new_clusters:
        _event(conn, case_id, t, actor, "linked", {"posts": n, "clusters": sorted(new_clusters)})
        conn.execute(update(cases).where(cases.c.id == case_id).values(updated_at=t))
    return n


def _add_posts(conn: Connection, case_id: int, ids: set[int], now: datetime) -> int:
    if not ids:
        return 0
    have = set(conn.execute(select(case_posts.c.post_id).where(case_posts.c.case_id == case_id)).scalars())
    fresh = sorted(ids - have)
    if fresh:
        found = set(conn.execute(select(posts.c.id).where(posts.c.id.in_(fresh))).scalars())
        if len(found) != len(fresh):
            raise CaseError(f"post {min(set(fresh) - found)}: no such post")
        conn.execute(insert(case_posts), [{"case_id": case_id, "post_id": p, "added_at": now} for p in fresh])
    return len(fresh)


def transition(
    conn: Connection, case_id: int, status: str, *, actor: str, now: datetime | None = None, note: str | None = None
) -> None:
    """Move a case to ``status``; raises :class:`CaseError` for a move the lifecycle does not allow."""
    if status not in STATUSES:
        raise CaseError(f"status: must be one of {', '.join(STATUSES)}, not {status!r}")
    t = _naive(now)
    row = _case_row(conn, case_id)
    if status not in TRANSITIONS[row["status"]]:
        raise CaseError(f"case {case_id}: cannot go from {row['status']} to {status}")
    values: dict[str, Any] = {"status": status, "updated_at": t, "progress_at": t}
    values["closed_at"] = t if status in ("resolved", "dismissed") else None
    if status == "escalated":
        values["escalated_at"] = t
    conn.execute(update(cases).where(cases.c.id == case_id).values(**values))
    _event(conn, case_id, t, actor, "status", {"from": row["status"], "to": status, "note": note})


def assignable(conn: Connection, team: str) -> list[str] | None:
    """The user accounts a case of ``team`` can be assigned to, by name: enabled analysts and admins (they work
    every team's cases) and the enabled owners who belong to ``team`` (as ``openear.web.roles`` grants them).
    ``None`` when the store has no user accounts at all: a CLI-only install names its people freely."""
    if conn.execute(select(users.c.id).limit(1)).first() is None:
        return None
    member = select(user_teams.c.user_id).where(user_teams.c.team == team)
    rows = conn.execute(
        select(users.c.username)
        .where(
            users.c.disabled.is_(False),
            users.c.role.in_(ALL_TEAMS_ROLES) | ((users.c.role == TEAM_ROLE) & users.c.id.in_(member)),
        )
        .order_by(users.c.username)
    )
    return list(rows.scalars())


def assign(conn: Connection, case_id: int, assignee: str | None, *, actor: str, now: datetime | None = None) -> None:
    """Set (or clear, with ``None``) who works on the case: one of :func:`assignable` for its team, matched
    without regard to case. Counts as progress."""
    t = _naive(now)
    row = _case_row(conn, case_id)
    if assignee is not None:
        names = assignable(conn, row["team"])
        if names is not None:
            match = [n for n in names if n.casefold() == assignee.strip().casefold()]
            if not match:
                shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
                raise CaseError(f"assignee: {assignee!r} cannot work {row['team']} cases; one of: {shown or 'nobody'}")
            assignee = match[0]
    conn.execute(update(cases).where(cases.c.id == case_id).values(assignee=assignee, updated_at=t, progress_at=t))
    _event(conn, case_id, t, actor, "assigned", {"from": row["assignee"], "to": assignee})


def set_priority(conn: Connection, case_id: int, priority: str, *, actor: str, now: datetime | None = None) -> None:
    if priority not in PRIORITIES:
        raise CaseError(f"priority: must be one of {', '.join(PRIORITIES)}, not {priority!r}")
    t = _naive(now)
    row = _case_row(conn, case_id)
    conn.execute(update(cases).where(cases.c.id == case_id).values(priority=priority, updated_at=t))
    _event(conn, case_id, t, actor, "priority", {"from": row["priority"], "to": priority})


def add_note(conn: Connection, case_id: int, text: str, *, actor: str, now: datetime | None = None) -> None:
    """A note in the case's history. Counts as progress."""
    if not text.strip():
        raise CaseError("note: empty")
    t = _naive(now)
    _case_row(conn, case_id)
    conn.execute(update(cases).where(cases.c.id == case_id).values(updated_at=t, progress_at=t))
    _event(conn, case_id, t, actor, "note", {"text": text.strip()[:5000]})


def list_cases(
    conn: Connection, *, status: str | Sequence[str] | None = None, team: str | None = None
) -> list[dict[str, Any]]:
    """Cases with their linked post and cluster counts, newest first."""
    n_posts = select(func.count()).select_from(case_posts).where(case_posts.c.case_id == cases.c.id).scalar_subquery()
    n_clusters = (
        select(func.count()).select_from(case_clusters).where(case_clusters.c.case_id == cases.c.id).scalar_subquery()
    )
    stmt = select(cases, n_posts.label("posts"), n_clusters.label("clusters")).order_by(cases.c.id.desc())
    if status:
        stmt = stmt.where(cases.c.status.in_([status] if isinstance(status, str) else list(status)))
    if team:
        stmt = stmt.where(cases.c.team == team)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def get_case(conn: Connection, case_id: int, *, post_limit: int = 200) -> dict[str, Any] | None:
    """A case with its history, linked clusters and linked posts (no author pseudonyms)."""
    row = conn.execute(select(cases).where(cases.c.id == case_id)).mappings().first()
    if row is None:
        return None
    case = dict(row)
    case["events"] = [
        {**dict(e), "detail": json.loads(e["detail"]) if e["detail"] else {}}
        for e in conn.execute(
            select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.id)
        ).mappings()
    ]
    case["clusters"] = [
        dict(c)
        for c in conn.execute(
            select(clusters.c.id, clusters.c.size, clusters.c.first_seen, clusters.c.last_seen)
            .join(case_clusters, case_clusters.c.cluster_id == clusters.c.id)
            .where(case_clusters.c.case_id == case_id)
            .order_by(clusters.c.size.desc())
        ).mappings()
    ]
    case["post_count"] = int(
        conn.execute(select(func.count()).select_from(case_posts).where(case_posts.c.case_id == case_id)).scalar_one()
    )
    case["posts"] = [
        dict(p)
        for p in conn.execute(
            select(
                posts.c.id,
                posts.c.source,
                posts.c.created_at,
                posts.c.lang,
                posts.c.category,
                posts.c.sentiment,
                posts.c.title,
                posts.c.text,
                posts.c.cluster_id,
            )
            .join(case_posts, case_posts.c.post_id == posts.c.id)
            .where(case_posts.c.case_id == case_id)
            .order_by(posts.c.created_at.desc(), posts.c.id.desc())
            .limit(post_limit)
        ).mappings()
    ]
    return case


def attach_new_posts(conn: Connection, *, now: datetime | None = None, actor: str = "openear") -> int:
    """Link the new posts of every open case's clusters to that case; returns how many were linked."""
    t = _naive(now)
    rows = conn.execute(
        select(case_clusters.c.case_id, posts.c.id)
        .join(cases, cases.c.id == case_clusters.c.case_id)
        .join(posts, posts.c.cluster_id == case_clusters.c.cluster_id)
        .outerjoin(
            case_posts, and_(case_posts.c.case_id == case_clusters.c.case_id, case_posts.c.post_id == posts.c.id)
        )
        .where(cases.c.status.in_(OPEN_STATUSES), case_posts.c.post_id.is_(None))
    ).all()
    by_case: dict[int, set[int]] = {}
    for cid, pid in rows:
        by_case.setdefault(cid, set()).add(pid)
    total = 0
    for cid, ids in sorted(by_case.items()):
        n = _add_posts(conn, cid, ids, t)
        _event(conn, cid, t, actor, "linked", {"posts": n, "reason": "new posts of a linked cluster"})
        conn.execute(update(cases).where(cases.c.id == cid).values(updated_at=t))
        total += n
    return total


def apply_case_rules(conn: Connection, cfg: TriageConfig, *, now: datetime | None = None) -> list[int]:
    """Open a case for each cluster a rule selects that no case links yet; returns the new cases' ids."""
    t = _naive(now)
    opened: list[int] = []
    linked = select(case_clusters.c.cluster_id)
    for rule in cfg.case_rules:
        candidates = conn.execute(
            select(clusters.c.id, clusters.c.size, clusters.c.representative_post_id)
            .where(clusters.c.size >= rule.min_cluster_size, clusters.c.id.not_in(linked))
            .order_by(clusters.c.size.desc(), clusters.c.id)
        ).all()
        for cid, size, rep_id in candidates:
            rep = conn.execute(select(posts).where(posts.c.id == rep_id)).mappings().first()
            if rep is None or rep["kind"] != "social":
                continue
            if rule.categories and rep["category"] not in rule.categories:
                continue
            if not rule.categories and rep["category"] in EXCLUDED_FROM_RULES:
                continue
            if rule.sentiment and _majority_sentiment(conn, cid) != rule.sentiment:
                continue
            prio = "high" if size >= rule.high_at and PRIORITIES.index(rule.priority) < 2 else rule.priority
            opened.append(
                open_case(
                    conn,
                    title=title_from(rep["title"] or rep["text"]),
                    team=route_post(cfg, dict(rep)),
                    actor=f"rule:{rule.name}",
                    origin=f"rule:{rule.name}",
                    now=t,
                    category=rep["category"],
                    priority=prio,
                    cluster_ids=[cid],
                )
            )
    return opened


def _majority_sentiment(conn: Connection, cluster_id: int) -> str | None:
    row = conn.execute(
        select(posts.c.sentiment, func.count().label("n"))
        .where(posts.c.cluster_id == cluster_id)
        .group_by(posts.c.sentiment)
        .order_by(func.count().desc(), posts.c.sentiment)
        .limit(1)
    ).first()
    return row[0] if row else None


# -- escalation --------------------------------------------------------------------------------------------------
def escalate(
    conn: Connection, case_id: int, *, rule: str, reason: str, actor: str = "openear", now: datetime | None = None
) -> Escalation:
    """Mark the case escalated and record why; the caller notifies the management group."""
    t = _naive(now)
    row = _case_row(conn, case_id)
    if row["status"] not in OPEN_STATUSES:
        raise CaseError(f"case {case_id}: {row['status']} cases are not escalated")
    conn.execute(
        update(cases)
        .where(cases.c.id == case_id)
        .values(status="escalated", escalated_at=t, updated_at=t)  # the SLA clock is not progress
    )
    _event(conn, case_id, t, actor, "escalated", {"rule": rule, "reason": reason, "from": row["status"]})
    return Escalation(case_id, rule, reason, row["title"], row["team"], row["priority"])


def _linked_between(conn: Connection, case_id: int, since: datetime, until: datetime) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(case_posts)
            .join(posts, posts.c.id == case_posts.c.post_id)
            .where(case_posts.c.case_id == case_id, posts.c.created_at >= since, posts.c.created_at < until)
        ).scalar_one()
    )


def check_escalations(conn: Connection, cfg: TriageConfig, *, now: datetime | None = None) -> list[Escalation]:
    """Apply the escalation rules to every open, not yet escalated case; escalates and returns the matches.

    - **priority**: the case's priority is one of ``escalation.priorities``;
    - **volume**: the case's linked posts written in the last ``volume_window_hours`` are at least
      ``volume_min_posts`` and at least ``volume_growth`` times those of the window before;
    - **sla**: nobody changed the status, assigned or wrote a note for longer than ``sla_hours[priority]``.
    """
    t = _naive(now)
    esc = cfg.escalation
    done: list[Escalation] = []
    window = timedelta(hours=esc.volume_window_hours)
    for row in (
        conn.execute(select(cases).where(cases.c.status.in_(("new", "investigating"))).order_by(cases.c.id))
        .mappings()
        .all()
    ):
        rule = reason = None
        if row["priority"] in esc.priorities:
            rule, reason = "priority", f"priority is {row['priority']}"
        if rule is None:
            recent = _linked_between(conn, row["id"], t - window, t)
            before = _linked_between(conn, row["id"], t - 2 * window, t - window)
            if recent >= esc.volume_min_posts and recent >= esc.volume_growth * max(before, 1):
                rule = "volume"
                reason = (
                    f"{recent} linked posts in the last {esc.volume_window_hours:g} h, {before} in the window before"
                )
        if rule is None:
            sla = esc.sla_hours.get(row["priority"])
            idle = t - row["progress_at"]
            if sla is not None and idle > timedelta(hours=sla):
                rule = "sla"
                reason = f"no progress for {idle.total_seconds() / 3600:.0f} h (SLA {sla:g} h for {row['priority']})"
        if rule and reason:
            done.append(escalate(conn, row["id"], rule=rule, reason=reason, now=t))
    return done


def escalation_message(e: Escalation, cfg: TriageConfig) -> Any:
    """The message the management group gets for an escalation."""
    from openear.channels import Message

    return Message(
        subject=f"[openear] Escalated case #{e.case_id}: {e.title}",
        text=(
            f"Case #{e.case_id} ({e.priority} priority, owned by {e.team}) was escalated to {cfg.management}.\n"
            f"Rule: {e.rule}. {e.reason}.\n"
        ),
        ref=f"case:{e.case_id}",
        fields={"case": f"#{e.case_id}", "team": e.team, "priority": e.priority, "rule": e.rule},
        link=f"/cases/{e.case_id}",
    )


# -- one triage pass ---------------------------------------------------------------------------------------------
def case_for_alert(conn: Connection, cfg: TriageConfig, alert: dict[str, Any], *, now: datetime | None = None) -> int:
    """Open (or join: an open case of the same category that an alert opened) a case for a category spike."""
    from openear.alerts import describe
    from openear.store.schema import alerts as alerts_table

    t = _naive(now)
    category = alert["value"]
    existing = conn.execute(
        select(cases.c.id)
        .where(cases.c.category == category, cases.c.origin.like("alert:%"), cases.c.status.in_(OPEN_STATUSES))
        .order_by(cases.c.id.desc())
        .limit(1)
    ).scalar()
    actor = f"alert:{alert['id']}"
    if existing is None:
        case_id = open_case(
            conn,
            title=describe(alert),
            team=cfg.owner_of(category) or cfg.management,
            actor=actor,
            origin=actor,
            now=t,
            category=category,
            priority=cfg.alerts.case_priority if cfg.alerts.case_priority in PRIORITIES else "high",
            post_ids=alert["post_ids"],
        )
    else:
        case_id = int(existing)
        link(conn, case_id, actor=actor, now=t, post_ids=alert["post_ids"])
    conn.execute(update(alerts_table).where(alerts_table.c.id == alert["id"]).values(case_id=case_id))
    return case_id


def follow_alerts(conn: Connection, cfg: TriageConfig, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Recount the alerts whose bucket got posts after them (:func:`openear.alerts.refresh`); a case an alert opened
    gets the new posts, and its title the new count while it still reads as the alert described itself."""
    from openear.alerts import describe, refresh

    t = _naive(now)
    changed = refresh(conn, cfg.alerts, now=t)
    for a in changed:
        if a.get("case_id") is None:
            continue
        actor = f"alert:{a['id']}"
        link(conn, a["case_id"], actor=actor, now=t, post_ids=a["post_ids"])
        title = conn.execute(select(cases.c.title).where(cases.c.id == a["case_id"])).scalar()
        if title == a["previous"] and title != describe(a):
            conn.execute(update(cases).where(cases.c.id == a["case_id"]).values(title=describe(a), updated_at=t))
            _event(conn, a["case_id"], t, actor, "retitled", {"from": title, "to": describe(a)})
    return changed


def run(store: Any, cfg: TriageConfig, *, now: datetime | None = None, notifier: Any = None) -> SyncResult:
    """One pass: attach new cluster posts, apply case rules, detect spikes (opening cases for category spikes),
    escalate, then notify owners of alerts and the management group of escalations (deliveries are recorded)."""
    from openear import alerts as alerts_mod
    from openear.channels import ChannelNotifier, record_deliveries

    t = _naive(now)
    result = SyncResult()
    with store.begin() as conn:
        result.attached = attach_new_posts(conn, now=t)
        result.opened = apply_case_rules(conn, cfg, now=t)
        result.refreshed = follow_alerts(conn, cfg, now=t)
        result.alerts = alerts_mod.detect(conn, cfg.alerts, now=t)
        for a in result.alerts:
            if a["dimension"] == "category" and a["granularity"] == "day" and cfg.alerts.open_cases:
                a["case_id"] = case_for_alert(conn, cfg, a, now=t)
        result.escalations = check_escalations(conn, cfg, now=t)
    notifier = notifier or ChannelNotifier(cfg.channels)
    sent = []
    for a in result.alerts:
        owner = cfg.owner_of(a["value"]) if a["dimension"] == "category" else None
        team = cfg.team(owner) if owner else cfg.management_team
        sent += notifier.notify(team or cfg.management_team, alerts_mod.alert_message(a))
    for e in result.escalations:
        sent += notifier.notify(cfg.management_team, escalation_message(e, cfg))
    result.deliveries = sent
    with store.begin() as conn:
        record_deliveries(conn, sent, t)
    return result


def _notify(store: Any, cfg: TriageConfig, items: list[tuple[Any, Any]], t: datetime, notifier: Any) -> list[Any]:
    from openear.channels import ChannelNotifier, record_deliveries

    notifier = notifier or ChannelNotifier(cfg.channels)
    sent: list[Any] = []
    for team, message in items:
        sent += notifier.notify(team, message)
    with store.begin() as conn:
        record_deliveries(conn, sent, t)
    return sent


def check_alerts(store: Any, cfg: TriageConfig, *, now: datetime | None = None, notifier: Any = None) -> list[dict]:
    """The spike-alert job: detect spikes (a category spike opens or joins a case) and tell the owners."""
    from openear import alerts as alerts_mod

    t = _naive(now)
    with store.begin() as conn:
        follow_alerts(conn, cfg, now=t)
        found = alerts_mod.detect(conn, cfg.alerts, now=t)
        for a in found:
            if a["dimension"] == "category" and a["granularity"] == "day" and cfg.alerts.open_cases:
                a["case_id"] = case_for_alert(conn, cfg, a, now=t)
    items = []
    for a in found:
        owner = cfg.owner_of(a["value"]) if a["dimension"] == "category" else None
        items.append(((cfg.team(owner) if owner else None) or cfg.management_team, alerts_mod.alert_message(a)))
    _notify(store, cfg, items, t, notifier)
    return found


def sweep_escalations(
    store: Any, cfg: TriageConfig, *, now: datetime | None = None, notifier: Any = None
) -> list[Escalation]:
    """The escalation job: apply the priority, volume and SLA rules and tell the management group."""
    t = _naive(now)
    with store.begin() as conn:
        done = check_escalations(conn, cfg, now=t)
    _notify(store, cfg, [(cfg.management_team, escalation_message(e, cfg)) for e in done], t, notifier)
    return done
