"""The REST API for triage objects under ``/api/v1``: cases (list, one, flag, change, notes), spike alerts and the
reports archive.

Each route names its permission (:mod:`openear.web.roles`) and every object goes through the team check
(:mod:`openear.web.triage_access`): an owner lists, reads and changes only their teams' cases and alerts, and
another team's case answers 404, as an unknown one does. Changes are :mod:`openear.triage`'s (history and audit
records); every read writes exactly one audit record. Nothing here selects or groups by author: linked posts come
without their pseudonym, to roles that may read posts only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from openear import alerts as alerts_mod
from openear import audit, scheduler, triage
from openear.web.api import BEARER, ErrorOut, InvalidOut, Limit, Offset, _In, _store, _utc
from openear.web.auth import User
from openear.web.pages import _snippet
from openear.web.roles import can, requires
from openear.web.triage_access import (
    UNSET,
    Forbidden,
    Hidden,
    TransitionRefused,
    change_case,
    cluster_summaries,
    open_case_as,
    triage_config,
    visible_alert,
    visible_alerts,
    visible_case,
    visible_cases,
)
from openear.web.triage_pages import REPORT_TYPES, archived_report

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid input"},
    401: {"model": ErrorOut, "description": "Not signed in"},
    403: {"model": ErrorOut, "description": "The role does not allow this"},
    422: {"model": InvalidOut, "description": "Invalid fields: a wrong type, a value out of range, an unknown field"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such object, or one of a team the caller does not belong to"}
}
router = APIRouter(prefix="/api/v1", tags=["triage"], responses=_ERRORS, dependencies=[Depends(BEARER)])

Status = Literal["new", "investigating", "escalated", "resolved", "dismissed"]
Priority = Literal["low", "normal", "high", "urgent"]
AlertStatus = Literal["open", "acknowledged", "closed"]
Id = Annotated[int, Path(ge=1, le=2**62)]
assert set(Status.__args__) == set(triage.STATUSES) and set(Priority.__args__) == set(triage.PRIORITIES)  # type: ignore[attr-defined]


# -- models -----------------------------------------------------------------------------------------------------


class CaseOut(BaseModel):
    id: int
    title: str
    category: str | None
    team: str = Field(description="The owner team")
    assignee: str | None
    status: Status
    priority: Priority
    origin: str = Field(description="user:NAME, rule:NAME or alert:ID")
    created_at: datetime
    updated_at: datetime
    escalated_at: datetime | None
    closed_at: datetime | None
    posts: int = Field(description="Linked posts")
    clusters: int = Field(description="Linked clusters")


class CasePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[CaseOut]


class CaseEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    kind: str = Field(description="created, status, assigned, priority, note, linked or escalated")
    detail: dict[str, Any]


class CaseNoteOut(BaseModel):
    id: int
    at: datetime
    actor: str
    text: str


class CaseClusterOut(BaseModel):
    """A linked near-duplicate cluster, as the case page shows it: aggregates and its first post's excerpt."""

    id: int
    size: int
    first_seen: datetime | None
    last_seen: datetime | None
    excerpt: str | None = Field(default=None, description="The start of its representative post (pseudonymous)")
    category: str | None = Field(default=None, description="The category most of its posts have")
    sentiment: dict[str, int] = Field(default_factory=dict, description="Its posts by sentiment, most first")
    lang: dict[str, int] = Field(default_factory=dict, description="Its posts by language code, most first")
    representative_post_id: int | None = Field(
        default=None, description="Its representative post, for roles that may read posts (GET /posts/{id}); else null"
    )


class CasePostOut(BaseModel):
    """A linked post, pseudonymous: no author field at all."""

    id: int
    source: str
    created_at: datetime
    lang: str
    category: str | None
    sentiment: str | None
    title: str | None
    text: str
    cluster_id: int | None


class CaseDetail(CaseOut):
    next_statuses: list[Status] = Field(description="The statuses the lifecycle allows next")
    history: list[CaseEventOut]
    notes: list[CaseNoteOut]
    clusters_linked: list[CaseClusterOut]
    linked_posts: list[CasePostOut] = Field(
        description="The newest linked posts (at most post_limit), for roles that may read posts; else empty"
    )


class CaseIn(_In):
    """Flag exactly one post or one cluster; title, category and owner team come from it unless given."""

    post_id: int | None = Field(default=None, ge=1, le=2**62, description="Needs a role that reads posts")
    cluster_id: int | None = Field(default=None, ge=1, le=2**62)
    title: str | None = Field(default=None, min_length=1, max_length=300)
    priority: Priority = "normal"
    team: str | None = Field(default=None, min_length=1, max_length=100, description="Default: by routing")


