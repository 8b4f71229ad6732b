"""The web app factory: server-rendered pages, deny-by-default login, CSRF and security headers.

Every path needs a signed-in user except those in :data:`PUBLIC_PATHS` and ``/static/``. HTML requests without a
session are redirected to ``/login``; ``/api/`` requests get 401.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from openear.settings import Settings
from openear.store import Store
from openear.web import auth

__all__ = ["CSP", "PUBLIC_PATHS", "app_from_environment", "create_app", "serve"]

log = logging.getLogger("openear.web")

HERE = Path(__file__).parent
PUBLIC_PATHS = frozenset(
    {"/login", "/login/oidc", "/login/oidc/callback", "/transparency", "/healthz", "/favicon.ico"}
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
ERROR_TEXT = {
    400: "The request could not be understood.",
    401: "Please sign in.",
    403: "You do not have access to this page.",
    404: "There is nothing here.",
    405: "That method is not allowed here.",
    422: "Some of the values sent were not valid.",
    500: "Something went wrong on our side. The error has been logged.",
}
# Under /api/ the caller is a request, not a page (the HTML pages keep ERROR_TEXT's wording).
API_ERROR_TEXT = {**ERROR_TEXT, 403: "Your role may not make this request."}


def is_public(path: str) -> bool:
    """True for paths anyone may fetch without signing in."""
    return path in PUBLIC_PATHS or path.startswith("/static/")


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # post text is untrusted: escape everything, everywhere
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from openear.labels import nice

    env.filters["num"] = lambda n: f"{int(n or 0):,}"
    env.filters["nice"] = lambda key: nice(str(key)) if key else ""
    return Jinja2Templates(env=env)


class _Guard(BaseHTTPMiddleware):
    """CSRF check, session lookup, login requirement and security headers for every response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        app = request.app
        request.state.user = None
        if auth.is_cross_site(request.method, request.headers, request.headers.get("host")):
            response = render_error(request, 403, "This request came from another site and was refused.")
            return _secure(response, request)
        token = request.cookies.get(auth.COOKIE_NAME)
        if token:
            request.state.user = await run_in_threadpool(_load_user, app.state.store, token)
        path = request.url.path
        bearer = request.headers.get("authorization", "")
        api = path.startswith("/api/") or path == "/openapi.json"
        if request.state.user is None and api and bearer[:7].lower() == "bearer ":
            request.state.user = await run_in_threadpool(_load_token_user, app.state.store, bearer[7:].strip())
        if request.state.user is None and not is_public(path):
            if path.startswith("/api/") or path == "/api":
                response = JSONResponse(
                    {"error": "authentication required"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
            elif request.method in ("GET", "HEAD"):
                target = path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            else:
                response = render_error(request, 401)
            return _secure(response, request)
        response = await call_next(request)
        return _secure(response, request)


def _load_user(store: Store, token: str) -> auth.User | None:
    with store.begin() as conn:
        return auth.load_session(conn, token)


def _load_token_user(store: Store, token: str) -> auth.User | None:
    from openear.web.tokens import load_token_user

    with store.begin() as conn:
        return load_token_user(conn, token)


def _secure(response: Response, request: Request) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.url.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if request.url.scheme == "https":
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def render_error(request: Request, status: int, message: str | None = None) -> Response:
    """A plain error page (or JSON under /api/) that says what happened, never how."""
    if request.url.path.startswith("/api/"):
        text = message or API_ERROR_TEXT.get(status, "The request could not be completed.")
        return JSONResponse({"error": text}, status_code=status)
    text = message or ERROR_TEXT.get(status, "The request could not be completed.")
    templates: Jinja2Templates = request.app.state.templates
    user = getattr(request.state, "user", None)
    back = _form_page(request) if user else None
    context = {"status": status, "message": text, "user": user, "nav": "", "back": back}
    return templates.TemplateResponse(request, "error.html", context, status_code=status)


def _form_page(request: Request) -> str | None:
    """The page whose form was refused (a POST's same-origin ``Referer``, as a path), to go back and correct it."""
    if request.method != "POST":
        return None
    referer = urlsplit(request.headers.get("referer", ""))
    if (referer.scheme, referer.netloc) != (request.url.scheme, request.url.netloc) or not referer.path.startswith("/"):
        return None
    return referer.path + (f"?{referer.query}" if referer.query else "")


_WHERE = frozenset({"query", "path", "body", "header", "cookie"})


def invalid_fields_message(errors: list[Any]) -> str:
    """A 422's ``error``: each invalid field named with what was wrong (``limit: Input should be ...``), never
    the value sent. A body that is not JSON, or not a JSON object, is named ``body``."""
    parts = []
    for e in errors[:5]:
        loc = [str(p) for p in e.get("loc", ())]
        where, path = (loc[0], loc[1:]) if loc and loc[0] in _WHERE else ("", loc)
        kind = e.get("type", "")
        if kind == "json_invalid":
            name, msg = "body", "not valid JSON"
        elif not path and where == "body":
            name = "body"
            msg = "a JSON object is required" if kind in ("missing", "model_attributes_type") else e.get("msg", "")
        else:
            name = ".".join(path) or where or "request"
            msg = "unknown field" if kind == "extra_forbidden" else str(e.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{name}: {msg}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts) or ERROR_TEXT[422]


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """Build the app for a workspace; ``store`` defaults to one opened on ``settings.database_url``."""
    from openear.web import admin, api, config_pages, oidc, pages

    app = FastAPI(
        title="openear",
        version="1",
        description="openear's REST API. Sign in, or send `Authorization: Bearer <token>` (`openear tokens create`).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",  # signed-in users only, like every other non-public path
    )
    app.state.settings = settings
    app.state.store = store if store is not None else Store(settings.database_url)
    # Kept in the store: a restart or another `openear serve` process does not reset a lockout.
    app.state.throttle = auth.LoginThrottle(store=app.state.store)
    # Per client address: more failures allowed (many people share an office's address), same window and lockout.
    app.state.ip_throttle = auth.LoginThrottle(max_failures=auth.IP_MAX_FAILURES, store=app.state.store, scope="ip")
    app.state.templates = _templates()
    app.state.oidc = oidc.load(settings)  # None without [oidc] in openear.toml

    app.add_middleware(_Guard)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(oidc.router)
    app.include_router(config_pages.router)
    app.include_router(__import__("openear.web.triage_pages", fromlist=["router"]).router)
    app.include_router(admin.router)
    app.include_router(api.router)
    app.include_router(__import__("openear.web.api_triage", fromlist=["router"]).router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        msg = exc.detail if exc.status_code < 500 and isinstance(exc.detail, str) and exc.detail != "" else None
        if msg in ("Not Found", "Forbidden", "Method Not Allowed", "Unauthorized", "Bad Request"):
            msg = None
        response = render_error(request, exc.status_code, msg)
        if exc.headers:
            response.headers.update(exc.headers)
        return _secure(response, request)

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):  # the shape OpenAPI documents, without the values sent
            errors = list(exc.errors())
            detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                      for e in errors]
            body = {"error": invalid_fields_message(errors), "detail": detail}
            return _secure(JSONResponse(body, status_code=422), request)
        return _secure(render_error(request, 422), request)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _secure(render_error(request, 500), request)

    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, **options: Any) -> None:
    """Run the app with uvicorn until interrupted; ``workers`` > 1 serves from as many processes (one per core).

    Processes share everything that must be shared through the store: sessions, sign-in lockouts, the audit chain.
    Each keeps its own cache of dashboard figures, checked against the store's data version on every view.
    """
    import uvicorn

    if workers <= 1:
        uvicorn.run(create_app(settings), host=host, port=port, server_header=False, **options)
        return
    from uvicorn.supervisors import Multiprocess

    os.environ["OPENEAR_HOME"] = str(settings.home)  # the worker processes load the same workspace
    config = uvicorn.Config(
        "openear.web.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        server_header=False,
        **options,
    )
    Multiprocess(config, sockets=[_listening_socket(host, port)]).run()


def _listening_socket(host: str, port: int) -> socket.socket:
    """The socket the worker processes accept on, created as TCP explicitly.

    uvicorn's own (``workers`` > 1) has protocol 0, so asyncio does not set ``TCP_NODELAY`` on the connections it
    accepts: with Nagle's algorithm on, each response on a kept-alive connection then waited about 40 ms for the
    client's delayed ACK (44 ms for ``/healthz`` instead of 2 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def app_from_environment() -> FastAPI:
    """The app of the workspace in ``$OPENEAR_HOME`` (what ``openear serve --workers N`` starts in each process)."""
    from openear import settings as settings_mod

    return create_app(settings_mod.load(os.environ.get("OPENEAR_HOME")))
