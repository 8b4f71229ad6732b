"""Triage pages: the cases board (by status, filter by team), a case (history, notes, linked posts), spike alerts
and the reports archive.

Cases and alerts are for the triage roles (analyst, owner, admin); an owner sees and changes only the cases and
alerts of their teams, and another team's case answers 404 as if it did not exist
(:mod:`openear.web.triage_access`). A case's linked post text is shown to the roles that may read posts; its
clusters (each one's first post excerpt and counts, as the overview shows clusters) to every triage role. The
reports archive is for every role. Every view writes one audit record; every change is in the case's history and
the audit log.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select

from openear import alerts as alerts_mod
from openear import audit, scheduler, triage
from openear.labels import language_name
from openear.store.schema import report_archive
from openear.web import auth
from openear.web.pages import _cluster_posts_link, _render, _snippet, _store, _user, _when
from openear.web.roles import can, may_access_team_object, requires
from openear.web.triage_access import (
    Forbidden,
    Hidden,
    change_case,
    cluster_summaries,
    open_case_as,
    triage_config,
    visible_alert,
    visible_alerts,
    visible_case,
    visible_cases,
)

__all__ = ["REPORT_CSP", "REPORT_TYPES", "TRIAGE_ROLES", "archived_report", "router"]

router = APIRouter()
TRIAGE_ROLES: tuple[str, ...] = auth.TRIAGE_ROLES
ObjectId = Annotated[int, Path(ge=1, le=2**62)]
PRIORITY_TONE = {"urgent": "negative", "high": "negative", "normal": "neutral", "low": "neutral"}
# An archived HTML report is a document, not a page of the app: inline styles and data: images, nothing else.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
REPORT_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


def _can_triage(user: auth.User) -> bool:
    return can(user, "cases.write")


def _back(case_id: int) -> Response:
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


def _form_id(value: str) -> int | None:
    try:
        n = int(value) if value.strip() else None
    except ValueError:
        raise HTTPException(422) from None
    if n is not None and not 1 <= n <= 2**62:
        raise HTTPException(422)
    return n


@router.get("/cases", include_in_schema=False, dependencies=[Depends(requires("cases.read"))])
def cases_board(request: Request, team: str = "") -> Response:
    user = _user(request)
    cfg = triage_config(request)
    store = _store(request)
    with store.connect() as conn:
        rows = visible_cases(conn, user, team=team[:100] or None)
    audit.log(store, user.username, "cases.list", "cases", {"team": team[:100], "results": len(rows)})
    columns = [
        {"status": s, "cases": [{**r, "opened": _when(r["created_at"])} for r in rows if r["status"] == s]}
        for s in triage.STATUSES
    ]
    teams = [t.name for t in cfg.teams if may_access_team_object(user, t.name)]
    return _render(
        request,
        "cases.html",
        nav="cases",
        columns=columns,
        team=team,
        teams=teams,
        can_triage=_can_triage(user),
        reads_posts=can(user, "posts.read"),  # only they may flag a single post: owners flag clusters
        tones=PRIORITY_TONE,
        priorities=triage.PRIORITIES,
    )


@router.post("/cases", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def cases_open(
    request: Request,
    post_id: str = Form(""),
    cluster_id: str = Form(""),
    title: str = Form(""),
    priority: str = Form("normal"),
) -> Response:
    user = _user(request)
    pid, cid = _form_id(post_id), _form_id(cluster_id)
    try:
        with audit.transaction(_store(request)) as conn:
            case_id = open_case_as(
                conn,
                triage_config(request),
                user,
                post_id=pid,
                cluster_id=cid,
                title=title[:300] or None,
                priority=priority,
            )
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    except triage.DuplicateCase as exc:  # e.g. a second click, or a page older than the case: show that case
        if exc.case_id is None:
            raise HTTPException(409, str(exc)) from None
        return _back(exc.case_id)
    except triage.CaseError as exc:
        raise HTTPException(400, str(exc)) from None
    return _back(case_id)


@router.get("/cases/{case_id}", include_in_schema=False, dependencies=[Depends(requires("cases.read"))])
def case_page(request: Request, case_id: ObjectId) -> Response:
    user = _user(request)
    store = _store(request)
    reads_posts = can(user, "posts.read")
    try:
        with store.connect() as conn:
            case = visible_case(conn, user, case_id)
            summaries = cluster_summaries(conn, user, [c["id"] for c in case["clusters"]])
            assignees = triage.assignable(conn, case["team"]) if _can_triage(user) else None
    except Hidden:
        audit.log(store, user.username, "case.view", f"case:{case_id}", {"found": False})
        raise HTTPException(404) from None
    shown = {"posts": len(case["posts"]) if reads_posts else 0, "clusters": [c["id"] for c in case["clusters"]]}
    audit.log(store, user.username, "case.view", f"case:{case_id}", shown)
    events = [{**e, "when": _when(e["at"])} for e in reversed(case["events"])]
    in_case = {c["id"] for c in case["clusters"]}
    linked = (
        [
            {
                **p,
                "when": _when(p["created_at"]),
                "snippet": _snippet(p["title"] or p["text"]),
                "cluster": p["cluster_id"] if p["cluster_id"] in in_case else None,
            }
            for p in case["posts"]
        ]
        if reads_posts
        else []
    )
    return _render(
        request,
        "cases_detail.html",
        nav="cases",
        case=case,
        events=events,
        posts=linked,
        clusters=[_cluster_item(c, summaries.get(c["id"], {}), case_id, reads_posts) for c in case["clusters"]],
        reads_posts=reads_posts,
        can_triage=_can_triage(user),
        opened=_when(case["created_at"]),
        # in the lifecycle's order, so that the preselected choice is the next step, never "dismissed"
        next_statuses=[s for s in triage.STATUSES if s in triage.TRANSITIONS[case["status"]]],
        priorities=triage.PRIORITIES,
        tones=PRIORITY_TONE,
        assignees=assignees,
    )


def _cluster_item(
    cluster: dict[str, Any], summary: dict[str, Any], case_id: int, reads_posts: bool = False
) -> dict[str, Any]:
    """One of a case's clusters as its page shows it to every triage role, as the overview shows a cluster: the
    representative post's excerpt (a link to that post, and to the search ``cluster:ID`` listing all its posts, only
    when ``reads_posts``), aggregates, and the other cases linking it that the viewer may open."""
    first, last = cluster["first_seen"], cluster["last_seen"]
    return {
        "id": cluster["id"],
        "size": cluster["size"],
        "text": _snippet(summary.get("text") or summary.get("title")),
        "link": f"/posts/{summary['post_id']}" if summary.get("post_id") else None,
        "posts_link": _cluster_posts_link(cluster["id"]) if reads_posts else None,
        "category": summary.get("category"),
        "when": f"{first:%d %b %Y} to {last:%d %b %Y}" if first and last else "",
        "sentiment": summary.get("sentiment", {}),
        "lang": {language_name(code): n for code, n in summary.get("lang", {}).items()},
        "cases": [c for c in summary.get("cases", []) if c["id"] != case_id],
    }


def _change(request: Request, case_id: int, **changes: Any) -> Response:
    user = _user(request)
    try:
        with audit.transaction(_store(request)) as conn:
            change_case(conn, user, case_id, **changes)
    except Hidden:
        raise HTTPException(404) from None
    except triage.CaseError as exc:
        raise HTTPException(400, str(exc)) from None
    return _back(case_id)


@router.post("/cases/{case_id}/status", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def case_status(request: Request, case_id: ObjectId, status: str = Form(...), note: str = Form("")) -> Response:
    return _change(request, case_id, status=status[:20], note=note or None)


@router.post("/cases/{case_id}/note", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def case_note(request: Request, case_id: ObjectId, text: str = Form("")) -> Response:
    if not text.strip():
        raise HTTPException(400, "note: empty")
    return _change(request, case_id, note=text)


@router.post("/cases/{case_id}/assign", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def case_assign(request: Request, case_id: ObjectId, assignee: str = Form(""), priority: str = Form("")) -> Response:
    return _change(request, case_id, assignee=assignee, priority=priority or None)


@router.get("/alerts", include_in_schema=False, dependencies=[Depends(requires("alerts.read"))])
def alerts_page(request: Request) -> Response:
    user = _user(request)
    store = _store(request)
    with store.connect() as conn:
        rows = visible_alerts(conn, triage_config(request), user)[:200]
        hidden = {a["case_id"] for a in rows if a["case_id"] and not _case_visible(conn, user, a["case_id"])}
    audit.log(store, user.username, "alerts.view", "alerts", {"results": len(rows)})
    items = [
        {
            **a,
            "case_id": None if a["case_id"] in hidden else a["case_id"],
            "what": alerts_mod.describe(a),
            "when": _when(a["created_at"]),
        }
        for a in rows
    ]
    return _render(request, "alerts.html", nav="alerts", alerts=items, can_triage=_can_triage(user))


def _case_visible(conn: Any, user: auth.User, case_id: int) -> bool:
    try:
        visible_case(conn, user, case_id, post_limit=0)
    except Hidden:
        return False
    return True


@router.post("/alerts/{alert_id}/ack", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def alert_ack(request: Request, alert_id: ObjectId, status: str = Form("acknowledged")) -> Response:
    user = _user(request)
    if status not in ("acknowledged", "closed", "open"):
        raise HTTPException(422)
    try:
        with audit.transaction(_store(request)) as conn:
            visible_alert(conn, triage_config(request), user, alert_id)
            alerts_mod.acknowledge(conn, alert_id, actor=user.username, status=status)
    except Hidden:
        raise HTTPException(404) from None
    return RedirectResponse("/alerts", status_code=303)


@router.get("/reports", include_in_schema=False, dependencies=[Depends(requires("reports.read"))])
def reports_archive(request: Request) -> Response:
    user = _user(request)
    store = _store(request)
    with store.connect() as conn:
        rows = scheduler.list_archive(conn)
    audit.log(store, user.username, "reports.list", "reports", {"results": len(rows)})
    items = [
        {
            **r,
            "since": r["period_since"].strftime("%Y-%m-%d"),
            "until": r["period_until"].strftime("%Y-%m-%d"),
            "created": _when(r["created_at"]),
        }
        for r in rows
    ]
    return _render(request, "reports_archive.html", nav="reports", reports=items)


def archived_report(request: Request, user: auth.User, report_id: int) -> Response:
    """An archived report's file with its content type (HTML ones under a CSP that allows no script); 404 when
    the archive has no such report or its file is gone. Writes one ``report.view`` audit record."""
    store = _store(request)
    with store.connect() as conn:
        row = conn.execute(select(report_archive).where(report_archive.c.id == report_id)).mappings().first()
    path: FilePath | None = None
    if row is not None:
        root = scheduler.archive_dir(request.app.state.settings.home).resolve()
        candidate = (root / row["path"]).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            path = candidate
    audit.log(store, user.username, "report.view", f"report:{report_id}", {"found": path is not None})
    if row is None or path is None:
        raise HTTPException(404)
    media = REPORT_TYPES.get(row["format"], "application/octet-stream")
    headers: dict[str, Any] = {}
    if row["format"] == "html":  # an archived report is a document, never a page of the app: no scripts at all
        headers["Content-Security-Policy"] = REPORT_CSP
    return FileResponse(path, media_type=media, filename=path.name, headers=headers)


@router.get("/reports/{report_id}", include_in_schema=False, dependencies=[Depends(requires("reports.read"))])
def report_file(request: Request, report_id: ObjectId) -> Response:
    return archived_report(request, _user(request), report_id)