class CasePatch(_In):
    """The fields to change; those left out stay as they are. ``assignee: null`` clears the assignee."""

    # Left out, status and priority stay as they are (None here); an explicit null is a 422: only the assignee
    # can be cleared.
    status: Status = None  # type: ignore[assignment]
    note: str | None = Field(default=None, max_length=5000, description="Recorded with the status change")
    assignee: str | None = Field(default=None, max_length=100)
    priority: Priority = None  # type: ignore[assignment]


class NoteIn(_In):
    text: str = Field(min_length=1, max_length=5000)


class AlertOut(BaseModel):
    id: int
    dimension: Literal["category", "source", "lang"]
    value: str
    granularity: Literal["hour", "day"]
    bucket_start: datetime
    observed: int
    expected: float
    score: float
    status: AlertStatus
    created_at: datetime
    description: str
    team: str = Field(description="The team it routes to (the management group for sources and languages)")
    terms: list[str]
    post_ids: list[int] = Field(description="The posts that drove it, for roles that may read posts; else empty")
    cluster_ids: list[int]
    case_id: int | None = Field(description="Its case, when the caller may see it")


class AlertPatch(_In):
    status: AlertStatus


class AlertPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[AlertOut]


class ReportOut(BaseModel):
    id: int
    kind: str = Field(description="daily, weekly or adhoc")
    audience: str = Field(description="A team, or the management group")
    period_since: datetime
    period_until: datetime
    format: Literal["pdf", "html"]
    created_at: datetime
    url: str = Field(description="Where to download it")


class ReportPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ReportOut]


# -- helpers ----------------------------------------------------------------------------------------------------


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _case_out(row: dict[str, Any], posts: int, clusters: int) -> CaseOut:
    times = {k: _aware(row[k]) for k in ("created_at", "updated_at", "escalated_at", "closed_at")}
    keep = {k: row[k] for k in ("id", "title", "category", "team", "assignee", "status", "priority", "origin")}
    return CaseOut(**keep, **times, posts=posts, clusters=clusters)


def _cluster_out(cluster: dict[str, Any], summary: dict[str, Any]) -> CaseClusterOut:
    return CaseClusterOut(
        id=cluster["id"],
        size=cluster["size"],
        first_seen=_aware(cluster["first_seen"]),
        last_seen=_aware(cluster["last_seen"]),
        excerpt=_snippet(summary.get("text") or summary.get("title")) or None,
        category=summary.get("category"),
        sentiment=summary.get("sentiment", {}),
        lang=summary.get("lang", {}),
        representative_post_id=summary.get("post_id"),
    )


def _case_detail(case: dict[str, Any], reads_posts: bool, summaries: dict[int, dict[str, Any]]) -> CaseDetail:
    base = _case_out(case, case["post_count"], len(case["clusters"])).model_dump()
    history = [CaseEventOut(**{**e, "at": _utc(e["at"])}) for e in case["events"]]
    notes = [
        CaseNoteOut(id=e.id, at=e.at, actor=e.actor, text=str(e.detail.get("text", "")))
        for e in history
        if e.kind == "note"
    ]
    return CaseDetail(
        **base,
        next_statuses=sorted(triage.TRANSITIONS[case["status"]]),
        history=history,
        notes=notes,
        clusters_linked=[_cluster_out(c, summaries.get(c["id"], {})) for c in case["clusters"]],
        linked_posts=[CasePostOut(**{**p, "created_at": _utc(p["created_at"])}) for p in case["posts"]]
        if reads_posts
        else [],
    )


# -- cases ------------------------------------------------------------------------------------------------------


@router.get("/cases", response_model=CasePage)
def list_cases(
    request: Request,
    status: Status | None = None,
    team: Annotated[str, Query(max_length=100)] = "",
    priority: Priority | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    user: User = Depends(requires("cases.read")),
) -> Any:
    """Cases the caller may see, newest first: every team's for analysts and admins, an owner's teams' for owners."""
    store = _store(request)
    with store.connect() as conn:
        rows = visible_cases(conn, user, status=status, team=team or None, priority=priority)
    detail = {"status": status, "team": team, "priority": priority, "offset": offset, "results": len(rows)}
    audit.log(store, user.username, "cases.list", "api:cases", {k: v for k, v in detail.items() if v is not None})
    items = [_case_out(r, int(r["posts"]), int(r["clusters"])) for r in rows[offset : offset + limit]]
    return CasePage(total=len(rows), limit=limit, offset=offset, items=items)


