"""Guardrail 7, route by route: every GET route of the app is classified here, either as audited (a role that may
see it requests it, and exactly the expected audit rows are appended: user, action, target) or as showing no post
content (then its answer holds no post text). The routes come from the app itself (``iter_routes``), so a new GET
route that nobody classified fails :func:`test_every_get_route_is_classified`, and one that shows posts without
an audit call fails :func:`test_each_route_writes_exactly_its_audit_rows`.

The command line's counterpart is ``tests/test_audit_cli_coverage.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from casework import bearer, seeded
from sqlalchemy import func, select

from openear import audit
from openear.store.schema import audit_log
from openear.web.roles import iter_routes

# Words of the fixture posts (tests/web/conftest.py POSTS) that only their text holds.
POST_TEXT = ("crashed three times", "tarde otra vez", "weekly pay statement", "scheduling feature for couriers")

Ids = dict[str, int]


@dataclass(frozen=True)
class Audited:
    """A route that shows post content (or an admin's view of people, settings or the log): ``role`` requests
    ``url`` (ids filled from the seeded objects) and exactly ``rows`` ((action, target), as ``role``) are appended.
    ``shows`` is a post's text that the answer must hold, proof that the probe really saw posts."""

    role: str
    url: str
    rows: Callable[[Ids], list[tuple[str, str | None]]]
    shows: str | None = None


@dataclass(frozen=True)
class NoPostContent:
    """A route that shows no post content, and why; it need not write an audit row."""

    why: str
    role: str | None = None  # who requests it (None: anonymous, a public route)
    url: str | None = None  # default: the route's path with ids filled


def rows(*pairs: tuple[str, str]) -> Callable[[Ids], list[tuple[str, str | None]]]:
    """Expected (action, target) rows; ``{post}``, ``{case}``, ``{alert}``, ``{cluster}``, ``{report}`` filled."""
    return lambda ids: [(action, target.format(**ids) if target else None) for action, target in pairs]


# Every GET route: "audited: ACTION" or "no post content: WHY". Keep it in step with the app.
ROUTES: dict[str, Audited | NoPostContent] = {
    # public
    "/login": NoPostContent("the sign-in form"),
    "/login/oidc": NoPostContent("redirects to the identity provider (404 when none is configured)"),
    "/login/oidc/callback": NoPostContent("ends an OIDC sign-in; the sign-in itself is audited as auth.login"),
    "/transparency": NoPostContent("public: purpose, retention, declared sources and the guard's counts only"),
    "/healthz": NoPostContent("a database ping"),
    "/openapi.json": NoPostContent("the API's schema", role="viewer"),
    # dashboard pages
    "/": Audited("viewer", "/?since=30d", rows(("report.view", "overview")), shows="weekly pay statement"),
    "/posts": Audited("analyst", "/posts?q=tips", rows(("posts.search", "posts")), shows="weekly pay statement"),
    "/posts/export": Audited(
        "analyst", "/posts/export?format=csv", rows(("posts.export", "posts")), shows="crashed three times"
    ),
    "/posts/{post_id}": Audited("analyst", "/posts/{post}", rows(("post.view", "post:{post}")), shows="crashed"),
    "/cases": Audited("analyst", "/cases", rows(("cases.list", "cases"))),
    "/cases/{case_id}": Audited("analyst", "/cases/{case}", rows(("case.view", "case:{case}")), shows="Weird text"),
    "/alerts": Audited("owner", "/alerts", rows(("alerts.view", "alerts"))),
    "/reports": Audited("viewer", "/reports", rows(("reports.list", "reports"))),
    "/reports/{report_id}": Audited("viewer", "/reports/{report}", rows(("report.view", "report:{report}"))),
    "/teams": NoPostContent("teams, their categories, channels, members and routing rules (configuration)", "owner"),
    "/sources/new": NoPostContent("the form to declare a source", "admin"),
    "/sources/{source}/edit": NoPostContent("the form to edit a declared source", "admin", "/sources/x/edit"),
    "/sources": Audited("admin", "/sources", rows(("sources.view", "sources"))),
    "/admin/users": Audited("admin", "/admin/users", rows(("users.view", "users"))),
    "/admin/audit": Audited("admin", "/admin/audit", rows(("audit.view", "audit"))),
    "/admin/audit/export": Audited("admin", "/admin/audit/export", rows(("audit.export", "audit"))),
    "/admin/settings": Audited("admin", "/admin/settings", rows(("settings.view", "settings"))),
    # the API (bearer tokens)
    "/api/v1/me": Audited("viewer", "/api/v1/me", lambda ids: [("api.me", None)]),
    "/api/v1/aggregates": Audited("viewer", "/api/v1/aggregates", rows(("report.view", "api:aggregates"))),
    "/api/v1/clusters": Audited(
        "viewer", "/api/v1/clusters", rows(("report.view", "api:clusters")), shows="weekly pay statement"
    ),
    "/api/v1/clusters/{cluster_id}": Audited(
        "viewer", "/api/v1/clusters/{cluster}", rows(("report.view", "cluster:{cluster}")), shows="weekly pay"
    ),
    "/api/v1/posts": Audited("analyst", "/api/v1/posts", rows(("posts.list", "api:posts")), shows="crashed three"),
    "/api/v1/posts/export": Audited(
        "analyst", "/api/v1/posts/export?q=tips&format=jsonl", rows(("posts.export", "api:posts")), shows="weekly pay"
    ),
    "/api/v1/posts/{post_id}": Audited(
        "analyst", "/api/v1/posts/{post}", rows(("post.view", "post:{post}")), shows="crashed three times"
    ),
    "/api/v1/sources": Audited("admin", "/api/v1/sources", rows(("sources.view", "api:sources"))),
    "/api/v1/searches": Audited("analyst", "/api/v1/searches", rows(("search.saved_list", "api:searches"))),
    "/api/v1/audit": Audited("admin", "/api/v1/audit", rows(("audit.view", "api:audit"))),
    "/api/v1/users": Audited("admin", "/api/v1/users", rows(("users.view", "api:users"))),
    "/api/v1/cases": Audited("owner", "/api/v1/cases", rows(("cases.list", "api:cases"))),
    "/api/v1/cases/{case_id}": Audited(
        "analyst", "/api/v1/cases/{case}", rows(("case.view", "case:{case}")), shows="Weird text"
    ),
    "/api/v1/alerts": Audited("analyst", "/api/v1/alerts", rows(("alerts.view", "api:alerts"))),
    "/api/v1/alerts/{alert_id}": Audited("owner", "/api/v1/alerts/{alert}", rows(("alert.view", "alert:{alert}"))),
    "/api/v1/reports": Audited("viewer", "/api/v1/reports", rows(("reports.list", "api:reports"))),
    "/api/v1/reports/{report_id}": Audited(
        "viewer", "/api/v1/reports/{report}", rows(("report.view", "report:{report}"))
    ),
}


@pytest.fixture
def aw(web: Any) -> Any:
    return seeded(web)


def _ids(web: Any) -> Ids:
    t = web.t
    return {
        "post": web.ids["p1"],
        "case": t.own_case,
        "alert": t.own_alert,
        "cluster": t.cluster,
        "report": t.html_report,
    }


def _last_id(web: Any) -> int:
    with web.store.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(audit_log.c.id), 0))).scalar_one())


