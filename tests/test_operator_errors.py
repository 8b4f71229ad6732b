"""An operator's mistakes and set-ups from docs/deploy.md: each named in one line, and backups that connect to
PostgreSQL as the database URL says (its socket folder, its TLS settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openear.backup import _pg_args, backup, restore
from openear.cli import app
from openear.settings import mask_url
from openear.store import Store

runner = CliRunner()


def test_pg_backup_and_restore_connect_where_the_url_says(
    pg_database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/deploy.md's URL names the server in its query (``?host=/var/run/postgresql``): pg_dump and pg_restore
    must reach that server too, not libpq's default (here a PGHOST that leads nowhere)."""
    from openear.enrich import Enrichment
    from test_store import guarded

    def query_form(url: str) -> str:  # postgresql+psycopg://postgres@127.0.0.1:5432/DB -> ...@/DB?host=...&port=...
        head, dbname = url.rsplit("/", 1)
        hostport = head.rsplit("@", 1)[1]
        host, port = hostport.rsplit(":", 1)
        return f"{head.rsplit('@', 1)[0]}@/{dbname}?host={host}&port={port}"

    source = query_form(pg_database())
    store = Store(source)
    store.write_batch(store.start_run("import", "src"),
                      Enrichment().enrich([guarded("Station wait was over two hours", "1").post]))
    store.close()
    monkeypatch.setenv("PGHOST", str(tmp_path / "no-server-here"))
    done = backup(source, tmp_path / "b.bak")
    assert done.kind == "pg_dump" and done.posts == 1
    target = query_form(pg_database(migrated=False))
    assert restore(target, done.path) == 1


def test_pg_tools_keep_the_urls_tls_settings_and_never_see_its_password() -> None:
    args, env = _pg_args("postgresql+psycopg://openear:s3cr%27t@db.internal:5432/openear"
                         "?sslmode=verify-full&sslrootcert=/etc/openear/ca.pem")
    line = " ".join(args)
    assert "sslmode='verify-full'" in line and "sslrootcert='/etc/openear/ca.pem'" in line
    assert "host='db.internal'" in line and "port='5432'" in line and "user='openear'" in line
    assert "s3cr" not in line and env["PGPASSWORD"] == "s3cr't"


@pytest.mark.parametrize(("url", "why"), [
    ("postgres://openear:hunter2@db.internal/openear", "unknown database 'postgres'"),  # other tools' scheme
    ("postgresql+nosuchdriver://openear:hunter2@db.internal/openear", "unknown database 'postgresql+nosuchdriver'"),
    ("not a url", "not a database URL"),
])
def test_a_mistyped_database_url_is_named_in_one_line(
    url: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENEAR_DATABASE_URL", url)
    result = runner.invoke(app, ["--home", str(tmp_path / "ws"), "init"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    out = " ".join(result.output.split())
    assert out.startswith("error: database URL") and why in out and "use postgresql+psycopg://" in out
    assert "hunter2" not in out


def test_init_names_a_database_it_cannot_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`openear init` against a server that is not there (a wrong host, port or socket folder): one line."""
    monkeypatch.setenv("OPENEAR_DATABASE_URL",
                       f"postgresql+psycopg://openear@/openear?host={tmp_path / 'no-server-here'}")
    result = runner.invoke(app, ["--home", str(tmp_path / "ws"), "init"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    out = " ".join(result.output.split())
    assert out.startswith("error: cannot open the database: connection") and "no-server-here" in out


def test_a_url_without_a_password_is_shown_as_it_is() -> None:
    """`openear init` prints the URL: '***' where no password was given would suggest one was."""
    assert mask_url("postgresql+psycopg://postgres@127.0.0.1:5432/db") == "postgresql+psycopg://postgres@127.0.0.1:5432/db"
    assert mask_url("postgresql+psycopg://openear:pw@db/openear") == "postgresql+psycopg://openear:***@db/openear"


def test_healthz_tells_a_health_check_when_the_database_is_gone(
    pg_server: Any, pg_database: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/deploy.md points the proxy's health check at /healthz: 200 while the database answers, 503 after."""
    from fastapi.testclient import TestClient

    from openear.web.app import create_app
    from openear.workspace import init_workspace

    url = pg_database()
    name = url.rsplit("/", 1)[1]
    monkeypatch.setenv("OPENEAR_DATABASE_URL", url)
    settings = init_workspace(tmp_path / "ws").settings
    store = Store(url)
    try:
        client = TestClient(create_app(settings, store), base_url="http://testserver", follow_redirects=False)
        ok = client.get("/healthz")
        assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
        pg_server.admin(f'DROP DATABASE "{name}" WITH (FORCE)')  # the server's connections to it end too
        gone = client.get("/healthz")
        assert (gone.status_code, gone.json()) == (503, {"status": "unavailable"})
    finally:
        store.close()


def test_a_ray_address_where_nothing_answers_is_refused_in_seconds(tmp_path: Path) -> None:
    """Ray retries an address with no head for about 14 minutes, then prints a traceback; openear says so at once."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path / "ws"
    assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0
    data = tmp_path / "posts.jsonl"
    data.write_text('{"id": "1", "text": "The app froze", "created_at": "2026-11-20T10:00:00Z"}\n')
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "openear.cli", "--home", str(home), "backfill", str(data), "--source", "s",
         "--visibility", "public", "--engine", "ray", "--address", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 2, done.stderr
    assert f"--address 127.0.0.1:{port}: nothing answers there" in done.stderr
    assert "Traceback" not in done.stderr and time.monotonic() - started < 120
    bad = runner.invoke(app, ["--home", str(home), "backfill", str(data), "--source", "s", "--visibility", "public",
                              "--engine", "ray", "--address", "head-without-port"])
    assert bad.exit_code == 2 and "expected HOST:PORT" in bad.output
