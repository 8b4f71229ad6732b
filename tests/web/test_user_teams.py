"""Owner team membership: the users CLI (--team, users teams --set), the admin users page, and the membership
loaded with each session (on both stores)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from openear import audit
from openear.cli import app as cli
from openear.store.schema import user_teams, users
from openear.web.membership import parse_teams, set_user_teams

PASSWORD = "a long enough password"


def _run(web: Any, *args: str, password: str | None = None) -> Any:
    result = CliRunner().invoke(cli, ["--home", str(web.settings.home), *args], input=password)
    result.flat = " ".join(result.output.split())  # rich wraps long lines
    return result


def _teams(web: Any, name: str) -> list[str]:
    with web.store.connect() as conn:
        return sorted(
            conn.execute(
                select(user_teams.c.team)
                .join(users, users.c.id == user_teams.c.user_id)
                .where(users.c.username == name)
            ).scalars()
        )


def _audit(web: Any, action: str) -> list[dict[str, Any]]:
    with web.store.connect() as conn:
        assert audit.verify(conn)
        return [e for e in audit.entries(conn) if e["action"] == action]


def test_cli_adds_an_owner_with_teams(web: Any, db_url: str) -> None:
    r = _run(
        web,
        "users",
        "add",
        "frank",
        "--role",
        "owner",
        "--team",
        "Driver app",
        "--team",
        "Payments",
        "--password-stdin",
        password=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    assert "Teams: Driver app, Payments" in r.flat
    assert _teams(web, "frank") == ["Driver app", "Payments"]
    [entry] = _audit(web, "user.teams")
    assert entry["target"] == "user:frank" and json.loads(entry["detail"])["to"] == ["Driver app", "Payments"]
    c = web.client()
    assert c.post("/login", data={"username": "frank", "password": PASSWORD}).status_code == 303
    assert c.get("/api/v1/me").json()["teams"] == ["Driver app", "Payments"]  # loaded with the session


def test_cli_refuses_unknown_teams_and_teams_for_other_roles(web: Any, db_url: str) -> None:
    r = _run(
        web, "users", "add", "gil", "--role", "owner", "--team", "Marketing", "--password-stdin", password=PASSWORD
    )
    assert r.exit_code == 2 and "unknown team 'Marketing'" in r.flat and "Payments" in r.flat  # names the choices
    with web.store.connect() as conn:  # nothing half-made: no user without their teams
        assert conn.execute(select(users.c.id).where(users.c.username == "gil")).first() is None
    r = _run(
        web, "users", "add", "hana", "--role", "analyst", "--team", "Payments", "--password-stdin", password=PASSWORD
    )
    assert r.exit_code == 2 and "only owners belong to teams" in r.flat
    r = _run(web, "users", "add", "ivo", "--role", "owner", "--password-stdin", password=PASSWORD)
    assert r.exit_code == 0 and "belongs to no team yet" in r.flat and _teams(web, "ivo") == []


def test_cli_users_teams_shows_and_sets(web: Any, db_url: str) -> None:
    assert _run(web, "users", "add", "jo", "--role", "owner", "--password-stdin", password=PASSWORD).exit_code == 0
    r = _run(web, "users", "teams", "jo", "--set", "Payments, Comms")
    assert r.exit_code == 0 and "jo: Comms, Payments" in r.flat and _teams(web, "jo") == ["Comms", "Payments"]
    assert "jo: Comms, Payments" in _run(web, "users", "teams", "jo").flat
    bad = _run(web, "users", "teams", "jo", "--set", "Payments,Nope")
    assert bad.exit_code == 2 and "unknown team 'Nope'" in bad.flat
    assert _teams(web, "jo") == ["Comms", "Payments"]  # unchanged
    assert "Payments" in " ".join(_run(web, "users", "list").output.split())
    assert _run(web, "users", "teams", "jo", "--set", "").exit_code == 0 and _teams(web, "jo") == []
    assert _run(web, "users", "teams", "analyst", "--set", "Payments").exit_code == 2  # not an owner
    assert _run(web, "users", "teams", "analyst", "--set", "").exit_code == 0  # clearing is always fine
    ghost = _run(web, "users", "teams", "ghost", "--set", "Payments")
    assert ghost.exit_code == 2 and "no user 'ghost'" in ghost.flat
    assert _run(web, "users", "teams", "ghost").exit_code == 2
    changes = [json.loads(e["detail"]) for e in _audit(web, "user.teams")]
    assert changes == [{"from": [], "to": ["Comms", "Payments"]}, {"from": ["Comms", "Payments"], "to": []}]


def test_membership_changes_apply_to_live_sessions(web: Any) -> None:
    c = web.login("owner")
    assert c.get("/api/v1/me").json()["teams"] == []
    with web.store.begin() as conn:
        set_user_teams(conn, "owner", ["Safety"], ["Safety", "Payments"])
    assert c.get("/api/v1/me").json()["teams"] == ["Safety"]  # no new sign-in needed


def test_team_lists_parse() -> None:
    assert parse_teams(" Driver app,, Payments ,Driver app") == ["Driver app", "Payments"]
    assert parse_teams("") == []


def test_admin_page_shows_and_edits_teams(web: Any) -> None:
    c = web.login("admin")
    with web.store.connect() as conn:
        uid = conn.execute(select(users.c.id).where(users.c.username == "owner")).scalar_one()
        analyst = conn.execute(select(users.c.id).where(users.c.username == "analyst")).scalar_one()
    page = c.get("/admin/users").text
    assert f'action="/admin/users/{uid}/teams"' in page and "no team: sees no cases" in page
    assert f'action="/admin/users/{analyst}/teams"' not in page  # teams are for owners
    r = c.post(f"/admin/users/{uid}/teams", data={"team": ["Payments", "Safety"]})
    assert r.status_code == 303 and _teams(web, "owner") == ["Payments", "Safety"]
    page = c.get("/admin/users").text
    assert '<option value="Payments" selected>' in page and '<option value="Comms">' in page
    bad = c.post(f"/admin/users/{uid}/teams", data={"team": ["Payments", "Nowhere"]})
    assert bad.status_code == 400 and "unknown team" in bad.text and _teams(web, "owner") == ["Payments", "Safety"]
    assert c.post(f"/admin/users/{analyst}/teams", data={"team": ["Payments"]}).status_code == 400
    assert c.post("/admin/users/99999/teams", data={"team": ["Payments"]}).status_code == 404
    added = c.post("/admin/users", data={"username": "kim", "role": "owner", "team": ["Comms"]})
    assert added.status_code == 200 and _teams(web, "kim") == ["Comms"]
    assert web.login("owner").post(f"/admin/users/{uid}/teams", data={"team": []}).status_code == 403
    assert [json.loads(e["detail"])["to"] for e in _audit(web, "user.teams")] == [["Payments", "Safety"], ["Comms"]]


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_other_roles_need_no_team(web: Any, role: str) -> None:
    assert web.login(role).get("/api/v1/me").json()["teams"] == []
