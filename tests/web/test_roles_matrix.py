"""Generated: every route and API endpoint x every role and anonymous gets exactly what its role allows.

Each route declares one permission (``Depends(requires(...))``); this test restates, from issue 6, which roles each
permission is for, and checks every route's real answer for every role. A route that declares no permission and is
not public fails the test, so new routes (cases, alerts, reports) are covered the moment they are added.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from casework import OWN_TEAM, seed
from starlette.routing import Mount

from openear.web.app import CSP, PUBLIC_PATHS
from openear.web.auth import COOKIE_NAME, User, create_session
from openear.web.roles import PERMISSIONS, may_access_team_object, route_permission
from openear.web.triage_pages import REPORT_CSP

ALL = {"viewer", "analyst", "owner", "admin"}
# Issue 6: viewer = aggregates and reports; analyst = posts, search, labels, cases; owner = their team's cases;
# admin = sources, users, settings, audit (and everything an analyst does).
SPEC: dict[str, set[str]] = {
    "signed_in": ALL,
    "aggregates.read": ALL,
    "reports.read": ALL,
    "posts.read": {"analyst", "admin"},
    "posts.export": {"analyst", "admin"},
    "labels.write": {"analyst", "admin"},
    "searches.use": {"analyst", "admin"},
    "cases.read": {"analyst", "owner", "admin"},
    "cases.write": {"analyst", "owner", "admin"},
    "alerts.read": {"analyst", "owner", "admin"},
    "teams.read": {"analyst", "owner", "admin"},
    "sources.read": {"admin"},
    "sources.write": {"admin"},
    "users.manage": {"admin"},
    "settings.manage": {"admin"},
    "audit.read": {"admin"},
}
# Routes whose permission is fixed here, so that a route cannot quietly declare a weaker one.
KNOWN: dict[tuple[str, str], str] = {
    ("POST", "/logout"): "signed_in",
    ("GET", "/"): "aggregates.read",
    ("GET", "/posts"): "posts.read",
    ("GET", "/posts/export"): "posts.export",
    ("GET", "/posts/{post_id}"): "posts.read",
    ("POST", "/posts/{post_id}/labels"): "labels.write",
    ("POST", "/searches"): "searches.use",
    ("POST", "/searches/{search_id}/delete"): "searches.use",
    ("GET", "/sources"): "sources.read",
    ("GET", "/sources/new"): "sources.write",
    ("POST", "/sources/new"): "sources.write",
    ("GET", "/sources/{source}/edit"): "sources.write",
    ("POST", "/sources/{source}/edit"): "sources.write",
    ("GET", "/teams"): "teams.read",
    ("GET", "/admin/users"): "users.manage",
    ("POST", "/admin/users"): "users.manage",
    ("POST", "/admin/users/{user_id}/role"): "users.manage",
    ("POST", "/admin/users/{user_id}/disable"): "users.manage",
    ("POST", "/admin/users/{user_id}/password"): "users.manage",
    ("POST", "/admin/tokens/{token_id}/revoke"): "users.manage",
    ("GET", "/admin/audit"): "audit.read",
    ("GET", "/admin/audit/export"): "audit.read",
    ("GET", "/admin/settings"): "settings.manage",
    ("POST", "/admin/settings"): "settings.manage",
    ("GET", "/api/v1/me"): "signed_in",
    ("GET", "/api/v1/aggregates"): "aggregates.read",
    ("GET", "/api/v1/clusters"): "aggregates.read",
    ("GET", "/api/v1/posts"): "posts.read",
    ("GET", "/api/v1/posts/export"): "posts.export",
    ("GET", "/api/v1/posts/{post_id}"): "posts.read",
    ("PUT", "/api/v1/posts/{post_id}/labels/{name}"): "labels.write",
    ("GET", "/api/v1/sources"): "sources.read",
    ("GET", "/api/v1/searches"): "searches.use",
    ("POST", "/api/v1/searches"): "searches.use",
    ("DELETE", "/api/v1/searches/{search_id}"): "searches.use",
    ("GET", "/api/v1/audit"): "audit.read",
    ("GET", "/api/v1/users"): "users.manage",
    # owner team membership, triage pages and the triage API (their objects also pass the team check)
    ("POST", "/admin/users/{user_id}/teams"): "users.manage",
    ("GET", "/api/v1/clusters/{cluster_id}"): "aggregates.read",
    ("GET", "/api/v1/cases"): "cases.read",
    ("POST", "/api/v1/cases"): "cases.write",
    ("GET", "/api/v1/cases/{case_id}"): "cases.read",
    ("PATCH", "/api/v1/cases/{case_id}"): "cases.write",
    ("POST", "/api/v1/cases/{case_id}/notes"): "cases.write",
    ("GET", "/api/v1/alerts"): "alerts.read",
    ("GET", "/api/v1/alerts/{alert_id}"): "alerts.read",
    ("PATCH", "/api/v1/alerts/{alert_id}"): "cases.write",
    ("GET", "/api/v1/reports"): "reports.read",
    ("GET", "/api/v1/reports/{report_id}"): "reports.read",
    ("GET", "/cases"): "cases.read",
    ("POST", "/cases"): "cases.write",
    ("GET", "/cases/{case_id}"): "cases.read",
    ("POST", "/cases/{case_id}/status"): "cases.write",
    ("POST", "/cases/{case_id}/note"): "cases.write",
    ("POST", "/cases/{case_id}/assign"): "cases.write",
    ("GET", "/alerts"): "alerts.read",
    ("POST", "/alerts/{alert_id}/ack"): "cases.write",
    ("GET", "/reports"): "reports.read",
    ("GET", "/reports/{report_id}"): "reports.read",
}
# GET routes that name a triage object or list them: a role the permission allows gets exactly 200 (the objects in
# the path are the owner's team's: see casework.seed).
TRIAGE_PATHS = ("/cases", "/alerts", "/reports", "/api/v1/cases", "/api/v1/alerts", "/api/v1/reports")
TRIAGE_PATHS += ("/api/v1/clusters",)
EXACT_200 = {path for method, path in KNOWN if method == "GET" and path.startswith(TRIAGE_PATHS)}
SPECIAL = {("GET", "/openapi.json"): "signed_in"}  # FastAPI's own route
# Routes that declare no permission but check roles in their handlers, with the permission they stand for (none
# now: every route declares one).
UNDECLARED: dict[tuple[str, str], str] = {}


TRIAGE_FORM = {"status": "open", "note": "", "text": "matrix", "team": "none", "assignee": "", "title": ""}


def _routes(app: Any) -> list[tuple[str, str, str | None]]:
    """(method, path, declared permission) for every route but static files and HEAD/OPTIONS, through included
    routers (FastAPI keeps them nested)."""

    def walk(routes: Any, prefix: str) -> list[tuple[str, str, str | None]]:
        out = []
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                ctx = getattr(route, "include_context", None)
                out += walk(inner.routes, prefix + (getattr(ctx, "prefix", "") or ""))
                continue
            if isinstance(route, Mount):
                continue
            for method in sorted(set(getattr(route, "methods", ()) or ()) - {"HEAD", "OPTIONS"}):
                out.append((method, prefix + route.path, route_permission(route)))
        return out

    return walk(app.routes, "")


def _concrete(path: str, web: Any, own: bool = True) -> str:
    """A path with real ids: the owner's team's case and alert (or, ``own=False``, another team's)."""
    t = web.t
    ids = {
        "{post_id}": web.ids["p1"],
        "{case_id}": t.own_case if own else t.other_case,
        "{alert_id}": t.own_alert if own else t.other_alert,
        "{cluster_id}": t.cluster,
        "{report_id}": t.html_report,
    }
    for name, value in ids.items():
        path = path.replace(name, str(value))
    return re.sub(r"\{[^}]+\}", "1", path)


def test_the_spec_and_the_code_agree() -> None:
    assert {k: set(v) for k, v in PERMISSIONS.items()} == SPEC


def test_every_route_declares_the_expected_permission(web: Any) -> None:
    seen = set()
    for method, path, perm in _routes(web.app):
        if path in PUBLIC_PATHS:
            assert perm is None, (method, path)
            continue
        key = (method, path)
        if key in SPECIAL or (perm is None and key in UNDECLARED):
            continue
        assert perm is not None, f"{method} {path} declares no permission (Depends(requires(...)))"
        if key in KNOWN:
            assert perm == KNOWN[key], (method, path, perm)
        seen.add(key)
    assert set(KNOWN) <= seen, set(KNOWN) - seen


def _client_for(web: Any, role: str | None) -> Any:
    c = web.client(raise_server_exceptions=False)
    if role is not None:
        from sqlalchemy import select

        from openear.store.schema import users

        with web.store.begin() as conn:
            uid = conn.execute(select(users.c.id).where(users.c.username == role)).scalar_one()
            c.cookies.set(COOKIE_NAME, create_session(conn, uid))
    return c


@pytest.mark.parametrize("role", [None, "viewer", "analyst", "owner", "admin"])
def test_matrix(web: Any, role: str | None) -> None:
    """Every route answers this role exactly as its permission says: 401/303 anonymous, 403 not allowed, else not
    an auth error and never a server error; every answer carries the security headers. Unsafe requests carry no
    body (or one naming nothing that exists), so they change nothing. Triage objects in paths are the owner's
    team's; a GET of them (or of their lists) is exactly 200 for every role the permission allows."""
    web.t = seed(web)
    checked = 0
    for method, path, perm in _routes(web.app):
        if path in PUBLIC_PATHS:
            continue
        perm = perm or {**SPECIAL, **UNDECLARED}[(method, path)]
        c = _client_for(web, role)  # fresh each time: POST /logout must not end the next check's session
        # Handlers that check roles themselves do so after form validation: give them a form that validates.
        body = TRIAGE_FORM if (method, path) in UNDECLARED and method != "GET" else None
        r = c.request(method, _concrete(path, web), data=body)
        where = f"{role or 'anonymous'} {method} {path} -> {r.status_code}"
        report = path in ("/reports/{report_id}", "/api/v1/reports/{report_id}") and r.status_code == 200
        csp = REPORT_CSP if report else CSP  # an archived HTML report has a stricter policy of its own
        assert r.headers.get("content-security-policy") == csp, where  # security headers on every route
        assert r.headers.get("cache-control") == "no-store" and r.headers.get("x-content-type-options") == "nosniff"
        if role is None:
            expected = 303 if method == "GET" and not path.startswith("/api/") else 401
            assert r.status_code == expected, where
            if expected == 303:
                assert r.headers["location"].startswith("/login?next="), where
        elif role in SPEC[perm]:
            assert r.status_code not in (401, 403), where
            assert r.status_code < 500, where
            if method == "GET" and path in EXACT_200:
                assert r.status_code == 200, where
        else:
            assert r.status_code == 403, where
            assert "author" not in r.text.lower(), where
        checked += 1
    assert checked >= len(KNOWN)


def test_object_level_team_check() -> None:
    owner, analyst, viewer, admin = (User(i, n, n) for i, n in enumerate(("owner", "analyst", "viewer", "admin")))
    assert may_access_team_object(owner, "payments", ["payments"])
    assert not may_access_team_object(owner, "safety", ["payments"])  # a case of another team
    assert not may_access_team_object(owner, None, ["payments"])
    assert not may_access_team_object(owner, "payments")  # an owner in no team sees no team's objects
    member = User(9, "pat", "owner", frozenset({"payments"}))  # teams loaded with the session
    assert may_access_team_object(member, "payments") and not may_access_team_object(member, "safety")
    assert may_access_team_object(analyst, "safety") and may_access_team_object(admin, "safety")
    assert not may_access_team_object(viewer, "payments", ["payments"])
    assert not may_access_team_object(User(8, "v", "viewer", frozenset({"payments"})), "payments")
    assert not may_access_team_object(None, "payments")


# A body that would change the object, for every unsafe route that names a case or an alert.
CHANGES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/cases/{case_id}/status"): {"data": {"status": "investigating"}},
    ("POST", "/cases/{case_id}/note"): {"data": {"text": "from another team"}},
    ("POST", "/cases/{case_id}/assign"): {"data": {"assignee": "owner", "priority": "urgent"}},
    ("POST", "/alerts/{alert_id}/ack"): {"data": {"status": "acknowledged"}},
    ("PATCH", "/api/v1/cases/{case_id}"): {"json": {"status": "investigating", "assignee": "owner"}},
    ("POST", "/api/v1/cases/{case_id}/notes"): {"json": {"text": "from another team"}},
    ("PATCH", "/api/v1/alerts/{alert_id}"): {"json": {"status": "closed"}},
}


