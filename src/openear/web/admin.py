"""Admin pages: users and roles (and their API tokens), the audit log (browse, verify, export), settings and
sources. Every change is audited in the transaction that makes it; every view of the audit log is audited too.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select, update

from openear import audit, overrides
from openear.collector import source_statuses
from openear.store import Store
from openear.store import queries as q
from openear.store.schema import audit_log, sessions, users
from openear.web import auth, exports, membership, tokens
from openear.web.roles import requires
from openear.web.triage_access import triage_config

__all__ = ["router"]

router = APIRouter()
AUDIT_PAGE = 50
AUDIT_EXPORT_MAX = 200_000


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def _me(request: Request) -> auth.User:
    user: auth.User | None = request.state.user
    if user is None:
        raise HTTPException(401)
    return user


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("user", request.state.user)
    context.setdefault("nav", "")
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status_code)


# -- users and roles --------------------------------------------------------------------------------------------


def _users_page(request: Request, status_code: int = 200, **flash: Any) -> Response:
    with _store(request).connect() as conn:
        rows = conn.execute(
            select(users.c.id, users.c.username, users.c.role, users.c.disabled, users.c.created_at).order_by(
                users.c.username
            )
        ).all()
        live = dict(conn.execute(select(sessions.c.user_id, func.count()).group_by(sessions.c.user_id)).all())
        toks = tokens.list_tokens(conn)
        teams = membership.teams_by_user(conn)
    return _render(
        request,
        "admin_users.html",
        status_code=status_code,
        nav="users",
        users=[{**dict(r._mapping), "sessions": int(live.get(r.id, 0)), "teams": teams.get(r.id, [])} for r in rows],
        tokens=toks,
        roles=auth.ROLES,
        all_teams=_known_teams(request),
        flash=flash.get("flash"),
        error=flash.get("error"),
        password=flash.get("password"),
    )


@router.get("/admin/users", include_in_schema=False, dependencies=[Depends(requires("users.manage"))])
def users_page(request: Request) -> Response:
    audit.log(_store(request), _me(request).username, "users.view", "users")
    return _users_page(request)


def _username(conn: Any, user_id: int) -> str:
    name = conn.execute(select(users.c.username).where(users.c.id == user_id)).scalar()
    if name is None:
        raise HTTPException(404)
    return str(name)


def _known_teams(request: Request) -> list[str]:
    return [t.name for t in triage_config(request).teams]


@router.post("/admin/users", include_in_schema=False, dependencies=[Depends(requires("users.manage"))])
def add_user(
    request: Request, username: str = Form(...), role: str = Form(...), team: list[str] = Form([])
) -> Response:
    """Add a user with a generated password, shown once; an owner with their teams."""
    me = _me(request)
    password = auth.generate_password()
    teams = [t for t in team if t.strip()]
    try:
        with audit.transaction(_store(request)) as conn:
            if conn.execute(select(users.c.id).where(users.c.username == username.strip())).first():
                raise ValueError("That username is taken.")
            auth.create_user(conn, username, password, role)
            audit.record(conn, me.username, "user.add", f"user:{username.strip()}", {"role": role})
            if teams:
                _, after = membership.set_user_teams(conn, username, teams, _known_teams(request))
                audit.record(conn, me.username, "user.teams", f"user:{username.strip()}", {"from": [], "to": after})
    except ValueError as exc:
        return _users_page(request, 400, error=str(exc))
    return _users_page(request, flash=f"User {username.strip()} added. Their one-time password:", password=password)


@router.post("/admin/users/{user_id}/role", include_in_schema=False, dependencies=[Depends(requires("users.manage"))])
def set_role(request: Request, user_id: int, role: str = Form(...)) -> Response:
    """Change a user's role; their sessions end (they sign in again with the new role)."""
    me = _me(request)
    if role not in auth.ROLES:
        return _users_page(request, 400, error="Unknown role.")
    with audit.transaction(_store(request)) as conn:
        name = _username(conn, user_id)
        if user_id == me.id:
            return _users_page(request, 400, error="You cannot change your own role.")
        old = conn.execute(select(users.c.role).where(users.c.id == user_id)).scalar()
        conn.execute(update(users).where(users.c.id == user_id).values(role=role))
        conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
        audit.record(conn, me.username, "user.role", f"user:{name}", {"from": old, "to": role})
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/teams", include_in_schema=False, dependencies=[Depends(requires("users.manage"))])
def set_teams(request: Request, user_id: int, team: list[str] = Form([])) -> Response:
    """Set the teams an owner belongs to (the cases and alerts they see); takes effect on their next request."""
    me = _me(request)
    try:
        with audit.transaction(_store(request)) as conn:
            name = _username(conn, user_id)
            before, after = membership.set_user_teams(conn, name, team, _known_teams(request))
            if before != after:
                audit.record(conn, me.username, "user.teams", f"user:{name}", {"from": before, "to": after})
    except ValueError as exc:
        return _users_page(request, 400, error=str(exc))
    return RedirectResponse("/admin/users", status_code=303)