@router.get("/cases/{case_id}", response_model=CaseDetail, responses=_NOT_FOUND)
def get_case(
    request: Request,
    case_id: Id,
    post_limit: Annotated[int, Query(ge=0, le=1000)] = 200,
    user: User = Depends(requires("cases.read")),
) -> Any:
    """One case: history, notes, linked clusters and (for roles that may read posts) its newest linked posts."""
    store = _store(request)
    reads_posts = can(user, "posts.read")
    try:
        with store.connect() as conn:
            case = visible_case(conn, user, case_id, post_limit=post_limit if reads_posts else 0)
            summaries = cluster_summaries(conn, user, [c["id"] for c in case["clusters"]])
    except Hidden:
        audit.log(store, user.username, "case.view", f"case:{case_id}", {"api": True, "found": False})
        raise HTTPException(404) from None
    shown = {"api": True, "posts": len(case["posts"]), "clusters": [c["id"] for c in case["clusters"]]}
    audit.log(store, user.username, "case.view", f"case:{case_id}", shown)
    return _case_detail(case, reads_posts, summaries)


class DuplicateOut(ErrorOut):
    case_id: int | None = Field(description="The open case that links it already; null when you may not see it")


@router.post(
    "/cases",
    response_model=CaseOut,
    status_code=201,
    responses={409: {"model": DuplicateOut, "description": "An open case links this post or cluster already"}},
)
def create_case(request: Request, body: CaseIn, user: User = Depends(requires("cases.write"))) -> Any:
    """Flag a post or a near-duplicate cluster for investigation. Owners open cases for their own teams only. One
    open case per post or cluster: flagging one that an open case links already is a 409 naming that case."""
    try:
        with audit.transaction(_store(request)) as conn:
            case_id = open_case_as(
                conn,
                triage_config(request),
                user,
                post_id=body.post_id,
                cluster_id=body.cluster_id,
                title=body.title,
                priority=body.priority,
                team=body.team,
            )
            case = visible_case(conn, user, case_id, post_limit=0)
    except Forbidden as exc:
        return _error(403, str(exc))
    except triage.DuplicateCase as exc:
        return JSONResponse({"error": str(exc), "case_id": exc.case_id}, status_code=409)
    except triage.CaseError as exc:
        return _error(400, str(exc))
    return _case_out(case, case["post_count"], len(case["clusters"]))


@router.patch(
    "/cases/{case_id}",
    response_model=CaseOut,
    responses={**_NOT_FOUND, 409: {"model": ErrorOut, "description": "The lifecycle does not allow this status"}},
)
def patch_case(request: Request, case_id: Id, body: CasePatch, user: User = Depends(requires("cases.write"))) -> Any:
    """Change a case's status (a lifecycle step, with an optional note), assignee or priority. Each change is in
    the case's history and the audit log; a status the lifecycle does not allow from the current one is 409."""
    given = body.model_fields_set
    try:
        with audit.transaction(_store(request)) as conn:
            case = change_case(
                conn,
                user,
                case_id,
                status=body.status,
                note=body.note,
                assignee=body.assignee if "assignee" in given else UNSET,
                priority=body.priority,
            )
    except Hidden:
        raise HTTPException(404) from None
    except TransitionRefused as exc:
        return _error(409, str(exc))
    except triage.CaseError as exc:
        return _error(400, str(exc))
    return _case_out(case, case["post_count"], len(case["clusters"]))


@router.post("/cases/{case_id}/notes", response_model=CaseNoteOut, status_code=201, responses=_NOT_FOUND)
def add_note(request: Request, case_id: Id, body: NoteIn, user: User = Depends(requires("cases.write"))) -> Any:
    """Add a note to a case's history."""
    if not body.text.strip():
        return _error(400, "text: empty")
    try:
        with audit.transaction(_store(request)) as conn:
            case = change_case(conn, user, case_id, note=body.text)
    except Hidden:
        raise HTTPException(404) from None
    except triage.CaseError as exc:
        return _error(400, str(exc))
    last = case["events"][-1]
    return CaseNoteOut(id=last["id"], at=_utc(last["at"]), actor=last["actor"], text=last["detail"].get("text", ""))


# -- alerts -----------------------------------------------------------------------------------------------------


