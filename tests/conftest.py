"""Shared fixtures: a real workspace (config, key, database) in a temporary folder, and the store matrix.

``db_url`` runs a test on SQLite and on PostgreSQL (issue 7). The PostgreSQL variant uses a database of this test
session (``openear_test_<pid>_<hex>``, migrated once, emptied before each test) on the server at 127.0.0.1:5432,
dropped when the session ends. Without a server it skips with the reason; in CI (``CI=true``) it fails instead.
A test that asks for ``db_url`` also gets its ``workspace`` on that store (through ``OPENEAR_DATABASE_URL``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openear.settings import Settings, SourceSpec
from openear.store import Store
from shared_data import SHARED, shared_path  # noqa: F401 - re-exported for older imports

# Ingest drops posts older than the retention limit, counted from openear.clock.now(). Fixtures carry fixed dates,
# so the suite freezes that moment: the same posts are kept on any day it runs (subprocesses inherit it).
FROZEN_NOW = "2026-12-01T00:00:00+00:00"
os.environ["OPENEAR_NOW"] = FROZEN_NOW


@dataclass
class Workspace:
    home: Path
    settings: Settings
    store: Store
    admin_password: str | None

    def write_jsonl(self, name: str, rows: Iterable[dict[str, Any]]) -> Path:
        path = self.home / name
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path

    def import_rows(self, rows: Iterable[dict[str, Any]], *, source: str = "test-source",
                    visibility: str = "public", kind: str = "social", name: str = "rows.jsonl"):
        from openear.pipeline import import_file

        path = self.write_jsonl(name, rows)
        spec = SourceSpec(source, connector="files", visibility=visibility, kind=kind)
        return import_file(self.settings, self.store, path, "jsonl", spec)


# -- PostgreSQL (issue 7) ----------------------------------------------------------------------------------
PG_HOST = "127.0.0.1:5432"
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}/postgres"
PG_SKIP = f"issue 7: no PostgreSQL at {PG_HOST}"
STORES = ["sqlite", "postgresql"]


def pg_url(dbname: str) -> str:
    return f"postgresql+psycopg://postgres@{PG_HOST}/{dbname}"


def _pg_unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{PG_SKIP} ({why}); CI must run the PostgreSQL tests: .ci/run starts the server")
    pytest.skip(f"{PG_SKIP} ({why})")


class PgServer:
    """Databases of this test session on the local server: created from a migrated template, dropped at the end."""

    def __init__(self) -> None:
        import psycopg

        self._psycopg = psycopg
        self.prefix = f"openear_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.created: list[str] = []
        self.template = self.create(migrated=False, suffix="tpl")
        from openear.store import Store

        store = Store(pg_url(self.template))
        store.migrate()
        store.close()
        self.shared = self.create(suffix="shared")

    def admin(self, sql: str) -> None:
        with self._psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def create(self, *, migrated: bool = True, suffix: str | None = None) -> str:
        """A new database (a copy of the migrated template, or empty); returns its name."""
        name = f"{self.prefix}_{suffix or len(self.created)}"
        self.admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{self.template}"' if migrated else ""))
        self.created.append(name)
        return name

    def reset_shared(self) -> str:
        """Empty every table of the shared database (the schema stays), restart its ids; returns its URL."""
        with self._psycopg.connect(pg_url(self.shared).replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(
                "DO $$ DECLARE r record; BEGIN SET LOCAL session_replication_role = replica; "
                "FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version' LOOP EXECUTE format('DELETE FROM %I', r.tablename); END LOOP; "
                "FOR r IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' LOOP "
                "EXECUTE format('ALTER SEQUENCE %I RESTART', r.sequencename); END LOOP; END $$"
            )
        return pg_url(self.shared)

    def drop_all(self) -> None:
        for name in reversed(self.created):
            try:
                self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # best effort at the end of a session
                print(f"could not drop test database {name}: {exc}")


_PG: dict[str, PgServer | str] = {}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL databases; skips (fails in CI) where no server answers."""
    state = _PG.get("server")
    if state is None:
        try:
            import psycopg

            with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
                pass
        except Exception as exc:  # any reason at all means "no server here"
            _PG["server"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        else:
            _PG["server"] = PgServer()
        state = _PG["server"]
    if isinstance(state, str):
        _pg_unavailable(state)
    assert isinstance(state, PgServer)
    yield state


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    server = _PG.pop("server", None)
    if isinstance(server, PgServer):
        server.drop_all()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Callable[..., str]:
    """A factory of fresh PostgreSQL databases: ``pg_database()`` migrated, ``pg_database(migrated=False)``
    empty; returns the URL."""
    return lambda migrated=True: pg_url(pg_server.create(migrated=migrated))


@pytest.fixture(params=STORES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL, once per store: a new SQLite file, or the session's emptied PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.reset_shared()


@pytest.fixture(scope="module", params=STORES)
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store URL shared by a module's tests, once per store (a database of its own on PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'db.sqlite'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return pg_url(server.create())


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterable[Workspace]:
    from openear.workspace import init_workspace

    monkeypatch.delenv("OPENEAR_DATABASE_URL", raising=False)
    if "db_url" in request.fixturenames:  # the test runs on both stores: so does its workspace
        monkeypatch.setenv("OPENEAR_DATABASE_URL", request.getfixturevalue("db_url"))
    monkeypatch.delenv("OPENEAR_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("OPENEAR_KEY_FILE", raising=False)
    monkeypatch.setenv("OPENEAR_HOME", str(tmp_path / "ws"))
    result = init_workspace(tmp_path / "ws")
    store = Store(result.settings.database_url)
    yield Workspace(tmp_path / "ws", result.settings, store, result.admin_password)
    store.close()


def post_row(i: int, text: str, **extra: Any) -> dict[str, Any]:
    """One native JSON Lines record."""
    row = {"id": f"p{i}", "text": text, "created_at": f"2026-11-{(i % 27) + 1:02d}T10:00:00Z",
           "author": f"author_{i}"}
    row.update(extra)
    return row