@router.post(
    "/admin/users/{user_id}/disable", include_in_schema=False, dependencies=[Depends(requires("users.manage"))]
)
def disable_user(request: Request, user_id: int, disabled: bool = Form(...)) -> Response:
    """Disable (ending every session and token use) or re-enable a user."""
    me = _me(request)
    with audit.transaction(_store(request)) as conn:
        name = _username(conn, user_id)
        if user_id == me.id:
            return _users_page(request, 400, error="You cannot disable yourself.")
        auth.set_disabled(conn, name, disabled)
        audit.record(conn, me.username, "user.disable" if disabled else "user.enable", f"user:{name}")
    return RedirectResponse("/admin/users", status_code=303)


@router.post(
    "/admin/users/{user_id}/password", include_in_schema=False, dependencies=[Depends(requires("users.manage"))]
)
def reset_password(request: Request, user_id: int, confirm: str = Form(...)) -> Response:
    """A new generated password, shown once; the user's sessions end."""
    me = _me(request)
    password = auth.generate_password()
    with audit.transaction(_store(request)) as conn:
        name = _username(conn, user_id)
        auth.set_password(conn, name, password)
        audit.record(conn, me.username, "user.password_reset", f"user:{name}")
    return _users_page(request, flash=f"New one-time password for {name}:", password=password)


@router.post(
    "/admin/tokens/{token_id}/revoke", include_in_schema=False, dependencies=[Depends(requires("users.manage"))]
)
def revoke_token(request: Request, token_id: int, confirm: str = Form(...)) -> Response:
    me = _me(request)
    with audit.transaction(_store(request)) as conn:
        if not tokens.revoke_token(conn, token_id):
            raise HTTPException(404)
        audit.record(conn, me.username, "token.revoke", f"token:{token_id}")
    return RedirectResponse("/admin/users", status_code=303)


# -- audit log --------------------------------------------------------------------------------------------------


def _audit_conds(actor: str, action: str) -> list[Any]:
    conds = []
    if actor:
        conds.append(audit_log.c.actor == actor[:100])
    if action:
        conds.append(audit_log.c.action == action[:50])
    return conds


@router.get("/admin/audit", include_in_schema=False, dependencies=[Depends(requires("audit.read"))])
def audit_page(request: Request, actor: str = "", action: str = "", page: str = "1") -> Response:
    me = _me(request)
    store = _store(request)
    try:
        page_n = max(1, min(int(page), 1_000_000))
    except ValueError:
        page_n = 1
    with store.connect() as conn:
        total, rows = audit.page(conn, actor=actor, action=action, limit=AUDIT_PAGE, offset=(page_n - 1) * AUDIT_PAGE)
        actions = [a for (a,) in conn.execute(select(audit_log.c.action).distinct().order_by(audit_log.c.action))]
        intact = audit.verify(conn)
    audit.log(store, me.username, "audit.view", "audit", {"actor": actor, "action": action, "page": page_n})
    kept = {k: v for k, v in (("actor", actor), ("action", action)) if v}

    def link(n: int) -> str:
        return "/admin/audit?" + urlencode({**kept, "page": n})

    return _render(
        request,
        "admin_audit.html",
        nav="audit",
        rows=rows,
        total=total,
        page=page_n,
        pages=max(1, math.ceil(total / AUDIT_PAGE)),
        link=link,
        actor=actor,
        action=action,
        actions=actions,
        intact=intact,
        export_query=urlencode(kept),
    )


@router.get("/admin/audit/export", include_in_schema=False, dependencies=[Depends(requires("audit.read"))])
def audit_export(request: Request, actor: str = "", action: str = "", format: str = "csv") -> Response:
    """The (filtered) audit log, oldest first, with each row's hashes so the chain can be checked offline."""
    me = _me(request)
    if format not in ("csv", "jsonl"):
        raise HTTPException(400, "Unknown export format.")
    store = _store(request)
    with store.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                select(audit_log).where(*_audit_conds(actor, action)).order_by(audit_log.c.id).limit(AUDIT_EXPORT_MAX)
            ).mappings()
        ]
    notice = (
        "openear audit log export. Each row's hash is sha256(prev_hash + canonical JSON of at, actor, action, "
        "target, detail); 'openear audit verify' checks the chain in the database."
    )
    columns = ["id", "at", "actor", "action", "target", "detail", "prev_hash", "hash"]
    body = exports.render(rows, columns, format, notice)
    audit.log(
        store,
        me.username,
        "audit.export",
        "audit",
        {"actor": actor, "action": action, "format": format, "rows": len(rows)},
    )
    return exports.response(body, format, "openear-audit", notice)


