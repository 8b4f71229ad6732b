"""Fixtures for the web tests: a real workspace with posts stored through the guard, users of every role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openear.enrich import Enrichment
from openear.guard import Guard
from openear.models import Post
from openear.settings import Settings
from openear.store import Store
from openear.web.app import create_app
from openear.web.auth import create_user

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
PASSWORD = "correct horse battery staple"
ROLES = ("viewer", "analyst", "owner", "admin")

# (external id, days ago, text, title, kind, visibility)
POSTS: list[tuple[str, int, str, str | None, str, str]] = [
    (
        "p1",
        1,
        "The app crashed three times during my shift and I lost two orders. Support never answered.",
        None,
        "social",
        "public",
    ),
    ("p2", 2, "El pago llegó tarde otra vez esta semana, y nadie del soporte contesta.", None, "social", "public"),
    ("p3", 3, f"Weird text {XSS} in a post about the app map being wrong", None, "social", "public"),
    (
        "p4",
        4,
        "Tips are missing from my weekly pay statement again, the support chat closed my ticket.",
        "Missing tips",
        "social",
        "public",
    ),
    (
        "p5",
        5,
        "Tips are missing from my weekly pay statement again, the support chat closed my ticket.",
        None,
        "social",
        "public",
    ),
    (
        "p6",
        6,
        "Write to me at driver.jane@example.com or call +1 555 123 4567 about the pay bug.",
        None,
        "social",
        "public",
    ),
    (
        "p7",
        7,
        "The company announced a new scheduling feature for couriers in Madrid.",
        "New scheduling",
        "news",
        "public",
    ),
    ("w1", 2, "We are organising a strike and a protest outside the offices next Friday.", None, "social", "public"),
    ("r1", 3, "From our private group: the pay is late again.", None, "social", "private"),
]


@dataclass
class Web:
    """A workspace with posts and one user per role (password :data:`PASSWORD`)."""

    settings: Settings
    store: Store
    app: Any
    ids: dict[str, int] = field(default_factory=dict)
    password: str = PASSWORD
    xss: str = XSS

    def client(self, **kwargs: Any) -> TestClient:
        kwargs.setdefault("base_url", "http://testserver")
        return TestClient(self.app, follow_redirects=False, **kwargs)

    def add_posts(self, rows: list[tuple[str, int, str, str | None, str, str]], source: str) -> dict[str, int]:
        """Store more posts (guarded and enriched) from ``source``; returns all {external id: post id}."""
        return store_posts(self.store, rows, source)

    def login(self, role: str = "analyst", client: TestClient | None = None) -> TestClient:
        c = client or self.client()
        r = c.post("/login", data={"username": role, "password": PASSWORD})
        assert r.status_code == 303, r.text
        return c


def store_posts(
    store: Store, rows: list[tuple[str, int, str, str | None, str, str]] = POSTS, source: str = "test-source"
) -> dict[str, int]:
    """Guard, enrich and write posts the way the pipeline does; returns {external id: post id}."""
    from sqlalchemy import select

    from openear.store.schema import posts

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    guard = Guard(b"k" * 32)
    store.declare_source(source, connector="files", visibility="public", kind="social")
    run_id = store.start_run("import", source)
    passed, rejections = [], []
    for ext, ago, text, title, kind, vis in rows:
        post = Post(
            source=source,
            external_id=ext,
            platform="reddit",
            kind=kind,  # type: ignore[arg-type]
            visibility=vis,
            created_at=now - timedelta(days=ago),
            text=text,  # type: ignore[arg-type]
            title=title,
            url=f"https://example.org/{ext}",
            author_id=f"a-{ext}",
            author_handle="someone",
        )
        verdict = guard.check(post, "public")
        if verdict.post is not None:
            passed.append(verdict.post)
        if verdict.rejection is not None:
            rejections.append(verdict.rejection)
    store.write_batch(run_id, Enrichment().enrich(passed), rejections=rejections)
    with store.connect() as conn:
        return {ext: pid for pid, ext in conn.execute(select(posts.c.id, posts.c.external_id))}


@pytest.fixture(autouse=True)
def _fast_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still argon2id, with test-sized costs: the default costs take ~0.5 s a hash on a small CI machine."""
    from argon2 import PasswordHasher

    from openear.web import auth

    fast = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    monkeypatch.setattr(auth, "_hasher", fast)
    monkeypatch.setattr(auth, "_DUMMY_HASH", fast.hash("dummy password"))


@pytest.fixture
def web(workspace: Any) -> Iterator[Web]:
    store: Store = workspace.store
    ids = store_posts(store)
    with store.begin() as conn:
        for role in ROLES:
            if role != "admin":
                create_user(conn, role, PASSWORD, role)
        from openear.web.auth import set_password

        set_password(conn, "admin", PASSWORD)
    app = create_app(workspace.settings, store)
    yield Web(workspace.settings, store, app, ids)
