"""A small but real OpenID Connect provider for tests: discovery, JWKS, /authorize (PKCE S256), /token.

It runs on a free loopback port in a thread and signs ID tokens with an RSA key made for the test (joserfc, the
JOSE library authlib now points to). Whoever signs in is ``idp.claims``; ``idp.tamper`` breaks one thing on the
next token (nonce, signature, audience, expiry, state) so tests can see each one refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CLIENT_ID = "openear-test"
CLIENT_SECRET = "s3cret-for-the-test-idp"


@dataclass
class Idp:
    """The provider's state; ``issuer`` is set once it listens."""

    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"}))
    other_key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    claims: dict[str, Any] = field(default_factory=dict)
    tamper: str | None = None  # nonce | signature | audience | expired | state
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **grant["claims"],
        }
        key = self.key
        if self.tamper == "nonce":
            claims["nonce"] = "not-the-nonce"
        elif self.tamper == "audience":
            claims["aud"] = "another-client"
        elif self.tamper == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 1800
        elif self.tamper == "signature":
            key = self.other_key  # same kid, a key the issuer never published
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def _handler(idp: Idp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": idp.issuer,
                        "authorization_endpoint": idp.issuer + "/authorize",
                        "token_endpoint": idp.issuer + "/token",
                        "jwks_uri": idp.issuer + "/jwks",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "code_challenge_methods_supported": ["S256"],
                    },
                )
            elif url.path == "/jwks":
                self._json(200, KeySet([idp.key]).as_dict(private=False))
            elif url.path == "/authorize":
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                ok = (
                    q.get("client_id") == CLIENT_ID
                    and q.get("response_type") == "code"
                    and q.get("code_challenge_method") == "S256"
                    and q.get("code_challenge")
                    and "openid" in q.get("scope", "").split()
                    and q.get("nonce")
                    and q.get("state")
                )
                if not ok:
                    self._json(400, {"error": "invalid_request", "got": q})
                    return
                code = secrets.token_urlsafe(16)
                idp.codes[code] = {
                    "nonce": q["nonce"],
                    "challenge": q["code_challenge"],
                    "redirect_uri": q["redirect_uri"],
                    "claims": dict(idp.claims),
                }
                state = "forged-state" if idp.tamper == "state" else q["state"]
                self.send_response(302)
                self.send_header("Location", q["redirect_uri"] + "?" + urlencode({"code": code, "state": state}))
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self._json(404, {"error": "not_found"})
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            form = {k: v[0] for k, v in parse_qs(body).items()}
            idp.token_requests.append(form)
            basic = self.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if basic != expected:
                self._json(401, {"error": "invalid_client"})
                return
            grant = idp.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (
                grant is None
                or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != grant["redirect_uri"]
                or challenge != grant["challenge"]
            ):
                self._json(400, {"error": "invalid_grant"})
                return
            self._json(
                200,
                {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": idp.id_token(grant)},
            )

    return Handler


class IdpServer:
    """Serves an :class:`Idp` on 127.0.0.1 until :meth:`close`."""

    def __init__(self) -> None:
        self.idp = Idp()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.idp))
        self.idp.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def oidc_toml(issuer: str, **extra: str) -> str:
    """An ``[oidc]`` table for this provider (roles: group ``admins`` -> admin, ``analysts`` -> analyst)."""
    lines = [
        "",
        "[oidc]",
        f'issuer = "{issuer}"',
        f'client_id = "{CLIENT_ID}"',
        'client_secret_env = "OPENEAR_TEST_OIDC_SECRET"',
        'provider_name = "Test IdP"',
        'allowed_domains = ["example.org"]',
        'default_role = "viewer"',
        *(f"{k} = {v}" for k, v in extra.items()),
        "",
        "[oidc.roles]",
        'admins = "admin"',
        'analysts = "analyst"',
        "",
    ]
    return "\n".join(lines)