# -- settings ---------------------------------------------------------------------------------------------------


def _settings_page(request: Request, status_code: int = 200, **extra: Any) -> Response:
    with _store(request).connect() as conn:
        settings = overrides.effective(request.app.state.settings, conn)
        changed = overrides.overrides(conn)
    return _render(
        request,
        "admin_settings.html",
        status_code=status_code,
        nav="settings",
        retention_days=extra.pop("retention_days", settings.retention_days),
        purpose=extra.pop("purpose", settings.purpose),
        overridden=sorted(changed),
        config_path=str(request.app.state.settings.config_path),
        max_retention=overrides.MAX_RETENTION_DAYS,
        error=extra.get("error"),
        flash=extra.get("flash"),
    )


@router.get("/admin/settings", include_in_schema=False, dependencies=[Depends(requires("settings.manage"))])
def settings_page(request: Request) -> Response:
    audit.log(_store(request), _me(request).username, "settings.view", "settings")
    return _settings_page(request)


@router.post("/admin/settings", include_in_schema=False, dependencies=[Depends(requires("settings.manage"))])
def save_settings(request: Request, retention_days: str = Form(...), purpose: str = Form(...)) -> Response:
    """Change retention and the purpose statement (both shown on /transparency); each change is audited."""
    me = _me(request)
    errors = []
    for key, value in (("retention_days", retention_days), ("purpose", purpose)):
        try:
            overrides.validate(key, value)
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        return _settings_page(request, 400, error="; ".join(errors), retention_days=retention_days, purpose=purpose)
    changed = []
    with audit.transaction(_store(request)) as conn:
        for key, value in (("retention_days", retention_days), ("purpose", purpose)):
            if overrides.set_override(conn, request.app.state.settings, key, value, me.username):
                changed.append(key)
    flash = "Saved." if changed else "Nothing changed."
    return _settings_page(request, flash=flash)


# -- sources ----------------------------------------------------------------------------------------------------


@router.get("/sources", include_in_schema=False, dependencies=[Depends(requires("sources.read"))])
def sources_page(request: Request) -> Response:
    """Declared sources with their visibility, kind, last run, post counts and the guard's counts."""
    me = _me(request)
    store = _store(request)
    settings = request.app.state.settings
    with store.connect() as conn:
        stored = {s["name"]: s for s in q.list_sources(conn)}
        everything = q.Period(q.Period.parse_since("36500d").since, q.Period.parse_since("1h").until)
        guard = {g["source"]: g for g in q.guard_summary(conn, everything)["by_source"]}
        last_runs = _last_runs(conn)
    health = {h["source"]: h for h in source_statuses(store)}  # the collector's view: ok or degraded
    rows = []
    names = sorted(set(stored) | {s.name for s in settings.sources})
    for name in names:
        s = stored.get(name, {})
        spec = settings.source(name)
        run = last_runs.get(name)
        rows.append(
            {
                "name": name,
                "connector": s.get("connector") or (spec.connector if spec else "—"),
                "visibility": s.get("visibility") or (spec.visibility if spec else "—"),
                "kind": s.get("kind") or (spec.kind if spec else "—"),
                "declared": spec is not None,
                "posts": s.get("posts", 0),
                "last_run": run,
                "guard": guard.get(name, {"withheld": 0, "rejected": 0, "scrubbed": 0}),
                "health": health.get(name),
            }
        )
    audit.log(store, me.username, "sources.view", "sources")
    return _render(request, "sources.html", nav="sources", sources=rows, config_path=str(settings.config_path))


def _last_runs(conn: Any) -> dict[str, dict[str, Any]]:
    from openear.store.schema import runs

    latest = select(runs.c.source, func.max(runs.c.id).label("id")).group_by(runs.c.source).subquery()
    out = {}
    for r in conn.execute(
        select(runs.c.source, runs.c.status, runs.c.started_at, runs.c.finished_at, runs.c.kind).join(
            latest, latest.c.id == runs.c.id
        )
    ):
        if r.source:
            out[r.source] = {
                "status": r.status,
                "kind": r.kind,
                "when": f"{(r.finished_at or r.started_at):%Y-%m-%d %H:%M} UTC",
                "degraded": r.status in ("partial", "failed"),
            }
    return out
