"""Sign-in, sessions, throttling, CSRF, security headers, login required everywhere, and the audit chain."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from openear import audit
from openear.store.schema import audit_log, sessions, users
from openear.web import auth
from openear.web.app import CSP, PUBLIC_PATHS
from openear.web.pages import LOGIN_FAILED


def _session_rows(web: Any) -> list[str]:
    with web.store.connect() as conn:
        return [r[0] for r in conn.execute(select(sessions.c.id_hash))]


def _with_cookie(web: Any, token: str) -> Any:
    c = web.client()
    c.cookies.set(auth.COOKIE_NAME, token, domain="testserver.local")
    return c


def _actions(web: Any) -> list[tuple[str, str]]:
    with web.store.connect() as conn:
        return [(r.actor, r.action) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]


# -- passwords and users ---------------------------------------------------------------------------------------


def test_generated_passwords_are_long_and_random() -> None:
    pws = {auth.generate_password() for _ in range(50)}
    assert len(pws) == 50 and all(len(p) >= 16 for p in pws)
    with pytest.raises(ValueError):
        auth.generate_password(8)


def test_passwords_are_stored_as_argon2id(web: Any) -> None:
    with web.store.connect() as conn:
        hashes = [r[0] for r in conn.execute(select(users.c.password_hash))]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(web.password in h for h in hashes)


def test_create_user_validates(web: Any) -> None:
    with web.store.begin() as conn:
        with pytest.raises(ValueError, match="role"):
            auth.create_user(conn, "x", "a long enough password", "superuser")
        with pytest.raises(ValueError, match="password"):
            auth.create_user(conn, "x", "short", "viewer")
        assert auth.authenticate(conn, "viewer", web.password) is not None
        assert auth.authenticate(conn, "viewer", "wrong") is None
        assert auth.authenticate(conn, "nobody", web.password) is None


# -- sign-in ---------------------------------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_get_the_same_generic_error(web: Any) -> None:
    c = web.client()
    bad = c.post("/login", data={"username": "analyst", "password": "not the password"})
    unknown = c.post("/login", data={"username": "nobody", "password": "not the password"})
    assert bad.status_code == unknown.status_code == 401
    assert LOGIN_FAILED in bad.text and LOGIN_FAILED in unknown.text
    assert auth.COOKIE_NAME not in bad.cookies
    assert ("analyst", "auth.login_failed") in _actions(web)


def test_lockout_after_five_failures_with_the_same_message(web: Any) -> None:
    now = [1000.0]
    web.app.state.throttle = auth.LoginThrottle(clock=lambda: now[0])
    c = web.client()
    for _ in range(5):
        assert c.post("/login", data={"username": "analyst", "password": "wrong-password"}).status_code == 401
    locked = c.post("/login", data={"username": "analyst", "password": web.password})
    assert locked.status_code == 401 and LOGIN_FAILED in locked.text
    assert ("analyst", "auth.login_refused") in _actions(web)
    assert web.client().post("/login", data={"username": "viewer", "password": web.password}).status_code == 303
    now[0] += 301
    assert c.post("/login", data={"username": "analyst", "password": web.password}).status_code == 303


def test_lockout_is_kept_in_the_store_across_processes_and_restarts(db_url: str) -> None:
    from openear.store import Store
    from openear.store.schema import login_failures, login_locks

    store, other = Store(db_url), Store(db_url)  # two `openear serve` processes on one database
    store.migrate()
    now = [1000.0]
    a = auth.LoginThrottle(store=store, clock=lambda: now[0])
    b = auth.LoginThrottle(store=other, clock=lambda: now[0])
    assert [a.failed("Analyst") for _ in range(3)] == [False] * 3
    assert b.failed(" analyst") is False
    assert b.failed("ANALYST") is True  # the fifth failure, counted across both processes
    assert a.locked("analyst") and b.locked("analyst") and not a.locked("viewer")
    assert not auth.LoginThrottle(store=store, scope="ip", clock=lambda: now[0]).locked("analyst")
    restarted = auth.LoginThrottle(store=Store(db_url), clock=lambda: now[0])
    assert restarted.locked("analyst")  # a restart does not unlock
    with store.connect() as conn:
        keys = [*conn.execute(select(login_failures.c.key)).scalars()]
        keys += conn.execute(select(login_locks.c.key)).scalars().all()
    assert keys and all("analyst" not in k.lower() and len(k) == 64 for k in keys)  # hashes, never what was typed
    now[0] += 301
    assert not a.locked("analyst")
    a.failed("viewer")
    a.succeeded("viewer")
    with store.connect() as conn:
        assert conn.execute(select(login_failures.c.id)).all() == []  # the success cleared it; old ones expired
    for s in (store, other, restarted.store):
        s.close()  # type: ignore[union-attr]


def test_a_restarted_app_keeps_the_lockout(web: Any) -> None:
    from openear.web.app import create_app

    c = web.client()
    for _ in range(5):
        assert c.post("/login", data={"username": "analyst", "password": "wrong-password"}).status_code == 401
    restarted = create_app(web.settings, web.store)
    from fastapi.testclient import TestClient

    r = TestClient(restarted, follow_redirects=False).post(
        "/login", data={"username": "analyst", "password": web.password}
    )
    assert r.status_code == 401 and LOGIN_FAILED in r.text


def test_login_sets_a_hardened_cookie_and_stores_only_its_hash(web: Any) -> None:
    c = web.client()
    r = c.post("/login", data={"username": "analyst", "password": web.password, "next": "/posts?q=app"})
    assert r.status_code == 303 and r.headers["location"] == "/posts?q=app"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{auth.COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # plain http test server
    token = c.cookies[auth.COOKIE_NAME]
    assert len(token) >= 43  # 32 random bytes, url-safe base64
    assert _session_rows(web) == [auth.session_hash(token)]


def test_cookie_is_secure_over_https(web: Any) -> None:
    c = web.client(base_url="https://testserver")
    r = c.post("/login", data={"username": "analyst", "password": web.password})
    assert "Secure" in r.headers["set-cookie"]
    assert r.headers.get("strict-transport-security")


def test_login_rejects_open_redirects(web: Any) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        r = web.client().post("/login", data={"username": "analyst", "password": web.password, "next": target})
        assert r.headers["location"] == "/"


def test_session_id_rotates_at_login(web: Any) -> None:
    c = web.login("analyst")
    first = c.cookies[auth.COOKIE_NAME]
    web.login("analyst", client=c)
    second = c.cookies[auth.COOKIE_NAME]
    assert first != second
    assert _session_rows(web) == [auth.session_hash(second)]  # the old one was ended server-side
    assert _with_cookie(web, second).get("/").status_code == 200
    assert _with_cookie(web, first).get("/").status_code == 303


def test_a_fixated_session_id_is_not_adopted(web: Any) -> None:
    c = web.client()
    c.cookies.set(auth.COOKIE_NAME, "attacker-chosen-value", domain="testserver.local")
    r = c.post("/login", data={"username": "analyst", "password": web.password})
    assert r.status_code == 303
    assert r.cookies[auth.COOKIE_NAME] != "attacker-chosen-value"
    assert auth.session_hash("attacker-chosen-value") not in _session_rows(web)


def test_logout_ends_the_session_server_side(web: Any) -> None:
    c = web.login("analyst")
    token = c.cookies[auth.COOKIE_NAME]
    r = c.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert _session_rows(web) == []
    assert _with_cookie(web, token).get("/").status_code == 303
    assert ("analyst", "auth.logout") in _actions(web)


def test_idle_and_absolute_timeouts(web: Any) -> None:
    c = web.login("analyst")
    h = auth.session_hash(c.cookies[auth.COOKIE_NAME])
    with web.store.begin() as conn:
        now = conn.execute(select(sessions.c.last_seen_at).where(sessions.c.id_hash == h)).scalar_one()
        conn.execute(update(sessions).values(last_seen_at=now - timedelta(minutes=29)))
    assert c.get("/").status_code == 200
    with web.store.begin() as conn:
        conn.execute(update(sessions).values(last_seen_at=now - timedelta(minutes=31)))
    assert c.get("/").status_code == 303
    assert _session_rows(web) == []

    c = web.login("analyst")
    with web.store.begin() as conn:
        conn.execute(update(sessions).values(created_at=now - timedelta(hours=12, minutes=1)))
    assert c.get("/").status_code == 303


def test_disabled_users_sessions_are_rejected(web: Any) -> None:
    c = web.login("analyst")
    with web.store.begin() as conn:
        conn.execute(update(users).where(users.c.username == "analyst").values(disabled=True))
    assert c.get("/").status_code == 303
    assert web.client().post("/login", data={"username": "analyst", "password": web.password}).status_code == 401


# -- CSRF and headers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.testserver"},
    ],
)
def test_cross_site_posts_are_refused(web: Any, headers: dict[str, str]) -> None:
    r = web.client().post("/login", data={"username": "analyst", "password": web.password}, headers=headers)
    assert r.status_code == 403 and auth.COOKIE_NAME not in r.cookies
    c = web.login("analyst")
    r = c.post("/logout", headers=headers)
    assert r.status_code == 403
    assert len(_session_rows(web)) == 1  # still signed in


def test_same_origin_posts_are_accepted(web: Any) -> None:
    headers = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    c = web.client()
    assert c.post("/login", data={"username": "analyst", "password": web.password}, headers=headers).status_code == 303
    assert c.post("/logout", headers=headers).status_code == 303


def test_security_headers_on_every_response(web: Any) -> None:
    c = web.login("analyst")
    for path in ("/", "/posts", "/transparency", "/login", "/healthz", "/static/openear.css", "/nope"):
        r = c.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        if not path.startswith("/static/"):
            assert r.headers["cache-control"] == "no-store", path
    anon = web.client().get("/posts")
    assert anon.headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP


def test_error_pages_are_generic(web: Any) -> None:
    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    c = web.login("analyst")
    web.app.state.store_backup = web.app.state.store
    import openear.store.queries as q

    mp = pytest.MonkeyPatch()
    mp.setattr(q, "totals", boom)
    try:
        r = web.client(raise_server_exceptions=False)
        r.cookies.update(c.cookies)
        resp = r.get("/")
    finally:
        mp.undo()
    assert resp.status_code == 500
    assert "secret internals" not in resp.text and "Traceback" not in resp.text
    assert "Something went wrong" in resp.text
    assert resp.headers["content-security-policy"] == CSP
    nf = c.get("/posts/999999")
    assert nf.status_code == 404 and "There is nothing here" in nf.text


# -- login required --------------------------------------------------------------------------------------------


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _walk(routes: Any, prefix: str = "") -> list[tuple[str, set[str]]]:
    """(path, methods) of every route, through included routers (FastAPI keeps them nested)."""
    out: list[tuple[str, set[str]]] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            ctx = getattr(route, "include_context", None)
            out += _walk(inner.routes, prefix + (getattr(ctx, "prefix", "") or ""))
        elif getattr(route, "methods", None):
            out.append((prefix + route.path, set(route.methods)))
    return out


def test_every_page_but_the_public_ones_requires_login(web: Any) -> None:
    c = web.client()
    checked = 0
    for path, methods in _walk(web.app.routes):
        if path.startswith("/static") or path in PUBLIC_PATHS:
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            r = c.request(method, _concrete(path))
            if path.startswith("/api"):
                assert r.status_code == 401, (method, path)
            elif method == "GET":
                assert r.status_code == 303, (method, path)
                assert r.headers["location"].startswith("/login?next=")
            else:
                assert r.status_code == 401, (method, path)
            checked += 1
    assert checked >= 4
    assert c.get("/api/v1/anything").status_code == 401
    assert c.get("/transparency").status_code == 200
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/login").status_code == 200


def test_login_redirect_returns_to_the_page_asked_for(web: Any) -> None:
    c = web.client()
    r = c.get("/posts?q=pay")
    assert r.headers["location"] == "/login?next=%2Fposts%3Fq%3Dpay"
    form = c.get(r.headers["location"])
    assert 'name="next" value="/posts?q=pay"' in form.text


# -- audit -----------------------------------------------------------------------------------------------------


def test_audit_entries_are_written_and_the_chain_verifies(web: Any) -> None:
    c = web.client()
    c.post("/login", data={"username": "analyst", "password": "nope-nope-nope"})
    web.login("analyst", client=c)
    c.get("/")
    c.get("/posts")
    c.get("/posts?q=pago")
    c.get(f"/posts/{web.ids['p1']}")
    c.post("/logout")
    with web.store.connect() as conn:
        rows = list(audit.entries(conn))
        assert audit.verify(conn)
    got = [(r["actor"], r["action"], r["target"]) for r in rows]
    assert got == [
        ("analyst", "auth.login_failed", None),
        ("analyst", "auth.login", None),
        ("analyst", "report.view", "overview"),
        ("analyst", "posts.list", "posts"),
        ("analyst", "posts.search", "posts"),
        ("analyst", "post.view", f"post:{web.ids['p1']}"),
        ("analyst", "auth.logout", None),
    ]
    assert '"q":"pago"' in rows[4]["detail"]
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert all(rows[i]["prev_hash"] == rows[i - 1]["hash"] for i in range(1, len(rows)))


def test_audit_tampering_is_detected(web: Any) -> None:
    with web.store.begin() as conn:
        for i in range(3):
            audit.record(conn, "alice", "post.view", f"post:{i}", {"n": i})
    with web.store.begin() as conn:
        assert audit.verify(conn)
        conn.execute(update(audit_log).where(audit_log.c.target == "post:1").values(target="post:9"))
        assert not audit.verify(conn)
    with web.store.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.target == "post:9").values(target="post:1"))
        assert audit.verify(conn)
        conn.execute(audit_log.delete().where(audit_log.c.target == "post:1"))
        assert not audit.verify(conn)
