"""A real HTTP server on 127.0.0.1 that replays recorded response shapes, for the connector tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from openear.settings import SourceSpec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
SHARED = Path(__file__).resolve().parents[2].parent / "shared"  # ../shared beside the repository
_DROP = {"content-length", "content-encoding", "transfer-encoding", "connection", "date"}
FAST = {"min_interval": 0, "backoff": 0.01, "timeout": 2, "retries": 3}  # test-speed HTTP options


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Request], Reply]


def _reply_from(body_path: Path, status: int | None = None, **override: str) -> Reply:
    sidecar = body_path.with_name(body_path.name.split(".")[0] + ".headers.json")
    meta: dict[str, Any] = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    headers = {k.lower(): v for k, v in meta.get("headers", {}).items() if k.lower() not in _DROP}
    if "content-type" not in headers:
        suffix = body_path.name
        headers["content-type"] = ("application/atom+xml" if suffix.endswith(".atom.xml") else
                                   "application/rss+xml" if suffix.endswith(".xml") else
                                   "text/plain" if suffix.endswith(".txt") else "application/json")
    headers.update({k.lower(): v for k, v in override.items()})
    return Reply(status or int(meta.get("status", 200)), headers, body_path.read_bytes())


def fixture(rel: str, status: int | None = None, **headers: str) -> Reply:
    """A reply from tests/fixtures/sources/REL (and its ``.headers.json`` sidecar)."""
    return _reply_from(FIXTURES / rel, status, **headers)


def shared_reply(rel: str, status: int | None = None, **headers: str) -> Reply:
    """A reply from ../shared/data/api-samples/REL, or skip when the shared folder is absent."""
    path = SHARED.joinpath("data", "api-samples", *rel.split("/"))
    if not path.exists():
        pytest.skip(f"needs ../shared/data/api-samples/{rel} (the team's shared data), absent here")
    return _reply_from(path, status, **headers)


def json_reply(obj: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}},
                 json.dumps(obj).encode())


class ReplayServer:
    """Routes by path: a queue of replies (the last one repeats) or a handler function."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Handler] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                req = Request(self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                              {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length) if length else b"")
                reply = server.reply_for(req)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v.replace("{base}", server.url))
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def add(self, path: str, *replies: Reply | Handler) -> None:
        if len(replies) == 1 and callable(replies[0]):
            self.routes[path] = replies[0]  # type: ignore[assignment]
        else:
            self.routes[path] = list(replies)  # type: ignore[arg-type]

    def reply_for(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            route = self.routes.get(req.path)
            if route is None:
                return json_reply({"error": "not found", "path": req.path}, 404)
            if callable(route):
                handler = route
            else:
                reply = route.pop(0) if len(route) > 1 else route[0]
                return reply
        return handler(req)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def spec(name: str, connector: str, server: ReplayServer, kind: str = "social", **options: Any) -> SourceSpec:
    return SourceSpec(name, connector=connector, visibility="public", kind=kind,
                      options={"base_url": server.url, **FAST, **options})


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    """A replay server on 127.0.0.1 for one test. Test modules import this fixture by name.

    (Not in a ``conftest.py``: pytest imports every conftest as the module ``conftest``, and a second one here
    would shadow ``tests/conftest.py`` for the modules that import helpers from it.)
    """
    s = ReplayServer()
    yield s
    s.close()
