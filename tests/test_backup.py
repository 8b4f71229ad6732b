"""`openear backup` / `openear restore` on both stores, restoring into a fresh instance (issue 7, part 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import Workspace, post_row
from openear import audit
from openear.backup import backup, restore
from openear.cli import app
from openear.errors import ConfigError
from openear.query import search
from openear.store import Store

runner = CliRunner()

ROWS = [
    post_row(1, "Me llegó la desactivación de la cuenta sin aviso"),
    post_row(2, "My tips were missing again on three orders"),
    post_row(3, "The app crashes when I scan a package at the station"),
]


def fingerprint(store: Store) -> tuple[list[tuple], list[int]]:
    from sqlalchemy import select

    from openear.store.schema import labels, posts

    with store.connect() as conn:
        rows = conn.execute(
            select(posts.c.source, posts.c.external_id, posts.c.text, posts.c.author_pseudonym, posts.c.category)
            .order_by(posts.c.source, posts.c.external_id)
        ).all()
        n_labels = conn.execute(select(labels.c.id)).all()
        hits = [r["id"] for r in search(conn, "desactivacion OR tips NEAR/2 missing", limit=None)]
    return [tuple(r) for r in rows] + [("labels", len(n_labels))], sorted(hits)


def fresh_url(db_url: str, tmp_path: Path, pg_database) -> str:  # type: ignore[no-untyped-def]
    if db_url.startswith("sqlite"):
        (tmp_path / "restored").mkdir(exist_ok=True)
        return f"sqlite:///{tmp_path / 'restored' / 'openear.db'}"
    return pg_database(migrated=False)


def invoke(home: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--home", str(home), *args], catch_exceptions=False)


def test_backup_then_restore_into_a_fresh_instance(
    db_url: str, workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from openear.workspace import init_workspace

    assert workspace.import_rows(ROWS)[1].stored == 3
    before = fingerprint(workspace.store)
    assert before[1]  # the search finds something, on both stores
    file = tmp_path / "openear.backup"
    result = invoke(workspace.home, "backup", str(file))
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "Backed up 3 posts" in out and "pseudonym key is not in the backup" in out
    assert file.stat().st_mode & 0o777 == 0o600
    assert invoke(workspace.home, "backup", str(file)).exit_code != 0  # never overwrites

    # A fresh instance: its own workspace and database, made by `openear init`, then the restore.
    url = fresh_url(db_url, tmp_path, request.getfixturevalue("pg_database") if "postgresql" in db_url else None)
    monkeypatch.setenv("OPENEAR_DATABASE_URL", url)
    other = tmp_path / "other"
    init_workspace(other)
    shutil.copy(workspace.settings.key_path, other / workspace.settings.key_path.name)  # the key travels apart
    result = invoke(other, "restore", str(file))
    assert result.exit_code == 0, result.output
    assert "Restored 3 posts" in result.output
    restored = Store(url)
    try:
        assert fingerprint(restored) == before
        assert restored.revision() == Store.script_heads()
        with restored.connect() as conn:
            assert audit.verify(conn)
            actions = [e["action"] for e in audit.entries(conn)]
        assert actions[-1] == "restore"
    finally:
        restored.close()

    # A second restore would replace collected data: only with --force.
    assert invoke(other, "restore", str(file)).exit_code != 0
    assert invoke(other, "restore", "--force", str(file)).exit_code == 0


def test_restore_into_a_database_with_no_schema(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from openear.enrich import Enrichment
    from openear.guard import Guard
    from test_store import guarded

    store = Store(db_url)
    store.migrate()
    batch = Enrichment().enrich([guarded("Station wait was over two hours", "1").post])
    store.write_batch(store.start_run("import", "src"), batch)
    done = backup(db_url, tmp_path / "b.bak")
    store.close()
    assert done.posts == 1 and done.kind == ("sqlite" if db_url.startswith("sqlite") else "pg_dump")
    url = fresh_url(db_url, tmp_path, request.getfixturevalue("pg_database") if "postgresql" in db_url else None)
    assert restore(url, done.path) == 1
    again = Store(url)
    with again.connect() as conn:
        assert [r["text"] for r in search(conn, "station wait", limit=None)] == ["Station wait was over two hours"]
    again.close()
    assert Guard  # the guard made the post; nothing raw reached the backup


def test_restore_refuses_the_wrong_kind_of_file(db_url: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bak"
    junk.write_bytes(b"not a backup at all")
    with pytest.raises(ConfigError, match="not an openear backup"):
        restore(db_url, junk)
    with pytest.raises(ConfigError, match="no such backup"):
        restore(db_url, tmp_path / "missing.bak")


def test_a_damaged_backup_is_refused_in_one_line_and_the_database_is_left_as_it_was(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.import_rows(ROWS)
    good = backup(workspace.settings.database_url, tmp_path / "good.bak")
    damaged = tmp_path / "damaged.bak"
    damaged.write_bytes(good.path.read_bytes()[: good.bytes // 3])  # a copy cut short: the header is still SQLite's
    before = fingerprint(workspace.store)
    result = runner.invoke(app, ["--home", str(workspace.home), "restore", "--force", str(damaged)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert f"{damaged}: the backup is damaged" in " ".join(result.output.split())
    assert fingerprint(workspace.store) == before  # nothing of the damaged copy reached the database


def test_a_store_keeps_to_the_key_its_authors_were_pseudonymised_with(
    db_url: str, workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Restored without its key file, a store refuses imports with another key (one author, two pseudonyms), says
    how to mend it, and takes them again after `openear key accept`; nothing is stored in between."""
    from sqlalchemy import func, select

    from openear.store.schema import posts
    from openear.workspace import init_workspace

    workspace.import_rows(ROWS)
    first = workspace.store.key_fingerprint()
    assert first is not None and len(first) == 16
    file = tmp_path / "openear.backup"
    assert invoke(workspace.home, "backup", str(file)).exit_code == 0

    url = fresh_url(db_url, tmp_path, request.getfixturevalue("pg_database") if "postgresql" in db_url else None)
    monkeypatch.setenv("OPENEAR_DATABASE_URL", url)
    other = tmp_path / "other"
    init_workspace(other)  # its own, new key: the backup's key file was not copied
    result = runner.invoke(app, ["--home", str(other), "restore", str(file)])
    assert result.exit_code == 1
    out = " ".join(result.output.split())
    assert "Restored 3 posts" in out and f"pseudonymised with another key ({first};" in out
    assert "openear key accept" in out
    shown = " ".join(invoke(other, "key", "show").output.split())
    assert f"the store's key: {first} (different: imports are refused)" in shown

    more = other / "more.jsonl"
    more.write_text('{"id": "9", "text": "pay late again", "created_at": "2026-11-20T08:00:00Z", "author": "a"}\n')
    refused = runner.invoke(app, ["--home", str(other), "import", str(more), "--source", "test-source"])
    assert refused.exit_code == 2 and "pseudonymised with another key" in " ".join(refused.output.split())
    restored = Store(url)
    try:
        with restored.connect() as conn:
            assert conn.execute(select(func.count()).select_from(posts)).scalar() == 3
        assert invoke(other, "key", "accept", "--yes").exit_code == 0
        assert restored.key_fingerprint() not in (None, first)
        taken = runner.invoke(app, ["--home", str(other), "import", str(more), "--source", "test-source"])
        assert taken.exit_code == 0, taken.output
        with restored.connect() as conn:
            assert conn.execute(select(func.count()).select_from(posts)).scalar() == 4
            actions = [e["action"] for e in audit.entries(conn)]
        assert "key.accept" in actions
    finally:
        restored.close()