def _appended(web: Any, after: int) -> list[tuple[str, str, str | None]]:
    with web.store.connect() as conn:
        return [(e["actor"], e["action"], e["target"]) for e in audit.entries(conn, after=after)]


def _client(web: Any, role: str | None, api: bool) -> Any:
    if role is None:
        return web.client()
    return bearer(web, role) if api else web.login(role)


def _get_paths(web: Any) -> set[str]:
    return {path for method, path, _route in iter_routes(web.app.routes) if method == "GET"}


def test_every_get_route_is_classified(web: Any) -> None:
    """A GET route added to the app fails here until it is classified: audited (with its action) or no post
    content (with why); a classified route that no longer exists fails too."""
    paths = _get_paths(web)
    assert not paths - set(ROUTES), f"classify in ROUTES as Audited(...) or NoPostContent(why): {paths - set(ROUTES)}"
    assert not set(ROUTES) - paths, f"no longer routes of the app: {set(ROUTES) - paths}"


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_each_route_writes_exactly_its_audit_rows(aw: Any, path: str) -> None:
    entry = ROUTES[path]
    ids = _ids(aw)
    api = path.startswith("/api/")
    if isinstance(entry, Audited):
        c = _client(aw, entry.role, api)  # signing in (a session, a token) is audited before the probe starts
        before = _last_id(aw)
        r = c.get(entry.url.format(**ids))
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        if entry.shows:
            assert entry.shows in r.text, f"{path}: the probe did not see post content"
        expected = [(entry.role, action, target) for action, target in entry.rows(ids)]
        assert _appended(aw, before) == expected, path
        with aw.store.connect() as conn:
            assert audit.verify(conn)
    else:
        c = _client(aw, entry.role, api)
        url = entry.url or path
        assert "{" not in url, f"{path}: give NoPostContent a concrete url"
        r = c.get(url)
        assert r.status_code < 500, (path, r.status_code)
        body = r.text
        for words in POST_TEXT:
            assert words not in body, f"{path} is classified as showing no post content, yet shows {words!r}"


def test_an_unchanged_alert_patch_is_audited_as_a_view(aw: Any) -> None:
    """PATCH /api/v1/alerts/{id} answers the alert (its terms and posts) as GET does: a change is audited as
    alert.<status>, and a request that changes nothing as alert.view, never as nothing."""
    c = bearer(aw, "analyst")
    alert = aw.t.own_alert
    before = _last_id(aw)
    r = c.patch(f"/api/v1/alerts/{alert}", json={"status": "open"})  # seeded open: no change
    assert r.status_code == 200 and r.json()["terms"], r.text
    assert _appended(aw, before) == [("analyst", "alert.view", f"alert:{alert}")]
    before = _last_id(aw)
    assert c.patch(f"/api/v1/alerts/{alert}", json={"status": "acknowledged"}).status_code == 200
    assert _appended(aw, before) == [("analyst", "alert.acknowledged", f"alert:{alert}")]
