"""Triage pages: the cases board (by status, filter by team), a case (history, notes, linked posts), spike alerts
and the reports archive.

Every signed-in user may see the board, alerts and archive (aggregates and titles). A case's linked post text is
shown to the roles that may read posts. Only triage roles change cases and alerts: ``auth.TRIAGE_ROLES`` when the
web app defines it, else admin only. Every change is in the case's history and the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from openear import alerts as alerts_mod
from openear import audit, scheduler, triage
from openear.web import auth
from openear.web.pages import POST_READERS, _render, _snippet, _store, _user, _when
from openear.web.roles import requires

__all__ = ["TRIAGE_ROLES", "router"]

router = APIRouter()
TRIAGE_ROLES: tuple[str, ...] = tuple(getattr(auth, "TRIAGE_ROLES", ("admin",)))
PRIORITY_TONE = {"urgent": "negative", "high": "negative", "normal": "neutral", "low": "neutral"}


def _can_triage(user: auth.User) -> bool:
    return user.role in TRIAGE_ROLES


def _triager(request: Request) -> auth.User:
    user = _user(request)
    if not _can_triage(user):
        raise HTTPException(403)
    return user


def _cfg(request: Request) -> triage.TriageConfig:
    cfg = getattr(request.app.state, "triage_config", None)
    if cfg is None:
        cfg = triage.load_triage(request.app.state.settings)
        request.app.state.triage_config = cfg
    return cfg  # type: ignore[no-any-return]


def _back(case_id: int) -> Response:
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@router.get("/cases", include_in_schema=False, dependencies=[Depends(requires("cases.read"))])
def cases_board(request: Request, team: str = "") -> Response:
    user = _user(request)
    cfg = _cfg(request)
    with _store(request).connect() as conn:
        rows = triage.list_cases(conn, team=team or None)
    columns = [
        {"status": s, "cases": [{**r, "opened": _when(r["created_at"])} for r in rows if r["status"] == s]}
        for s in triage.STATUSES
    ]
    return _render(
        request, "cases.html", nav="cases", columns=columns, team=team, teams=[t.name for t in cfg.teams],
        can_triage=_can_triage(user), tones=PRIORITY_TONE, priorities=triage.PRIORITIES,
    )


@router.post("/cases", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def cases_open(
    request: Request, post_id: str = Form(""), cluster_id: str = Form(""), title: str = Form(""),
    priority: str = Form("normal"),
) -> Response:
    user = _triager(request)
    try:
        pid = int(post_id) if post_id.strip() else None
        cid = int(cluster_id) if cluster_id.strip() else None
    except ValueError:
        raise HTTPException(422) from None
    try:
        with _store(request).begin() as conn:
            case_id = triage.open_case_for(
                conn, _cfg(request), actor=user.username, post_id=pid, cluster_id=cid, title=title or None,
                priority=priority,
            )
    except triage.CaseError as exc:
        raise HTTPException(400, str(exc)) from None
    return _back(case_id)


@router.get("/cases/{case_id}", include_in_schema=False, dependencies=[Depends(requires("cases.read"))])
def case_page(request: Request, case_id: int) -> Response:
    user = _user(request)
    store = _store(request)
    with store.connect() as conn:
        case = triage.get_case(conn, case_id)
    if case is None:
        raise HTTPException(404)
    reads_posts = user.role in POST_READERS
    if reads_posts:
        audit.log(store, user.username, "case.view", f"case:{case_id}")
    events = [{**e, "when": _when(e["at"])} for e in reversed(case["events"])]
    linked = [
        {**p, "when": _when(p["created_at"]), "snippet": _snippet(p["title"] or p["text"])} for p in case["posts"]
    ] if reads_posts else []
    return _render(
        request, "cases_detail.html", nav="cases", case=case, events=events, posts=linked,
        reads_posts=reads_posts, can_triage=_can_triage(user), opened=_when(case["created_at"]),
        next_statuses=sorted(triage.TRANSITIONS[case["status"]]), priorities=triage.PRIORITIES,
        tones=PRIORITY_TONE,
    )


@router.post("/cases/{case_id}/status", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def case_status(request: Request, case_id: int, status: str = Form(...), note: str = Form("")) -> Response:
    user = _triager(request)
    try:
        with _store(request).begin() as conn:
            triage.transition(conn, case_id, status, actor=user.username, note=note or None)
    except triage.CaseError as exc:
        raise HTTPException(404 if "no such case" in str(exc) else 400, str(exc)) from None
    return _back(case_id)


@router.post("/cases/{case_id}/note", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def case_note(request: Request, case_id: int, text: str = Form("")) -> Response:
    user = _triager(request)
    try:
        with _store(request).begin() as conn:
            triage.add_note(conn, case_id, text, actor=user.username)
    except triage.CaseError as exc:
        raise HTTPException(404 if "no such case" in str(exc) else 400, str(exc)) from None
    return _back(case_id)


@router.post("/cases/{case_id}/assign", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def case_assign(
    request: Request, case_id: int, assignee: str = Form(""), priority: str = Form("")
) -> Response:
    user = _triager(request)
    try:
        with _store(request).begin() as conn:
            case = triage.get_case(conn, case_id, post_limit=0)
            if case is None:
                raise HTTPException(404)
            if (assignee.strip() or None) != case["assignee"]:
                triage.assign(conn, case_id, assignee.strip()[:100] or None, actor=user.username)
            if priority and priority != case["priority"]:
                triage.set_priority(conn, case_id, priority, actor=user.username)
    except triage.CaseError as exc:
        raise HTTPException(400, str(exc)) from None
    return _back(case_id)


@router.get("/alerts", include_in_schema=False, dependencies=[Depends(requires("alerts.read"))])
def alerts_page(request: Request) -> Response:
    user = _user(request)
    with _store(request).connect() as conn:
        rows = alerts_mod.list_alerts(conn)
    items = [{**a, "what": alerts_mod.describe(a), "when": _when(a["created_at"])} for a in rows]
    return _render(request, "alerts.html", nav="alerts", alerts=items, can_triage=_can_triage(user))


@router.post("/alerts/{alert_id}/ack", include_in_schema=False, dependencies=[Depends(requires("cases.write"))])
def alert_ack(request: Request, alert_id: int, status: str = Form("acknowledged")) -> Response:
    user = _triager(request)
    if status not in ("acknowledged", "closed", "open"):
        raise HTTPException(422)
    with _store(request).begin() as conn:
        if not alerts_mod.acknowledge(conn, alert_id, actor=user.username, status=status):
            raise HTTPException(404)
    return RedirectResponse("/alerts", status_code=303)


@router.get("/reports", include_in_schema=False, dependencies=[Depends(requires("reports.read"))])
def reports_archive(request: Request) -> Response:
    _user(request)
    with _store(request).connect() as conn:
        rows = scheduler.list_archive(conn)
    items = [
        {**r, "since": r["period_since"].strftime("%Y-%m-%d"), "until": r["period_until"].strftime("%Y-%m-%d"),
         "created": _when(r["created_at"])}
        for r in rows
    ]
    return _render(request, "reports_archive.html", nav="reports", reports=items)


@router.get("/reports/{report_id}", include_in_schema=False, dependencies=[Depends(requires("reports.read"))])
def report_file(request: Request, report_id: int) -> Response:
    user = _user(request)
    store = _store(request)
    with store.connect() as conn:
        row = next((r for r in scheduler.list_archive(conn, limit=100000) if r["id"] == report_id), None)
    if row is None:
        raise HTTPException(404)
    root = scheduler.archive_dir(request.app.state.settings.home).resolve()
    path = (root / row["path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(404)
    audit.log(store, user.username, "report.view", f"report:{report_id}")
    media = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}.get(row["format"], "application/pdf")
    headers: dict[str, Any] = {}
    if row["format"] == "html":  # an archived report is a document, never a page of the app: no scripts at all
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return FileResponse(Path(path), media_type=media, filename=path.name, headers=headers)
