"""OIDC sign-in against a real local provider (tests/web/oidc_idp.py) and the app served by uvicorn, driven with
httpx across both hosts: success, every tampered answer refused with no session, role mapping, linking, disabled
users, allowed domains, and the ``[oidc]`` config checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from live_server import serve
from oidc_idp import CLIENT_SECRET, IdpServer, oidc_toml
from sqlalchemy import select

from openear import audit
from openear import settings as settings_mod
from openear.errors import ConfigError
from openear.store.schema import users
from openear.web import auth, oidc
from openear.web.app import create_app


@pytest.fixture
def idp() -> Iterator[IdpServer]:
    server = IdpServer()
    yield server
    server.close()


@pytest.fixture
def app_url(web: Any, idp: IdpServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The web fixture's workspace with ``[oidc]`` pointing at the test provider, served by uvicorn."""
    monkeypatch.setenv("OPENEAR_TEST_OIDC_SECRET", CLIENT_SECRET)
    path = web.settings.config_path
    path.write_text(path.read_text(encoding="utf-8") + oidc_toml(idp.idp.issuer), encoding="utf-8")
    settings = settings_mod.load(web.settings.home)
    with serve(create_app(settings, web.store)) as url:
        yield url


def _sign_in(app_url: str, client: httpx.Client | None = None, next_path: str = "/") -> httpx.Response:
    c = client or httpx.Client()
    c.follow_redirects = True
    return c.get(app_url + "/login/oidc", params={"next": next_path})


def _me(app_url: str, client: httpx.Client) -> dict[str, str] | None:
    """(username, role) of the client's session, or None when it has none."""
    r = client.get(app_url + "/api/v1/me")
    return {"username": r.json()["username"], "role": r.json()["role"]} if r.status_code == 200 else None


def _audit(web: Any, action: str) -> list[dict[str, Any]]:
    with web.store.connect() as conn:
        return [dict(r) for r in audit.entries(conn) if r["action"] == action]


def _user_row(web: Any, name: str) -> Any:
    with web.store.connect() as conn:
        return conn.execute(
            select(users.c.username, users.c.role, users.c.disabled).where(users.c.username == name)
        ).first()


ANA = {"sub": "u-ana", "email": "Ana@Example.org", "email_verified": True, "groups": ["staff", "analysts"]}


def test_first_sign_in_creates_the_user_with_the_mapped_role_in_a_rotated_session(
    db_url: str, web: Any, idp: IdpServer, app_url: str
) -> None:
    """On SQLite and PostgreSQL."""
    idp.idp.claims = dict(ANA)
    c = httpx.Client()
    old = c.post(app_url + "/login", data={"username": "viewer", "password": web.password})
    assert old.status_code == 303
    old_token = c.cookies[auth.COOKIE_NAME]

    r = _sign_in(app_url, c, "/posts")
    assert r.status_code == 200 and str(r.url) == app_url + "/posts"  # analyst: the posts page, where it was going
    assert [str(h.url).split("?")[0] for h in r.history][:3] == [
        app_url + "/login/oidc", idp.idp.issuer + "/authorize", app_url + "/login/oidc/callback",
    ]  # fmt: skip
    assert _me(app_url, c) == {"username": "ana@example.org", "role": "analyst"}
    new_token = c.cookies[auth.COOKIE_NAME]
    assert new_token != old_token
    with web.store.connect() as conn:
        assert auth.load_session(conn, old_token) is None  # the old session id died at sign-in
        assert auth.load_session(conn, new_token).username == "ana@example.org"
    row = _user_row(web, "ana@example.org")
    assert (row.role, row.disabled) == ("analyst", False)
    assert json.loads(_audit(web, "auth.login")[-1]["detail"]) == {"method": "oidc"}
    assert _audit(web, "auth.login")[-1]["actor"] == "ana@example.org"
    assert json.loads(_audit(web, "user.add")[-1]["detail"]) == {"role": "analyst", "method": "oidc"}
    token_request = idp.idp.token_requests[-1]
    assert token_request["grant_type"] == "authorization_code" and len(token_request["code_verifier"]) >= 43

    # A second sign-in links the same user (no new account, no new user.add).
    c2 = httpx.Client()
    assert _sign_in(app_url, c2).status_code == 200
    assert _me(app_url, c2)["username"] == "ana@example.org"
    assert len(_audit(web, "user.add")) == 1