def _triage_state(web: Any) -> tuple[Any, ...]:
    from sqlalchemy import func, select

    from openear.store.schema import alerts, case_events, cases

    with web.store.connect() as conn:
        return (
            conn.execute(select(cases).order_by(cases.c.id)).all(),
            conn.execute(select(func.count()).select_from(case_events)).scalar_one(),
            conn.execute(select(alerts.c.id, alerts.c.status).order_by(alerts.c.id)).all(),
        )


def test_object_level_matrix_across_teams(web: Any, db_url: str) -> None:
    """Every route that names a case or an alert, page or API: the owner of Payments gets 404 for Driver app's
    object, exactly as for one that does not exist, and nothing changes; the same request on their own team's object
    works; analysts and admins reach every team's."""
    web.t = seed(web)
    routes = [(m, p) for m, p, _ in _routes(web.app) if "{case_id}" in p or "{alert_id}" in p]
    assert len(routes) >= 10, routes
    owner = _client_for(web, "owner")
    assert owner.get("/api/v1/me").json()["teams"] == [OWN_TEAM]
    before = _triage_state(web)
    for method, path in routes:
        change = CHANGES.get((method, path), {})
        assert method == "GET" or change, f"state a changing body for {method} {path} in CHANGES"
        hidden = owner.request(method, _concrete(path, web, own=False), **change)
        missing = owner.request(method, re.sub(r"\{[^}]+\}", "999999", path), **change)
        where = f"owner {method} {path}: another team's -> {hidden.status_code}, missing -> {missing.status_code}"
        assert hidden.status_code == missing.status_code == 404, where
        assert "App crashes" not in hidden.text and hidden.text == missing.text, where
    assert _triage_state(web) == before  # nothing changed
    for method, path in routes:
        r = owner.request(method, _concrete(path, web), **CHANGES.get((method, path), {}))
        assert r.status_code in (200, 201, 303), f"owner {method} {path} (own team) -> {r.status_code}"
    for role in ("analyst", "admin"):
        c = _client_for(web, role)
        for path in ("/cases/{case_id}", "/api/v1/cases/{case_id}"):
            assert c.get(_concrete(path, web, own=False)).status_code == 200, (role, path)


def test_object_level_saved_searches_across_users(web: Any) -> None:
    a, b = _client_for(web, "analyst"), _client_for(web, "admin")
    sid = a.post("/api/v1/searches", json={"name": "mine", "query": "pay"}).json()["id"]
    assert b.delete(f"/api/v1/searches/{sid}").status_code == 404
    assert b.post(f"/searches/{sid}/delete", data={"confirm": "1"}).status_code == 404
    assert [s["id"] for s in a.get("/api/v1/searches").json()] == [sid]