@router.get("/alerts", response_model=AlertPage)
def list_alerts(
    request: Request,
    status: AlertStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    user: User = Depends(requires("alerts.read")),
) -> Any:
    """Spike alerts the caller may see, newest first: all for analysts and admins; for owners, those whose
    category routes to one of their teams (source and language spikes go to the management group)."""
    store = _store(request)
    reads_posts = can(user, "posts.read")
    with store.connect() as conn:
        rows = visible_alerts(conn, triage_config(request), user, status=status)
        items = [_alert_out(conn, user, a, reads_posts) for a in rows[offset : offset + limit]]
    audit.log(store, user.username, "alerts.view", "api:alerts", {"status": status, "results": len(rows)})
    return AlertPage(total=len(rows), limit=limit, offset=offset, items=items)


def _alert_out(conn: Any, user: User, a: dict[str, Any], reads_posts: bool) -> AlertOut:
    case_id = a["case_id"]
    if case_id:
        try:
            visible_case(conn, user, case_id, post_limit=0)
        except Hidden:
            case_id = None
    return AlertOut(
        **{k: a[k] for k in ("id", "dimension", "value", "granularity", "observed", "expected", "score")},
        status=a["status"],
        bucket_start=_utc(a["bucket_start"]),
        created_at=_utc(a["created_at"]),
        description=alerts_mod.describe(a),
        team=a["team"],
        terms=[str(t) for t in a["terms"]],
        post_ids=[int(p) for p in a["post_ids"]] if reads_posts else [],
        cluster_ids=[int(c) for c in a["cluster_ids"]],
        case_id=case_id,
    )


@router.get("/alerts/{alert_id}", response_model=AlertOut, responses=_NOT_FOUND)
def get_alert(request: Request, alert_id: Id, user: User = Depends(requires("alerts.read"))) -> Any:
    """One spike alert (404 for an alert of a team the caller does not belong to)."""
    store = _store(request)
    try:
        with store.connect() as conn:
            out = _alert_out(
                conn, user, visible_alert(conn, triage_config(request), user, alert_id), can(user, "posts.read")
            )
    except Hidden:
        audit.log(store, user.username, "alert.view", f"alert:{alert_id}", {"found": False})
        raise HTTPException(404) from None
    audit.log(store, user.username, "alert.view", f"alert:{alert_id}")
    return out


@router.patch("/alerts/{alert_id}", response_model=AlertOut, responses=_NOT_FOUND)
def patch_alert(request: Request, alert_id: Id, body: AlertPatch, user: User = Depends(requires("cases.write"))) -> Any:
    """Acknowledge, close or reopen a spike alert (audited; one that changes nothing as a view, alert.view)."""
    cfg = triage_config(request)
    try:
        with audit.transaction(_store(request)) as conn:
            a = visible_alert(conn, cfg, user, alert_id)
            if a["status"] != body.status:
                alerts_mod.acknowledge(conn, alert_id, actor=user.username, status=body.status)
            else:  # nothing changed, and the answer shows the alert as GET does: audited as that view
                audit.record(conn, user.username, "alert.view", f"alert:{alert_id}")
            out = _alert_out(conn, user, visible_alert(conn, cfg, user, alert_id), can(user, "posts.read"))
    except Hidden:
        raise HTTPException(404) from None
    return out


# -- reports ----------------------------------------------------------------------------------------------------


@router.get("/reports", response_model=ReportPage)
def list_reports(
    request: Request, limit: Limit = 50, offset: Offset = 0, user: User = Depends(requires("reports.read"))
) -> Any:
    """The reports archive (daily and weekly reports per team and for management), newest period first."""
    store = _store(request)
    with store.connect() as conn:
        rows = scheduler.list_archive(conn, limit=1_000_000)
    audit.log(store, user.username, "reports.list", "api:reports", {"offset": offset, "results": len(rows)})
    items = [
        ReportOut(
            id=r["id"],
            kind=r["kind"],
            audience=r["audience"],
            format=r["format"],
            period_since=_utc(r["period_since"]),
            period_until=_utc(r["period_until"]),
            created_at=_utc(r["created_at"]),
            url=f"/api/v1/reports/{r['id']}",
        )
        for r in rows[offset : offset + limit]
    ]
    return ReportPage(total=len(rows), limit=limit, offset=offset, items=items)


@router.get(
    "/reports/{report_id}",
    response_class=Response,
    responses={
        **_NOT_FOUND,
        200: {
            "description": "The archived file: a PDF, or an HTML document (served under a CSP without scripts)",
            "content": {
                t.split(";")[0]: {"schema": {"type": "string", "format": "binary"}} for t in REPORT_TYPES.values()
            },
        },
    },
)
def get_report(request: Request, report_id: Id, user: User = Depends(requires("reports.read"))) -> Response:
    """Download one archived report with its content type."""
    return archived_report(request, user, report_id)