@pytest.mark.parametrize("tamper", ["nonce", "signature", "audience", "expired", "state"])
def test_a_tampered_answer_is_refused_with_no_session(web: Any, idp: IdpServer, app_url: str, tamper: str) -> None:
    idp.idp.claims = dict(ANA)
    idp.idp.tamper = tamper
    c = httpx.Client()
    r = _sign_in(app_url, c)
    assert r.status_code == 401
    assert "Sign-in with Test IdP failed" in r.text
    assert auth.COOKIE_NAME not in c.cookies
    assert _me(app_url, c) is None
    assert _user_row(web, "ana@example.org") is None  # nobody created
    failed = _audit(web, "auth.login_failed")[-1]
    assert json.loads(failed["detail"])["method"] == "oidc"
    assert not [e for e in _audit(web, "auth.login") if "oidc" in (e["detail"] or "")]


def test_a_callback_in_another_browser_is_refused(web: Any, idp: IdpServer, app_url: str) -> None:
    """The state is bound to the browser that started the sign-in (login CSRF)."""
    idp.idp.claims = dict(ANA)
    started = httpx.Client().get(app_url + "/login/oidc")
    assert started.status_code == 303 and started.headers["location"].startswith(idp.idp.issuer + "/authorize?")
    victim = httpx.Client(follow_redirects=True)
    r = victim.get(started.headers["location"])
    assert r.status_code == 401 and auth.COOKIE_NAME not in victim.cookies
    assert "another browser" in json.loads(_audit(web, "auth.login_failed")[-1]["detail"])["reason"]


@pytest.mark.parametrize(
    ("groups", "role"),
    [(["admins", "analysts"], "admin"), (["analysts"], "analyst"), (["staff"], "viewer"), ([], "viewer")],
)
def test_role_mapping(web: Any, idp: IdpServer, app_url: str, groups: list[str], role: str) -> None:
    idp.idp.claims = {"sub": "u-1", "email": "sam@example.org", "groups": groups}
    c = httpx.Client()
    assert _sign_in(app_url, c).status_code == 200
    assert _me(app_url, c) == {"username": "sam@example.org", "role": role}


def test_a_linked_local_user_keeps_their_role_and_a_disabled_one_is_refused(
    web: Any, idp: IdpServer, app_url: str
) -> None:
    with web.store.begin() as conn:
        auth.create_user(conn, "lee@example.org", web.password, "owner")
        auth.create_user(conn, "dora@example.org", web.password, "analyst")
        auth.set_disabled(conn, "dora@example.org")
    idp.idp.claims = {"sub": "u-lee", "email": "lee@example.org", "groups": ["admins"]}
    c = httpx.Client()
    assert _sign_in(app_url, c).status_code == 200
    assert _me(app_url, c)["role"] == "owner"  # the provider does not raise a local user's role

    idp.idp.claims = {"sub": "u-dora", "email": "dora@example.org", "groups": ["analysts"]}
    d = httpx.Client()
    r = _sign_in(app_url, d)
    assert r.status_code == 401 and auth.COOKIE_NAME not in d.cookies
    assert _user_row(web, "dora@example.org").disabled
    assert json.loads(_audit(web, "auth.login_failed")[-1]["detail"])["reason"] == "local account disabled"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "u-x", "email": "x@elsewhere.com", "groups": ["admins"]},  # domain not allowed
        {"sub": "u-y", "email": "y@example.org", "email_verified": False},  # address not verified
        {"sub": "u-z"},  # no e-mail at all
    ],
)
def test_policy_refusals(web: Any, idp: IdpServer, app_url: str, claims: dict[str, Any]) -> None:
    idp.idp.claims = claims
    c = httpx.Client()
    assert _sign_in(app_url, c).status_code == 401
    assert auth.COOKIE_NAME not in c.cookies


def test_the_login_page_offers_the_provider_only_when_configured(web: Any, app_url: str) -> None:
    assert "Sign in with Test IdP" in httpx.get(app_url + "/login").text
    plain = web.client()
    assert "Sign in with" not in plain.get("/login").text
    assert plain.get("/login/oidc").status_code == 404
    assert plain.get("/login/oidc/callback?state=x&code=y").status_code == 404


