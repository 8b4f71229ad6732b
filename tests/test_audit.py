"""The audit chain holds when writers in several processes append at once (``serve --workers N``, a CLI command
next to the web app): each takes the database's lock on the chain's end before reading it, on both stores."""

from __future__ import annotations

import threading

from sqlalchemy import insert

from openear import audit
from openear.store import Store, utcnow
from openear.store.schema import users


def test_concurrent_writers_with_their_own_connections_keep_one_chain(db_url: str) -> None:
    """Threads with their own store and connection, past the in-process lock, stand in for other processes."""
    Store(db_url).migrate()
    stores = [Store(db_url) for _ in range(4)]
    errors: list[BaseException] = []

    def append(store: Store, n: int) -> None:
        try:
            for i in range(25):
                with store.begin() as conn:
                    audit._append(conn, f"writer-{n}", "report.view", f"t{i}", {"n": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with stores[0].connect() as conn:
        entries = list(audit.entries(conn))
        assert audit.verify(conn)
    for s in stores:
        s.close()
    assert errors == []
    assert len(entries) == 100
    assert len({e["prev_hash"] for e in entries}) == 100  # no two rows chained onto the same predecessor


def test_a_change_and_its_audit_row_commit_together_after_the_change_took_the_lock(db_url: str) -> None:
    """``audit.record`` inside a transaction that has written already (it holds the write lock) appends too."""
    store = Store(db_url)
    store.migrate()
    audit.log(store, "admin", "settings.change")
    with audit.transaction(store) as conn:
        conn.execute(insert(users).values(username="ana", role="analyst", password_hash="x", created_at=utcnow()))
        audit.record(conn, "admin", "user.add", "user:ana")
    with store.connect() as conn:
        assert [e["action"] for e in audit.entries(conn)] == ["settings.change", "user.add"]
        assert audit.verify(conn)
    store.close()


def test_audit_list_prints_the_newest_entries_of_an_actor_or_action_and_is_itself_recorded(workspace) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from openear.cli import app

    for i in range(3):
        audit.log(workspace.store, "ana", "post.view", f"post:{i}")
    audit.log(workspace.store, "ben", "export", "posts", {"format": "csv", "rows": 12})
    runner = CliRunner()
    home = ["--home", str(workspace.home)]
    listed = runner.invoke(app, [*home, "audit", "list", "--actor", "ana", "--limit", "2", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [("ana", "post.view", "post:2"),
                                                                       ("ana", "post.view", "post:1")]
    table = runner.invoke(app, [*home, "audit", "list", "--action", "export"])
    assert table.exit_code == 0, table.output
    out = " ".join(table.output.split())
    assert "1 audit entry" in out and "ben" in out and '"rows":12' in out and "ana" not in out
    with workspace.store.connect() as conn:
        total, newest = audit.page(conn, action="audit.view")
        assert total == 2 and newest[0]["actor"] == "cli"  # reading the log is recorded too
        assert audit.verify(conn)
