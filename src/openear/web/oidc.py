"""Optional sign-in through an OpenID Connect identity provider (``[oidc]`` in ``openear.toml``).

The authorization-code flow with PKCE (S256), ``state`` and ``nonce``: ``GET /login/oidc`` sends the browser to the
provider; ``GET /login/oidc/callback`` exchanges the code at the token endpoint and checks the ID token's signature
against the issuer's JWKS and its ``iss``, ``aud`` (and ``azp``), ``exp``, ``iat`` and ``nonce``. The pending sign-in
(state, nonce, code verifier) lives for ten minutes in an HttpOnly cookie of the browser that started it, so a
callback in another browser (login CSRF) is refused, and any ``openear serve`` process can finish it. Built on
authlib's OAuth 2 parameter helpers and joserfc (the JOSE library authlib now points to).

A first sign-in creates a local user named by ``username_claim`` (default ``email``) with the role mapped from
``role_claim``, or links the local user of that name, who keeps their role; a disabled user stays refused. The
session is the same server-side session as a password sign-in, audited as ``auth.login`` with method ``oidc``.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Connection, select

from openear import audit
from openear.errors import ConfigError
from openear.settings import Settings
from openear.store.schema import users
from openear.web import auth

__all__ = ["OidcConfig", "OidcError", "Provider", "load", "parse", "router"]

router = APIRouter()

BINDING_COOKIE = "openear_oidc"
CALLBACK_PATH = "/login/oidc/callback"
PENDING_TTL = 600.0  # seconds a started sign-in may take at the provider
METADATA_TTL = 3600.0
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class OidcError(Exception):
    """A sign-in that must be refused; the message goes to the audit log, never to the browser."""


@dataclass(frozen=True)
class OidcConfig:
    """The ``[oidc]`` table, typed."""

    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    provider_name: str = "your identity provider"
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    username_claim: str = "email"
    role_claim: str = "groups"
    roles: tuple[tuple[str, str], ...] = ()  # (claim value, role), first match wins
    default_role: str | None = "viewer"  # None: a user whose claims map to no role is refused
    allowed_domains: tuple[str, ...] = ()
    group_claim: str = "groups"
    required_group: str | None = None
    redirect_uri: str | None = None
    leeway: int = 60
    timeout: float = 10.0


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in _LOOPBACK  # a provider on this machine (tests, development)


def parse(raw: Any, where: str, env: Mapping[str, str] | None = None) -> OidcConfig:
    """Check the ``[oidc]`` table; ``where`` names the file in errors (``openear.toml: oidc.issuer: ...``)."""
    env = os.environ if env is None else env
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: oidc: must be a table")

    def text(key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = raw.get(key, default)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: oidc.{key}: {'required, ' if required else ''}a non-empty string")
        return value.strip()

    def strings(key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = raw.get(key, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f"{where}: oidc.{key}: must be a list of strings")
        return tuple(v.strip() for v in value)

    known = {
        "issuer", "client_id", "client_secret_env", "provider_name", "scopes", "username_claim", "role_claim",
        "roles", "default_role", "allowed_domains", "group_claim", "required_group", "redirect_uri", "leeway",
        "timeout",
    }  # fmt: skip
    if "client_secret" in raw:
        raise ConfigError(f"{where}: oidc.client_secret: put the secret in an environment variable")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: oidc.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    issuer = str(text("issuer", required=True)).rstrip("/")
    if not _is_url(issuer):
        raise ConfigError(f"{where}: oidc.issuer: must be an https URL, not {issuer!r}")
    secret = None
    secret_env = text("client_secret_env")
    if secret_env:
        secret = env.get(secret_env)
        if not secret:
            raise ConfigError(f"{where}: oidc.client_secret_env: the environment variable {secret_env} is not set")
    roles_raw = raw.get("roles", {})
    if not isinstance(roles_raw, dict):
        raise ConfigError(f"{where}: oidc.roles: must be a table of claim value = role")
    for value, role in roles_raw.items():
        if role not in auth.ROLES:
            raise ConfigError(f"{where}: oidc.roles.{value}: role must be one of {', '.join(auth.ROLES)}, not {role!r}")
    default_role = raw.get("default_role", "viewer")
    if default_role in ("", "none", False):
        default_role = None
    elif default_role not in auth.ROLES:
        raise ConfigError(f'{where}: oidc.default_role: one of {", ".join(auth.ROLES)} or "none", not {default_role!r}')
    scopes = strings("scopes", ("openid", "email", "profile"))
    if "openid" not in scopes:
        raise ConfigError(f"{where}: oidc.scopes: must include 'openid'")
    redirect_uri = text("redirect_uri")
    if redirect_uri and not _is_url(redirect_uri):
        raise ConfigError(f"{where}: oidc.redirect_uri: must be an https URL, not {redirect_uri!r}")
    leeway, timeout = raw.get("leeway", 60), raw.get("timeout", 10.0)
    if not isinstance(leeway, int) or isinstance(leeway, bool) or not 0 <= leeway <= 300:
        raise ConfigError(f"{where}: oidc.leeway: whole seconds from 0 to 300")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 60:
        raise ConfigError(f"{where}: oidc.timeout: seconds, more than 0 and at most 60")
    return OidcConfig(
        issuer=issuer,
        client_id=str(text("client_id", required=True)),
        client_secret=secret,
        provider_name=str(text("provider_name", "your identity provider")),
        scopes=scopes,
        username_claim=str(text("username_claim", "email")),
        role_claim=str(text("role_claim", "groups")),
        roles=tuple((str(k), str(v)) for k, v in roles_raw.items()),
        default_role=default_role,
        allowed_domains=tuple(d.lower().lstrip("@") for d in strings("allowed_domains")),
        group_claim=str(text("group_claim", "groups")),
        required_group=text("required_group"),
        redirect_uri=redirect_uri,
        leeway=leeway,
        timeout=float(timeout),
    )


def load(settings: Settings, env: Mapping[str, str] | None = None) -> Provider | None:
    """The workspace's provider, or None when ``openear.toml`` has no ``[oidc]`` table."""
    raw = settings.raw.get("oidc")
    if raw is None:
        return None
    return Provider(parse(raw, str(settings.config_path), env))


