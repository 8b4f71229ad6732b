"""Admin pages (users and roles, audit log, settings, sources), the per-address lockout and the CLI commands."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select, update
from typer.testing import CliRunner

from openear import audit
from openear.cli import app as cli
from openear.store.schema import audit_log, sessions, users
from openear.web import auth


def _uid(web: Any, name: str) -> int:
    with web.store.connect() as conn:
        return int(conn.execute(select(users.c.id).where(users.c.username == name)).scalar_one())


def _actions(web: Any) -> list[tuple[str, str, str | None]]:
    with web.store.connect() as conn:
        return [(e["actor"], e["action"], e["target"]) for e in audit.entries(conn)]


def test_admin_adds_a_user_with_a_one_time_password_who_can_sign_in(web: Any) -> None:
    c = web.login("admin")
    r = c.post("/admin/users", data={"username": "dana", "role": "analyst"})
    assert r.status_code == 200 and "one-time password" in r.text
    password = re.search(r'<code class="secret">([A-Za-z0-9]+)</code>', r.text).group(1)  # type: ignore[union-attr]
    d = web.client()
    assert d.post("/login", data={"username": "dana", "password": password}).status_code == 303
    assert d.get("/posts").status_code == 200
    assert ("admin", "user.add", "user:dana") in _actions(web)
    dup = c.post("/admin/users", data={"username": "dana", "role": "viewer"})
    assert dup.status_code == 400 and "taken" in dup.text
    assert c.post("/admin/users", data={"username": "eve", "role": "root"}).status_code == 400


def test_role_change_and_disabling_end_sessions_and_are_audited(web: Any) -> None:
    a = web.login("analyst")
    c = web.login("admin")
    uid = _uid(web, "analyst")
    assert c.post(f"/admin/users/{uid}/role", data={"role": "viewer"}).status_code == 303
    assert a.get("/posts").status_code == 303  # signed out: the old session is gone
    v = web.login("analyst")
    assert v.get("/posts").status_code == 403  # now a viewer
    assert c.post(f"/admin/users/{uid}/disable", data={"disabled": "true"}).status_code == 303
    assert v.get("/").status_code == 303
    assert web.client().post("/login", data={"username": "analyst", "password": web.password}).status_code == 401
    assert c.post(f"/admin/users/{uid}/disable", data={"disabled": "false"}).status_code == 303
    assert web.client().post("/login", data={"username": "analyst", "password": web.password}).status_code == 303
    got = [a for a in _actions(web) if a[1].startswith("user.")]
    assert got == [
        ("admin", "user.role", "user:analyst"),
        ("admin", "user.disable", "user:analyst"),
        ("admin", "user.enable", "user:analyst"),
    ]
    me = _uid(web, "admin")
    assert c.post(f"/admin/users/{me}/disable", data={"disabled": "true"}).status_code == 400
    assert c.post(f"/admin/users/{me}/role", data={"role": "viewer"}).status_code == 400
    assert c.post("/admin/users/99999/role", data={"role": "viewer"}).status_code == 404


def test_password_reset_shows_a_new_password_once_and_ends_sessions(web: Any) -> None:
    v = web.login("viewer")
    r = web.login("admin").post(f"/admin/users/{_uid(web, 'viewer')}/password", data={"confirm": "1"})
    assert r.status_code == 200
    password = re.search(r'<code class="secret">([A-Za-z0-9]+)</code>', r.text).group(1)  # type: ignore[union-attr]
    assert v.get("/").status_code == 303
    assert web.client().post("/login", data={"username": "viewer", "password": password}).status_code == 303


def test_users_page_lists_tokens_without_their_values_and_revokes(web: Any) -> None:
    from openear.web.tokens import create_token

    with web.store.begin() as conn:
        tid, token = create_token(conn, "analyst", "dashboard-sync")
    c = web.login("admin")
    page = c.get("/admin/users").text
    assert "dashboard-sync" in page and token[:10] in page and token not in page
    assert c.post(f"/admin/tokens/{tid}/revoke", data={"confirm": "1"}).status_code == 303
    assert web.client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert c.post(f"/admin/tokens/{tid}/revoke", data={"confirm": "1"}).status_code == 404


def test_audit_page_filters_verifies_and_exports(web: Any) -> None:
    web.login("analyst").get("/posts")
    c = web.login("admin")
    page = c.get("/admin/audit", params={"actor": "analyst"}).text
    assert "the chain verifies" in page and "posts.list" in page and "report.view" not in page
    r = c.get("/admin/audit/export", params={"format": "jsonl", "actor": "analyst"})
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert "audit verify" in rows[0]["notice"]
    assert [x["action"] for x in rows[1:]] == ["auth.login", "posts.list"]
    assert all(len(x["hash"]) == 64 for x in rows[1:])
    csv_text = c.get("/admin/audit/export", params={"format": "csv"}).text
    assert csv_text.startswith("# openear audit log export") and "prev_hash" in csv_text
    assert ("admin", "audit.export", "audit") in _actions(web)
    with web.store.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.action == "posts.list").values(actor="someone-else"))
    assert "the chain is broken" in c.get("/admin/audit").text


def test_settings_change_retention_and_purpose_shown_on_transparency_and_audited(web: Any) -> None:
    c = web.login("admin")
    page = c.get("/admin/settings").text
    assert 'name="retention_days"' in page and str(web.settings.retention_days) in page
    bad = c.post("/admin/settings", data={"retention_days": "0", "purpose": "x"})
    assert bad.status_code == 400 and "between 1 and" in bad.text
    r = c.post("/admin/settings", data={"retention_days": "90", "purpose": "We fix <b>pay</b> problems."})
    assert r.status_code == 200 and "Saved." in r.text
    public = web.client().get("/transparency").text
    assert "90 days" in public and "We fix &lt;b&gt;pay&lt;/b&gt; problems." in public
    changes = [e for e in _entries(web) if e["action"] == "settings.change"]
    assert [(e["target"], json.loads(e["detail"])["to"]) for e in changes] == [
        ("retention_days", 90),
        ("purpose", "We fix <b>pay</b> problems."),
    ]
    again = c.post("/admin/settings", data={"retention_days": "90", "purpose": "We fix <b>pay</b> problems."})
    assert "Nothing changed." in again.text


def _entries(web: Any) -> list[dict[str, Any]]:
    with web.store.connect() as conn:
        return list(audit.entries(conn))


def test_purge_honours_the_retention_set_on_the_settings_page(web: Any) -> None:
    web.login("admin").post("/admin/settings", data={"retention_days": "3", "purpose": web.settings.purpose})
    result = CliRunner().invoke(cli, ["--home", str(web.settings.home), "purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "retention 3 days" in result.output


def test_sources_page_shows_status_runs_and_counts(web: Any) -> None:
    page = web.login("admin").get("/sources").text
    assert "test-source" in page and "import" in page
    assert re.search(r"test-source.*?<td class=\"num\">7</td>", page, re.S)


def test_admin_nav_only_for_admins(web: Any) -> None:
    assert 'href="/admin/users"' in web.login("admin").get("/").text
    for role in ("viewer", "analyst", "owner"):
        assert 'href="/admin/users"' not in web.login(role).get("/").text


def test_lockout_per_address_across_usernames(web: Any) -> None:
    now = [1000.0]
    web.app.state.ip_throttle = auth.LoginThrottle(max_failures=auth.IP_MAX_FAILURES, clock=lambda: now[0])
    c = web.client()
    for i in range(auth.IP_MAX_FAILURES):
        assert c.post("/login", data={"username": f"guess{i}", "password": "wrong-password"}).status_code == 401
    locked = c.post("/login", data={"username": "viewer", "password": web.password})
    assert locked.status_code == 401 and "incorrect, or the account is locked" in locked.text
    now[0] += 301
    assert c.post("/login", data={"username": "viewer", "password": web.password}).status_code == 303


# -- CLI --------------------------------------------------------------------------------------------------------


def test_cli_users_tokens_and_audit_verify(web: Any) -> None:
    home = str(web.settings.home)
    run = CliRunner()
    r = run.invoke(cli, ["--home", home, "users", "add", "frank", "--role", "analyst", "--password-stdin"],
                   input="a-long-enough-password\n")
    assert r.exit_code == 0, r.output
    signed_in = web.client().post("/login", data={"username": "frank", "password": "a-long-enough-password"})
    assert signed_in.status_code == 303
    assert run.invoke(cli, ["--home", home, "users", "add", "frank", "--password-stdin"], input="x" * 20).exit_code == 2
    assert run.invoke(cli, ["--home", home, "users", "add", "g", "--password-stdin"], input="short\n").exit_code == 2
    gen = run.invoke(cli, ["--home", home, "users", "add", "gina", "--role", "viewer"])
    assert gen.exit_code == 0 and "One-time password" in gen.output
    listing = run.invoke(cli, ["--home", home, "users", "list"])
    assert "frank" in listing.output and "analyst" in listing.output

    t = run.invoke(cli, ["--home", home, "tokens", "create", "--user", "frank"])
    assert t.exit_code == 0, t.output
    token = next(line for line in t.stdout.splitlines() if line.startswith("oe_"))
    me = web.client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "frank" and me["role"] == "analyst"
    assert run.invoke(cli, ["--home", home, "tokens", "create", "--user", "nobody"]).exit_code == 2
    listed = json.loads(run.invoke(cli, ["--home", home, "tokens", "list", "--user", "frank", "--json"]).stdout)
    assert [(t["username"], t["name"], t["revoked_at"]) for t in listed] == [("frank", "api", None)]
    assert listed[0]["last_used_at"] is not None and token not in json.dumps(listed)  # used above; never the value
    assert token[: len(listed[0]["prefix"])] == listed[0]["prefix"]
    assert run.invoke(cli, ["--home", home, "tokens", "revoke", str(listed[0]["id"])]).exit_code == 0
    table = run.invoke(cli, ["--home", home, "tokens", "list"]).output
    assert "frank" in table and token not in table
    after = json.loads(run.invoke(cli, ["--home", home, "tokens", "list", "--user", "frank", "--json"]).stdout)
    assert after[0]["revoked_at"] is not None

    assert run.invoke(cli, ["--home", home, "users", "disable", "frank"]).exit_code == 0
    assert web.client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with web.store.connect() as conn:
        assert conn.execute(select(sessions).where(sessions.c.user_id == _uid(web, "frank"))).first() is None

    ok = run.invoke(cli, ["--home", home, "audit", "verify"])
    assert ok.exit_code == 0 and "chain intact" in ok.output
    with web.store.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.action == "user.add").values(detail='{"role":"admin"}'))
    broken = run.invoke(cli, ["--home", home, "audit", "verify"])
    assert broken.exit_code == 1 and "chain broken" in broken.output


def test_cross_site_changes_are_refused_on_admin_and_api_routes(web: Any) -> None:
    c = web.login("admin")
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
        r = c.post("/admin/settings", data={"retention_days": "1", "purpose": "pwned"}, headers=headers)
        assert r.status_code == 403
        r = c.put(f"/api/v1/posts/{web.ids['p1']}/labels/sentiment", json={"value": "positive"}, headers=headers)
        assert r.status_code == 403
    assert "pwned" not in web.client().get("/transparency").text
    assert not [e for e in _entries(web) if e["action"] in ("settings.change", "label.change")]


def test_sources_page_shows_a_degraded_source(web: Any) -> None:
    from openear.store.schema import source_status

    with web.store.begin() as conn:
        conn.execute(source_status.insert().values(
            source="test-source", state="degraded", failures=3, last_error="HTTP 503 from the feed",
            skipped='{"indexable_false": 2}', deleted=0,
        ))
    page = web.login("admin").get("/sources").text
    assert "degraded" in page and "3 failures in a row" in page and "HTTP 503 from the feed" in page
    assert "indexable_false 2" in page