def test_required_group(web: Any, idp: IdpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENEAR_TEST_OIDC_SECRET", CLIENT_SECRET)
    path = web.settings.config_path
    path.write_text(
        path.read_text(encoding="utf-8") + oidc_toml(idp.idp.issuer, required_group='"openear-users"'), encoding="utf-8"
    )
    with serve(create_app(settings_mod.load(web.settings.home), web.store)) as url:
        idp.idp.claims = {"sub": "u-1", "email": "sam@example.org", "groups": ["analysts"]}
        assert _sign_in(url).status_code == 401
        idp.idp.claims["groups"] = ["analysts", "openear-users"]
        c = httpx.Client()
        assert _sign_in(url, c).status_code == 200 and _me(url, c)["role"] == "analyst"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"client_id": "x"}, "oidc.issuer: required"),
        ({"issuer": "http://idp.example.com", "client_id": "x"}, "oidc.issuer: must be an https URL"),
        ({"issuer": "https://idp.example.com"}, "oidc.client_id: required"),
        ({"issuer": "https://idp.example.com", "client_id": "x", "client_secret": "s"}, "environment variable"),
        ({"issuer": "https://idp.example.com", "client_id": "x", "client_secret_env": "NOPE_NOT_SET"}, "NOPE_NOT_SET"),
        ({"issuer": "https://idp.example.com", "client_id": "x", "roles": {"g": "root"}}, "oidc.roles.g"),
        ({"issuer": "https://idp.example.com", "client_id": "x", "scopes": ["email"]}, "include 'openid'"),
        ({"issuer": "https://idp.example.com", "client_id": "x", "tenant": "y"}, "oidc.tenant: unknown key"),
    ],
)
def test_config_errors_name_the_field(table: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=r"openear\.toml: ") as info:
        oidc.parse(table, "/ws/openear.toml", env={})
    assert problem in str(info.value)


def test_a_public_client_and_defaults() -> None:
    cfg = oidc.parse({"issuer": "https://idp.example.com/", "client_id": "x"}, "openear.toml", env={})
    assert cfg.issuer == "https://idp.example.com" and cfg.client_secret is None
    assert cfg.scopes == ("openid", "email", "profile") and cfg.default_role == "viewer"
    strict = oidc.parse({"issuer": "https://i.example", "client_id": "x", "default_role": "none"}, "f", env={})
    with pytest.raises(oidc.OidcError, match="no role"):
        oidc.Provider(strict).identity({"sub": "1", "email": "a@b.example"})


def test_any_process_finishes_a_sign_in_and_a_code_works_once(idp: IdpServer) -> None:
    """The pending sign-in travels in the browser's cookie: a second app process (a second Provider) finishes it;
    replaying the same answer fails at the provider, and a stale cookie is refused before any request."""
    from urllib.parse import parse_qs, urlsplit

    cfg = oidc.parse(
        {"issuer": idp.idp.issuer, "client_id": "openear-test", "client_secret_env": "S"}, "t", env={"S": CLIENT_SECRET}
    )
    first, second = oidc.Provider(cfg), oidc.Provider(cfg)
    idp.idp.claims = {"sub": "u-1", "email": "sam@example.org"}
    url, cookie = first.begin("http://127.0.0.1:1/login/oidc/callback", "/cases")
    answer = parse_qs(urlsplit(httpx.get(url).headers["location"]).query)
    claims, next_path = second.finish(cookie, answer["state"][0], answer["code"][0])
    assert claims["email"] == "sam@example.org" and next_path == "/cases"
    with pytest.raises(oidc.OidcError, match="invalid_grant"):
        second.finish(cookie, answer["state"][0], answer["code"][0])
    stale = oidc._Pending.from_cookie(cookie)
    assert stale is not None
    old = oidc._Pending(**{**stale.__dict__, "expires": 0.0}).cookie()
    with pytest.raises(oidc.OidcError, match="10 minutes"):
        second.finish(old, answer["state"][0], "any")
    with pytest.raises(oidc.OidcError, match="another browser"):
        second.finish("garbage!", answer["state"][0], "any")


def test_an_unreachable_provider_is_a_clear_page_not_a_crash(web: Any, idp: IdpServer, app_url: str) -> None:
    idp.close()
    r = httpx.get(app_url + "/login/oidc")
    assert r.status_code == 502 and "Test IdP cannot be reached" in r.text
    assert "password" in r.text.lower()  # the password form is still there
    assert "unreachable" in json.loads(_audit(web, "auth.login_failed")[-1]["detail"])["reason"]