# -- the provider -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    """A started sign-in, kept in the browser's ``openear_oidc`` cookie (HttpOnly, SameSite=Lax, 10 minutes), so
    any ``openear serve`` process can finish it. It needs no signature: the state must match the provider's
    answer, the nonce the ID token, and the code verifier the code, which only this client can redeem once."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next: str
    expires: float

    def cookie(self) -> str:
        data = json.dumps(asdict(self), separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    @classmethod
    def from_cookie(cls, value: str | None) -> _Pending | None:
        if not value or len(value) > 2000:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            return cls(**{k: data[k] for k in ("state", "nonce", "verifier", "redirect_uri", "next")},
                       expires=float(data["expires"]))  # fmt: skip
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    subject: str
    username: str
    role: str


class Provider:
    """One identity provider: discovery, JWKS, the flow and ID token checks (thread-safe)."""

    def __init__(self, config: OidcConfig, client: httpx.Client | None = None) -> None:
        self.config = config
        self.name = config.provider_name
        self._client = client or httpx.Client(timeout=config.timeout, follow_redirects=False)
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: KeySet | None = None

    # -- provider documents ---------------------------------------------------------------------------------
    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            r = self._client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError(f"provider unreachable: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise OidcError(f"provider answered {r.status_code} for {url}")
        try:
            body = r.json()
        except ValueError:
            raise OidcError(f"provider sent no JSON for {url}") from None
        if not isinstance(body, dict):
            raise OidcError(f"provider sent no JSON object for {url}")
        return body

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached for an hour); its ``issuer`` must be the configured one."""
        now = time.monotonic()
        with self._lock:
            if self._metadata and now - self._metadata[0] < METADATA_TTL:
                return self._metadata[1]
        meta = self._get_json(self.config.issuer + "/.well-known/openid-configuration")
        if str(meta.get("issuer", "")).rstrip("/") != self.config.issuer:
            raise OidcError("discovery document names another issuer")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(meta.get(key), str) or not _is_url(meta[key]):
                raise OidcError(f"discovery document: {key}: missing or not an https URL")
        with self._lock:
            self._metadata = (now, meta)
        return meta

    def keys(self, refresh: bool = False) -> KeySet:
        """The issuer's signing keys (fetched again when a token names a key we do not have)."""
        with self._lock:
            if self._keys is not None and not refresh:
                return self._keys
        try:
            keys = KeySet.import_key_set(self._get_json(self.metadata()["jwks_uri"]))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as exc:
            raise OidcError(f"JWKS not usable: {exc}") from None
        with self._lock:
            self._keys = keys
        return keys

    # -- the flow -------------------------------------------------------------------------------------------
    def begin(self, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """(the provider's authorization URL, the value of the browser's pending sign-in cookie)."""
        meta = self.metadata()
        pending = _Pending(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),  # 86 characters, within RFC 7636's 43..128
            redirect_uri=redirect_uri,
            next=next_path,
            expires=time.time() + PENDING_TTL,
        )
        url = prepare_grant_uri(
            meta["authorization_endpoint"],
            self.config.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(self.config.scopes),
            state=pending.state,
            nonce=pending.nonce,
            code_challenge=create_s256_code_challenge(pending.verifier),
            code_challenge_method="S256",
        )
        return url, pending.cookie()

    def finish(self, cookie: str | None, state: str, code: str) -> tuple[dict[str, Any], str]:
        """(the checked ID token claims, the local path to go to) for the provider's answer to the sign-in this
        browser started (its cookie); raises :class:`OidcError` for anything amiss."""
        pending = _Pending.from_cookie(cookie)
        if pending is None:
            raise OidcError("no sign-in started in this browser (state started in another browser, or expired)")
        if not state or not hmac.compare_digest(pending.state.encode(), state.encode("utf-8", "replace")):
            raise OidcError("state does not match the one this browser started (state started in another browser)")
        if pending.expires < time.time():
            raise OidcError("sign-in took longer than 10 minutes")
        if not code:
            raise OidcError("no authorization code")
        token = self._exchange(code, pending)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("token response without an id_token")
        return self.verify_id_token(id_token, pending.nonce), pending.next

    def _exchange(self, code: str, pending: _Pending) -> dict[str, Any]:
        cfg = self.config
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=pending.redirect_uri, code_verifier=pending.verifier,
            client_id=cfg.client_id,
        )  # fmt: skip
        auth_ = httpx.BasicAuth(cfg.client_id, cfg.client_secret) if cfg.client_secret else None
        try:
            r = self._client.post(
                self.metadata()["token_endpoint"],
                content=body,
                auth=auth_,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise OidcError(f"token endpoint unreachable: {type(exc).__name__}") from None
        try:
            token = r.json()
        except ValueError:
            token = None
        if r.status_code != 200 or not isinstance(token, dict):
            error = token.get("error") if isinstance(token, dict) else None
            raise OidcError(f"token endpoint answered {r.status_code}{f' ({error})' if error else ''}")
        return token

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token whose signature, issuer, audience, times and nonce all check out."""
        cfg = self.config
        try:
            kid = jws.extract_compact(id_token.encode("ascii")).headers().get("kid")
            keys = self.keys()
            if kid and all(k.kid != kid for k in keys.keys):  # the issuer rotated its keys: fetch them again
                keys = self.keys(refresh=True)
            decoded = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
            claims = dict(decoded.claims)
            jwt.JWTClaimsRegistry(
                leeway=cfg.leeway,
                iss={"essential": True, "value": cfg.issuer},
                aud={"essential": True, "value": cfg.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(claims)
        except (JoseError, ValueError, UnicodeError) as exc:
            raise OidcError(f"ID token refused: {type(exc).__name__}: {exc}") from None
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != cfg.client_id:
            raise OidcError("ID token refused: several audiences and azp is not this client")
        return claims

    # -- who is it ------------------------------------------------------------------------------------------
    def identity(self, claims: Mapping[str, Any]) -> Identity:
        """The local username and role for checked claims; :class:`OidcError` when policy refuses them."""
        cfg = self.config
        name = claims.get(cfg.username_claim)
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
            raise OidcError(f"claim {cfg.username_claim!r} missing or not a usable name")
        name = name.strip()
        email = claims.get("email")
        if cfg.username_claim == "email":
            name = name.lower()
        if cfg.allowed_domains or cfg.username_claim == "email":
            if not isinstance(email, str) or "@" not in email:
                raise OidcError("no e-mail address in the claims")
            if claims.get("email_verified") is False:
                raise OidcError("e-mail address not verified by the provider")
            domain = email.rsplit("@", 1)[1].lower()
            if cfg.allowed_domains and domain not in cfg.allowed_domains:
                raise OidcError(f"e-mail domain {domain!r} not allowed")
        if cfg.required_group and cfg.required_group not in _values(claims.get(cfg.group_claim)):
            raise OidcError(f"not in the required group {cfg.required_group!r}")
        held = _values(claims.get(cfg.role_claim))
        role = next((r for value, r in cfg.roles if value in held), cfg.default_role)
        if role is None:
            raise OidcError("no role mapped for this user")
        return Identity(str(claims["sub"]), name, role)


def _values(claim: Any) -> set[str]:
    if isinstance(claim, str):
        return {claim}
    if isinstance(claim, list | tuple):
        return {str(v) for v in claim}
    return set()


def link_user(conn: Connection, who: Identity) -> tuple[auth.User | None, bool]:
    """(the local user, created now) for an identity; the user is None when that local account is disabled.

    A new user gets the mapped role and an unusable random password (they sign in through the provider)."""
    row = conn.execute(
        select(users.c.id, users.c.username, users.c.role, users.c.disabled).where(users.c.username == who.username)
    ).first()
    if row is not None:
        return (None if row.disabled else auth.User(row.id, row.username, row.role)), False
    uid = auth.create_user(conn, who.username, secrets.token_urlsafe(32), who.role)
    return auth.User(uid, who.username, who.role), True


# -- routes -----------------------------------------------------------------------------------------------------


def _provider(request: Request) -> Provider:
    provider: Provider | None = getattr(request.app.state, "oidc", None)
    if provider is None:
        raise HTTPException(404)
    return provider


def _redirect_uri(request: Request, provider: Provider) -> str:
    return provider.config.redirect_uri or str(request.url.replace(path=CALLBACK_PATH, query=""))


@router.get("/login/oidc", include_in_schema=False)
def oidc_start(request: Request, next: str = "/") -> Response:
    """Send the browser to the identity provider."""
    from openear.web.pages import _safe_next, login_page

    provider = _provider(request)
    try:
        url, pending = provider.begin(_redirect_uri(request, provider), _safe_next(next))
    except OidcError as exc:
        audit.log(request.app.state.store, "-", "auth.login_failed", detail={"method": "oidc", "reason": str(exc)})
        return login_page(request, 502, next, error=f"{provider.name} cannot be reached. Try again in a while.")
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        BINDING_COOKIE, pending, max_age=int(PENDING_TTL), httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/login/oidc",
    )  # fmt: skip
    return response


@router.get(CALLBACK_PATH, include_in_schema=False)
def oidc_callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
    """The provider's answer: check it, then sign in the linked (or new) local user."""
    from openear.web.pages import login_page, start_session

    provider = _provider(request)
    store = request.app.state.store
    failed = f"Sign-in with {provider.name} failed. Ask an administrator if this keeps happening."
    actor = "-"
    try:
        if error:
            raise OidcError(f"provider answered error {error[:100]!r}")
        claims, next_path = provider.finish(request.cookies.get(BINDING_COOKIE), state[:200], code[:2000])
        who = provider.identity(claims)
        actor = who.username
        with audit.transaction(store) as conn:
            user, created = link_user(conn, who)
            if created:
                audit.record(conn, "openear", "user.add", f"user:{who.username}", {"role": who.role, "method": "oidc"})
        if user is None:
            raise OidcError("local account disabled")
    except OidcError as exc:
        audit.log(store, actor, "auth.login_failed", detail={"method": "oidc", "reason": str(exc)[:300]})
        response = login_page(request, 401, "/", error=failed)
        response.delete_cookie(BINDING_COOKIE, path="/login/oidc")
        return response
    response = start_session(request, user, next_path, method="oidc")
    response.delete_cookie(BINDING_COOKIE, path="/login/oidc")
    return response
